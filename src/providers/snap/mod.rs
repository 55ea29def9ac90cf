//! SNAP BI balance inquiry (Bank Indonesia's national open API standard, service code 11):
//! `POST {base}{balance_path}` with a B2B access token.
//!
//! Two steps (providers.md §2.19):
//! 1. `POST {token_path}` with `X-SIGNATURE = base64(SHA256withRSA(private_key,
//!    client_id|X-TIMESTAMP))` and `{"grantType":"client_credentials"}` gives a token for
//!    `expiresIn` seconds. It is cached in a [`TokenCache`]: fetched once, shared by every
//!    check of the account, refreshed ahead of expiry, and dropped for one retry when the bank
//!    answers `4011101`/`4017301` (invalid token).
//! 2. The inquiry, signed with `base64(HMAC-SHA512(client_secret,
//!    POST:path:token:sha256hex(body):X-TIMESTAMP))`, a fresh numeric `X-EXTERNAL-ID`, and the
//!    bank's `CHANNEL-ID`.
//!
//! One implementation serves every bank that follows the standard; [`presets`] holds the
//! documented per-bank paths and channel ids.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use url::Url;

use super::token::{CallError, Token, TokenCache};
use super::{
    Balance, BoxFuture, CheckContext, Provider, Registration, Sample, decode_json, endpoint,
    excerpt, names_a_credential_problem, parse_amount,
};
use crate::error::UpstreamError;

pub mod presets;
pub mod signing;
pub mod simulator;

use self::presets::Preset;
use self::signing::PrivateKey;

/// The registry entry.
pub const PROVIDER: Registration = Registration {
    name: "snap",
    parse: super::parse::<Config>,
    simulator: || Box::new(simulator::Snap::new()),
    demo: super::simulator::DemoAccount {
        balance: 187_450_000,
        sale_every: Duration::from_secs(2),
        low: 120_000_000,
        top_up: 100_000_000,
        warning: 150_000_000,
        critical: 130_000_000,
    },
    sample: Sample {
        answer: SAMPLE_ANSWER,
        balance: 200_000,
        balance_at: "/accountInfos/0/availableBalance/value",
        success_when: &[("/responseCode", &["\"2001100\"", "2001100"])],
        decode,
    },
};

/// The standard's success answer (ASPI "Informasi Saldo"), one balance.
pub const SAMPLE_ANSWER: &str = r#"{"responseCode":"2001100","responseMessage":"Successful","referenceNo":"2020102977770000000009","partnerReferenceNo":"2020102900000000000001","accountNo":"1234567890","name":"Budi","accountInfos":[{"balanceType":"Cash","availableBalance":{"value":"200000.00","currency":"IDR"}}]}"#;

/// The success code of a balance inquiry, and of a B2B token request.
const INQUIRY_SUCCESS: &str = "2001100";
const TOKEN_SUCCESS: &str = "2007300";
/// The token request body; fixed by the standard.
const TOKEN_BODY: &str = r#"{"grantType":"client_credentials"}"#;
/// Assumed when a token answer carries no `expiresIn`: the standard's usual lifetime. Too long
/// a guess costs one invalid-token answer and its retry.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// Unique `X-EXTERNAL-ID`s across this process's accounts (several may share a client id).
static EXTERNAL_IDS: AtomicU64 = AtomicU64::new(0);

/// One SNAP account.
#[derive(Debug, Deserialize)]
#[serde(try_from = "Fields")]
pub struct Config {
    pub base_url: Url,
    /// `X-CLIENT-KEY` of the token request.
    pub client_id: String,
    /// `X-PARTNER-ID` of the inquiry: `partner_id`, or the client id.
    pub partner_id: String,
    pub client_secret: SecretString,
    pub private_key: PrivateKey,
    pub channel_id: String,
    pub account_no: Option<String>,
    /// Sent as `balanceTypes`; the bank may then answer several balances.
    pub balance_types: Vec<String>,
    /// Which of several balances to export; the first one when unset.
    pub balance_type: Option<String>,
    pub token_path: String,
    pub balance_path: String,
    pub preset: Option<Preset>,
    additional_info: bool,
    tokens: TokenCache,
}

