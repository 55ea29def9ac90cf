//! Tripay PPOB (tripay.id, not the tripay.co.id payment gateway) "cek saldo":
//! `GET {base}/v2/ceksaldo` with `Authorization: Bearer <api key>`.
//!
//! The answer's `data` is the balance itself, a bare integer of rupiah. Known from two or more
//! independent clients only (providers.md §2.6): no official page, and neither the HTTP
//! statuses nor the messages of failures are documented, so a failure is `auth` when its
//! message names a credential problem and `rejected` otherwise.

use std::time::SystemTime;

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use reqwest::{Client, RequestBuilder};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use url::Url;

use super::{
    Balance, Registration, Sample, SimpleProvider, decode_json, endpoint, excerpt,
    names_a_credential_problem, rupiah,
};
use crate::error::UpstreamError;

pub mod simulator;

/// The registry entry.
pub const PROVIDER: Registration = Registration {
    name: "tripay",
    parse: super::parse::<Config>,
    simulator: || Box::new(simulator::Tripay),
    demo: super::simulator::DemoAccount {
        balance: 3_750_000,
        sale_every: std::time::Duration::from_secs(2),
        low: 500_000,
        top_up: 3_000_000,
        warning: 1_500_000,
        critical: 750_000,
    },
    sample: Sample {
        answer: SAMPLE_ANSWER,
        balance: 1_000_000_000,
        balance_at: "/data",
        success_when: &[("/success", &["true"])],
        decode,
    },
};

/// The success answer of "cek saldo" (providers.md §2.6, the clients' fixture).
pub const SAMPLE_ANSWER: &str =
    r#"{"success":true,"message":"Saldo anda Rp. 1.000.000.000","data":1000000000}"#;

/// Production; the sandbox is `https://tripay.id/api-sandbox`, with its own key.
pub const DEFAULT_BASE_URL: &str = "https://tripay.id/api";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(deserialize_with = "bearer_secret")]
    pub api_key: SecretString,
    #[serde(default = "default_base_url")]
    pub base_url: Url,
}

fn default_base_url() -> Url {
    Url::parse(DEFAULT_BASE_URL).expect("the default base URL is valid")
}

/// The key travels as `Bearer <key>`, so it must make a valid header value; checked at load
/// time rather than failing every check.
fn bearer_secret<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SecretString, D::Error> {
    let secret = SecretString::deserialize(deserializer)?;
    HeaderValue::from_str(&format!("Bearer {}", secret.expose_secret())).map_err(|_| {
        serde::de::Error::custom("contains characters not allowed in an HTTP header")
    })?;
    Ok(secret)
}

#[derive(Deserialize)]
struct Answer {
    success: bool,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    data: Value,
}

impl SimpleProvider for Config {
    fn base_url(&self) -> &Url {
        &self.base_url
    }

    fn request(&self, client: &Client, _now: SystemTime) -> RequestBuilder {
        let mut bearer = HeaderValue::from_str(&format!("Bearer {}", self.api_key.expose_secret()))
            .expect("checked when the configuration loaded");
        bearer.set_sensitive(true);
        client
            .get(endpoint(&self.base_url, "v2/ceksaldo"))
            .header(AUTHORIZATION, bearer)
            .header(ACCEPT, "application/json")
    }

    fn decode(&self, body: &[u8]) -> Result<Balance, UpstreamError> {
        decode(body)
    }
}

/// A balance answer: `success: true` with the balance as the whole of `data`.
pub fn decode(body: &[u8]) -> Result<Balance, UpstreamError> {
    let answer: Answer = decode_json(body)?;
    if !answer.success {
        let message = answer.message.unwrap_or_default();
        return Err(classify(&message));
    }
    rupiah("data", Some(&answer.data))
}

