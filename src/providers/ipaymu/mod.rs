//! iPaymu v2 "check balance": `POST {base}/api/v2/balance` with `{"account": va}`.
//!
//! Headers `va`, `timestamp` (`YmdHis`) and `signature`, the lower-case hex HMAC-SHA256 under
//! the API key of `POST:<va>:<sha256hex(body)>:<api key>`. The signature covers the body bytes
//! exactly as they travel, so the body is serialised once and those same bytes are signed and
//! sent. The API key itself travels only inside the HMAC.

use std::time::SystemTime;

use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{Client, RequestBuilder};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use url::Url;

use super::{
    Balance, Registration, Sample, SimpleProvider, decode_json, endpoint, excerpt,
    names_a_credential_problem, rupiah,
};
use crate::error::UpstreamError;
use crate::signing;

pub mod simulator;

/// The registry entry.
pub const PROVIDER: Registration = Registration {
    name: "ipaymu",
    parse: super::parse::<Config>,
    simulator: || Box::new(simulator::Ipaymu),
    demo: super::simulator::DemoAccount {
        balance: 1_500_000,
        sale_every: std::time::Duration::from_secs(4),
        low: 400_000,
        top_up: 1_500_000,
        warning: 750_000,
        critical: 500_000,
    },
    sample: Sample {
        answer: SAMPLE_ANSWER,
        balance: 1_500_000,
        balance_at: "/Data/MerchantBalance",
        success_when: &[("/Status", &["200", "\"200\""])],
        decode,
    },
};

/// The documented success answer (`check-balance.en.mdx`); note the PascalCase keys.
pub const SAMPLE_ANSWER: &str = r#"{"Status":200,"Data":{"Va":"1179000899","MerchantBalance":"1500000","MemberBalance":"0"},"Message":"success"}"#;

pub const DEFAULT_BASE_URL: &str = "https://my.ipaymu.com";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The merchant's virtual account number; sent as the `va` header and in the body.
    #[serde(deserialize_with = "header_value")]
    pub va: String,
    pub api_key: SecretString,
    #[serde(default = "default_base_url")]
    pub base_url: Url,
}

fn default_base_url() -> Url {
    Url::parse(DEFAULT_BASE_URL).expect("the default base URL is valid")
}

/// `va` travels in a header: refused at load time rather than failing every check.
fn header_value<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    HeaderValue::from_str(&text).map_err(|_| {
        serde::de::Error::custom("contains characters not allowed in an HTTP header")
    })?;
    Ok(text)
}

/// `hex(HMAC-SHA256(api_key, "POST:" + va + ":" + sha256hex(body) + ":" + api_key))`, over the
/// body bytes as sent.
pub fn signature(va: &str, api_key: &str, body: &[u8]) -> String {
    let string_to_sign = format!("POST:{va}:{}:{api_key}", signing::sha256_hex(body));
    signing::hmac_sha256_hex(api_key.as_bytes(), string_to_sign.as_bytes())
}

/// The balance request's body, serialised once: these bytes are both signed and sent.
pub fn body(va: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"account": va})).expect("a JSON object literal serialises")
}

/// `YmdHis` in WIB (UTC+7). The documentation shows the format only; Jakarta time is what
/// iPaymu's own SDKs send from servers set to WIB, and the timestamp is not signed.
pub fn timestamp(now: SystemTime) -> String {
    let seconds = super::unix_seconds(now) + 7 * 3600;
    let (days, time) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_date(days);
    format!(
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}",
        time / 3600,
        time / 60 % 60,
        time % 60
    )
}

/// The civil date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_date(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

fn sensitive_header(value: &str) -> HeaderValue {
    let mut value = HeaderValue::from_str(value).expect("hex is a valid header value");
    value.set_sensitive(true);
    value
}

impl SimpleProvider for Config {
    fn base_url(&self) -> &Url {
        &self.base_url
    }

