//! Midtrans Iris (payouts) "Check Balance (Aggregator)": `GET {base}/api/v1/balance`.
//!
//! HTTP Basic with the Iris API key as the user and an empty password; a creator key and an
//! approver key can both read the balance. The balance is a decimal string (`"25000.00"`). A
//! wrong or locked key is HTTP 401 with the text body `HTTP Basic: Access denied.`, which the
//! status alone classifies as `auth`.

use std::time::SystemTime;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Client, RequestBuilder};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::{
    Balance, Registration, Sample, SimpleProvider, decode_json, endpoint, refusal, rupiah,
};
use crate::error::UpstreamError;

pub mod simulator;

/// The registry entry.
pub const PROVIDER: Registration = Registration {
    name: "iris",
    parse: super::parse::<Config>,
    simulator: || Box::new(simulator::Iris),
    demo: super::simulator::DemoAccount {
        balance: 12_500_000,
        sale_every: std::time::Duration::from_secs(4),
        low: 2_000_000,
        top_up: 10_000_000,
        warning: 5_000_000,
        critical: 2_500_000,
    },
    sample: Sample {
        answer: SAMPLE_ANSWER,
        balance: 25_000,
        balance_at: "/balance",
        // Success is a 2xx answer with a balance; there is no success flag.
        success_when: &[],
        decode,
    },
};

/// The documented success answer.
pub const SAMPLE_ANSWER: &str = r#"{"balance":"25000.00"}"#;

/// Production; the sandbox is `https://app.sandbox.midtrans.com/iris`.
pub const DEFAULT_BASE_URL: &str = "https://app.midtrans.com/iris";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The Iris API key of a creator or an approver.
    pub api_key: SecretString,
    #[serde(default = "default_base_url")]
    pub base_url: Url,
}

fn default_base_url() -> Url {
    Url::parse(DEFAULT_BASE_URL).expect("the default base URL is valid")
}

impl SimpleProvider for Config {
    fn base_url(&self) -> &Url {
        &self.base_url
    }

    fn request(&self, client: &Client, _now: SystemTime) -> RequestBuilder {
        client
            .get(endpoint(&self.base_url, "api/v1/balance"))
            .basic_auth(self.api_key.expose_secret(), None::<&str>)
            // Both documented, although the request has no body.
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/json")
    }

    fn decode(&self, body: &[u8]) -> Result<Balance, UpstreamError> {
        decode(body)
    }
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    balance: Option<Value>,
    /// Iris' JSON errors carry `error_message` and `errors`; their exact shape is unconfirmed,
    /// so either one marks a failure, whatever it holds.
    #[serde(default)]
    error_message: Option<Value>,
    #[serde(default)]
    errors: Option<Value>,
}

/// A balance answer, `{"balance": "25000.00"}`, in IDR. The documentation shows a string; a
/// JSON number is read as well. A failure envelope is never read as a balance.
pub fn decode(body: &[u8]) -> Result<Balance, UpstreamError> {
    let answer: Answer = decode_json(body)?;
    if answer.error_message.is_some() || answer.errors.is_some() {
        let text =
            |value: &Option<Value>| value.as_ref().map(super::envelope_text).unwrap_or_default();
        let (message, errors) = (text(&answer.error_message), text(&answer.errors));
        return Err(refusal(
            &[&message, &errors],
            &format!("{message} {errors}"),
        ));
    }
    rupiah("balance", answer.balance.as_ref())
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;
    use rust_decimal::Decimal;

    use super::*;
    use crate::error::Reason;
    use crate::providers::Answer as HttpAnswer;

    fn config() -> Config {
        Config {
            api_key: SecretString::from("IRIS-330198f0-e49d-493f-baae-585cfded355d"),
            base_url: default_base_url(),
        }
    }

    #[test]
    fn the_request_is_a_bodiless_get_with_the_key_as_basic_user() {
        let request = config()
            .request(&Client::new(), SystemTime::now())
            .build()
            .unwrap();
        assert_eq!(request.method(), "GET");
        assert_eq!(
            request.url().as_str(),
            "https://app.midtrans.com/iris/api/v1/balance"
        );
        let headers = request.headers();
        // base64("IRIS-330198f0-e49d-493f-baae-585cfded355d:")
        assert_eq!(
            headers["authorization"],
            "Basic SVJJUy0zMzAxOThmMC1lNDlkLTQ5M2YtYmFhZS01ODVjZmRlZDM1NWQ6"
        );
        assert!(headers["authorization"].is_sensitive());
        assert_eq!(headers["accept"], "application/json");
        assert_eq!(headers["content-type"], "application/json");
        assert!(request.body().is_none());
    }

    #[test]
    fn the_documented_string_balance_decodes_exactly() {
        let balance = decode(SAMPLE_ANSWER.as_bytes()).unwrap();
        assert_eq!(balance.amount, Decimal::from(25_000));
        assert_eq!(balance.currency, "IDR");
        let cents = decode(br#"{"balance": "1234567.05"}"#).unwrap();
        assert_eq!(cents.amount, "1234567.05".parse::<Decimal>().unwrap());
        let number = decode(br#"{"balance": 25000.5}"#).unwrap();
        assert_eq!(number.amount, "25000.5".parse::<Decimal>().unwrap());
    }

    #[test]
    fn the_text_401_is_auth() {
        let answer = HttpAnswer {
            status: StatusCode::UNAUTHORIZED,
            body: b"HTTP Basic: Access denied.\n".to_vec(),
        };
        let err = answer.decode_with(decode).unwrap_err();
        assert_eq!(err.reason(), Reason::Auth);
    }

    #[test]
    fn json_errors_are_refusals_never_balances() {
        let err = decode(br#"{"error_message": "Service is under maintenance", "errors": ["maintenance"], "balance": "1.00"}"#).unwrap_err();
        assert_eq!(err.reason(), Reason::Rejected);
        assert!(err.to_string().contains("maintenance"), "{err}");
        let err = decode(br#"{"error_message": "Invalid API key"}"#).unwrap_err();
        assert_eq!(err.reason(), Reason::Auth);
        // Under another status, a credential message is `auth`, anything else the status.
        let forbidden = HttpAnswer {
            status: StatusCode::BAD_REQUEST,
            body: br#"{"error_message": "Invalid API key"}"#.to_vec(),
        };
        assert_eq!(
            forbidden.decode_with(decode).unwrap_err().reason(),
            Reason::Auth
        );
    }

    #[test]
    fn malformed_answers_are_decode_failures() {
        for body in [
            &b"HTTP Basic: Access denied."[..],
            b"[\"25000.00\"]",
            br#"{"balance": null}"#,
            br#"{"balance": "25.000,00"}"#,
            br#"{"balance": "Rp 25000"}"#,
            br#"{}"#,
            b"",
            b"{\"balance\": \"1.00\", \"note\": \"\xff\"}",
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
    fn the_api_key_is_not_in_debug_output() {
        assert!(!format!("{:?}", config()).contains("330198f0"));
    }
}
