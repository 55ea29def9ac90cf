//! OY! Indonesia disbursement "Get Balance": `GET {base}/api/balance` with the headers
//! `X-OY-Username` and `X-Api-Key` (official docs, providers.md §2.10).
//!
//! Success is `status.code == "000"`; the balance is `availableBalance`, what can be disbursed.
//! OY! documents no HTTP status for failures ("rely on `status.code`"), so the envelope decides
//! whatever the status, and its refusals keep their finer class (`ip_not_whitelisted`, `auth`,
//! `account_blocked`) in the message.

use reqwest::header::{ACCEPT, HeaderValue};
use reqwest::{Client, RequestBuilder};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
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
    name: "oy",
    parse: super::parse::<Config>,
    simulator: || Box::new(simulator::Oy),
    demo: super::simulator::DemoAccount {
        balance: 98_500_000,
        sale_every: std::time::Duration::from_secs(2),
        low: 10_000_000,
        top_up: 50_000_000,
        warning: 25_000_000,
        critical: 15_000_000,
    },
    sample: Sample {
        answer: SAMPLE_ANSWER,
        balance: 98_500_000,
        balance_at: "/availableBalance",
        success_when: &[("/status/code", &["\"000\""])],
        decode,
    },
};

/// The documented success answer of "Get Balance".
pub const SAMPLE_ANSWER: &str = r#"{"status":{"code":"000","message":"Success"},"balance":100000000.0000,"overdraftBalance":0,"overbookingBalance":0,"pendingBalance":1500000.0000,"availableBalance":98500000.0000,"timestamp":"10-12-2019 12:15:37"}"#;

/// Production; staging is `https://api-stg.oyindonesia.com`, with its own key.
pub const DEFAULT_BASE_URL: &str = "https://partner.oyindonesia.com";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(deserialize_with = "header_text")]
    pub username: String,
    #[serde(deserialize_with = "header_secret")]
    pub api_key: SecretString,
    #[serde(default = "default_base_url")]
    pub base_url: Url,
}

fn default_base_url() -> Url {
    Url::parse(DEFAULT_BASE_URL).expect("the default base URL is valid")
}

/// Both credentials travel in headers, so they must be valid header values; checked at load
/// time rather than failing every check, and without quoting the value.
fn header_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    HeaderValue::from_str(&text).map_err(|_| {
        serde::de::Error::custom("contains characters not allowed in an HTTP header")
    })?;
    Ok(text)
}

fn header_secret<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SecretString, D::Error> {
    let secret = SecretString::deserialize(deserializer)?;
    HeaderValue::from_str(secret.expose_secret()).map_err(|_| {
        serde::de::Error::custom("contains characters not allowed in an HTTP header")
    })?;
    Ok(secret)
}

#[derive(Deserialize)]
struct Reply {
    status: Status,
    #[serde(rename = "availableBalance", default)]
    available_balance: Option<Value>,
}

#[derive(Deserialize)]
struct Status {
    /// Documented as a string (`"000"`); a number is read too, for classification only.
    code: Value,
    #[serde(default)]
    message: Option<String>,
}

impl Config {
    fn request(&self, client: &Client) -> RequestBuilder {
        let mut api_key = HeaderValue::from_str(self.api_key.expose_secret())
            .expect("checked when the configuration loaded");
        api_key.set_sensitive(true);
        client
            .get(endpoint(&self.base_url, "api/balance"))
            .header("X-OY-Username", &self.username)
            .header("X-Api-Key", api_key)
            // Documented on the GET as well, though there is no body.
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
    }
}

/// Not a `SimpleProvider`: its reading of non-2xx answers would turn an envelope's `429` into
/// `http_status` and drop the finer class of a refusal sent with 401 or 403.
impl Provider for Config {
    fn base_url(&self) -> &Url {
        &self.base_url
    }

    fn fetch<'a>(&'a self, cx: &'a CheckContext) -> BoxFuture<'a, Result<Balance, UpstreamError>> {
        Box::pin(async move {
            let answer = cx.exchange(self.request(&cx.client)).await?;
            read(&answer)
        })
    }
}