    fn request(&self, client: &Client, now: SystemTime) -> RequestBuilder {
        let body = body(&self.va);
        let signature = signature(&self.va, self.api_key.expose_secret(), &body);
        client
            .post(endpoint(&self.base_url, "api/v2/balance"))
            .header(CONTENT_TYPE, "application/json")
            .header("va", self.va.as_str())
            .header("signature", sensitive_header(&signature))
            .header("timestamp", timestamp(now))
            .body(body)
    }

    fn decode(&self, body: &[u8]) -> Result<Balance, UpstreamError> {
        decode(body)
    }
}

#[derive(Deserialize)]
struct Answer {
    #[serde(rename = "Status")]
    status: Value,
    #[serde(rename = "Message", default)]
    message: Value,
    #[serde(rename = "Data", default)]
    data: Value,
}

/// A balance answer: success is `Status` 200 (a number in the documentation; the string is
/// accepted too), the balance `Data.MerchantBalance`, a string or a number.
pub fn decode(body: &[u8]) -> Result<Balance, UpstreamError> {
    let answer: Answer = decode_json(body)?;
    let status = answer
        .status
        .as_i64()
        .or_else(|| answer.status.as_str().and_then(|s| s.trim().parse().ok()));
    let success = answer.status.as_i64() == Some(200) || answer.status.as_str() == Some("200");
    if !success {
        return Err(refusal(status, &answer.status, &answer.message));
    }
    let Value::Object(data) = answer.data else {
        return Err(UpstreamError::Decode("Data: not a JSON object".into()));
    };
    rupiah("Data.MerchantBalance", data.get("MerchantBalance"))
}

