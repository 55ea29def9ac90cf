//! A SNAP BI bank's server half: it holds the partner's public key and verifies the RSA
//! signature of the B2B token request, issues tokens that expire, verifies the inquiry's
//! headers and HMAC-SHA512 signature, refuses an `X-EXTERNAL-ID` seen before the same day,
//! and answers the standard's envelopes.
//!
//! The partner's key pair is generated when the simulator starts (RSA 2048): the bank keeps
//! the public half, the demo account is given the private half.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::header::AUTHORIZATION;
use hyper::{Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::signing::{self, PrivateKey};
use crate::providers::simulator::{
    Credentials, HttpResponse, Refusal, Route, SimRequest, Supplier, json,
};

/// The `CHANNEL-ID` this bank assigned to its partner.
pub const CHANNEL_ID: &str = "95051";
/// The bank account whose balance is asked for.
pub const ACCOUNT_NO: &str = "1234567890";
/// How far an `X-TIMESTAMP` may be from the bank's clock. The standard names no window; five
/// minutes is a common choice.
const CLOCK_WINDOW: Duration = Duration::from_secs(300);

pub struct Snap {
    /// The partner's key, as the partner generated it.
    key: PrivateKey,
    private_pem: String,
    /// What the bank holds: the public half.
    public_key: Vec<u8>,
    state: Mutex<State>,
}

struct State {
    token_lifetime: Duration,
    /// Tokens issued and when each expires.
    tokens: HashMap<String, SystemTime>,
    issued: u64,
    token_requests: u64,
    /// The Jakarta day the external ids below were seen on.
    day: String,
    external_ids: HashSet<String>,
}

impl Default for Snap {
    fn default() -> Self {
        Self::new()
    }
}

impl Snap {
    /// A bank with a freshly generated partner key pair and 900 s tokens.
    pub fn new() -> Self {
        let key = KeyPair::generate(KeySize::Rsa2048).expect("aws-lc generates an RSA key");
        let pkcs8 = key.as_der().expect("an RSA key has a PKCS#8 form");
        let private_pem = pem("PRIVATE KEY", pkcs8.as_ref());
        let key = PrivateKey::from_key_pair(key);
        Self {
            public_key: key.public_key(),
            key,
            private_pem,
            state: Mutex::new(State {
                token_lifetime: Duration::from_secs(900),
                tokens: HashMap::new(),
                issued: 0,
                token_requests: 0,
                day: String::new(),
                external_ids: HashSet::new(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lifetime of tokens issued from now on (`expiresIn`), e.g. seconds in a test.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.state().token_lifetime = lifetime;
    }

    /// Requests to the token endpoint so far, refused ones included.
    pub fn token_requests(&self) -> u64 {
        self.state().token_requests
    }

    /// The bank forgets every token it issued (revoked, or its clock ran ahead): the next
    /// inquiry with one is answered `4011101`.
    pub fn expire_tokens(&self) {
        self.state().tokens.clear();
    }

    /// The partner's private key as PEM (PKCS#8), as the partner would mount it.
    pub fn private_key_pem(&self) -> &str {
        &self.private_pem
    }

    /// The partner's key, to sign requests in tests.
    pub fn private_key(&self) -> &PrivateKey {
        &self.key
    }

    fn timestamp(request: &SimRequest<'_>, service: Service) -> Result<String, Refusal> {
        let text = request
            .header("X-TIMESTAMP")
            .ok_or((StatusCode::BAD_REQUEST, service.mandatory()))?;
        let at =
            signing::parse_timestamp(text).ok_or((StatusCode::BAD_REQUEST, service.format()))?;
        let skew = at
            .duration_since(request.now)
            .or_else(|_| request.now.duration_since(at))
            .unwrap_or_default();
        if skew > CLOCK_WINDOW {
            return Err((StatusCode::UNAUTHORIZED, service.unauthorized()));
        }
        Ok(text.to_owned())
    }

    /// `POST …/access-token/b2b`: the RSA signature of `client_id|X-TIMESTAMP`.
    fn token(
        &self,
        request: &SimRequest<'_>,
        credentials: &Credentials,
    ) -> Result<HttpResponse, Refusal> {
        self.state().token_requests += 1;
        request.require_json_content()?;
        let timestamp = Self::timestamp(request, Service::Token)?;
        if request.header("X-CLIENT-KEY") != Some(credentials.id.as_str()) {
            return Err((StatusCode::UNAUTHORIZED, "TOKEN_UNAUTHORIZED"));
        }
        let signed = signing::token_string_to_sign(&credentials.id, &timestamp);
        let signature = request.header("X-SIGNATURE").unwrap_or_default();
        if !signing::verify_rsa(&self.public_key, &signed, signature) {
            return Err((StatusCode::UNAUTHORIZED, "TOKEN_UNAUTHORIZED"));
        }
        let body: Option<Value> = serde_json::from_slice(request.body).ok();
        if body != Some(json!({"grantType": "client_credentials"})) {
            return Err((StatusCode::BAD_REQUEST, "TOKEN_INVALID_MANDATORY_FIELD"));
        }
        let mut state = self.state();
        state.issued += 1;
        let mut random = [0; 24];
        aws_lc_rs::rand::fill(&mut random).expect("the system random source");
        let token = format!("{}{}", state.issued, STANDARD.encode(random));
        let lifetime = state.token_lifetime;
        state.tokens.insert(token.clone(), request.now + lifetime);
        Ok(json(
            StatusCode::OK,
            &json!({
                "responseCode": "2007300",
                "responseMessage": "Successful",
                "accessToken": token,
                "tokenType": "Bearer",
                "expiresIn": lifetime.as_secs().max(1).to_string(),
            }),
        ))
    }

    /// `POST …/balance-inquiry`: a valid token, the standard headers, the HMAC-SHA512
    /// signature, and an external id not seen before today.
    fn inquiry(
        &self,
        request: &SimRequest<'_>,
        credentials: &Credentials,
    ) -> Result<Route, Refusal> {
        request.require_json_content()?;
        let token = request
            .header(AUTHORIZATION.as_str())
            .and_then(|value| value.strip_prefix("Bearer "))
            .filter(|token| {
                self.state()
                    .tokens
                    .get(*token)
                    .is_some_and(|expiry| request.now < *expiry)
            })
            .ok_or((StatusCode::UNAUTHORIZED, "INVALID_TOKEN"))?;
        let timestamp = Self::timestamp(request, Service::Balance)?;
        if request.header("X-PARTNER-ID") != Some(credentials.id.as_str()) {
            return Err((StatusCode::UNAUTHORIZED, "UNAUTHORIZED"));
        }
        if request.header("CHANNEL-ID") != Some(CHANNEL_ID) {
            return Err((StatusCode::BAD_REQUEST, "INVALID_MANDATORY_FIELD"));
        }
        let external_id = request
            .header("X-EXTERNAL-ID")
            .ok_or((StatusCode::BAD_REQUEST, "INVALID_MANDATORY_FIELD"))?;
        if external_id.is_empty()
            || external_id.len() > 36
            || !external_id.bytes().all(|b| b.is_ascii_digit())
        {
            return Err((StatusCode::BAD_REQUEST, "INVALID_FIELD_FORMAT"));
        }
        let path = match request.parts.uri.query() {
            Some(query) => format!("{}?{query}", request.parts.uri.path()),
            None => request.parts.uri.path().to_owned(),
        };
        let expected = signing::symmetric_signature(
            &credentials.secret_key,
            &signing::string_to_sign(
                "POST",
                &path,
                token,
                &signing::minify(request.body),
                &timestamp,
            ),
        );
        if request.header("X-SIGNATURE") != Some(expected.as_str()) {
            return Err((StatusCode::UNAUTHORIZED, "UNAUTHORIZED"));
        }
        check_body(request.body)?;
        let mut state = self.state();
        let today = signing::jakarta_day(request.now);
        if state.day != today {
            state.day = today;
            state.external_ids.clear();
        }
        if !state.external_ids.insert(external_id.to_owned()) {
            return Err((StatusCode::CONFLICT, "CONFLICT"));
        }
        Ok(Route::Balance)
    }
}

/// The ASPI body: all fields optional, each of its documented type and length.
fn check_body(body: &[u8]) -> Result<(), Refusal> {
    let format = (StatusCode::BAD_REQUEST, "INVALID_FIELD_FORMAT");
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(body) else {
        return Err(format);
    };
    let text_of_at_most = |field: &str, limit: usize| match body.get(field) {
        None => true,
        Some(Value::String(text)) => text.len() <= limit,
        Some(_) => false,
    };
    let types_ok = match body.get("balanceTypes") {
        None => true,
        Some(Value::Array(types)) => types.iter().all(Value::is_string),
        Some(_) => false,
    };
    let info_ok = body.get("additionalInfo").is_none_or(Value::is_object);
    if text_of_at_most("partnerReferenceNo", 64)
        && text_of_at_most("accountNo", 16)
        && text_of_at_most("bankCardToken", 128)
        && types_ok
        && info_ok
    {
        Ok(())
    } else {
        Err(format)
    }
}

#[derive(Clone, Copy)]
enum Service {
    Token,
    Balance,
}

impl Service {
    fn mandatory(self) -> &'static str {
        match self {
            Service::Token => "TOKEN_INVALID_MANDATORY_FIELD",
            Service::Balance => "INVALID_MANDATORY_FIELD",
        }
    }

    fn format(self) -> &'static str {
        match self {
            Service::Token => "TOKEN_INVALID_FIELD_FORMAT",
            Service::Balance => "INVALID_FIELD_FORMAT",
        }
    }

    fn unauthorized(self) -> &'static str {
        match self {
            Service::Token => "TOKEN_UNAUTHORIZED",
            Service::Balance => "UNAUTHORIZED",
        }
    }
}

impl Supplier for Snap {
    fn account_fields(
        &self,
        credentials: &Credentials,
        base_url: &str,
    ) -> Vec<(&'static str, String)> {
        vec![
            ("base_url", base_url.to_owned()),
            ("client_id", credentials.id.clone()),
            ("client_secret", credentials.secret_key.clone()),
            ("private_key", self.private_pem.clone()),
            ("channel_id", CHANNEL_ID.to_owned()),
            ("account_no", ACCOUNT_NO.to_owned()),
        ]
    }

    fn verify(
        &self,
        request: &SimRequest<'_>,
        credentials: &Credentials,
    ) -> Result<Route, Refusal> {
        let path = request.parts.uri.path();
        if request.parts.method != Method::POST {
            return Err((StatusCode::NOT_FOUND, "NOT_FOUND"));
        }
        if path.ends_with("/access-token/b2b") {
            return self.token(request, credentials).map(Route::Answer);
        }
        if path.ends_with("/balance-inquiry") {
            return self.inquiry(request, credentials);
        }
        Err((StatusCode::NOT_FOUND, "NOT_FOUND"))
    }

    fn success(&self, balance: Decimal, _: &Credentials, now: SystemTime) -> HttpResponse {
        let money = json!({"value": format!("{:.2}", balance.round_dp(2)), "currency": "IDR"});
        json(
            StatusCode::OK,
            &json!({
                "responseCode": "2001100",
                "responseMessage": "Successful",
                "referenceNo": signing::external_id(now, 0, 0),
                "accountNo": ACCOUNT_NO,
                "name": "PT Demo Fintech",
                "accountInfos": [{
                    "balanceType": "Cash",
                    "amount": money,
                    "holdAmount": {"value": "0.00", "currency": "IDR"},
                    "availableBalance": money,
                    "status": "0001",
                }],
                "additionalInfo": {},
            }),
        )
    }

    fn failure(&self, status: StatusCode, problem: &str) -> HttpResponse {
        let (service, problem) = match problem.strip_prefix("TOKEN_") {
            Some(problem) => ("73", problem),
            None => ("11", problem),
        };
        let (case, message) = match problem {
            "INVALID_FIELD_FORMAT" => ("01", "Invalid Field Format"),
            "INVALID_MANDATORY_FIELD" => ("02", "Invalid Mandatory Field"),
            "UNAUTHORIZED" => ("00", "Unauthorized. Signature"),
            "INVALID_TOKEN" => ("01", "Invalid Token (B2B)"),
            "CONFLICT" => ("00", "Conflict"),
            "INACTIVE_ACCOUNT" => ("18", "Inactive Account"),
            "MAINTENANCE" => ("00", "General Error"),
            _ => ("00", "Bad Request"),
        };
        // The code's first three digits are the HTTP status the bank would send; the framework
        // sends a maintenance refusal with 200, which a client must read as `rejected` too.
        let http = match problem {
            "MAINTENANCE" => "500",
            _ => status.as_str(),
        };
        json(
            status,
            &json!({
                "responseCode": format!("{http}{service}{case}"),
                "responseMessage": message,
            }),
        )
    }
}

/// PEM text with 64-character lines.
fn pem(label: &str, der: &[u8]) -> String {
    let base64 = STANDARD.encode(der);
    let mut text = format!("-----BEGIN {label}-----\n");
    for line in base64.as_bytes().chunks(64) {
        text.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        text.push('\n');
    }
    text.push_str(&format!("-----END {label}-----\n"));
    text
}
