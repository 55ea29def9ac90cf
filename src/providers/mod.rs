//! Supplier balance APIs: one file per provider, registered once in [`providers!`] below.
//!
//! A provider only builds its signed request and decodes a successful answer into plain data
//! ([`Balance`]) or a classified [`UpstreamError`]. Sending, status handling, the body cap and
//! `Retry-After` are shared in [`check`]; metrics are none of a provider's business.

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Client, RequestBuilder, StatusCode};
use rust_decimal::Decimal;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use url::Url;

use crate::error::UpstreamError;

/// Answers larger than this are refused: a balance fits in a few hundred bytes, and a hostile or
/// broken upstream must not make the exporter buffer without bound.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A `Retry-After` beyond this is capped, so a bogus value cannot silence an account for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// What a successful check returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    pub amount: Decimal,
    pub currency: String,
    /// The account holder's name where the provider returns one (shown on the landing page).
    pub holder: Option<String>,
}

/// The two halves of a provider that differ from one supplier to the next.
pub trait Provider: Send + Sync {
    /// The signed balance request. `now` is the signing time, passed in so tests control it.
    fn request(&self, client: &Client, now: SystemTime) -> RequestBuilder;

    /// Turns an answer body into a balance, or classifies why it is not one. Called for 2xx
    /// answers, and for other statuses to recognise an authentication failure in the envelope.
    fn decode(&self, body: &[u8]) -> Result<Balance, UpstreamError>;
}

/// The provider registry: `module => Variant`, one line per provider. It declares the modules,
/// the configuration enum, and the only `match` that dispatches on the provider.
macro_rules! providers {
    ($($module:ident => $variant:ident),+ $(,)?) => {
        $(pub mod $module;)+

        /// One account's provider settings: the provider's own `Config`.
        #[derive(Debug)]
        pub enum ProviderConfig {
            $($variant($module::Config),)+
        }

        /// The provider names, as used in configuration and in the `provider` label.
        pub const NAMES: &[&str] = &[$(stringify!($module)),+];

        impl ProviderConfig {
            /// Deserialises `fields` as the settings of the provider called `name`. `None` when
            /// there is no such provider.
            pub fn from_fields(
                name: &str,
                fields: Map<String, Value>,
            ) -> Option<Result<Self, serde_path_to_error::Error<serde_json::Error>>> {
                match name {
                    $(stringify!($module) => Some(
                        serde_path_to_error::deserialize(Value::Object(fields)).map(Self::$variant),
                    ),)+
                    _ => None,
                }
            }

            pub fn name(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => stringify!($module),)+
                }
            }

            pub fn provider(&self) -> &dyn Provider {
                match self {
                    $(Self::$variant(config) => config,)+
                }
            }
        }
    };
}

providers! {
    isikuota => Isikuota,
    ayopop => Ayopop,
}

/// One balance check: send, classify the status, read a capped body, decode.
pub async fn check(provider: &dyn Provider, client: &Client) -> Result<Balance, UpstreamError> {
    let mut response = provider.request(client, SystemTime::now()).send().await?;
    let status = response.status();
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Err(UpstreamError::RateLimited {
            retry_after: retry_after(response.headers(), SystemTime::now()),
        });
    }
    let body = read_capped(&mut response).await?;
    if status.is_success() {
        return provider.decode(&body);
    }
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        return Err(UpstreamError::Auth(format!("HTTP {status}")));
    }
    // The status decides, except that an envelope naming a credential problem makes it `auth`:
    // providers are not documented to use 401 for a bad signature or an unlisted IP.
    match provider.decode(&body) {
        Err(UpstreamError::Auth(message)) => Err(UpstreamError::Auth(message)),
        _ => Err(UpstreamError::HttpStatus(status)),
    }
}

async fn read_capped(response: &mut reqwest::Response) -> Result<Vec<u8>, UpstreamError> {
    if response
        .content_length()
        .is_some_and(|len| len > MAX_BODY_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn too_large() -> UpstreamError {
    UpstreamError::Decode(format!("answer larger than {MAX_BODY_BYTES} bytes"))
}

/// `Retry-After` as delay-seconds or an HTTP date, capped at [`MAX_RETRY_AFTER`].
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let delay = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(now)
            .unwrap_or(Duration::ZERO),
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// `{base}/{path}`, keeping any path prefix the base URL has (e.g. behind a gateway).
pub fn endpoint(base: &Url, path: &str) -> Url {
    let joined = format!("{}/{}", base.as_str().trim_end_matches('/'), path);
    Url::parse(&joined).expect("a valid base URL plus a static path is a valid URL")
}

pub fn unix_seconds(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Parses an answer body, classifying anything that is not the expected JSON as `decode`.
pub fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, UpstreamError> {
    // serde's derived structs also read a JSON array by position, which would make
    // `[true, null, null, {"balance": 0}]` a balance; an answer is an object.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(UpstreamError::Decode(
            "the answer is not a JSON object".into(),
        ));
    }
    Ok(serde_json::from_slice(body)?)
}

