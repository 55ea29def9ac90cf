//! VIP Reseller (VIPayment) "profile": `POST {base}/api/profile`, form `key=<api_key>&sign=<sign>`,
//! `sign = md5(api_id + api_key)`.
//!
//! The API key itself travels in the form body (never in the URL), so the body is the secret
//! part of this request. Known from independent clients and clone-panel source, not an official
//! page: the answer is HTTP 200 with `result` true or false and a `message`.

use std::time::SystemTime;

use reqwest::header::CONTENT_TYPE;
use reqwest::{Client, RequestBuilder};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::{
    Balance, Registration, Sample, SimpleProvider, decode_json, endpoint, excerpt, refusal, rupiah,
};
use crate::error::UpstreamError;

pub mod simulator;

/// The registry entry.
pub const PROVIDER: Registration = Registration {
    name: "vipreseller",
    parse: super::parse::<Config>,
    simulator: || Box::new(simulator::VipReseller),
    demo: super::simulator::DemoAccount {
        balance: 1_850_000,
        sale_every: std::time::Duration::from_secs(3),
        low: 250_000,
        top_up: 1_500_000,
        warning: 750_000,
        critical: 300_000,
    },
    sample: Sample {
        answer: SAMPLE_ANSWER,
        balance: 7685,
        balance_at: "/data/balance",
        success_when: &[("/result", &["true"])],
        decode,
    },
};

/// The documented success answer of "profile" (the elided strings filled in).
pub const SAMPLE_ANSWER: &str = r#"{"result":true,"data":{"full_name":"Budi Santoso","username":"budistore","balance":7685,"point":0,"level":"Basic","registered":"2021-03-14 09:12:44"},"message":"Successfully got your account details."}"#;

pub const DEFAULT_BASE_URL: &str = "https://vip-reseller.co.id";

pub const FORM_CONTENT: &str = "application/x-www-form-urlencoded";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub api_id: String,
    pub api_key: SecretString,
    #[serde(default = "default_base_url")]
    pub base_url: Url,
}

fn default_base_url() -> Url {
    Url::parse(DEFAULT_BASE_URL).expect("the default base URL is valid")
}

/// `lowercase hex(md5(api_id + api_key))`.
pub fn sign(api_id: &str, api_key: &str) -> String {
    crate::signing::md5_hex(&[api_id, api_key])
}

impl SimpleProvider for Config {
    fn base_url(&self) -> &Url {
        &self.base_url
    }

    fn request(&self, client: &Client, _now: SystemTime) -> RequestBuilder {
        let api_key = self.api_key.expose_secret();
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("key", api_key)
            .append_pair("sign", &sign(&self.api_id, api_key))
            .finish();
        client
            .post(endpoint(&self.base_url, "api/profile"))
            .header(CONTENT_TYPE, FORM_CONTENT)
            .body(form)
    }

    fn decode(&self, body: &[u8]) -> Result<Balance, UpstreamError> {
        decode(body)
    }
}

#[derive(Deserialize)]
struct Answer {
    result: bool,
    #[serde(default)]
    message: Value,
    #[serde(default)]
    data: Value,
}

#[derive(Deserialize)]
struct Profile {
    balance: Value,
    #[serde(default)]
    full_name: Option<String>,
}

/// A profile answer: `result: true` with `data.balance`, or a refusal named by its message.
pub fn decode(body: &[u8]) -> Result<Balance, UpstreamError> {
    let answer: Answer = decode_json(body)?;
    if !answer.result {
        let message = super::envelope_text(&answer.message);
        return Err(failure(&message));
    }
    if !answer.data.is_object() {
        return Err(UpstreamError::Decode("data: not a JSON object".into()));
    }
    let profile = Profile::deserialize(&answer.data)
        .map_err(|err| UpstreamError::Decode(format!("data: {err}")))?;
    Ok(Balance {
        holder: profile.full_name,
        ..rupiah("data.balance", Some(&profile.balance))?
    })
}

