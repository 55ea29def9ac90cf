//! Supplier balance APIs: one folder per supplier, registered once in [`REGISTRY`].
//!
//! A supplier's folder holds both halves of it: the client (`mod.rs`: its settings, its
//! request or multi-step flow, decoding and the classification of its failure envelope) and
//! the server (`simulator.rs`: a loopback stand-in that verifies requests the way the
//! supplier's documentation says). Everything that loops over suppliers (configuration, the
//! "unknown provider" error, `--demo`, the property and round-trip tests) reads [`REGISTRY`].
//!
//! A provider returns plain data ([`Balance`]) or a classified [`UpstreamError`]; limits,
//! timeouts and metrics belong to [`crate::check`] and the collector. Most suppliers are one
//! signed request and a decoder: they implement [`SimpleProvider`]. Suppliers with a token
//! step or per-call state implement [`Provider`] directly, with [`token::TokenCache`] for the
//! token.

pub mod amount;
pub mod ayopop;
pub mod digiflazz;
pub mod duitku;
pub mod flip;
pub mod generic;
pub mod iak;
pub mod ipaymu;
pub mod iris;
pub mod isikuota;
pub mod okeconnect;
pub mod otomax;
pub mod oy;
pub mod simulator;
pub mod snap;
pub mod token;
pub mod tripay;
pub mod vipreseller;
pub mod xendit;

use std::any::Any;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Client, RequestBuilder, StatusCode};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use url::Url;

pub use self::amount::{Separators, amount, parse_amount};
use crate::error::UpstreamError;

/// Every supplier, one line each. Adding one: its folder, its `pub mod` line above, and its
/// line here.
pub static REGISTRY: &[&Registration] = &[
    &isikuota::PROVIDER,
    &ayopop::PROVIDER,
    &digiflazz::PROVIDER,
    &iak::PROVIDER,
    &tripay::PROVIDER,
    &vipreseller::PROVIDER,
    &xendit::PROVIDER,
    &flip::PROVIDER,
    &iris::PROVIDER,
    &oy::PROVIDER,
    &ipaymu::PROVIDER,
    &duitku::PROVIDER,
    &otomax::PROVIDER,
    &okeconnect::PROVIDER,
    &snap::PROVIDER,
];

/// The registered suppliers' names, as used in configuration and in the `provider` label.
pub static NAMES: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| REGISTRY.iter().map(|entry| entry.name).collect());

/// Every `provider:` value: the registered suppliers and [`generic`], which is no supplier of
/// its own (it has no simulator of its own and no `SALDO_GENERIC_*` variables) and is
/// configured in the accounts file only.
pub static ALL_NAMES: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let mut names = NAMES.clone();
    names.push(generic::NAME);
    names
});

/// The registered supplier called `name`.
pub fn find(name: &str) -> Option<&'static Registration> {
    REGISTRY.iter().copied().find(|entry| entry.name == name)
}

/// What the rest of the exporter knows of one supplier.
pub struct Registration {
    /// The `provider` label and the `SALDO_<NAME>_*` prefix.
    pub name: &'static str,
    /// Builds a provider from an account's own fields (the shared ones, such as `name` and the
    /// thresholds, already taken out), naming the offending field on error.
    pub parse: ParseFn,
    /// The supplier's server half, for `--demo` and the tests.
    pub simulator: fn() -> Box<dyn simulator::Supplier>,
    /// The demo account `--demo` starts for this supplier.
    pub demo: simulator::DemoAccount,
    /// A documented success answer and how to read it, for the property tests.
    pub sample: Sample,
}

impl Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// One account's provider: which supplier, and its settings and state.
#[derive(Clone)]
pub struct ProviderConfig {
    name: &'static str,
    provider: Arc<dyn Provider>,
}

impl ProviderConfig {
    /// Deserialises `fields` as the settings of the provider called `name`. `None` when
    /// there is no such provider.
    pub fn from_fields(name: &str, fields: Map<String, Value>) -> Option<Result<Self, FieldError>> {
        let (name, parse) = match find(name) {
            Some(entry) => (entry.name, entry.parse),
            None if name == generic::NAME => (generic::NAME, generic::parse as ParseFn),
            None => return None,
        };
        Some(parse(fields).map(|provider| Self { name, provider }))
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn provider(&self) -> &Arc<dyn Provider> {
        &self.provider
    }

    /// The settings as the supplier's own type, e.g. `isikuota::Config`.
    pub fn settings<T: Provider>(&self) -> Option<&T> {
        let any: &dyn Any = &*self.provider;
        any.downcast_ref()
    }
}

impl Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The provider's own Debug: its secrets are `SecretString`s, printed redacted.
        self.provider.fmt(f)
    }
}

