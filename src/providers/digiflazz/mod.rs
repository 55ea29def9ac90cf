//! Digiflazz buyer API "Cek Saldo": `POST {base}/v1/cek-saldo` with
//! `{"cmd": "deposit", "username", "sign"}`, `sign = md5(username + api_key + "depo")`.
//!
//! There is no sandbox host: a development key (`dev-…`) on the production URL selects
//! development mode, and each mode has its own IP whitelist. `base_url` is overridable for the
//! white-label "digiswitch" tenants, which use the same signing recipe.
//!
//! Errors come with a non-2xx status (400 observed) and `{"data": {"rc", "message"}}`, so the
//! `rc` decides the reason whatever the status: this is why Digiflazz is a [`Provider`] rather
//! than a [`super::SimpleProvider`], whose non-2xx reading keeps only `auth`.

use reqwest::{Client, RequestBuilder};
use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use super::{
    Answer, Balance, BoxFuture, CheckContext, Provider, Registration, Sample, amount, decode_json,
    endpoint, excerpt,
};
use crate::error::UpstreamError;

pub mod simulator;

/// The registry entry.
pub const PROVIDER: Registration = Registration {
    name: "digiflazz",
    parse: super::parse::<Config>,
    simulator: || Box::new(simulator::Digiflazz),
    demo: super::simulator::DemoAccount {
        balance: 12_750_000,
        sale_every: std::time::Duration::from_secs(1),
        low: 2_000_000,
        top_up: 10_000_000,
        warning: 5_000_000,
        critical: 2_500_000,
    },
    sample: Sample {
        answer: SAMPLE_ANSWER,
        balance: 500_000_000_000,
        balance_at: "/data/deposit",
        // A success has no marker: it is the presence of `data.deposit` (and no failure `rc`).
        success_when: &[],
        decode,
    },
};

/// The documented success answer of "Cek Saldo".
pub const SAMPLE_ANSWER: &str = r#"{"data":{"deposit":500000000000}}"#;

pub const DEFAULT_BASE_URL: &str = "https://api.digiflazz.com";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub username: String,
    /// The development (`dev-…`) or production key; it selects the mode.
    pub api_key: SecretString,
    #[serde(default = "default_base_url")]
    pub base_url: Url,
}

fn default_base_url() -> Url {
    Url::parse(DEFAULT_BASE_URL).expect("the default base URL is valid")
}

/// `lowercase hex(md5(username + api_key + "depo"))`, the balance call's signature.
pub fn sign(username: &str, api_key: &str) -> String {
    crate::signing::md5_hex(&[username, api_key, "depo"])
}

impl Config {
    /// The signed balance request.
    pub fn request(&self, client: &Client) -> RequestBuilder {
        let sign = sign(&self.username, self.api_key.expose_secret());
        client
            .post(endpoint(&self.base_url, "v1/cek-saldo"))
            .json(&json!({"cmd": "deposit", "username": self.username, "sign": sign}))
    }
}

impl Provider for Config {
    fn base_url(&self) -> &Url {
        &self.base_url
    }

    fn fetch<'a>(&'a self, cx: &'a CheckContext) -> BoxFuture<'a, Result<Balance, UpstreamError>> {
        Box::pin(async move { read(&cx.exchange(self.request(&cx.client)).await?) })
    }
}

/// Reads an answer: a 2xx is decoded; otherwise a Digiflazz `rc` envelope decides the reason,
/// and anything else (a proxy's error page) is read by its status.
pub fn read(answer: &Answer) -> Result<Balance, UpstreamError> {
    if answer.status.is_success() {
        return decode(&answer.body);
    }
    match decode(&answer.body) {
        Err(UpstreamError::Decode(_)) | Ok(_) => answer.decode_with(decode),
        Err(refused) => Err(refused),
    }
}

