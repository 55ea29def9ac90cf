//! Flip for Business (BigFlip) "Get Balance": `GET {base}/v2/general/balance`.
//!
//! HTTP Basic with the secret key as the user and an empty password, and the documented
//! `Content-Type: application/x-www-form-urlencoded` although there is no body. Flip answers
//! 401 to every request while it is under maintenance, so a 401 alone does not mean a bad key:
//! this provider then asks `GET {base}/v2/general/maintenance`, and only a 401 outside
//! maintenance is `auth`. That second step makes it a [`Provider`] rather than a
//! [`super::SimpleProvider`].

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Client, RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::{
    Answer, Balance, BoxFuture, CheckContext, Provider, Registration, Sample, decode_json,
    endpoint, excerpt, refusal, rupiah,
};
use crate::error::UpstreamError;

pub mod simulator;

/// The registry entry.
pub const PROVIDER: Registration = Registration {
    name: "flip",
    parse: super::parse::<Config>,
    simulator: || Box::<simulator::Flip>::default(),
    demo: super::simulator::DemoAccount {
        balance: 49_656_053,
        sale_every: std::time::Duration::from_secs(3),
        low: 8_000_000,
        top_up: 40_000_000,
        warning: 20_000_000,
        critical: 10_000_000,
    },
    sample: Sample {
        answer: SAMPLE_ANSWER,
        balance: 49_656_053,
        balance_at: "/balance",
        // Success is a 2xx answer with a balance; there is no success flag.
        success_when: &[],
        decode,
    },
};

/// The documented success answer.
pub const SAMPLE_ANSWER: &str = r#"{"balance":49656053}"#;

/// Production; the sandbox is `https://bigflip.id/big_sandbox_api`.
pub const DEFAULT_BASE_URL: &str = "https://bigflip.id/api";

const BALANCE_PATH: &str = "v2/general/balance";
const MAINTENANCE_PATH: &str = "v2/general/maintenance";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub secret_key: SecretString,
    #[serde(default = "default_base_url")]
    pub base_url: Url,
}

fn default_base_url() -> Url {
    Url::parse(DEFAULT_BASE_URL).expect("the default base URL is valid")
}

impl Config {
    /// A bodiless GET of `path`, authenticated and typed as the documentation shows.
    pub fn request(&self, client: &Client, path: &str) -> RequestBuilder {
        client
            .get(endpoint(&self.base_url, path))
            .basic_auth(self.secret_key.expose_secret(), None::<&str>)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
    }
}

impl Provider for Config {
    fn base_url(&self) -> &Url {
        &self.base_url
    }

    fn fetch<'a>(&'a self, cx: &'a CheckContext) -> BoxFuture<'a, Result<Balance, UpstreamError>> {
        Box::pin(async move {
            let answer = cx.exchange(self.request(&cx.client, BALANCE_PATH)).await?;
            if answer.status != StatusCode::UNAUTHORIZED {
                return answer.decode_with(decode);
            }
            let maintenance = cx
                .exchange(self.request(&cx.client, MAINTENANCE_PATH))
                .await;
            Err(after_unauthorized(&answer.body, maintenance))
        })
    }
}

/// A 401 on the balance, read with the answer of the maintenance endpoint: `rejected` when
/// Flip says it is under maintenance, `auth` otherwise. Only a clear `"maintenance": true`
/// clears the key; an unreadable or failed maintenance answer leaves the 401 as `auth` (the
/// operator then checks the key, and the message says the maintenance status is unknown), and a
/// 429 there is `rate_limited`, as anywhere.
pub fn after_unauthorized(
    balance_body: &[u8],
    maintenance: Result<Answer, UpstreamError>,
) -> UpstreamError {
    let unauthorized = format!("HTTP 401: {}", unauthorized_message(balance_body));
    let status = match maintenance {
        Err(err @ UpstreamError::RateLimited { .. }) => return err,
        Err(err) => format!("maintenance status unknown: {err}"),
        Ok(answer) if !answer.status.is_success() => {
            format!(
                "maintenance status unknown: HTTP {}",
                answer.status.as_u16()
            )
        }
        Ok(answer) => match decode_json::<MaintenanceAnswer>(&answer.body) {
            Ok(MaintenanceAnswer { maintenance: true }) => {
                return UpstreamError::Rejected(
                    "maintenance: Flip is under maintenance and answers HTTP 401 to every \
                     request until it ends (GET /v2/general/maintenance)"
                        .into(),
                );
            }
            Ok(MaintenanceAnswer { maintenance: false }) => "not under maintenance".into(),
            Err(err) => format!("maintenance status unknown: {err}"),
        },
    };
    UpstreamError::Auth(excerpt(&format!(
        "{unauthorized} ({status}; auth: the secret key is wrong or revoked)"
    )))
}

#[derive(Deserialize)]
struct MaintenanceAnswer {
    maintenance: bool,
}

/// The message of Flip's 401 envelope,
/// `{"name":"Unauthorized","message":"You are requesting with an invalid credential.","status":401}`.
fn unauthorized_message(body: &[u8]) -> String {
    decode_json::<Value>(body)
        .ok()
        .and_then(|value| value.get("message")?.as_str().map(excerpt))
        .unwrap_or_else(|| "Unauthorized".into())
}

#[derive(Deserialize)]
struct BalanceAnswer {
    #[serde(default)]
    balance: Option<Value>,
    /// Flip's validation envelope, `{"code": "VALIDATION_ERROR", "errors": [...]}`.
    #[serde(default)]
    code: Option<Value>,
    #[serde(default)]
    errors: Option<Value>,
    #[serde(default)]
    message: Option<Value>,
}