/// A money amount from a JSON number or a numeric string (`25490`, `5523560.0`, `"25000.00"`).
pub fn parse_amount(value: &Value) -> Result<Decimal, String> {
    let text = match value {
        // serde_json prints the shortest text that reads back as the same number, so a JSON
        // `12.34` stays exactly 12.34 here rather than the nearest binary fraction.
        Value::Number(number) => number.to_string(),
        Value::String(text) => text.trim().to_owned(),
        other => return Err(format!("expected a number or numeric string, got {other}")),
    };
    Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .map_err(|_| format!("not a number: {text:?}"))
}

/// `#[serde(deserialize_with = "amount")]` for balances and thresholds.
pub fn amount<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
    parse_amount(&Value::deserialize(deserializer)?).map_err(D::Error::custom)
}

/// The `data` object both seeded providers answer with: a balance, usually a currency, and
/// sometimes the holder's name.
#[derive(Deserialize)]
struct BalanceData {
    #[serde(deserialize_with = "amount")]
    balance: Decimal,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// Decodes a success envelope's `data` object into a [`Balance`].
pub fn balance_from_data(data: Value) -> Result<Balance, UpstreamError> {
    // Like the answer, only an object: read by position, `"data": [0]` would be a balance of 0.
    if !data.is_object() {
        return Err(UpstreamError::Decode("data: not a JSON object".into()));
    }
    let data: BalanceData = serde_json::from_value(data)
        .map_err(|err| UpstreamError::Decode(format!("data: {err}")))?;
    Ok(Balance {
        amount: data.balance,
        // Both suppliers document IDR as the only currency.
        currency: data.currency.unwrap_or_else(|| "IDR".into()),
        holder: data.name,
    })
}

/// A failure envelope: `auth` when any of `texts` (codes, messages) names a credential
/// problem, `rejected` otherwise; `summary` becomes the error message.
pub fn refusal(texts: &[&str], summary: &str) -> UpstreamError {
    let summary = excerpt(summary);
    if texts.iter().any(|text| names_a_credential_problem(text)) {
        UpstreamError::Auth(summary)
    } else {
        UpstreamError::Rejected(summary)
    }
}

/// Whether a provider's failure code or message names a credential problem. No provider documents
/// its auth codes, so this looks for the words they are built from (`INVALID_SIGNATURE`,
/// `IP_NOT_WHITELISTED`, "Invalid token", ...).
pub fn names_a_credential_problem(text: &str) -> bool {
    const WORDS: [&str; 12] = [
        "auth",
        "unauthorized",
        "unauthorised",
        "unauthenticated",
        "signature",
        "sign",
        "key",
        "token",
        "whitelist",
        "whitelisted",
        "ip",
        "credential",
    ];
    text.to_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|word| WORDS.contains(&word))
}

/// Upstream text (codes, messages) shortened for logs and errors.
pub fn excerpt(text: &str) -> String {
    const LIMIT: usize = 200;
    match text.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;
    use serde_json::json;

    use super::*;

    #[test]
    fn amounts_come_from_numbers_and_numeric_strings() {
        assert_eq!(parse_amount(&json!(25490)), Ok(Decimal::from(25490)));
        assert_eq!(parse_amount(&json!(5523560.0)), Ok(Decimal::from(5523560)));
        assert_eq!(
            parse_amount(&json!("25000.00")).unwrap().to_string(),
            "25000.00"
        );
        assert_eq!(parse_amount(&json!(12.34)).unwrap().to_string(), "12.34");
        assert_eq!(parse_amount(&json!(1e6)), Ok(Decimal::from(1_000_000)));
        assert_eq!(parse_amount(&json!(-1500)), Ok(Decimal::from(-1500)));
    }

    #[test]
    fn null_text_and_objects_are_not_amounts() {
        for bad in [json!(null), json!("abc"), json!(""), json!({}), json!(true)] {
            assert!(parse_amount(&bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates_and_is_capped() {
        let now = UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("120"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(120)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(90)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("999999999"));
        assert_eq!(retry_after(&headers, now), Some(MAX_RETRY_AFTER));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn endpoints_keep_the_base_path_prefix() {
        let base = Url::parse("https://gw.example.test/isikuota/").unwrap();
        assert_eq!(
            endpoint(&base, "v1/balance").as_str(),
            "https://gw.example.test/isikuota/v1/balance"
        );
        let bare = Url::parse("https://api.isikuota.com").unwrap();
        assert_eq!(
            endpoint(&bare, "v1/balance").as_str(),
            "https://api.isikuota.com/v1/balance"
        );
    }

    #[test]
    fn credential_words_are_recognised_but_not_inside_other_words() {
        assert!(names_a_credential_problem("INVALID_SIGNATURE"));
        assert!(names_a_credential_problem("IP_NOT_WHITELISTED"));
        assert!(names_a_credential_problem("Invalid token"));
        assert!(!names_a_credential_problem("INSUFFICIENT_BALANCE"));
        assert!(!names_a_credential_problem("SHIPPING_DELAYED"));
        assert!(!names_a_credential_problem("Service under maintenance"));
    }

    #[test]
    fn every_registered_provider_can_be_named() {
        assert_eq!(NAMES, ["isikuota", "ayopop"]);
    }
}
