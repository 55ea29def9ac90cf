//! Ayopop (Ayoconnect PPOB OpenAPI) "partner/balance": `POST {base}/api/v1/partner/balance`.
//!
//! Authenticated by the `KEY` header and a `TOKEN` header holding an HS256 JWT over the payload
//! `{"partnerId": ...}` signed with the partner secret. Both headers are credentials: they are
//! marked sensitive so no HTTP-level logging prints them.

use std::time::SystemTime;

use reqwest::header::{ACCEPT, HeaderValue};
use reqwest::{Client, RequestBuilder};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
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
    name: "ayopop",
    parse: super::parse::<Config>,
    simulator: || Box::new(simulator::Ayopop),
    demo: super::simulator::DemoAccount {
        balance: 5_523_560,
        sale_every: std::time::Duration::from_secs(3),
        low: 800_000,
        top_up: 5_000_000,
        warning: 2_000_000,
        critical: 1_000_000,
    },
    sample: Sample {
        answer: SAMPLE_ANSWER,
        balance: 5_523_560,
        balance_at: "/data/balance",
        success_when: &[("/success", &["true"]), ("/responseCode", &["0", "\"0\""])],
        decode,
    },
};

/// The documented success answer of "partner/balance".
pub const SAMPLE_ANSWER: &str = r#"{"responseCode":0,"success":true,"message":{"ID":"sukses","EN":"success"},"data":{"balance":5523560,"currency":"IDR","partnerId":"partner_api_key"}}"#;

pub const DEFAULT_BASE_URL: &str = "https://openapi.ayopop.id";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub partner_id: String,
    #[serde(deserialize_with = "header_secret")]
    pub api_key: SecretString,
    pub secret_key: SecretString,
    #[serde(default = "default_base_url")]
    pub base_url: Url,
    /// The path version: the samples use `v1`, newer pages show `v2`.
    #[serde(default)]
    pub api_version: ApiVersion,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiVersion {
    #[default]
    V1,
    V2,
}

fn default_base_url() -> Url {
    Url::parse(DEFAULT_BASE_URL).expect("the default base URL is valid")
}

/// The API key travels in a header, so it must be a valid header value; checked at load time
/// rather than failing every check.
fn header_secret<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SecretString, D::Error> {
    let secret = SecretString::deserialize(deserializer)?;
    HeaderValue::from_str(secret.expose_secret()).map_err(|_| {
        serde::de::Error::custom("contains characters not allowed in an HTTP header")
    })?;
    Ok(secret)
}

fn sensitive_header(value: &str) -> HeaderValue {
    let mut value = HeaderValue::from_str(value).expect("checked when the configuration loaded");
    value.set_sensitive(true);
    value
}

#[derive(Deserialize)]
struct Answer {
    #[serde(rename = "responseCode")]
    response_code: Value,
    success: bool,
    #[serde(default)]
    message: Value,
    #[serde(default)]
    data: Value,
}

impl Config {
    /// The documented token for this partner; identical on every call (no `exp`/`iat`).
    pub fn token(&self) -> SecretString {
        let claims = json!({"partnerId": self.partner_id});
        signing::ayopop_token(&claims, self.secret_key.expose_secret()).into()
    }
}

impl SimpleProvider for Config {
    fn base_url(&self) -> &Url {
        &self.base_url
    }

    fn request(&self, client: &Client, _now: SystemTime) -> RequestBuilder {
        let path = match self.api_version {
            ApiVersion::V1 => "api/v1/partner/balance",
            ApiVersion::V2 => "api/v2/partner/balance",
        };
        client
            .post(endpoint(&self.base_url, path))
            .header("KEY", sensitive_header(self.api_key.expose_secret()))
            .header("TOKEN", sensitive_header(self.token().expose_secret()))
            // Every sample sends 1.0, the v2 path included.
            .header("VERSION", "1.0")
            .header(ACCEPT, "application/json")
            .json(&json!({"partnerId": self.partner_id}))
    }

    fn decode(&self, body: &[u8]) -> Result<Balance, UpstreamError> {
        decode(body)
    }
}