/// The refusals VIP Reseller is known to send are recognised by their text; any other message
/// falls back to the shared reading (`auth` when it names a credential), since the list comes
/// from clients and clone panels rather than an official page.
fn failure(message: &str) -> UpstreamError {
    let said = excerpt(message);
    let lower = message.to_lowercase();
    if lower.starts_with("ip ") && lower.contains("not permitted") {
        // The IP is the one to whitelist on the Pengaturan API page; no secret.
        UpstreamError::Auth(format!(
            "ip_not_whitelisted: {said} (whitelist it under Profile → Pengaturan API)"
        ))
    } else if lower.contains("signature not valid") {
        UpstreamError::Auth(format!("auth: {said} (check api_id and api_key)"))
    } else if lower.contains("user not found") {
        UpstreamError::Auth(format!("auth: {said} (unknown api_key)"))
    } else {
        refusal(&[message], message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Reason;

    fn config() -> Config {
        Config {
            api_id: "apiid-123".into(),
            api_key: SecretString::from("apikey-123"),
            base_url: default_base_url(),
        }
    }

    fn refused(message: &str) -> UpstreamError {
        let body = serde_json::json!({"result": false, "data": null, "message": message});
        decode(body.to_string().as_bytes()).unwrap_err()
    }

    #[test]
    fn the_sign_is_the_worked_vector() {
        assert_eq!(
            sign("apiid-123", "apikey-123"),
            "29802176f564ff08b7a55191510f7715"
        );
    }

    #[test]
    fn the_request_is_the_documented_form_post_with_the_worked_sign() {
        let request = config()
            .request(&Client::new(), SystemTime::now())
            .build()
            .unwrap();
        assert_eq!(request.method(), "POST");
        assert_eq!(
            request.url().as_str(),
            "https://vip-reseller.co.id/api/profile"
        );
        assert_eq!(request.headers()["content-type"], FORM_CONTENT);
        let body = request.body().unwrap().as_bytes().unwrap();
        assert_eq!(
            body,
            b"key=apikey-123&sign=29802176f564ff08b7a55191510f7715"
        );
    }

    #[test]
    fn a_key_with_form_characters_is_encoded() {
        let config = Config {
            api_key: SecretString::from("a&b=c d+"),
            ..config()
        };
        let request = config
            .request(&Client::new(), SystemTime::now())
            .build()
            .unwrap();
        let body = request.body().unwrap().as_bytes().unwrap();
        let pairs: Vec<_> = url::form_urlencoded::parse(body).into_owned().collect();
        assert_eq!(pairs[0], ("key".into(), "a&b=c d+".into()));
        assert_eq!(pairs[1].1, sign("apiid-123", "a&b=c d+"));
    }

    #[test]
    fn the_documented_answer_decodes_to_its_balance_and_holder() {
        let balance = decode(SAMPLE_ANSWER.as_bytes()).unwrap();
        assert_eq!(balance.amount, 7685.into());
        assert_eq!(balance.currency, "IDR");
        assert_eq!(balance.holder.as_deref(), Some("Budi Santoso"));
    }

    #[test]
    fn an_invalid_signature_is_auth() {
        let err = refused("API Signature not valid.");
        assert_eq!(err.reason(), Reason::Auth);
        assert!(
            err.to_string().contains("API Signature not valid."),
            "{err}"
        );
    }

    #[test]
    fn an_unlisted_ip_is_auth_and_the_error_names_the_ip() {
        let err = refused("IP 203.0.113.9 is not permitted");
        assert_eq!(err.reason(), Reason::Auth);
        let message = err.to_string();
        assert!(message.contains("ip_not_whitelisted"), "{message}");
        assert!(message.contains("203.0.113.9"), "{message}");
    }

    #[test]
    fn an_unknown_user_is_auth() {
        assert_eq!(refused("User not found.").reason(), Reason::Auth);
    }

    #[test]
    fn other_refusals_are_rejected() {
        let err = refused("Sedang dalam pemeliharaan server.");
        assert_eq!(err.reason(), Reason::Rejected);
        assert!(err.to_string().contains("pemeliharaan"), "{err}");
    }

    #[test]
    fn a_balance_beside_result_false_is_not_read() {
        let body = br#"{"result":false,"data":{"balance":7685},"message":"User not found."}"#;
        assert_eq!(decode(body).unwrap_err().reason(), Reason::Auth);
    }

    #[test]
    fn malformed_answers_are_decode_failures() {
        for body in [
            &b"<html>502 Bad Gateway</html>"[..],
            br#"{"result":"true","data":{"balance":7685}}"#,
            br#"{"result":true,"data":{"balance":"abc"}}"#,
            br#"{"result":true,"data":{"balance":null}}"#,
            br#"{"result":true,"data":{}}"#,
            br#"{"result":true,"data":null}"#,
            br#"{"result":true,"data":[7685]}"#,
            br#"{"data":{"balance":7685}}"#,
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