/// Builds an account's provider from its fields.
pub type ParseFn = fn(Map<String, Value>) -> Result<Arc<dyn Provider>, FieldError>;

/// A configuration error from [`Registration::parse`]: the dotted path of the field (`.` for
/// the account itself) and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl From<serde_path_to_error::Error<serde_json::Error>> for FieldError {
    fn from(err: serde_path_to_error::Error<serde_json::Error>) -> Self {
        Self {
            path: err.path().to_string(),
            message: err.into_inner().to_string(),
        }
    }
}

/// Deserialises `fields` as `T` and boxes it: the [`Registration::parse`] of most suppliers.
pub fn parse<T: Provider + DeserializeOwned>(
    fields: Map<String, Value>,
) -> Result<Arc<dyn Provider>, FieldError> {
    Ok(
        serde_path_to_error::deserialize::<_, T>(Value::Object(fields))
            .map(|provider| Arc::new(provider) as Arc<dyn Provider>)?,
    )
}

/// A supplier's documented success answer, and what the property tests may assume of answers
/// shaped like it.
pub struct Sample {
    /// A success answer, verbatim from the documentation.
    pub answer: &'static str,
    /// Its balance.
    pub balance: i64,
    /// The JSON pointer of the balance in a JSON answer.
    pub balance_at: &'static str,
    /// JSON pointers and the values (as JSON text) one of which each must hold for an answer
    /// to be a success; a balance read from anything else is a bug.
    pub success_when: &'static [(&'static str, &'static [&'static str])],
    /// The balance answer's decoder, without credentials.
    pub decode: fn(&[u8]) -> Result<Balance, UpstreamError>,
}

/// What a successful check returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    pub amount: Decimal,
    pub currency: String,
    /// The account holder's name where the provider returns one (shown on the landing page).
    pub holder: Option<String>,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a check may use: the shared HTTP client and the signing clock.
#[derive(Clone)]
pub struct CheckContext {
    pub client: Client,
    clock: Arc<dyn Fn() -> SystemTime + Send + Sync>,
}

impl CheckContext {
    pub fn new(client: Client) -> Self {
        Self::with_clock(client, Arc::new(SystemTime::now))
    }

    /// A context whose signing time comes from `clock` (tests with worked vectors).
    pub fn with_clock(client: Client, clock: Arc<dyn Fn() -> SystemTime + Send + Sync>) -> Self {
        Self { client, clock }
    }

    /// The time to sign with.
    pub fn now(&self) -> SystemTime {
        (self.clock)()
    }

    /// Sends one request and reads its answer: a 429 becomes `rate_limited` with its
    /// `Retry-After`, transport failures `connect`, and the body is capped at
    /// [`MAX_BODY_BYTES`].
    pub async fn exchange(&self, request: RequestBuilder) -> Result<Answer, UpstreamError> {
        let mut response = request.send().await?;
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(UpstreamError::RateLimited {
                retry_after: retry_after(response.headers(), self.now()),
            });
        }
        let body = read_capped(&mut response).await?;
        Ok(Answer { status, body })
    }
}

/// One supplier account: everything a check needs, and the state kept between checks (a
/// cached token, a call counter). Shared by concurrent checks, hence `&self` and `Sync`.
pub trait Provider: Any + Debug + Send + Sync {
    /// Where the requests go; accounts on one host share its in-flight limit.
    fn base_url(&self) -> &Url;

    /// One balance check: every request it takes, and the decoded balance.
    fn fetch<'a>(&'a self, cx: &'a CheckContext) -> BoxFuture<'a, Result<Balance, UpstreamError>>;
}

/// A supplier whose balance is one signed request and a decoder; [`Provider`] follows.
pub trait SimpleProvider: Any + Debug + Send + Sync {
    fn base_url(&self) -> &Url;

    /// The signed balance request. `now` is the signing time, passed in so tests control it.
    fn request(&self, client: &Client, now: SystemTime) -> RequestBuilder;

    /// Turns an answer body into a balance, or classifies why it is not one. Called for 2xx
    /// answers, and for other statuses to recognise an authentication failure in the envelope.
    fn decode(&self, body: &[u8]) -> Result<Balance, UpstreamError>;
}

