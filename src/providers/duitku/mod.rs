//! Duitku disbursement "check balance":
//! `POST {base}/webapi/api/disbursement/checkbalance` with JSON
//! `{userId, email, timestamp, signature}`, `signature = sha256hex(email + timestamp + secretKey)`
//! and the timestamp in Unix **milliseconds** (providers.md §2.12).
//!
//! Known from two or more independent clients (no official page retrieved). The timestamp must
//! be within ±5 minutes of Duitku's clock (`-960`), so hosts need NTP. The balance is
//! `effectiveBalance`, a number or a numeric string.

use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::{Client, RequestBuilder};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use url::Url;

use super::{
    Balance, Registration, Sample, SimpleProvider, decode_json, endpoint, excerpt, refusal, rupiah,
};
use crate::error::UpstreamError;
use crate::signing::sha256_hex;

pub mod simulator;

/// The registry entry.
pub const PROVIDER: Registration = Registration {
    name: "duitku",
    parse: super::parse::<Config>,
    simulator: || Box::new(simulator::Duitku),
    demo: super::simulator::DemoAccount {
        balance: 12_000_000,
        sale_every: std::time::Duration::from_secs(3),
        low: 2_000_000,
        top_up: 10_000_000,
        warning: 5_000_000,
        critical: 3_000_000,
    },
    sample: Sample {
        answer: SAMPLE_ANSWER,
        balance: 1_000_000,
        balance_at: "/effectiveBalance",
        success_when: &[("/responseCode", &["\"00\""])],
        decode,
    },
};

/// The documented success answer of "check balance".
pub const SAMPLE_ANSWER: &str = r#"{"userId":3551,"email":"you@example.com","balance":1000000,"effectiveBalance":1000000,"responseCode":"00","responseDesc":"Success"}"#;

/// Production; the sandbox is `https://sandbox.duitku.com`.
pub const DEFAULT_BASE_URL: &str = "https://passport.duitku.com";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Sent as the JSON integer `userId`.
    #[serde(deserialize_with = "whole_number")]
    pub user_id: u64,
    pub email: String,
    pub secret_key: SecretString,
    #[serde(default = "default_base_url")]
    pub base_url: Url,
}

fn default_base_url() -> Url {
    Url::parse(DEFAULT_BASE_URL).expect("the default base URL is valid")
}

/// `userId` is an integer in the body; configuration hands it over as text, so it is read
/// from either, at load time, without quoting the value in the error.
fn whole_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let parsed = match Value::deserialize(deserializer)? {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| serde::de::Error::custom("must be a whole number (Duitku's userId)"))
}

/// Unix milliseconds, the unit Duitku signs and checks.
pub fn unix_millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `lowercase hex(sha256(email + timestamp + secretKey))`, the timestamp in decimal.
pub fn signature(email: &str, timestamp_ms: i64, secret_key: &str) -> String {
    sha256_hex(format!("{email}{timestamp_ms}{secret_key}").as_bytes())
}

#[derive(Deserialize)]
struct Reply {
    /// Documented as a string in every answer (`"00"`, `"EE"`, `"-191"`); anything else is
    /// not Duitku's envelope, so `decode` rather than a guessed refusal.
    #[serde(rename = "responseCode")]
    response_code: String,
    #[serde(rename = "responseDesc", default)]
    response_desc: Option<String>,
    #[serde(rename = "effectiveBalance", default)]
    effective_balance: Option<Value>,
}

impl SimpleProvider for Config {
    fn base_url(&self) -> &Url {
        &self.base_url
    }

    fn request(&self, client: &Client, now: SystemTime) -> RequestBuilder {
        let timestamp = unix_millis(now);
        // The signed timestamp and the one in the body are this one value.
        let signature = signature(&self.email, timestamp, self.secret_key.expose_secret());
        client
            .post(endpoint(
                &self.base_url,
                "webapi/api/disbursement/checkbalance",
            ))
            .json(&json!({
                "userId": self.user_id,
                "email": self.email,
                "timestamp": timestamp,
                "signature": signature,
            }))
    }

    fn decode(&self, body: &[u8]) -> Result<Balance, UpstreamError> {
        decode(body)
    }
}

/// A balance answer: `responseCode` `"00"` with `effectiveBalance`.
pub fn decode(body: &[u8]) -> Result<Balance, UpstreamError> {
    let reply: Reply = decode_json(body)?;
    if reply.response_code != "00" {
        let description = reply.response_desc.as_deref().unwrap_or("");
        return Err(classify(&reply.response_code, description));
    }
    // No fallback to `balance`: `effectiveBalance` is what can be used, and a missing one is an
    // error rather than a possibly overstated balance.
    rupiah("effectiveBalance", reply.effective_balance.as_ref())
}