/// A balance answer, `{"balance": 49656053}`, in IDR (Flip documents no other currency). A
/// failure envelope is never read as a balance, even one that holds a `balance`.
pub fn decode(body: &[u8]) -> Result<Balance, UpstreamError> {
    let answer: BalanceAnswer = decode_json(body)?;
    if answer.code.is_some() || answer.errors.is_some() {
        let text =
            |value: &Option<Value>| value.as_ref().map(super::envelope_text).unwrap_or_default();
        let (code, errors, message) = (
            text(&answer.code),
            text(&answer.errors),
            text(&answer.message),
        );
        return Err(refusal(
            &[&code, &message, &errors],
            &format!("{code}: {message} {errors}"),
        ));
    }
    rupiah("balance", answer.balance.as_ref())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rust_decimal::Decimal;

    use super::*;
    use crate::error::Reason;

    fn config() -> Config {
        Config {
            secret_key: SecretString::from("SECRET"),
            base_url: default_base_url(),
        }
    }

    fn answer(status: u16, body: &str) -> Result<Answer, UpstreamError> {
        Ok(Answer {
            status: StatusCode::from_u16(status).unwrap(),
            body: body.as_bytes().to_vec(),
        })
    }

    const UNAUTHORIZED: &[u8] = br#"{"name":"Unauthorized","message":"You are requesting with an invalid credential.","status":401}"#;

    #[test]
    fn the_request_carries_the_worked_basic_header_and_the_form_content_type() {
        let request = config()
            .request(&Client::new(), BALANCE_PATH)
            .build()
            .unwrap();
        assert_eq!(request.method(), "GET");
        assert_eq!(
            request.url().as_str(),
            "https://bigflip.id/api/v2/general/balance"
        );
        let headers = request.headers();
        // providers.md §2.8, the worked vector.
        assert_eq!(headers["authorization"], "Basic U0VDUkVUOg==");
        assert!(headers["authorization"].is_sensitive());
        assert_eq!(headers["content-type"], "application/x-www-form-urlencoded");
        assert!(request.body().is_none());
    }

    #[test]
    fn the_sandbox_base_keeps_its_path() {
        let sandbox = Config {
            base_url: Url::parse("https://bigflip.id/big_sandbox_api").unwrap(),
            ..config()
        };
        let request = sandbox
            .request(&Client::new(), MAINTENANCE_PATH)
            .build()
            .unwrap();
        assert_eq!(
            request.url().as_str(),
            "https://bigflip.id/big_sandbox_api/v2/general/maintenance"
        );
    }

    #[test]
    fn the_documented_answer_decodes_in_idr() {
        let balance = decode(SAMPLE_ANSWER.as_bytes()).unwrap();
        assert_eq!(balance.amount, Decimal::from(49_656_053));
        assert_eq!(balance.currency, "IDR");
    }

    #[test]
    fn a_401_during_maintenance_is_rejected_and_outside_it_auth() {
        let err = after_unauthorized(UNAUTHORIZED, answer(200, r#"{"maintenance": true}"#));
        assert_eq!(err.reason(), Reason::Rejected);
        assert!(err.to_string().contains("maintenance"), "{err}");
        let err = after_unauthorized(UNAUTHORIZED, answer(200, r#"{"maintenance": false}"#));
        assert_eq!(err.reason(), Reason::Auth);
        assert!(err.to_string().contains("invalid credential"), "{err}");
    }

    #[test]
    fn an_unknown_maintenance_status_leaves_the_401_as_auth_but_a_429_is_rate_limited() {
        for maintenance in [
            answer(500, "oops"),
            answer(401, ""),
            answer(200, r#"{"maintenance": "yes"}"#),
            answer(200, "<html></html>"),
            Err(UpstreamError::Connect("reset".into())),
        ] {
            let err = after_unauthorized(b"not json", maintenance);
            assert_eq!(err.reason(), Reason::Auth, "{err}");
            assert!(err.to_string().contains("unknown"), "{err}");
        }
        let err = after_unauthorized(
            UNAUTHORIZED,
            Err(UpstreamError::RateLimited {
                retry_after: Some(Duration::from_secs(5)),
            }),
        );
        assert_eq!(err.reason(), Reason::RateLimited);
    }

    #[test]
    fn a_validation_envelope_is_a_refusal_never_a_balance() {
        let body = br#"{"code":"VALIDATION_ERROR","errors":[{"attribute":"Content-Type","code":1099,"message":"Invalid content type"}],"balance":5}"#;
        let err = decode(body).unwrap_err();
        assert_eq!(err.reason(), Reason::Rejected);
        assert!(err.to_string().contains("VALIDATION_ERROR"), "{err}");
        // Other statuses keep the usual reading: a 422 is an HTTP status.
        let err = Answer {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: body.to_vec(),
        }
        .decode_with(decode)
        .unwrap_err();
        assert_eq!(err.reason(), Reason::HttpStatus);
    }

    #[test]
    fn malformed_answers_are_decode_failures() {
        for body in [
            &b"<html>Page not found</html>"[..],
            b"[49656053]",
            br#"{"balance": null}"#,
            br#"{"balance": "banyak"}"#,
            br#"{}"#,
            b"",
            b"{\"balance\": 1, \"note\": \"\xff\"}",
        ] {
            let err = decode(body).unwrap_err();
            assert_eq!(
                err.reason(),
                Reason::Decode,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn the_secret_key_is_not_in_debug_output() {
        assert!(!format!("{:?}", config()).contains("SECRET"));
    }
}