impl<T: SimpleProvider> Provider for T {
    fn base_url(&self) -> &Url {
        SimpleProvider::base_url(self)
    }

    fn fetch<'a>(&'a self, cx: &'a CheckContext) -> BoxFuture<'a, Result<Balance, UpstreamError>> {
        Box::pin(async move {
            let answer = cx.exchange(self.request(&cx.client, cx.now())).await?;
            answer.decode_with(|body| self.decode(body))
        })
    }
}

/// An answer's status and (capped) body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl Answer {
    /// The usual reading: a 2xx answer is decoded; 401 and 403 are `auth`; another status is
    /// `http_status`, unless its envelope names a credential problem, which makes it `auth`:
    /// suppliers are not documented to use 401 for a bad signature or an unlisted IP.
    pub fn decode_with<T>(
        &self,
        decode: impl FnOnce(&[u8]) -> Result<T, UpstreamError>,
    ) -> Result<T, UpstreamError> {
        if self.status.is_success() {
            return decode(&self.body);
        }
        let usual = status_error(self.status);
        if matches!(usual, UpstreamError::Auth(_)) {
            return Err(usual);
        }
        match decode(&self.body) {
            Err(UpstreamError::Auth(message)) => Err(UpstreamError::Auth(message)),
            _ => Err(usual),
        }
    }
}

/// The reason a non-2xx status gives by itself: 401 and 403 are `auth`, any other status
/// `http_status`.
pub fn status_error(status: StatusCode) -> UpstreamError {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            UpstreamError::Auth(format!("HTTP {status}"))
        }
        _ => UpstreamError::HttpStatus(status),
    }
}

/// Answers larger than this are refused: a balance fits in a few hundred bytes, and a hostile or
/// broken upstream must not make the exporter buffer without bound.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A `Retry-After` beyond this is capped, so a bogus value cannot silence an account for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

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

/// A message or code field of a failure envelope as text: a string as it is, nothing for
/// `null`, anything else as JSON.
pub fn envelope_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
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
    // serde skips the strings of fields it ignores without checking them, so a body that is
    // not JSON at all (invalid UTF-8 there) would still give a balance.
    let text = std::str::from_utf8(body)
        .map_err(|_| UpstreamError::Decode("the answer is not UTF-8 text".into()))?;
    // Through a `Value`: serde_json skips the fields a struct ignores without checking their
    // numbers, so `"userId": 355e999991` (out of range, not JSON) would still give a balance.
    let value: Value = serde_json::from_str(text)?;
    Ok(serde_json::from_value(value)?)
}

/// A rupiah balance from the amount at `field` (named in a decode error), for the suppliers
/// whose answers name no currency: they deal in rupiah only.
pub fn rupiah(field: &str, amount: Option<&Value>) -> Result<Balance, UpstreamError> {
    let amount = amount.ok_or_else(|| UpstreamError::Decode(format!("{field}: missing")))?;
    let amount =
        parse_amount(amount).map_err(|err| UpstreamError::Decode(format!("{field}: {err}")))?;
    Ok(Balance {
        amount,
        currency: "IDR".into(),
        holder: None,
    })
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

    use super::*;

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
    fn an_out_of_range_number_in_an_ignored_field_is_not_json() {
        #[derive(Debug, Deserialize)]
        struct Only {
            #[allow(dead_code)]
            balance: i64,
        }
        let body = br#"{"userId": 355e999991, "balance": 5}"#;
        let err = decode_json::<Only>(body).unwrap_err();
        assert_eq!(err.reason(), crate::error::Reason::Decode, "{err}");
        assert!(decode_json::<Only>(br#"{"userId": 355e9, "balance": 5}"#).is_ok());
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
    fn every_registered_provider_has_a_distinct_lower_case_name() {
        // The seeded suppliers come first; every other is its folder and its registry line.
        assert_eq!(NAMES[..2], ["isikuota", "ayopop"]);
        let mut names = NAMES.clone();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), REGISTRY.len());
        for name in names {
            // `SALDO_<NAME>_*` splits at the first `_`.
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                "{name}"
            );
        }
    }

    #[test]
    fn every_sample_answer_decodes_to_its_balance() {
        for entry in REGISTRY {
            let balance = (entry.sample.decode)(entry.sample.answer.as_bytes())
                .unwrap_or_else(|err| panic!("{}: {err}", entry.name));
            assert_eq!(
                balance.amount,
                Decimal::from(entry.sample.balance),
                "{}",
                entry.name
            );
        }
    }
}