/// The documented `responseCode`s of a refusal.
fn classify(code: &str, description: &str) -> UpstreamError {
    let summary = excerpt(&format!("responseCode {code}: {description}"));
    match code {
        "-191" | "-120" => UpstreamError::Auth(format!("auth: {summary}")),
        "-930" => UpstreamError::Auth(format!(
            "ip_not_whitelisted (whitelist this host's egress IP with Duitku): {summary}"
        )),
        "-960" => UpstreamError::Auth(format!(
            "clock_skew (this host's clock is over 5 minutes off; run NTP): {summary}"
        )),
        "-123" => UpstreamError::Rejected(format!("account_blocked: {summary}")),
        // EE general error, -100 other error, -952 invalid parameter, anything undocumented.
        _ => refusal(&[description], &summary),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use reqwest::StatusCode;
    use reqwest::header::CONTENT_TYPE;
    use rust_decimal::Decimal;

    use super::*;
    use crate::error::Reason;
    use crate::providers::simulator::{Fault, Simulator};
    use crate::providers::{Answer, CheckContext, Provider};

    const SECRET: &str = "de56f832487bc1ce1de5ff2cfacf8d9486c61da69df6fd61d5537b6b7d6d354d";

    fn config() -> Config {
        Config {
            user_id: 3551,
            email: "test@chakratechnology.com".into(),
            secret_key: SecretString::from(SECRET),
            base_url: default_base_url(),
        }
    }

    fn body_of(config: &Config, now: SystemTime) -> (reqwest::Request, Value) {
        let request = config.request(&Client::new(), now).build().unwrap();
        let body = serde_json::from_slice(request.body().unwrap().as_bytes().unwrap()).unwrap();
        (request, body)
    }

    #[test]
    fn the_signature_is_the_worked_vector() {
        assert_eq!(
            signature("test@chakratechnology.com", 1700000000000, SECRET),
            "23002394506a14310b36c0264c0f1aa8b056689aed89fff865cefc82937f9491"
        );
    }

    #[test]
    fn the_request_carries_the_worked_vector_with_the_time_in_milliseconds() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let (request, body) = body_of(&config(), now);
        assert_eq!(request.method(), "POST");
        assert_eq!(
            request.url().as_str(),
            "https://passport.duitku.com/webapi/api/disbursement/checkbalance"
        );
        assert_eq!(request.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(
            body,
            json!({
                "userId": 3551,
                "email": "test@chakratechnology.com",
                "timestamp": 1700000000000i64,
                "signature": "23002394506a14310b36c0264c0f1aa8b056689aed89fff865cefc82937f9491",
            })
        );
        let sent =
            String::from_utf8_lossy(request.body().unwrap().as_bytes().unwrap()).into_owned();
        assert!(!sent.contains(SECRET));
    }

    #[test]
    fn what_is_signed_is_exactly_the_timestamp_that_travels() {
        // A time with milliseconds: a signature over seconds, or over another reading of the
        // clock than the body's, would not match.
        let now = UNIX_EPOCH + Duration::from_millis(1_780_222_918_437);
        let (_, body) = body_of(&config(), now);
        let timestamp = body["timestamp"].as_i64().unwrap();
        assert_eq!(timestamp, 1_780_222_918_437);
        let email = body["email"].as_str().unwrap();
        assert_eq!(body["signature"], signature(email, timestamp, SECRET));
        assert!(body["userId"].is_u64());
    }

    #[test]
    fn the_user_id_is_read_as_a_whole_number_and_bad_ones_are_not_quoted() {
        let fields = json!({"user_id": "3551", "email": "a@b.c", "secret_key": "s"});
        let config: Config = serde_json::from_value(fields).unwrap();
        assert_eq!(config.user_id, 3551);
        assert_eq!(config.base_url.as_str(), "https://passport.duitku.com/");
        for bad in ["35x1", "-1", "", "3.5"] {
            let fields = json!({"user_id": bad, "email": "a@b.c", "secret_key": "s"});
            let err = serde_json::from_value::<Config>(fields).unwrap_err();
            assert!(err.to_string().contains("whole number"), "{err}");
            assert!(bad.is_empty() || !err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn the_documented_answer_reads_the_effective_balance_number_or_string() {
        let balance = decode(SAMPLE_ANSWER.as_bytes()).unwrap();
        assert_eq!(balance.amount, Decimal::from(1_000_000));
        assert_eq!(balance.currency, "IDR");
        let strings = br#"{"balance":"0","effectiveBalance":"0","responseCode":"00","responseDesc":"Success"}"#;
        assert_eq!(decode(strings).unwrap().amount, Decimal::ZERO);
        let only_total = br#"{"balance":1000000,"responseCode":"00","responseDesc":"Success"}"#;
        assert_eq!(decode(only_total).unwrap_err().reason(), Reason::Decode);
    }

    #[test]
    fn every_documented_response_code_has_its_reason() {
        for (code, description, reason, class) in [
            ("-191", "Wrong signature", Reason::Auth, "auth"),
            ("-120", "User not found", Reason::Auth, "auth"),
            (
                "-930",
                "IP not whitelisted",
                Reason::Auth,
                "ip_not_whitelisted",
            ),
            ("-960", "Timestamp expired", Reason::Auth, "clock_skew"),
            ("-123", "User blocked", Reason::Rejected, "account_blocked"),
            ("-952", "Invalid parameter", Reason::Rejected, "-952"),
            ("-100", "Other error", Reason::Rejected, "-100"),
            ("EE", "General error", Reason::Rejected, "EE"),
        ] {
            let body = json!({"responseCode": code, "responseDesc": description}).to_string();
            let err = decode(body.as_bytes()).unwrap_err();
            assert_eq!(err.reason(), reason, "{code}: {err}");
            assert!(err.to_string().contains(class), "{code}: {err}");
        }
        // `"00"` is a string; a number is no Duitku envelope at all.
        let numeric = br#"{"responseCode":0,"effectiveBalance":1}"#;
        assert_eq!(decode(numeric).unwrap_err().reason(), Reason::Decode);
    }

    #[test]
    fn auth_codes_are_auth_whatever_the_http_status() {
        for status in [
            StatusCode::OK,
            StatusCode::BAD_REQUEST,
            StatusCode::UNAUTHORIZED,
        ] {
            for code in ["-191", "-930", "-120", "-960"] {
                let answer = Answer {
                    status,
                    body: json!({"responseCode": code, "responseDesc": "x"})
                        .to_string()
                        .into_bytes(),
                };
                let err = answer.decode_with(decode).unwrap_err();
                assert_eq!(err.reason(), Reason::Auth, "{status} {code}: {err}");
            }
        }
    }

    #[test]
    fn malformed_answers_are_decode_failures() {
        for body in [
            &b"<html></html>"[..],
            br#"{"responseCode":"00","effectiveBalance":"abc"}"#,
            br#"{"responseCode":"00","effectiveBalance":null}"#,
            br#"{"responseCode":"00","effectiveBalance":[1]}"#,
            br#"{"effectiveBalance":1}"#,
            // Mangled bytes in a field that is not read.
            b"{\"email\":\"a\xff\",\"effectiveBalance\":1,\"responseCode\":\"00\"}",
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

    fn for_simulator(simulator: &Simulator, secret: &str) -> Config {
        let fields = simulator.account_fields();
        let field = |name: &str| {
            fields
                .iter()
                .find(|(field, _)| *field == name)
                .map(|(_, value)| value.clone())
                .unwrap()
        };
        Config {
            user_id: field("user_id").parse().unwrap(),
            email: field("email"),
            secret_key: SecretString::from(secret),
            base_url: Url::parse(&simulator.base_url()).unwrap(),
        }
    }

    #[tokio::test]
    async fn against_the_simulator_a_wrong_secret_a_skewed_clock_and_a_429_are_classified() {
        let simulator = Simulator::start("duitku", "1500000.25".parse().unwrap())
            .await
            .unwrap();
        let secret = simulator.credentials().secret_key;
        let cx = CheckContext::new(Client::new());
        let balance = for_simulator(&simulator, &secret).fetch(&cx).await.unwrap();
        assert_eq!(balance.amount, "1500000.25".parse::<Decimal>().unwrap());

        let err = for_simulator(&simulator, "wrong-secret")
            .fetch(&cx)
            .await
            .unwrap_err();
        assert_eq!(err.reason(), Reason::Auth, "{err}");
        assert!(err.to_string().contains("-191"), "{err}");

        for skew in [Duration::from_secs(301), Duration::from_secs(3600)] {
            let ahead = CheckContext::with_clock(
                Client::new(),
                std::sync::Arc::new(move || SystemTime::now() + skew),
            );
            let err = for_simulator(&simulator, &secret)
                .fetch(&ahead)
                .await
                .unwrap_err();
            assert_eq!(err.reason(), Reason::Auth, "{err}");
            assert!(err.to_string().contains("clock_skew"), "{err}");
        }
        let slightly = CheckContext::with_clock(
            Client::new(),
            std::sync::Arc::new(|| SystemTime::now() - Duration::from_secs(240)),
        );
        assert!(
            for_simulator(&simulator, &secret)
                .fetch(&slightly)
                .await
                .is_ok()
        );

        simulator.set_fault(Some(Fault::RateLimited { retry_after: 5 }));
        let err = for_simulator(&simulator, &secret)
            .fetch(&cx)
            .await
            .unwrap_err();
        assert_eq!(err.reason(), Reason::RateLimited, "{err}");
    }
}
