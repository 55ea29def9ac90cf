//! IAK (ex-Mobilepulsa) prepaid "Check Balance": `POST {base}/api/check-balance` with
//! `{"username", "sign"}`, `sign = md5(username + api_key + "bl")`.
//!
//! Development (`https://prepaid.iak.dev`) and production have different hosts and keys; the
//! legacy `api.mobilepulsa.net` hosts still answer the same path. The HTTP status is
//! documented as generally 200 and `data.rc` decides: `"00"` is a success.

use std::time::SystemTime;

use reqwest::{Client, RequestBuilder};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use super::{
    Balance, Registration, Sample, SimpleProvider, decode_json, endpoint, excerpt, rupiah,
};
use crate::error::UpstreamError;

pub mod simulator;

/// The registry entry.
pub const PROVIDER: Registration = Registration {
    name: "iak",
    parse: super::parse::<Config>,
    simulator: || Box::new(simulator::Iak),
    demo: super::simulator::DemoAccount {
        balance: 3_750_000,
        sale_every: std::time::Duration::from_secs(2),
        low: 600_000,
        top_up: 3_000_000,
        warning: 1_500_000,
        critical: 750_000,
    },
    sample: Sample {
        answer: SAMPLE_ANSWER,
        balance: 997_136_249,
        balance_at: "/data/balance",
        success_when: &[("/data/rc", &["\"00\""])],
        decode,
    },
};

/// The documented success answer of "Check Balance".
pub const SAMPLE_ANSWER: &str = r#"{"data":{"balance":997136249,"message":"SUCCESS","rc":"00"}}"#;

pub const DEFAULT_BASE_URL: &str = "https://prepaid.iak.id";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Usually the account's phone number.
    pub username: String,
    /// The development or production key, matching `base_url`.
    pub api_key: SecretString,
    #[serde(default = "default_base_url")]
    pub base_url: Url,
}

fn default_base_url() -> Url {
    Url::parse(DEFAULT_BASE_URL).expect("the default base URL is valid")
}

/// `lowercase hex(md5(username + api_key + "bl"))`, the balance call's signature.
pub fn sign(username: &str, api_key: &str) -> String {
    crate::signing::md5_hex(&[username, api_key, "bl"])
}

impl SimpleProvider for Config {
    fn base_url(&self) -> &Url {
        &self.base_url
    }

    fn request(&self, client: &Client, _now: SystemTime) -> RequestBuilder {
        let sign = sign(&self.username, self.api_key.expose_secret());
        client
            .post(endpoint(&self.base_url, "api/check-balance"))
            .json(&json!({"username": self.username, "sign": sign}))
    }

    fn decode(&self, body: &[u8]) -> Result<Balance, UpstreamError> {
        decode(body)
    }
}

#[derive(Deserialize)]
struct Data {
    rc: Value,
    #[serde(default)]
    message: Value,
    #[serde(default)]
    balance: Value,
}

/// A balance answer: `data.rc` `"00"` with `data.balance`, or a failure named by its `rc`.
pub fn decode(body: &[u8]) -> Result<Balance, UpstreamError> {
    // Read whole as a `Value`, so every string is checked to be UTF-8, skipped ones included.
    let answer: Value = decode_json(body)?;
    let Some(data) = answer.get("data").filter(|data| data.is_object()) else {
        return Err(UpstreamError::Decode("data: not a JSON object".into()));
    };
    let data =
        Data::deserialize(data).map_err(|err| UpstreamError::Decode(format!("data: {err}")))?;
    // The documented codes are strings; a number is read the same for the failure codes.
    let rc = match &data.rc {
        Value::String(rc) => rc.clone(),
        Value::Number(rc) => rc.to_string(),
        other => return Err(UpstreamError::Decode(format!("data.rc: {other}"))),
    };
    if rc != "00" {
        let message = super::envelope_text(&data.message);
        return Err(failure(&rc, &message));
    }
    rupiah("data.balance", Some(&data.balance))
}