/// The account's fields as written; [`Config`] applies the preset.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fields {
    base_url: Url,
    #[serde(deserialize_with = "header_text")]
    client_id: String,
    client_secret: SecretString,
    #[serde(deserialize_with = "private_key")]
    private_key: PrivateKey,
    #[serde(default, deserialize_with = "optional_header_text")]
    channel_id: Option<String>,
    #[serde(default, deserialize_with = "optional_header_text")]
    partner_id: Option<String>,
    #[serde(default)]
    account_no: Option<String>,
    #[serde(default, deserialize_with = "list")]
    balance_types: Vec<String>,
    #[serde(default)]
    balance_type: Option<String>,
    #[serde(default, deserialize_with = "optional_path")]
    token_path: Option<String>,
    #[serde(default, deserialize_with = "optional_path")]
    balance_path: Option<String>,
    #[serde(default)]
    preset: Option<Preset>,
}

impl TryFrom<Fields> for Config {
    type Error = String;

    fn try_from(fields: Fields) -> Result<Self, String> {
        let defaults = fields
            .preset
            .map_or(presets::STANDARD, |preset| preset.defaults());
        let channel_id = fields
            .channel_id
            .or(defaults.channel_id.map(str::to_owned))
            // Worded as serde words it, so the configuration error names the setting.
            .ok_or(
                "missing field `channel_id` (the bank's CHANNEL-ID; no preset given documents it)",
            )?;
        Ok(Config {
            base_url: fields.base_url,
            partner_id: fields
                .partner_id
                .unwrap_or_else(|| fields.client_id.clone()),
            client_id: fields.client_id,
            client_secret: fields.client_secret,
            private_key: fields.private_key,
            channel_id,
            account_no: fields.account_no,
            balance_types: fields.balance_types,
            balance_type: fields.balance_type,
            token_path: fields
                .token_path
                .unwrap_or_else(|| defaults.token_path.to_owned()),
            balance_path: fields
                .balance_path
                .unwrap_or_else(|| defaults.balance_path.to_owned()),
            preset: fields.preset,
            additional_info: defaults.additional_info,
            tokens: TokenCache::new(),
        })
    }
}

/// Read once when the configuration loads, so a bad key is a configuration error naming the
/// setting rather than an `auth` failure on every check.
fn private_key<'de, D: Deserializer<'de>>(deserializer: D) -> Result<PrivateKey, D::Error> {
    let pem = SecretString::deserialize(deserializer)?;
    PrivateKey::from_pem(pem.expose_secret()).map_err(serde::de::Error::custom)
}

/// Text that travels in a header must be a valid header value.
fn header_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    HeaderValue::from_str(&text).map_err(|_| {
        serde::de::Error::custom("contains characters not allowed in an HTTP header")
    })?;
    Ok(text)
}

fn optional_header_text<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    header_text(deserializer).map(Some)
}

/// A path on the bank's host; the leading `/` is optional.
fn optional_path<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let path = String::deserialize(deserializer)?;
    let path = format!("/{}", path.trim().trim_start_matches('/'));
    if path.contains(['?', '#', ' ']) {
        return Err(serde::de::Error::custom(
            "must be a plain path such as /v1.0/balance-inquiry",
        ));
    }
    Ok(Some(path))
}

/// A YAML list, or (from one environment variable) comma-separated text.
fn list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        Text(String),
        Items(Vec<String>),
    }
    let items = match List::deserialize(deserializer)? {
        List::Text(text) => text.split(',').map(str::to_owned).collect(),
        List::Items(items) => items,
    };
    Ok(items
        .into_iter()
        .map(|item| item.trim().to_owned())
        .filter(|item| !item.is_empty())
        .collect())
}

/// The inquiry body (ASPI field names), written minified as it is signed.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InquiryBody<'a> {
    partner_reference_no: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_no: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    balance_types: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    additional_info: Option<Map<String, Value>>,
}

fn sensitive(value: &str) -> HeaderValue {
    let mut value = HeaderValue::from_str(value).expect("checked when the configuration loaded");
    value.set_sensitive(true);
    value
}