/// A balance answer: a success is `success: true` with `responseCode` 0.
pub fn decode(body: &[u8]) -> Result<Balance, UpstreamError> {
    let answer: Answer = decode_json(body)?;
    let code_is_zero =
        answer.response_code.as_i64() == Some(0) || answer.response_code.as_str() == Some("0");
    if !(answer.success && code_is_zero) {
        let message = message_text(&answer.message);
        let summary = format!("responseCode {}: {message}", answer.response_code);
        return Err(refusal(&[&message], &summary));
    }
    // `data.partnerId` is the only identity in the answer, and it is no holder name.
    balance_from_data(answer.data)
}

/// `message` is `{"ID": ..., "EN": ...}`; English first, then Indonesian, then whatever it is.
fn message_text(message: &Value) -> String {
    match message {
        Value::Object(texts) => texts
            .get("EN")
            .or_else(|| texts.get("ID"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        other => super::envelope_text(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Reason;

    fn config() -> Config {
        Config {
            partner_id: "ayopop".into(),
            api_key: SecretString::from("API Key"),
            secret_key: SecretString::from("ayopop-api-secret"),
            base_url: Url::parse("https://dev.openapi.ayopop.id").unwrap(),
            api_version: ApiVersion::V1,
        }
    }

    #[test]
    fn the_request_carries_the_seed_headers_and_body() {
        let request = config()
            .request(&Client::new(), SystemTime::now())
            .build()
            .unwrap();
        assert_eq!(request.method(), "POST");
        assert_eq!(
            request.url().as_str(),
            "https://dev.openapi.ayopop.id/api/v1/partner/balance"
        );
        let headers = request.headers();
        assert_eq!(headers["KEY"], "API Key");
        assert_eq!(headers["VERSION"], "1.0");
        assert_eq!(headers["accept"], "application/json");
        assert_eq!(headers["content-type"], "application/json");
        assert!(headers["KEY"].is_sensitive() && headers["TOKEN"].is_sensitive());
        let claims = jsonwebtoken::decode::<Value>(
            headers["TOKEN"].to_str().unwrap(),
            &jsonwebtoken::DecodingKey::from_secret(b"ayopop-api-secret"),
            &{
                let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
                validation.required_spec_claims.clear();
                validation.validate_exp = false;
                validation
            },
        )
        .unwrap()
        .claims;
        assert_eq!(claims, json!({"partnerId": "ayopop"}));
        let body: Value =
            serde_json::from_slice(request.body().unwrap().as_bytes().unwrap()).unwrap();
        assert_eq!(body, json!({"partnerId": "ayopop"}));
    }

    #[test]
    fn the_v2_path_is_selectable() {
        let config = Config {
            api_version: ApiVersion::V2,
            ..config()
        };
        let request = config
            .request(&Client::new(), SystemTime::now())
            .build()
            .unwrap();
        assert_eq!(request.url().path(), "/api/v2/partner/balance");
        assert_eq!(request.headers()["VERSION"], "1.0");
    }

    #[test]
    fn the_seed_response_decodes_to_its_balance() {
        let balance = config().decode(SAMPLE_ANSWER.as_bytes()).unwrap();
        assert_eq!(balance.amount, 5523560.into());
        assert_eq!(balance.currency, "IDR");
    }

    #[test]
    fn a_failure_envelope_is_rejected_or_auth_by_its_message() {
        let rejected = br#"{"responseCode": 27, "success": false, "message": {"ID": "gagal", "EN": "Service unavailable"}, "data": null}"#;
        assert_eq!(
            config().decode(rejected).unwrap_err().reason(),
            Reason::Rejected
        );
        let auth = br#"{"responseCode": 14, "success": false, "message": {"ID": "token tidak valid", "EN": "Invalid token"}}"#;
        assert_eq!(config().decode(auth).unwrap_err().reason(), Reason::Auth);
        // `success: true` with a non-zero code is still a failure.
        let odd = br#"{"responseCode": 5, "success": true, "message": "pending", "data": {"balance": 1}}"#;
        assert_eq!(config().decode(odd).unwrap_err().reason(), Reason::Rejected);
    }

    #[test]
    fn malformed_answers_are_decode_failures() {
        for body in [
            &b"<html></html>"[..],
            br#"{"responseCode": 0, "success": true, "data": {"balance": "abc"}}"#,
            br#"{"responseCode": 0, "success": true, "data": {"currency": "IDR"}}"#,
            br#"{"success": true}"#,
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