/// A failure envelope. iPaymu documents no code list: 401 and 403 (and messages naming the
/// signature, key or IP) are credential problems, a message about the timestamp is clock skew
/// (also `auth`: the signed request was refused), 429 is a rate limit, the rest `rejected`.
fn refusal(status: Option<i64>, raw_status: &Value, message: &Value) -> UpstreamError {
    let message = super::envelope_text(message);
    let summary = excerpt(&format!("Status {raw_status}: {message}"));
    let lower = message.to_lowercase();
    if lower.contains("timestamp") || lower.contains("expired") {
        return UpstreamError::Auth(format!("clock_skew: {summary}"));
    }
    if lower.contains("whitelist") || lower.contains("ip address") || lower.contains("domain") {
        return UpstreamError::Auth(format!("ip_not_whitelisted: {summary}"));
    }
    match status {
        Some(401 | 403) => UpstreamError::Auth(format!("auth: {summary}")),
        Some(429) => UpstreamError::RateLimited { retry_after: None },
        _ if names_a_credential_problem(&message) => {
            UpstreamError::Auth(format!("auth: {summary}"))
        }
        _ => UpstreamError::Rejected(summary),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::error::Reason;

    fn config() -> Config {
        Config {
            va: "1179000899".into(),
            api_key: SecretString::from("QbGcoO0Qds9sQFDmY0MWg1Tq.xtuh1"),
            base_url: default_base_url(),
        }
    }

    #[test]
    fn the_worked_example_signs_the_sample_body() {
        let body = body("1179000899");
        assert_eq!(body, br#"{"account":"1179000899"}"#);
        assert_eq!(
            signing::sha256_hex(&body),
            "a60243f4bb32ec2062088364bb5f96ab65e1591e6f78a44f3e1aeb5ec842e020"
        );
        assert_eq!(
            signature("1179000899", "QbGcoO0Qds9sQFDmY0MWg1Tq.xtuh1", &body),
            "68292de8c3194960e40dd0a2951f4667be3ea8abd60aabcbb68f83eddd5747fc"
        );
    }

    #[test]
    fn the_request_signs_exactly_the_bytes_it_sends() {
        // 2026-05-31 10:21:58 UTC is 17:21:58 in Jakarta.
        let now = UNIX_EPOCH + Duration::from_secs(1780222918);
        let request = config().request(&Client::new(), now).build().unwrap();
        assert_eq!(request.method(), "POST");
        assert_eq!(
            request.url().as_str(),
            "https://my.ipaymu.com/api/v2/balance"
        );
        let headers = request.headers();
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["va"], "1179000899");
        assert_eq!(headers["timestamp"], "20260531172158");
        assert!(headers["signature"].is_sensitive());
        let sent = request.body().unwrap().as_bytes().unwrap();
        assert_eq!(sent, br#"{"account":"1179000899"}"#);
        assert_eq!(
            headers["signature"],
            "68292de8c3194960e40dd0a2951f4667be3ea8abd60aabcbb68f83eddd5747fc"
        );
        assert_eq!(
            headers["signature"].to_str().unwrap(),
            signature("1179000899", "QbGcoO0Qds9sQFDmY0MWg1Tq.xtuh1", sent)
        );
        assert!(!String::from_utf8_lossy(sent).contains("QbGcoO0Qds9sQFDmY0MWg1Tq"));
    }

    #[test]
    fn the_documented_answer_decodes_and_a_numeric_balance_too() {
        let balance = config().decode(SAMPLE_ANSWER.as_bytes()).unwrap();
        assert_eq!(balance.amount, 1_500_000.into());
        assert_eq!(balance.currency, "IDR");
        let numeric = br#"{"Status":200,"Success":true,"Data":{"Va":"1179000899","MerchantBalance":1500000.5,"MemberBalance":0},"Message":"success"}"#;
        assert_eq!(
            config().decode(numeric).unwrap().amount,
            "1500000.5".parse().unwrap()
        );
    }

    #[test]
    fn failure_envelopes_are_classified_by_status_and_message() {
        let cases: [(&[u8], Reason, &str); 6] = [
            (
                br#"{"Status":401,"Success":false,"Message":"unauthorized signature","Data":null}"#,
                Reason::Auth,
                "auth",
            ),
            (
                br#"{"Status":403,"Message":"Forbidden","Data":null}"#,
                Reason::Auth,
                "auth",
            ),
            (
                br#"{"Status":400,"Message":"Request timestamp expired","Data":null}"#,
                Reason::Auth,
                "clock_skew",
            ),
            (
                br#"{"Status":400,"Message":"IP address not whitelisted","Data":null}"#,
                Reason::Auth,
                "ip_not_whitelisted",
            ),
            (
                br#"{"Status":429,"Message":"Too Many Requests","Data":null}"#,
                Reason::RateLimited,
                "",
            ),
            (
                br#"{"Status":400,"Message":"Service under maintenance","Data":null}"#,
                Reason::Rejected,
                "maintenance",
            ),
        ];
        for (body, reason, words) in cases {
            let err = config().decode(body).unwrap_err();
            assert_eq!(err.reason(), reason, "{err}");
            assert!(err.to_string().contains(words), "{err}");
        }
    }

    #[test]
    fn malformed_answers_are_decode_failures() {
        for body in [
            &b"<html>502</html>"[..],
            br#"{"Status":200,"Data":null,"Message":"success"}"#,
            br#"{"Status":200,"Data":{"MerchantBalance":"abc"}}"#,
            br#"{"Status":200,"Data":{"MemberBalance":"0"}}"#,
            br#"{"Status":200,"Data":["1500000"]}"#,
            br#"{"Data":{"MerchantBalance":"1"}}"#,
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

    #[test]
    fn invalid_utf8_in_a_field_not_read_is_still_a_decode_failure() {
        let mut body = SAMPLE_ANSWER.as_bytes().to_vec();
        let at = body.len() - 4;
        body[at] = 0x80;
        assert_eq!(config().decode(&body).unwrap_err().reason(), Reason::Decode);
    }

    #[test]
    fn a_status_of_another_shape_is_no_success() {
        for body in [
            &br#"{"Status":200.0,"Data":{"MerchantBalance":"1"}}"#[..],
            br#"{"Status":"200 ","Data":{"MerchantBalance":"1"}}"#,
            br#"{"Status":true,"Data":{"MerchantBalance":"1"}}"#,
        ] {
            assert!(
                config().decode(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