/// The path and query the bank sees: what the HMAC signs.
fn relative_path(url: &Url) -> String {
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

fn random_u64() -> u64 {
    let mut bytes = [0; 8];
    // Uniqueness rests on the counter and the time; randomness only separates replicas.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    u64::from_le_bytes(bytes)
}

impl Config {
    async fn token(&self, cx: &CheckContext) -> Result<Token, UpstreamError> {
        let timestamp = signing::timestamp(cx.now());
        let signature = self
            .private_key
            .sign(&signing::token_string_to_sign(&self.client_id, &timestamp));
        let request = cx
            .client
            .post(endpoint(
                &self.base_url,
                self.token_path.trim_start_matches('/'),
            ))
            .header(CONTENT_TYPE, "application/json")
            .header("X-TIMESTAMP", &timestamp)
            .header("X-CLIENT-KEY", &self.client_id)
            .header("X-SIGNATURE", signature)
            .body(TOKEN_BODY);
        let answer = cx.exchange(request).await?;
        decode_token(answer.status, &answer.body)
    }

    async fn inquiry(&self, cx: &CheckContext, token: SecretString) -> Result<Balance, CallError> {
        let now = cx.now();
        let timestamp = signing::timestamp(now);
        let external_id = signing::external_id(
            now,
            EXTERNAL_IDS.fetch_add(1, Ordering::Relaxed),
            random_u64(),
        );
        let body = serde_json::to_vec(&InquiryBody {
            partner_reference_no: &external_id,
            account_no: self.account_no.as_deref(),
            balance_types: &self.balance_types,
            additional_info: self.additional_info.then(Map::new),
        })
        .expect("the inquiry body serialises");
        let url = endpoint(&self.base_url, self.balance_path.trim_start_matches('/'));
        let signature = signing::symmetric_signature(
            self.client_secret.expose_secret(),
            &signing::string_to_sign(
                "POST",
                &relative_path(&url),
                token.expose_secret(),
                &body,
                &timestamp,
            ),
        );
        let request = cx
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header(
                AUTHORIZATION,
                sensitive(&format!("Bearer {}", token.expose_secret())),
            )
            .header("X-TIMESTAMP", &timestamp)
            .header("X-SIGNATURE", signature)
            .header("X-PARTNER-ID", &self.partner_id)
            .header("X-EXTERNAL-ID", &external_id)
            .header("CHANNEL-ID", &self.channel_id)
            .body(body);
        let answer = cx.exchange(request).await?;
        decode_inquiry(answer.status, &answer.body, self.balance_type.as_deref())
    }
}

impl Provider for Config {
    fn base_url(&self) -> &Url {
        &self.base_url
    }

    fn fetch<'a>(&'a self, cx: &'a CheckContext) -> BoxFuture<'a, Result<Balance, UpstreamError>> {
        Box::pin(self.tokens.with_token(
            cx.now(),
            || self.token(cx),
            |token| self.inquiry(cx, token),
        ))
    }
}

/// A SNAP answer: the whole body parsed (so a balance never comes from an answer that is not
/// valid JSON throughout), and its envelope.
struct Answer {
    fields: Map<String, Value>,
    /// `responseCode`: seven digits, as text or (DOKU) a number.
    code: String,
}

impl Answer {
    /// `decode` when the body is no SNAP envelope (a gateway's error page, another API).
    fn read(body: &[u8]) -> Result<Self, UpstreamError> {
        let Value::Object(fields) = decode_json::<Value>(body)? else {
            unreachable!("decode_json reads only objects");
        };
        let code = match fields.get("responseCode") {
            Some(Value::String(code)) => code.clone(),
            Some(Value::Number(code)) if code.is_u64() => code.to_string(),
            _ => String::new(),
        };
        if code.len() != 7 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(UpstreamError::Decode(format!(
                "no SNAP responseCode: {}",
                excerpt(
                    &fields
                        .get("responseCode")
                        .unwrap_or(&Value::Null)
                        .to_string()
                )
            )));
        }
        Ok(Self { fields, code })
    }

    fn message(&self) -> String {
        match self.fields.get("responseMessage") {
            Some(Value::String(text)) => text.clone(),
            None | Some(Value::Null) => String::new(),
            Some(other) => other.to_string(),
        }
    }

    /// The failure this envelope's code names, given the HTTP status it came with.
    fn failure(&self, status: StatusCode) -> CallError {
        classify(status, &self.code, &self.message())
    }
}

