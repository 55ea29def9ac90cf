//! Xendit "Get Balance": `GET {base}/balance?account_type=CASH`.
//!
//! Authenticated by HTTP Basic with the secret key as the user and an empty password. The
//! status is meaningful: 401 is a bad key, 403 a key without the Balance permission or (probably,
//! unverified) an IP outside the allowlist, 429 the rate limit. A xenPlatform sub-account is read
//! with the `for-user-id` header.

use reqwest::header::{ACCEPT, HeaderValue};
use reqwest::{Client, RequestBuilder, StatusCode};
use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use url::Url;

use super::{
    Balance, BoxFuture, CheckContext, Provider, Registration, Sample, decode_json, endpoint,
    excerpt, parse_amount, refusal,
};
use crate::error::UpstreamError;

pub mod simulator;

/// The registry entry.
pub const PROVIDER: Registration = Registration {
    name: "xendit",
    parse: super::parse::<Config>,
    simulator: || Box::new(simulator::Xendit),
    demo: super::simulator::DemoAccount {
        balance: 48_750_000,
        sale_every: std::time::Duration::from_secs(2),
        low: 5_000_000,
        top_up: 40_000_000,
        warning: 15_000_000,
        critical: 7_500_000,
    },
    sample: Sample {
        answer: SAMPLE_ANSWER,
        balance: 1_241_231,
        balance_at: "/balance",
        // Success is a 2xx answer with a balance; there is no success flag.
        success_when: &[],
        decode,
    },
};

/// The documented success answer.
pub const SAMPLE_ANSWER: &str = r#"{"balance":1241231}"#;

pub const DEFAULT_BASE_URL: &str = "https://api.xendit.co";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub secret_key: SecretString,
    #[serde(default)]
    pub account_type: AccountType,
    /// Required by Xendit for multi-currency accounts; also the currency reported when the
    /// answer names none.
    #[serde(default, deserialize_with = "currency_code")]
    pub currency: Option<String>,
    /// A xenPlatform sub-account, sent as `for-user-id`.
    #[serde(default, deserialize_with = "header_text")]
    pub for_user_id: Option<String>,
    #[serde(default = "default_base_url")]
    pub base_url: Url,
}

/// `account_type`: `CASH` by default; `TAX` is only in older documentation, still accepted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum AccountType {
    #[default]
    Cash,
    Holding,
    Tax,
}

impl AccountType {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountType::Cash => "CASH",
            AccountType::Holding => "HOLDING",
            AccountType::Tax => "TAX",
        }
    }
}

fn default_base_url() -> Url {
    Url::parse(DEFAULT_BASE_URL).expect("the default base URL is valid")
}

/// An ISO 4217 code such as `IDR` or `USD`; it is also the `currency` label, so refused at load
/// time rather than sent and echoed.
fn currency_code<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let code = String::deserialize(deserializer)?;
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(serde::de::Error::custom(
            "expected a three-letter currency code such as IDR",
        ));
    }
    Ok(Some(code.to_ascii_uppercase()))
}

/// A value sent as a header must be a valid header value; checked at load time rather than
/// failing every check.
fn header_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.is_empty() || HeaderValue::from_str(&text).is_err() {
        return Err(serde::de::Error::custom(
            "empty, or contains characters not allowed in an HTTP header",
        ));
    }
    Ok(Some(text))
}

impl Config {
    /// The balance request: the query names the account type (and currency), the secret key
    /// travels only in the (sensitive) `Authorization` header.
    pub fn request(&self, client: &Client) -> RequestBuilder {
        let mut url = endpoint(&self.base_url, "balance");
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("account_type", self.account_type.as_str());
            if let Some(currency) = &self.currency {
                query.append_pair("currency", currency);
            }
        }
        let mut request = client
            .get(url)
            .basic_auth(self.secret_key.expose_secret(), None::<&str>)
            .header(ACCEPT, "application/json");
        if let Some(user) = &self.for_user_id {
            request = request.header("for-user-id", user.as_str());
        }
        request
    }

    /// Reads an answer: a 2xx is decoded, any other status classified by it and its envelope.
    pub fn read(&self, status: StatusCode, body: &[u8]) -> Result<Balance, UpstreamError> {
        if status.is_success() {
            decode_as(body, self.currency.as_deref())
        } else {
            Err(classify(status, body))
        }
    }
}

impl Provider for Config {
    fn base_url(&self) -> &Url {
        &self.base_url
    }

    fn fetch<'a>(&'a self, cx: &'a CheckContext) -> BoxFuture<'a, Result<Balance, UpstreamError>> {
        Box::pin(async move {
            // `exchange` turns a 429 into `rate_limited` with its `Retry-After`.
            let answer = cx.exchange(self.request(&cx.client)).await?;
            self.read(answer.status, &answer.body)
        })
    }
}