/// Classifies a documented `rc`, naming the finer class for the log line.
fn failure(rc: &str, message: &str) -> UpstreamError {
    let said = excerpt(message);
    match rc {
        "102" => UpstreamError::Auth(format!(
            "ip_not_whitelisted: rc 102, {said} (whitelist this host's IP in the IAK dashboard)"
        )),
        "204" => UpstreamError::Auth(format!(
            "auth: rc 204, {said} (username, or a development key against production?)"
        )),
        "118" => UpstreamError::Rejected(format!("account_blocked: rc 118, {said}")),
        _ => UpstreamError::Rejected(format!("rc {}: {said}", excerpt(rc))),
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;

    use super::*;
    use crate::error::Reason;

    fn config() -> Config {
        Config {
            username: "081234567890".into(),
            api_key: SecretString::from("key1"),
            base_url: default_base_url(),
        }
    }

    #[test]
    fn the_sign_is_the_worked_vector() {
        assert_eq!(
            sign("081234567890", "key1"),
            "5d482a77dc557529ec7b3db74f1bea63"
        );
    }

    #[test]
    fn the_request_is_the_documented_post_with_the_worked_sign() {
        let request = config()
            .request(&Client::new(), SystemTime::now())
            .build()
            .unwrap();
        assert_eq!(request.method(), "POST");
        assert_eq!(
            request.url().as_str(),
            "https://prepaid.iak.id/api/check-balance"
        );
        assert_eq!(request.headers()["content-type"], "application/json");
        let sent = request.body().unwrap().as_bytes().unwrap();
        let body: Value = serde_json::from_slice(sent).unwrap();
        assert_eq!(
            body,
            json!({"username": "081234567890", "sign": "5d482a77dc557529ec7b3db74f1bea63"})
        );
        assert!(!String::from_utf8_lossy(sent).contains("key1"));
    }

    #[test]
    fn the_documented_answer_decodes_to_its_balance() {
        let balance = decode(SAMPLE_ANSWER.as_bytes()).unwrap();
        assert_eq!(balance.amount, Decimal::from(997_136_249));
        assert_eq!(balance.currency, "IDR");
    }

    fn envelope(rc: &str, message: &str) -> Vec<u8> {
        json!({"data": {"rc": rc, "message": message}})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn an_unlisted_ip_as_rc_102_is_auth() {
        let err = decode(&envelope("102", "INVALID IP ADDRESS")).unwrap_err();
        assert_eq!(err.reason(), Reason::Auth);
        assert!(err.to_string().contains("ip_not_whitelisted"), "{err}");
    }

    #[test]
    fn wrong_authentication_as_rc_204_is_auth() {
        let err = decode(&envelope("204", "WRONG AUTHENTICATION")).unwrap_err();
        assert_eq!(err.reason(), Reason::Auth);
        assert!(err.to_string().contains("rc 204"), "{err}");
    }

    #[test]
    fn a_suspended_account_as_rc_118_is_rejected() {
        let err = decode(&envelope("118", "ACCOUNT SUSPENDED")).unwrap_err();
        assert_eq!(err.reason(), Reason::Rejected);
        assert!(err.to_string().contains("account_blocked"), "{err}");
    }

    #[test]
    fn other_codes_are_rejected() {
        for (rc, message) in [("205", "WRONG COMMAND"), ("201", "UNDEFINED RESPONSE CODE")] {
            let err = decode(&envelope(rc, message)).unwrap_err();
            assert_eq!(err.reason(), Reason::Rejected, "{rc}");
            assert!(err.to_string().contains(message), "{err}");
        }
    }

    #[test]
    fn a_balance_beside_a_failure_code_is_not_read() {
        let err =
            decode(br#"{"data":{"balance":5000,"rc":"204","message":"WRONG AUTHENTICATION"}}"#)
                .unwrap_err();
        assert_eq!(err.reason(), Reason::Auth);
    }

    #[test]
    fn malformed_answers_are_decode_failures() {
        for body in [
            &b"<html>502 Bad Gateway</html>"[..],
            br#"{"data":{"balance":"abc","rc":"00"}}"#,
            br#"{"data":{"balance":null,"rc":"00"}}"#,
            br#"{"data":{"rc":"00"}}"#,
            br#"{"data":{"balance":5000}}"#,
            br#"{"data":{"balance":5000,"rc":null}}"#,
            br#"{"data":[5000,"00"]}"#,
            br#"{"balance":5000,"rc":"00"}"#,
            b"",
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
}