/// An answer of any status: the envelope's auth and rate-limit codes win over the HTTP status.
fn read(answer: &Answer) -> Result<Balance, UpstreamError> {
    if !answer.status.is_success()
        && let Err(err @ (UpstreamError::Auth(_) | UpstreamError::RateLimited { .. })) =
            decode(&answer.body)
    {
        return Err(err);
    }
    answer.decode_with(decode)
}

/// A balance answer: `status.code` `"000"` with `availableBalance`.
pub fn decode(body: &[u8]) -> Result<Balance, UpstreamError> {
    let reply: Reply = decode_json(body)?;
    let code = match &reply.status.code {
        Value::String(code) => code.clone(),
        other => other.to_string(),
    };
    if reply.status.code.as_str() != Some("000") {
        return Err(classify(
            &code,
            reply.status.message.as_deref().unwrap_or(""),
        ));
    }
    // No fallback to `balance`: it includes `pendingBalance`, money that cannot be spent, so a
    // missing `availableBalance` is an error rather than an overstated balance.
    rupiah("availableBalance", reply.available_balance.as_ref())
}

/// The documented `status.code`s of a refusal.
fn classify(code: &str, message: &str) -> UpstreamError {
    let summary = excerpt(&format!("status {code}: {message}"));
    match code {
        "207" => UpstreamError::Auth(format!(
            "ip_not_whitelisted (register this host's egress IP with OY!): {summary}"
        )),
        "201" | "208" => UpstreamError::Auth(format!("auth: {summary}")),
        "202" => UpstreamError::Rejected(format!("account_blocked: {summary}")),
        "429" => UpstreamError::RateLimited { retry_after: None },
        // 900 invalid format, 999 internal error, and anything undocumented: by its words.
        _ => refusal(&[message], &summary),
    }
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;
    use reqwest::header::CONTENT_TYPE;
    use rust_decimal::Decimal;
    use serde_json::json;

    use super::*;
    use crate::error::Reason;
    use crate::providers::simulator::{Fault, Simulator};

    fn config() -> Config {
        Config {
            username: "oyuser".into(),
            api_key: SecretString::from("987654-abcd"),
            base_url: default_base_url(),
        }
    }

    fn for_simulator(simulator: &Simulator, username: &str, api_key: &str) -> Config {
        Config {
            username: username.into(),
            api_key: SecretString::from(api_key),
            base_url: Url::parse(&simulator.base_url()).unwrap(),
        }
    }

    fn envelope(code: &str, message: &str) -> Vec<u8> {
        json!({"status": {"code": code, "message": message}, "timestamp": "10-12-2019 12:15:37"})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn the_request_is_a_get_with_both_documented_headers() {
        let request = config().request(&Client::new()).build().unwrap();
        assert_eq!(request.method(), "GET");
        assert_eq!(
            request.url().as_str(),
            "https://partner.oyindonesia.com/api/balance"
        );
        let headers = request.headers();
        assert_eq!(headers["X-OY-Username"], "oyuser");
        assert_eq!(headers["X-Api-Key"], "987654-abcd");
        assert!(headers["X-Api-Key"].is_sensitive());
        assert_eq!(headers[CONTENT_TYPE], "application/json");
        assert_eq!(headers[ACCEPT], "application/json");
        assert!(request.body().is_none());
    }

    #[test]
    fn credentials_that_cannot_be_headers_are_refused_without_being_quoted() {
        for fields in [
            json!({"username": "oy\nuser", "api_key": "k"}),
            json!({"username": "u", "api_key": "sk-secret\u{1}"}),
        ] {
            let err = serde_json::from_value::<Config>(fields).unwrap_err();
            let message = err.to_string();
            assert!(message.contains("HTTP header"), "{message}");
            assert!(
                !message.contains("oy\nuser") && !message.contains("sk-secret"),
                "{message}"
            );
        }
    }

    #[test]
    fn the_documented_answer_reads_the_available_balance_not_the_total() {
        let balance = decode(SAMPLE_ANSWER.as_bytes()).unwrap();
        assert_eq!(balance.amount, Decimal::from(98_500_000));
        assert_eq!(balance.currency, "IDR");
        let without = br#"{"status":{"code":"000","message":"Success"},"balance":100000000.0000}"#;
        assert_eq!(decode(without).unwrap_err().reason(), Reason::Decode);
    }

    #[test]
    fn every_documented_refusal_code_has_its_reason() {
        for (code, message, reason, class) in [
            ("201", "User not found", Reason::Auth, "auth"),
            ("208", "API Key is not valid", Reason::Auth, "auth"),
            (
                "207",
                "Request IP Address is not Registered",
                Reason::Auth,
                "ip_not_whitelisted",
            ),
            (
                "202",
                "User not active",
                Reason::Rejected,
                "account_blocked",
            ),
            ("429", "Too many requests", Reason::RateLimited, ""),
            ("900", "Invalid format", Reason::Rejected, ""),
            ("999", "Internal error", Reason::Rejected, ""),
        ] {
            let err = decode(&envelope(code, message)).unwrap_err();
            assert_eq!(err.reason(), reason, "{code}: {err}");
            assert!(err.to_string().contains(class), "{code}: {err}");
        }
        // `000` is a string; a number or another code with a balance is no success.
        let numeric = br#"{"status":{"code":0},"availableBalance":1}"#;
        assert_eq!(decode(numeric).unwrap_err().reason(), Reason::Rejected);
    }

    #[test]
    fn auth_and_rate_limit_codes_win_whatever_the_http_status() {
        for status in [
            StatusCode::OK,
            StatusCode::BAD_REQUEST,
            StatusCode::UNAUTHORIZED,
            StatusCode::FORBIDDEN,
        ] {
            for (code, reason) in [
                ("207", Reason::Auth),
                ("208", Reason::Auth),
                ("201", Reason::Auth),
                ("429", Reason::RateLimited),
            ] {
                let answer = Answer {
                    status,
                    body: envelope(code, "refused"),
                };
                let err = read(&answer).unwrap_err();
                assert_eq!(err.reason(), reason, "{status} {code}: {err}");
            }
        }
        let blocked = Answer {
            status: StatusCode::BAD_REQUEST,
            body: envelope("202", "User not active"),
        };
        assert_eq!(read(&blocked).unwrap_err().reason(), Reason::HttpStatus);
    }

    #[test]
    fn malformed_answers_are_decode_failures() {
        for body in [
            &b"<html></html>"[..],
            br#"{"status":{"code":"000"},"availableBalance":"abc"}"#,
            br#"{"status":{"code":"000"},"availableBalance":null}"#,
            br#"{"status":"000","availableBalance":1}"#,
            br#"{"availableBalance":1}"#,
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
    async fn against_the_simulator_wrong_credentials_are_auth_and_a_429_is_rate_limited() {
        let simulator = Simulator::start("oy", Decimal::from(2_000_000))
            .await
            .unwrap();
        let cx = CheckContext::new(Client::new());
        let credentials = simulator.credentials();
        let (id, secret) = (credentials.id.as_str(), credentials.secret_key.as_str());
        let balance = for_simulator(&simulator, id, secret)
            .fetch(&cx)
            .await
            .unwrap();
        assert_eq!(balance.amount, Decimal::from(2_000_000));

        let err = for_simulator(&simulator, id, "wrong-key")
            .fetch(&cx)
            .await
            .unwrap_err();
        assert_eq!(err.reason(), Reason::Auth, "{err}");
        assert!(err.to_string().contains("208"), "{err}");
        let err = for_simulator(&simulator, "someone-else", secret)
            .fetch(&cx)
            .await
            .unwrap_err();
        assert_eq!(err.reason(), Reason::Auth, "{err}");
        assert!(err.to_string().contains("201"), "{err}");

        simulator.set_fault(Some(Fault::RateLimited { retry_after: 3 }));
        let err = for_simulator(&simulator, id, secret)
            .fetch(&cx)
            .await
            .unwrap_err();
        assert_eq!(err.reason(), Reason::RateLimited, "{err}");
    }
}