/// Xendit's error envelope, `{"error_code": ..., "message": ...}`.
#[derive(Deserialize)]
struct Failure {
    #[serde(default)]
    error_code: Option<String>,
    #[serde(default)]
    message: Option<Value>,
}

impl Failure {
    fn read(body: &[u8]) -> Self {
        decode_json(body).unwrap_or(Failure {
            error_code: None,
            message: None,
        })
    }

    fn summary(&self) -> String {
        let code = self.error_code.as_deref().unwrap_or("no error_code");
        match &self.message {
            Some(Value::String(message)) => format!("{code}: {message}"),
            Some(other) => format!("{code}: {other}"),
            None => code.to_owned(),
        }
    }
}

/// Documented codes that name a credential problem, with what the operator should do.
fn credential_problem(code: &str) -> Option<&'static str> {
    match code {
        "INVALID_API_KEY" => Some("auth: the secret key is wrong or revoked"),
        "REQUEST_FORBIDDEN_ERROR" => Some(
            "auth or ip_not_whitelisted: the key lacks the Balance read permission, or this \
             IP is not on the allowlist",
        ),
        _ => None,
    }
}

/// A non-2xx answer: 401 and 403 are `auth` (a 403 is how an allowlist refusal most probably
/// arrives; unverified, so every 403 is `auth`), a credential code under another status too;
/// anything else is `http_status`. 429 never gets here.
pub fn classify(status: StatusCode, body: &[u8]) -> UpstreamError {
    let failure = Failure::read(body);
    let hint = failure.error_code.as_deref().and_then(credential_problem);
    let hint = match (status, hint) {
        (_, Some(hint)) => hint,
        (StatusCode::UNAUTHORIZED, None) => "auth: the secret key is wrong or revoked",
        (StatusCode::FORBIDDEN, None) => {
            "auth or ip_not_whitelisted: the key lacks the Balance read permission, or this IP \
             is not on the allowlist"
        }
        _ => return UpstreamError::HttpStatus(status),
    };
    UpstreamError::Auth(excerpt(&format!(
        "HTTP {} {} ({hint})",
        status.as_u16(),
        failure.summary()
    )))
}

/// A 2xx balance answer, without a requested currency: IDR unless the answer names one.
pub fn decode(body: &[u8]) -> Result<Balance, UpstreamError> {
    decode_as(body, None)
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    balance: Option<Value>,
    #[serde(default)]
    currency: Option<Value>,
    #[serde(default)]
    error_code: Option<String>,
    #[serde(default)]
    message: Option<Value>,
}