/// Reads an answer, or says what an answer without a SNAP envelope means: `decode` on a 2xx,
/// `auth` on 401/403 (gateways refuse unknown clients and unlisted IPs so), `http_status`
/// otherwise.
fn read(status: StatusCode, body: &[u8]) -> Result<Answer, UpstreamError> {
    Answer::read(body).map_err(|err| {
        if status.is_success() {
            err
        } else if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            UpstreamError::Auth(format!("HTTP {status} without a SNAP envelope"))
        } else {
            UpstreamError::HttpStatus(status)
        }
    })
}

/// Classifies a SNAP failure code (`<HTTP status><service><case>`, providers.md §2.19 item 5):
/// - `4011101`/`4017301`, invalid token: the token is dropped and the call retried once;
/// - other `401xxxx` (`4011100`, `4017300`: bad signature, unknown client, clock): `auth`;
/// - `429xxxx`: `rate_limited`;
/// - `403xxxx` (inactive account, feature not allowed): `rejected`, like any failure envelope
///   carried on a 2xx; another code on an error status is `http_status`.
///
/// A message naming a credential problem (an unlisted IP, a signature) is `auth` whatever the
/// code, since banks are not documented to agree on codes for those.
fn classify(status: StatusCode, code: &str, message: &str) -> CallError {
    let summary = excerpt(&format!("{code} {message}"));
    match code {
        "4011101" | "4017301" => {
            CallError::TokenExpired(UpstreamError::Auth(format!("invalid token: {summary}")))
        }
        _ if code.starts_with("401") || status == StatusCode::UNAUTHORIZED => {
            CallError::Failed(UpstreamError::Auth(format!("auth: {summary}")))
        }
        _ if code.starts_with("429") => {
            CallError::Failed(UpstreamError::RateLimited { retry_after: None })
        }
        _ if names_a_credential_problem(message) => {
            CallError::Failed(UpstreamError::Auth(format!("auth: {summary}")))
        }
        "4031118" => CallError::Failed(UpstreamError::Rejected(format!(
            "account_blocked: {summary}"
        ))),
        _ if code.starts_with("403") || status.is_success() => {
            CallError::Failed(UpstreamError::Rejected(summary))
        }
        _ => {
            tracing::debug!(code, message = %excerpt(message), "SNAP failure envelope");
            CallError::Failed(UpstreamError::HttpStatus(status))
        }
    }
}

/// The B2B token answer: `2007300` with `accessToken` and `expiresIn` (seconds, as text or a
/// number).
fn decode_token(status: StatusCode, body: &[u8]) -> Result<Token, UpstreamError> {
    let answer = read(status, body)?;
    if answer.code != TOKEN_SUCCESS || !status.is_success() {
        return Err(match answer.failure(status) {
            CallError::TokenExpired(err) | CallError::Failed(err) => err,
        });
    }
    let token = match answer.fields.get("accessToken") {
        Some(Value::String(token)) if !token.is_empty() => token.clone(),
        _ => return Err(UpstreamError::Decode("no accessToken".into())),
    };
    let expires_in = match answer.fields.get("expiresIn") {
        None | Some(Value::Null) => DEFAULT_TOKEN_LIFETIME,
        Some(value) => parse_amount(value)
            .ok()
            .and_then(|seconds| seconds.trunc().to_u64())
            .filter(|&seconds| seconds > 0)
            .map(Duration::from_secs)
            .ok_or_else(|| {
                UpstreamError::Decode(format!(
                    "expiresIn is no lifetime: {}",
                    excerpt(&value.to_string())
                ))
            })?,
    };
    Ok(Token {
        value: token.into(),
        expires_in,
    })
}

