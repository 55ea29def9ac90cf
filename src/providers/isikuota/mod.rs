//! isikuota "Cek Saldo": `POST {base}/v1/balance` with `{api_id, timestamp, signature}`.
//!
//! The signature is HMAC-SHA256 over `api_id|api_key|timestamp|sha256(canonicalBody)` (see
//! [`signing`]); the api key itself never travels. The timestamp is this machine's clock: the
//! allowed skew is undocumented, so hosts need NTP like any signing client.

use std::time::SystemTime;

use reqwest::{Client, RequestBuilder};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use super::{
    Balance, Registration, Sample, SimpleProvider, balance_from_data, decode_json, endpoint,
    refusal,
};
use crate::error::UpstreamError;
use crate::signing;

pub mod simulator;

/// The registry entry.
pub const PROVIDER: Registration = Registration {
    name: "isikuota",
    parse: super::parse::<Config>,
    simulator: || Box::new(simulator::Isikuota),
    demo: super::simulator::DemoAccount {
        balance: 2_500_000,
        sale_every: std::time::Duration::from_secs(2),
        low: 300_000,
        top_up: 2_000_000,
        warning: 1_000_000,
        critical: 500_000,
    },
    sample: Sample {
        answer: SAMPLE_ANSWER,
        balance: 25490,
        balance_at: "/data/balance",
        success_when: &[("/success", &["true"])],
        decode,
    },
};

/// The documented success answer ("Cek Saldo" seed response).
pub const SAMPLE_ANSWER: &str = r#"{"success":true,"code":"SUCCESS","message":"Saldo berhasil didapatkan","data":{"name":"John Doe","balance":25490,"currency":"IDR","checked_at":"2026-05-31 10:21:58"},"errors":null,"meta":null}"#;

pub const DEFAULT_BASE_URL: &str = "https://api.isikuota.com";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub api_id: String,
    pub api_key: SecretString,
    pub secret_key: SecretString,
    #[serde(default = "default_base_url")]
    pub base_url: Url,
}

fn default_base_url() -> Url {
    Url::parse(DEFAULT_BASE_URL).expect("the default base URL is valid")
}

#[derive(Deserialize)]
struct Answer {
    success: bool,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    data: Value,
}

impl SimpleProvider for Config {
    fn base_url(&self) -> &Url {
        &self.base_url
    }

    fn request(&self, client: &Client, now: SystemTime) -> RequestBuilder {
        let timestamp = super::unix_seconds(now);
        let mut body = json!({"api_id": self.api_id, "timestamp": timestamp});
        let fields = body.as_object_mut().expect("a JSON object literal");
        // The documented procedure, even though the balance call has no business parameters
        // and so always signs the empty string.
        let canonical_body = signing::isikuota_canonical_body(fields);
        let signature = signing::isikuota_signature(
            &self.api_id,
            self.api_key.expose_secret(),
            self.secret_key.expose_secret(),
            timestamp,
            &canonical_body,
        );
        fields.insert("signature".into(), signature.into());
        client
            .post(endpoint(&self.base_url, "v1/balance"))
            .json(&body)
    }

    fn decode(&self, body: &[u8]) -> Result<Balance, UpstreamError> {
        decode(body)
    }
}

/// A balance answer: `success` decides, and a failure's code and message say why.
pub fn decode(body: &[u8]) -> Result<Balance, UpstreamError> {
    let answer: Answer = decode_json(body)?;
    if !answer.success {
        let code = answer.code.unwrap_or_default();
        let message = answer.message.unwrap_or_default();
        return Err(refusal(&[&code, &message], &format!("{code}: {message}")));
    }
    balance_from_data(answer.data)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::error::Reason;

    fn config() -> Config {
        Config {
            api_id: "your_api_id".into(),
            api_key: SecretString::from("your_api_key"),
            secret_key: SecretString::from("your_secret_key"),
            base_url: default_base_url(),
        }
    }

    #[test]
    fn the_request_is_the_documented_post_with_the_worked_example_signature() {
        let now = UNIX_EPOCH + Duration::from_secs(1780222918);
        let request = config().request(&Client::new(), now).build().unwrap();
        assert_eq!(request.method(), "POST");
        assert_eq!(
            request.url().as_str(),
            "https://api.isikuota.com/v1/balance"
        );
        assert_eq!(request.headers()["content-type"], "application/json");
        let body: Value =
            serde_json::from_slice(request.body().unwrap().as_bytes().unwrap()).unwrap();
        assert_eq!(
            body,
            json!({
                "api_id": "your_api_id",
                "timestamp": 1780222918,
                "signature": "af4c1cd8c999e21dfba3416ddd738dd0ba2ce99e8794a7cbf92d6ddbd1254d8b",
            })
        );
        let sent =
            String::from_utf8_lossy(request.body().unwrap().as_bytes().unwrap()).into_owned();
        assert!(!sent.contains("your_api_key") && !sent.contains("your_secret_key"));
    }

    #[test]
    fn the_seed_response_decodes_to_its_balance() {
        let balance = config().decode(SAMPLE_ANSWER.as_bytes()).unwrap();
        assert_eq!(balance.amount, 25490.into());
        assert_eq!(balance.currency, "IDR");
        assert_eq!(balance.holder.as_deref(), Some("John Doe"));
    }

    #[test]
    fn failure_envelopes_are_auth_or_rejected_by_their_code() {
        let auth = br#"{"success": false, "code": "INVALID_SIGNATURE", "message": "Signature tidak valid", "data": null}"#;
        assert_eq!(config().decode(auth).unwrap_err().reason(), Reason::Auth);
        let other = br#"{"success": false, "code": "MAINTENANCE", "message": "Sedang pemeliharaan", "data": null}"#;
        let err = config().decode(other).unwrap_err();
        assert_eq!(err.reason(), Reason::Rejected);
        assert!(err.to_string().contains("MAINTENANCE"));
    }

    #[test]
    fn malformed_answers_are_decode_failures() {
        for body in [
            &b"<html>502 Bad Gateway</html>"[..],
            br#"{"success": tru"#,
            br#"{"success": true, "data": {"balance": null}}"#,
            br#"{"success": true, "data": {"balance": "abc"}}"#,
            br#"{"success": true, "data": {}}"#,
            br#"{"success": true}"#,
            b"",
        ] {
            let err = config().decode(body).unwrap_err();
            assert_eq!(
                err.reason(),
                Reason::Decode,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