#[derive(Deserialize)]
struct Data {
    #[serde(default)]
    rc: Value,
    #[serde(default)]
    message: Value,
    #[serde(default, deserialize_with = "optional_amount")]
    deposit: Option<Decimal>,
}

fn optional_amount<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Decimal>, D::Error> {
    amount(deserializer).map(Some)
}

/// A balance answer: `data.deposit` is the balance; a `data.rc` other than `"00"` is a failure.
pub fn decode(body: &[u8]) -> Result<Balance, UpstreamError> {
    // Read whole as a `Value`, so every string is checked to be UTF-8, skipped ones included.
    let answer: Value = decode_json(body)?;
    let Some(data) = answer.get("data").filter(|data| data.is_object()) else {
        return Err(UpstreamError::Decode("data: not a JSON object".into()));
    };
    let data: Data =
        Data::deserialize(data).map_err(|err| UpstreamError::Decode(format!("data: {err}")))?;
    // The documented codes are strings; a number is read the same, defensively.
    let rc = match &data.rc {
        Value::Null => None,
        Value::String(rc) => Some(rc.clone()),
        Value::Number(rc) => Some(rc.to_string()),
        other => return Err(UpstreamError::Decode(format!("data.rc: {other}"))),
    };
    if let Some(rc) = rc.filter(|rc| rc != "00") {
        let message = super::envelope_text(&data.message);
        return Err(failure(&rc, &message));
    }
    let amount = data
        .deposit
        .ok_or_else(|| UpstreamError::Decode("data.deposit: missing".into()))?;
    Ok(Balance {
        amount,
        // Digiflazz deposits are rupiah; the answer names no currency.
        currency: "IDR".into(),
        holder: None,
    })
}