/// A balance answer, for the registry's sample and property tests (a 200 answer).
pub fn decode(body: &[u8]) -> Result<Balance, UpstreamError> {
    match decode_inquiry(StatusCode::OK, body, None) {
        Ok(balance) => Ok(balance),
        Err(CallError::TokenExpired(err) | CallError::Failed(err)) => Err(err),
    }
}

/// The inquiry answer: `2001100` with one or more balances, the one of `balance_type` or the
/// first.
fn decode_inquiry(
    status: StatusCode,
    body: &[u8],
    balance_type: Option<&str>,
) -> Result<Balance, CallError> {
    let answer = read(status, body)?;
    if answer.code != INQUIRY_SUCCESS {
        return Err(answer.failure(status));
    }
    if !status.is_success() {
        return Err(CallError::Failed(UpstreamError::HttpStatus(status)));
    }
    Ok(balance(&answer.fields, balance_type)?)
}

fn balance(
    answer: &Map<String, Value>,
    balance_type: Option<&str>,
) -> Result<Balance, UpstreamError> {
    // The standard's array; some banks send one object (DOKU), or `accountInfo`. The singular
    // is read as the one object it names: an array under it is no documented shape.
    let infos: Vec<&Value> = match (answer.get("accountInfos"), answer.get("accountInfo")) {
        (Some(Value::Array(infos)), _) => infos.iter().collect(),
        (Some(info @ Value::Object(_)), _)
        | (None | Some(Value::Null), Some(info @ Value::Object(_))) => {
            vec![info]
        }
        _ => {
            return Err(UpstreamError::Decode(
                "no accountInfos array or object".into(),
            ));
        }
    };
    let mut types = Vec::new();
    for info in infos {
        let Value::Object(info) = info else {
            return Err(UpstreamError::Decode(
                "an accountInfos entry is no object".into(),
            ));
        };
        let kind = info.get("balanceType").and_then(Value::as_str);
        match balance_type {
            Some(wanted) if !kind.is_some_and(|kind| kind.eq_ignore_ascii_case(wanted)) => {
                types.push(kind.unwrap_or("(none)").to_owned());
                continue;
            }
            _ => {}
        }
        let (amount, currency) = money(info)?;
        return Ok(Balance {
            amount,
            currency,
            holder: answer
                .get("name")
                .and_then(Value::as_str)
                .filter(|name| !name.trim().is_empty())
                .map(str::to_owned),
        });
    }
    Err(UpstreamError::Decode(match balance_type {
        Some(wanted) => format!(
            "no balance of type {wanted:?} in the answer (it has: {})",
            excerpt(&types.join(", "))
        ),
        None => "accountInfos is empty".into(),
    }))
}

/// One entry's balance: `availableBalance` (DOKU spells it `avaliableBalance`, PakaiLink says
/// `activeBalance`), else `amount`; each `{"value": "200000.00", "currency": "IDR"}`.
fn money(info: &Map<String, Value>) -> Result<(Decimal, String), UpstreamError> {
    let field = [
        "availableBalance",
        "avaliableBalance",
        "activeBalance",
        "amount",
    ]
    .iter()
    .find_map(|name| {
        info.get(*name)
            .filter(|value| !value.is_null())
            .map(|v| (*name, v))
    });
    let Some((name, Value::Object(money))) = field else {
        return Err(UpstreamError::Decode(
            "no availableBalance or amount object".into(),
        ));
    };
    let amount = parse_amount(money.get("value").unwrap_or(&Value::Null))
        .map_err(|err| UpstreamError::Decode(format!("{name}.value: {err}")))?;
    let currency = match money.get("currency") {
        // The standard always gives one; a bank leaving it out is taken to mean rupiah.
        None | Some(Value::Null) => "IDR".to_owned(),
        Some(Value::String(code))
            if code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic()) =>
        {
            code.to_ascii_uppercase()
        }
        Some(other) => {
            return Err(UpstreamError::Decode(format!(
                "{name}.currency is no ISO code: {}",
                excerpt(&other.to_string())
            )));
        }
    };
    Ok((amount, currency))
}

#[cfg(test)]
mod tests;