/// `{"balance": 1241231}`. The currency is the answer's own if it names one, else the one
/// requested, else the account default, IDR (as documented).
fn decode_as(body: &[u8], requested: Option<&str>) -> Result<Balance, UpstreamError> {
    let answer: Answer = decode_json(body)?;
    if let Some(code) = answer.error_code {
        let failure = Failure {
            error_code: Some(code),
            message: answer.message,
        };
        let summary = failure.summary();
        let code = failure.error_code.as_deref().unwrap_or_default();
        return Err(match credential_problem(code) {
            Some(hint) => UpstreamError::Auth(excerpt(&format!("{summary} ({hint})"))),
            None => refusal(&[code], &summary),
        });
    }
    let balance = answer
        .balance
        .ok_or_else(|| UpstreamError::Decode("no balance in the answer".into()))?;
    let amount: Decimal =
        parse_amount(&balance).map_err(|err| UpstreamError::Decode(format!("balance: {err}")))?;
    let currency = match answer.currency {
        None | Some(Value::Null) => requested.unwrap_or("IDR").to_owned(),
        Some(Value::String(code)) if !code.trim().is_empty() => code.trim().to_owned(),
        Some(other) => {
            return Err(UpstreamError::Decode(format!(
                "currency: expected a code, got {}",
                excerpt(&other.to_string())
            )));
        }
    };
    Ok(Balance {
        amount,
        currency,
        holder: None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::error::Reason;

    fn config() -> Config {
        Config {
            secret_key: SecretString::from("xnd_development_EXAMPLE"),
            account_type: AccountType::Cash,
            currency: None,
            for_user_id: None,
            base_url: default_base_url(),
        }
    }

    fn parse(fields: Value) -> Result<Config, String> {
        serde_json::from_value(fields).map_err(|err| err.to_string())
    }

    #[test]
    fn the_request_carries_the_worked_basic_header_and_the_cash_account_type() {
        let request = config().request(&Client::new()).build().unwrap();
        assert_eq!(request.method(), "GET");
        assert_eq!(
            request.url().as_str(),
            "https://api.xendit.co/balance?account_type=CASH"
        );
        let authorization = &request.headers()["authorization"];
        // providers.md §2.4, the worked vector.
        assert_eq!(authorization, "Basic eG5kX2RldmVsb3BtZW50X0VYQU1QTEU6");
        assert!(authorization.is_sensitive());
        assert!(request.headers().get("for-user-id").is_none());
        assert!(request.body().is_none());
    }

    #[test]
    fn currency_and_sub_account_go_in_the_query_and_the_for_user_id_header() {
        let config = Config {
            account_type: AccountType::Holding,
            currency: Some("USD".into()),
            for_user_id: Some("5dbf20d7c8eb0c0896f811b6".into()),
            ..config()
        };
        let request = config.request(&Client::new()).build().unwrap();
        assert_eq!(
            request.url().as_str(),
            "https://api.xendit.co/balance?account_type=HOLDING&currency=USD"
        );
        assert_eq!(request.headers()["for-user-id"], "5dbf20d7c8eb0c0896f811b6");
    }

    #[test]
    fn settings_default_to_cash_and_refuse_unknown_types_currencies_and_header_breaking_ids() {
        let parsed = parse(json!({"secret_key": "k"})).unwrap();
        assert_eq!(parsed.account_type, AccountType::Cash);
        assert_eq!(parsed.base_url.as_str(), "https://api.xendit.co/");
        let parsed = parse(json!({"secret_key": "k", "account_type": "TAX", "currency": "php"}));
        assert_eq!(parsed.unwrap().currency.as_deref(), Some("PHP"));
        for bad in [
            json!({"secret_key": "k", "account_type": "cash"}),
            json!({"secret_key": "k", "account_type": "SAVINGS"}),
            json!({"secret_key": "k", "currency": "Rp"}),
            json!({"secret_key": "k", "for_user_id": "a\nb"}),
            json!({"secret_key": "k", "for_user_id": ""}),
            json!({"secret_key": "k", "api_key": "k"}),
        ] {
            assert!(parse(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_secret_key_is_not_in_debug_output() {
        assert!(!format!("{:?}", config()).contains("EXAMPLE"));
    }

    #[test]
    fn the_documented_answer_decodes_in_idr_unless_a_currency_is_named() {
        let balance = decode(SAMPLE_ANSWER.as_bytes()).unwrap();
        assert_eq!(balance.amount, Decimal::from(1_241_231));
        assert_eq!(balance.currency, "IDR");
        let usd = Config {
            currency: Some("USD".into()),
            ..config()
        };
        let balance = usd.read(StatusCode::OK, br#"{"balance": 12.34}"#).unwrap();
        assert_eq!(balance.amount, "12.34".parse::<Decimal>().unwrap());
        assert_eq!(balance.currency, "USD");
        let named = decode(br#"{"balance": 100.5, "currency": "PHP"}"#).unwrap();
        assert_eq!(named.currency, "PHP");
    }

    #[test]
    fn the_documented_auth_statuses_are_auth_with_the_finer_class_in_the_message() {
        let invalid_key = br#"{"error_code": "INVALID_API_KEY", "message": "API key is not authorized for this API service"}"#;
        let err = config()
            .read(StatusCode::UNAUTHORIZED, invalid_key)
            .unwrap_err();
        assert_eq!(err.reason(), Reason::Auth);
        assert!(err.to_string().contains("INVALID_API_KEY"), "{err}");
        let forbidden = br#"{"error_code": "REQUEST_FORBIDDEN_ERROR", "message": "The API key is forbidden to perform this request"}"#;
        let err = config().read(StatusCode::FORBIDDEN, forbidden).unwrap_err();
        assert_eq!(err.reason(), Reason::Auth);
        assert!(err.to_string().contains("allowlist"), "{err}");
        // An allowlist refusal's body is unverified: any 403 is `auth`.
        let err = config()
            .read(StatusCode::FORBIDDEN, b"<html>Forbidden</html>")
            .unwrap_err();
        assert_eq!(err.reason(), Reason::Auth);
    }

    #[test]
    fn a_validation_error_is_an_http_status_and_a_2xx_error_envelope_a_refusal() {
        let validation =
            br#"{"error_code": "API_VALIDATION_ERROR", "message": "currency is required"}"#;
        let err = config()
            .read(StatusCode::BAD_REQUEST, validation)
            .unwrap_err();
        assert_eq!(err.reason(), Reason::HttpStatus);
        let err = decode(br#"{"error_code": "SERVER_ERROR", "message": "down"}"#).unwrap_err();
        assert_eq!(err.reason(), Reason::Rejected);
        assert!(err.to_string().contains("SERVER_ERROR"), "{err}");
        let err = decode(br#"{"error_code": "INVALID_API_KEY", "balance": 1}"#).unwrap_err();
        assert_eq!(err.reason(), Reason::Auth);
    }

    #[test]
    fn malformed_answers_are_decode_failures() {
        for body in [
            &b"<html>502 Bad Gateway</html>"[..],
            b"[1241231]",
            br#"{"balance": null}"#,
            br#"{"balance": "abc"}"#,
            br#"{"balance": 1, "currency": 360}"#,
            br#"{}"#,
            b"",
            // Not JSON: an invalid UTF-8 byte, even in a field nobody reads.
            b"{\"balance\": 1, \"note\": \"\xff\"}",
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