/// Classifies a documented buyer `rc`. The message is kept: for rc 45 it names the IP to
/// whitelist, which is the operator's next step and no secret.
fn failure(rc: &str, message: &str) -> UpstreamError {
    let said = excerpt(message);
    match rc {
        "41" => UpstreamError::Auth(format!(
            "auth: rc 41, {said} (dev key in prod or the reverse?)"
        )),
        "42" => UpstreamError::Auth(format!("auth: rc 42, {said} (check the username)")),
        "45" => UpstreamError::Auth(format!(
            "ip_not_whitelisted: rc 45, {said} (whitelist this IP for the key's mode)"
        )),
        // Documented for the seller side ("Terlalu banyak request"); expected here too.
        "10" => UpstreamError::RateLimited { retry_after: None },
        _ => UpstreamError::Rejected(format!("rc {}: {said}", excerpt(rc))),
    }
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;

    use super::*;
    use crate::error::Reason;

    fn config() -> Config {
        Config {
            username: "user1".into(),
            api_key: SecretString::from("key1"),
            base_url: default_base_url(),
        }
    }

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn the_sign_is_the_worked_vector() {
        assert_eq!(sign("user1", "key1"), "af162411e54244ce2f8b3103c45e9b1f");
    }

    #[test]
    fn the_request_is_the_documented_post_with_the_worked_sign() {
        let request = config().request(&Client::new()).build().unwrap();
        assert_eq!(request.method(), "POST");
        assert_eq!(
            request.url().as_str(),
            "https://api.digiflazz.com/v1/cek-saldo"
        );
        assert_eq!(request.headers()["content-type"], "application/json");
        let sent = request.body().unwrap().as_bytes().unwrap();
        let body: Value = serde_json::from_slice(sent).unwrap();
        assert_eq!(
            body,
            json!({"cmd": "deposit", "username": "user1", "sign": "af162411e54244ce2f8b3103c45e9b1f"})
        );
        assert!(!String::from_utf8_lossy(sent).contains("key1"));
    }

    #[test]
    fn the_documented_answer_decodes_to_its_deposit() {
        let balance = decode(SAMPLE_ANSWER.as_bytes()).unwrap();
        assert_eq!(balance.amount, Decimal::from(500_000_000_000_i64));
        assert_eq!(balance.currency, "IDR");
        assert_eq!(balance.holder, None);
    }

    #[test]
    fn signature_and_username_errors_on_400_are_auth() {
        for rc in ["41", "42"] {
            let body = format!(r#"{{"data":{{"rc":"{rc}","message":"Signature tidak valid"}}}}"#);
            let err = read(&answer(400, &body)).unwrap_err();
            assert_eq!(err.reason(), Reason::Auth, "{rc}: {err}");
            assert!(err.to_string().contains(&format!("rc {rc}")), "{err}");
        }
    }

    #[test]
    fn an_unknown_ip_on_400_is_auth_and_the_error_names_the_ip() {
        let body = r#"{"data":{"rc":"45","message":"IP Anda tidak kami kenali: 203.0.113.7"}}"#;
        let err = read(&answer(400, body)).unwrap_err();
        assert_eq!(err.reason(), Reason::Auth);
        let message = err.to_string();
        assert!(message.contains("ip_not_whitelisted"), "{message}");
        assert!(message.contains("203.0.113.7"), "{message}");
    }

    #[test]
    fn too_many_requests_as_rc_10_on_400_is_rate_limited() {
        let body = r#"{"data":{"rc":"10","message":"Terlalu banyak request"}}"#;
        let err = read(&answer(400, body)).unwrap_err();
        assert_eq!(err.reason(), Reason::RateLimited);
        // The same envelope on a 200 reads the same.
        assert_eq!(
            decode(body.as_bytes()).unwrap_err().reason(),
            Reason::RateLimited
        );
    }

    #[test]
    fn other_codes_are_rejected_whatever_the_status() {
        for (status, rc) in [(400, "40"), (400, "99"), (500, "99"), (200, "99")] {
            let body = format!(r#"{{"data":{{"rc":"{rc}","message":"Sistem sedang gangguan"}}}}"#);
            let err = read(&answer(status, &body)).unwrap_err();
            assert_eq!(err.reason(), Reason::Rejected, "{status} {rc}: {err}");
        }
    }

    #[test]
    fn a_numeric_rc_reads_like_the_documented_string() {
        let err = decode(br#"{"data":{"rc":45,"message":"IP Anda tidak kami kenali: 10.0.0.1"}}"#)
            .unwrap_err();
        assert_eq!(err.reason(), Reason::Auth);
    }

    #[test]
    fn a_failure_rc_beside_a_deposit_is_still_a_failure() {
        let err =
            decode(br#"{"data":{"deposit":5000,"rc":"99","message":"gangguan"}}"#).unwrap_err();
        assert_eq!(err.reason(), Reason::Rejected);
        let ok = decode(br#"{"data":{"deposit":5000,"rc":"00"}}"#).unwrap();
        assert_eq!(ok.amount, Decimal::from(5000));
    }

    #[test]
    fn non_envelope_errors_are_read_by_their_status() {
        let cases = [
            (502, "<html>Bad Gateway</html>", Reason::HttpStatus),
            (503, r#"{"message":"down"}"#, Reason::HttpStatus),
            (401, "Unauthorized", Reason::Auth),
            // A deposit on an error status is not trusted as a balance.
            (500, r#"{"data":{"deposit":1}}"#, Reason::HttpStatus),
        ];
        for (status, body, reason) in cases {
            let err = read(&answer(status, body)).unwrap_err();
            assert_eq!(err.reason(), reason, "{status} {body}: {err}");
        }
    }

    #[test]
    fn malformed_answers_are_decode_failures() {
        for body in [
            &b"<html>502 Bad Gateway</html>"[..],
            br#"{"data":{"deposit":"abc"}}"#,
            br#"{"data":{"deposit":null}}"#,
            br#"{"data":{}}"#,
            br#"{"data":[500]}"#,
            br#"{"data":{"rc":{"code":"45"}}}"#,
            br#"{"deposit":500}"#,
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