/// A `success: false` answer. Tripay documents no error codes, so the message's words decide
/// (defensively: any word for a key, token, signature or IP makes it `auth`, since a wrong
/// key is by far the likeliest refusal of a call without parameters).
fn classify(message: &str) -> UpstreamError {
    let credential = names_a_credential_problem(message)
        || message
            .to_lowercase()
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|word| ["apikey", "bearer", "unauthenticated"].contains(&word));
    let summary = excerpt(message);
    if credential {
        UpstreamError::Auth(format!("auth: {summary}"))
    } else {
        UpstreamError::Rejected(summary)
    }
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;
    use rust_decimal::Decimal;
    use serde_json::json;

    use super::*;
    use crate::error::Reason;
    use crate::providers::simulator::{Fault, Simulator};
    use crate::providers::{Answer as Reply, CheckContext, Provider};

    fn config() -> Config {
        Config {
            api_key: SecretString::from("DEV-abc123"),
            base_url: Url::parse("https://tripay.id/api-sandbox").unwrap(),
        }
    }

    fn for_simulator(simulator: &Simulator, api_key: &str) -> Config {
        Config {
            api_key: SecretString::from(api_key),
            base_url: Url::parse(&simulator.base_url()).unwrap(),
        }
    }

    #[test]
    fn the_request_is_a_get_with_the_key_as_a_sensitive_bearer_token() {
        let request = config()
            .request(&Client::new(), SystemTime::now())
            .build()
            .unwrap();
        assert_eq!(request.method(), "GET");
        assert_eq!(
            request.url().as_str(),
            "https://tripay.id/api-sandbox/v2/ceksaldo"
        );
        let headers = request.headers();
        assert_eq!(headers[AUTHORIZATION], "Bearer DEV-abc123");
        assert!(headers[AUTHORIZATION].is_sensitive());
        assert_eq!(headers[ACCEPT], "application/json");
        assert!(request.body().is_none());
    }

    #[test]
    fn the_production_url_is_the_default() {
        let fields = json!({"api_key": "k"});
        let config: Config = serde_json::from_value(fields).unwrap();
        assert_eq!(config.base_url.as_str(), "https://tripay.id/api");
        let bad = json!({"api_key": "k\nx"});
        let err = serde_json::from_value::<Config>(bad).unwrap_err();
        assert!(!err.to_string().contains("k\nx"), "{err}");
    }

    #[test]
    fn the_documented_answer_is_a_bare_integer_balance() {
        let balance = decode(SAMPLE_ANSWER.as_bytes()).unwrap();
        assert_eq!(balance.amount, Decimal::from(1_000_000_000));
        assert_eq!(balance.currency, "IDR");
        assert_eq!(balance.holder, None);
    }

    #[test]
    fn an_invalid_key_message_is_auth_and_other_failures_are_rejected() {
        for message in [
            "Invalid API Key",
            "API Key tidak valid",
            "Invalid apikey",
            "Unauthorized",
            "IP anda tidak terdaftar",
        ] {
            let body = json!({"success": false, "message": message}).to_string();
            let err = decode(body.as_bytes()).unwrap_err();
            assert_eq!(err.reason(), Reason::Auth, "{message}");
        }
        let body = br#"{"success":false,"message":"Server sedang dalam pemeliharaan"}"#;
        let err = decode(body).unwrap_err();
        assert_eq!(err.reason(), Reason::Rejected);
        assert!(err.to_string().contains("pemeliharaan"), "{err}");
    }

    #[test]
    fn an_invalid_key_is_auth_whatever_the_http_status() {
        let body = br#"{"success":false,"message":"Invalid API Key"}"#.to_vec();
        for status in [
            StatusCode::OK,
            StatusCode::BAD_REQUEST,
            StatusCode::UNAUTHORIZED,
        ] {
            let reply = Reply {
                status,
                body: body.clone(),
            };
            let err = reply.decode_with(decode).unwrap_err();
            assert_eq!(err.reason(), Reason::Auth, "{status}");
        }
    }

    #[test]
    fn malformed_answers_are_decode_failures() {
        for body in [
            &b"<html>502</html>"[..],
            br#"{"success":true}"#,
            br#"{"success":true,"data":null}"#,
            br#"{"success":true,"data":{"balance":1}}"#,
            br#"{"success":true,"data":"Rp. 1.000"}"#,
            br#"{"success":true,"data":[1]}"#,
            br#"{"data":1}"#,
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

    #[tokio::test]
    async fn against_the_simulator_a_wrong_key_is_auth_and_a_429_is_rate_limited() {
        let simulator = Simulator::start("tripay", Decimal::from(125_000))
            .await
            .unwrap();
        let cx = CheckContext::new(Client::new());
        let secret = simulator.credentials().secret_key;
        let balance = for_simulator(&simulator, &secret).fetch(&cx).await.unwrap();
        assert_eq!(balance.amount, Decimal::from(125_000));

        let err = for_simulator(&simulator, "DEV-wrong")
            .fetch(&cx)
            .await
            .unwrap_err();
        assert_eq!(err.reason(), Reason::Auth, "{err}");
        assert!(!err.to_string().contains("DEV-wrong"), "{err}");

        simulator.set_fault(Some(Fault::RateLimited { retry_after: 7 }));
        let err = for_simulator(&simulator, &secret)
            .fetch(&cx)
            .await
            .unwrap_err();
        assert_eq!(err.reason(), Reason::RateLimited, "{err}");
    }
}
