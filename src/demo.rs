//! Simulated isikuota and Ayopop servers, for `--demo` and for the tests.
//!
//! Each [`Simulator`] is a real HTTP server on loopback that checks requests the way the
//! provider documents them (isikuota's HMAC signature and timestamp, Ayopop's headers and JWT)
//! and refuses anything else with HTTP 401. Balances fall with simulated sales and jump on
//! top-ups; tests can instead set a balance, inject a fault and count requests.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use hyper::http::request::Parts;
use hyper::{Method, Request, StatusCode};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::server::{HttpResponse, accept_loop, respond};
use crate::signing;

/// isikuota accepts timestamps this far from its own clock. The real limit is undocumented;
/// five minutes is the usual choice for signed APIs.
pub const ISIKUOTA_CLOCK_SKEW: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Isikuota,
    Ayopop,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Isikuota => "isikuota",
            Kind::Ayopop => "ayopop",
        }
    }
}

/// A misbehaviour to show instead of a good answer.
#[derive(Debug, Clone)]
pub enum Fault {
    /// This status with a plain-text body.
    Status(u16),
    /// HTTP 200 with an HTML maintenance page.
    Html,
    /// HTTP 200 with JSON cut off mid-way.
    TruncatedJson,
    /// Never answer.
    Hang,
    /// HTTP 429 with `Retry-After: <seconds>`.
    RateLimited { retry_after: u64 },
    /// HTTP 200 with the provider's failure envelope (a maintenance refusal).
    Refusal,
}

/// The credentials a simulator accepts; the values are fixed, public demo strings.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// `api_id` (isikuota) or `partner_id` (Ayopop).
    pub id: String,
    pub api_key: String,
    pub secret_key: String,
}

impl Credentials {
    pub fn demo(kind: Kind) -> Self {
        let name = kind.name();
        Self {
            id: format!("demo-{name}-id"),
            api_key: format!("demo-{name}-api-key-5f1c"),
            secret_key: format!("demo-{name}-secret-9a7e"),
        }
    }
}

/// Simulated trading: a sale every `every`, and a top-up when the balance falls below `low`.
#[derive(Debug, Clone)]
pub struct Sales {
    pub every: Duration,
    pub low: Decimal,
    pub top_up: Decimal,
}

/// Typical PPOB sale amounts in rupiah: pulsa, data packages, PLN tokens.
const SALE_AMOUNTS: [i64; 8] = [
    5_000, 10_000, 20_000, 25_000, 50_000, 100_000, 15_000, 12_500,
];

pub struct Simulator {
    kind: Kind,
    address: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

struct Shared {
    kind: Kind,
    requests: AtomicU64,
    rejected: AtomicU64,
    state: Mutex<State>,
}

struct State {
    credentials: Credentials,
    balance: Decimal,
    fault: Option<Fault>,
    /// Added before every answer, like a distant or busy supplier.
    latency: Duration,
    sales: Option<(Sales, Instant)>,
    sold: usize,
}

impl Simulator {
    /// Starts a simulator on an ephemeral loopback port with the demo credentials.
    pub async fn start(kind: Kind, balance: Decimal) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            kind,
            requests: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            state: Mutex::new(State {
                credentials: Credentials::demo(kind),
                balance,
                fault: None,
                latency: Duration::ZERO,
                sales: None,
                sold: 0,
            }),
        });
        let handler_state = Arc::clone(&shared);
        let server = tokio::spawn(accept_loop(
            listener,
            move |request| Arc::clone(&handler_state).handle(request),
            std::future::pending(),
        ));
        Ok(Self {
            kind,
            address,
            shared,
            server,
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn credentials(&self) -> Credentials {
        self.shared.state().credentials.clone()
    }

    /// The `SALDO_*` variables that configure an exporter account against this simulator.
    pub fn env(&self, account: &str) -> Vec<(String, String)> {
        let credentials = self.credentials();
        let prefix = format!("SALDO_{}_", self.kind.name().to_uppercase());
        let id_field = match self.kind {
            Kind::Isikuota => "API_ID",
            Kind::Ayopop => "PARTNER_ID",
        };
        [
            (id_field, credentials.id),
            ("API_KEY", credentials.api_key),
            ("SECRET_KEY", credentials.secret_key),
            ("BASE_URL", self.base_url()),
            ("ACCOUNT", account.to_owned()),
        ]
        .into_iter()
        .map(|(field, value)| (format!("{prefix}{field}"), value))
        .collect()
    }

    /// Every request received, refused ones included.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Requests refused for a bad signature, token, header or timestamp.
    pub fn rejected(&self) -> u64 {
        self.shared.rejected.load(Ordering::SeqCst)
    }

    pub fn balance(&self) -> Decimal {
        self.shared.state().balance
    }

    pub fn set_balance(&self, balance: Decimal) {
        self.shared.state().balance = balance;
    }

    pub fn set_fault(&self, fault: Option<Fault>) {
        self.shared.state().fault = fault;
    }

    pub fn set_latency(&self, latency: Duration) {
        self.shared.state().latency = latency;
    }

    /// The provider now expects another secret, as after a key rotation on its dashboard.
    pub fn rotate_secret(&self, secret_key: &str) {
        self.shared.state().credentials.secret_key = secret_key.to_owned();
    }

    pub fn start_sales(&self, sales: Sales) {
        self.shared.state().sales = Some((sales, Instant::now()));
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn handle(self: Arc<Self>, request: Request<Incoming>) -> HttpResponse {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let (parts, body) = request.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return plain(StatusCode::BAD_REQUEST, "unreadable body"),
        };
        let credentials = self.state().credentials.clone();
        let verdict = match self.kind {
            Kind::Isikuota => verify_isikuota(&parts, &body, &credentials, SystemTime::now()),
            Kind::Ayopop => verify_ayopop(&parts, &body, &credentials),
        };
        if let Err((status, problem)) = verdict {
            self.rejected.fetch_add(1, Ordering::SeqCst);
            return self.failure(status, problem);
        }
        let (fault, latency) = {
            let state = self.state();
            (state.fault.clone(), state.latency)
        };
        tokio::time::sleep(latency).await;
        match fault {
            None => {}
            Some(Fault::Status(code)) => {
                let status =
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                return plain(status, "upstream failure");
            }
            Some(Fault::Html) => {
                return respond(
                    StatusCode::OK,
                    "text/html",
                    "<!DOCTYPE html><html><body><h1>Sedang pemeliharaan</h1></body></html>".into(),
                );
            }
            Some(Fault::TruncatedJson) => {
                return respond(
                    StatusCode::OK,
                    "application/json",
                    r#"{"success": true, "data": {"bal"#.into(),
                );
            }
            Some(Fault::Hang) => std::future::pending::<()>().await,
            Some(Fault::RateLimited { retry_after }) => {
                let mut response = plain(StatusCode::TOO_MANY_REQUESTS, "too many requests");
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, retry_after.into());
                return response;
            }
            Some(Fault::Refusal) => return self.failure(StatusCode::OK, "MAINTENANCE"),
        }
        let balance = self.state().advance();
        self.success(balance)
    }

    fn success(&self, balance: Decimal) -> HttpResponse {
        let amount = Value::Number(
            serde_json::Number::from_str(&balance.normalize().to_string())
                .expect("a decimal is a JSON number"),
        );
        let body = match self.kind {
            Kind::Isikuota => json!({
                "success": true,
                "code": "SUCCESS",
                "message": "Saldo berhasil didapatkan",
                "data": {
                    "name": "Toko Pulsa Demo",
                    "balance": amount,
                    "currency": "IDR",
                    "checked_at": jakarta_time(SystemTime::now()),
                },
                "errors": null,
                "meta": null,
            }),
            Kind::Ayopop => json!({
                "responseCode": 0,
                "success": true,
                "message": {"ID": "sukses", "EN": "success"},
                "data": {"balance": amount, "currency": "IDR", "partnerId": self.state().credentials.id},
            }),
        };
        respond(StatusCode::OK, "application/json", body.to_string())
    }

    /// The provider's failure envelope. `problem` is an isikuota-style code.
    fn failure(&self, status: StatusCode, problem: &str) -> HttpResponse {
        let body = match self.kind {
            Kind::Isikuota => json!({
                "success": false, "code": problem, "message": problem.replace('_', " ").to_lowercase(),
                "data": null, "errors": null, "meta": null,
            }),
            Kind::Ayopop => json!({
                "responseCode": if problem == "MAINTENANCE" { 27 } else { 14 },
                "success": false,
                "message": {"ID": problem, "EN": problem.replace('_', " ").to_lowercase()},
                "data": null,
            }),
        };
        respond(status, "application/json", body.to_string())
    }
}

impl State {
    /// Applies the sales (and top-ups) due since the last answer, then returns the balance.
    fn advance(&mut self) -> Decimal {
        if let Some((sales, last)) = &mut self.sales {
            while last.elapsed() >= sales.every {
                *last += sales.every;
                self.balance -= Decimal::from(SALE_AMOUNTS[self.sold % SALE_AMOUNTS.len()]);
                self.sold += 1;
                if self.balance < sales.low {
                    self.balance += sales.top_up;
                }
            }
        }
        self.balance
    }
}

type Refusal = (StatusCode, &'static str);

/// isikuota: POST /v1/balance, JSON `{api_id, timestamp, signature}` signed as documented.
fn verify_isikuota(
    parts: &Parts,
    body: &[u8],
    credentials: &Credentials,
    now: SystemTime,
) -> Result<(), Refusal> {
    if parts.method != Method::POST || !parts.uri.path().ends_with("/v1/balance") {
        return Err((StatusCode::NOT_FOUND, "NOT_FOUND"));
    }
    require_json_content(parts)?;
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return Err((StatusCode::BAD_REQUEST, "INVALID_JSON"));
    };
    if fields.contains_key("api_key") || fields.contains_key("secret_key") {
        return Err((StatusCode::BAD_REQUEST, "KEY_MUST_NOT_BE_SENT"));
    }
    if fields.get("api_id").and_then(Value::as_str) != Some(credentials.id.as_str()) {
        return Err((StatusCode::UNAUTHORIZED, "INVALID_API_ID"));
    }
    let Some(timestamp) = fields.get("timestamp").and_then(Value::as_i64) else {
        return Err((StatusCode::BAD_REQUEST, "INVALID_TIMESTAMP"));
    };
    let skew = (crate::providers::unix_seconds(now) - timestamp).unsigned_abs();
    if skew > ISIKUOTA_CLOCK_SKEW.as_secs() {
        return Err((StatusCode::UNAUTHORIZED, "TIMESTAMP_EXPIRED"));
    }
    let expected = signing::isikuota_signature(
        &credentials.id,
        &credentials.api_key,
        &credentials.secret_key,
        timestamp,
        &signing::isikuota_canonical_body(&fields),
    );
    if fields.get("signature").and_then(Value::as_str) != Some(expected.as_str()) {
        return Err((StatusCode::UNAUTHORIZED, "INVALID_SIGNATURE"));
    }
    Ok(())
}

/// Ayopop: POST /api/v{1,2}/partner/balance with `KEY`, `VERSION: 1.0`, JSON content and
/// accept headers, and a `TOKEN` that is an HS256 JWT of `{"partnerId"}` under the secret.
fn verify_ayopop(parts: &Parts, body: &[u8], credentials: &Credentials) -> Result<(), Refusal> {
    let path = parts.uri.path();
    if parts.method != Method::POST
        || !(path.ends_with("/api/v1/partner/balance") || path.ends_with("/api/v2/partner/balance"))
    {
        return Err((StatusCode::NOT_FOUND, "NOT_FOUND"));
    }
    require_json_content(parts)?;
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    if header(ACCEPT.as_str()) != Some("application/json") {
        return Err((StatusCode::BAD_REQUEST, "INVALID_ACCEPT"));
    }
    if header("VERSION") != Some("1.0") {
        return Err((StatusCode::BAD_REQUEST, "INVALID_VERSION"));
    }
    if header("KEY") != Some(credentials.api_key.as_str()) {
        return Err((StatusCode::UNAUTHORIZED, "INVALID_KEY"));
    }
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    // The documented token has no `exp`.
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    let claims = header("TOKEN").and_then(|token| {
        jsonwebtoken::decode::<Value>(
            token,
            &jsonwebtoken::DecodingKey::from_secret(credentials.secret_key.as_bytes()),
            &validation,
        )
        .ok()
    });
    let expected = json!({"partnerId": credentials.id});
    if claims.map(|data| data.claims) != Some(expected.clone()) {
        return Err((StatusCode::UNAUTHORIZED, "INVALID_TOKEN"));
    }
    // The official samples send no body; the seed sends the payload. Either is fine, another
    // partner's id is not.
    if !body.is_empty() && serde_json::from_slice::<Value>(body).ok() != Some(expected) {
        return Err((StatusCode::BAD_REQUEST, "INVALID_BODY"));
    }
    Ok(())
}

fn require_json_content(parts: &Parts) -> Result<(), Refusal> {
    let json = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json {
        Ok(())
    } else {
        Err((StatusCode::UNSUPPORTED_MEDIA_TYPE, "INVALID_CONTENT_TYPE"))
    }
}

fn plain(status: StatusCode, body: &'static str) -> HttpResponse {
    respond(status, "text/plain", body.into())
}

/// `YYYY-MM-DD HH:MM:SS` in Jakarta time (UTC+7), like isikuota's `checked_at`.
fn jakarta_time(now: SystemTime) -> String {
    let seconds = crate::providers::unix_seconds(now) + 7 * 3600;
    let (days, time) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        time / 3600,
        time / 60 % 60,
        time % 60
    )
}

/// Starts the two demo providers, trading, and returns them with the variables that point
/// exporter accounts at them.
pub async fn start() -> std::io::Result<(Vec<Simulator>, Vec<(String, String)>)> {
    let isikuota = Simulator::start(Kind::Isikuota, Decimal::from(2_500_000)).await?;
    isikuota.start_sales(Sales {
        every: Duration::from_secs(2),
        low: Decimal::from(300_000),
        top_up: Decimal::from(2_000_000),
    });
    let ayopop = Simulator::start(Kind::Ayopop, Decimal::from(5_523_560)).await?;
    ayopop.start_sales(Sales {
        every: Duration::from_secs(3),
        low: Decimal::from(800_000),
        top_up: Decimal::from(5_000_000),
    });
    let mut env = Vec::new();
    for (simulator, warning, critical) in [
        (&isikuota, "1000000", "500000"),
        (&ayopop, "2000000", "1000000"),
    ] {
        let prefix = format!("SALDO_{}_", simulator.kind.name().to_uppercase());
        env.extend(simulator.env(&format!("demo-{}", simulator.kind.name())));
        env.push((format!("{prefix}WARNING_THRESHOLD"), warning.into()));
        env.push((format!("{prefix}CRITICAL_THRESHOLD"), critical.into()));
        // Loopback costs nothing, and a demo should move while you watch.
        env.push((format!("{prefix}MIN_INTERVAL"), "5s".into()));
    }
    Ok((vec![isikuota, ayopop], env))
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn checked_at_is_jakarta_wall_time() {
        let at = UNIX_EPOCH + Duration::from_secs(1780222918);
        assert_eq!(jakarta_time(at), "2026-05-31 17:21:58");
        assert_eq!(jakarta_time(UNIX_EPOCH), "1970-01-01 07:00:00");
    }

    #[test]
    fn the_isikuota_simulator_refuses_a_stale_timestamp_and_a_wrong_signature() {
        let credentials = Credentials::demo(Kind::Isikuota);
        let now = UNIX_EPOCH + Duration::from_secs(1780222918);
        let request = |timestamp: i64, secret: &str| {
            let signature = signing::isikuota_signature(
                &credentials.id,
                &credentials.api_key,
                secret,
                timestamp,
                "",
            );
            let body =
                json!({"api_id": credentials.id, "timestamp": timestamp, "signature": signature});
            let (parts, ()) = Request::post("/v1/balance")
                .header(CONTENT_TYPE, "application/json")
                .body(())
                .unwrap()
                .into_parts();
            verify_isikuota(&parts, body.to_string().as_bytes(), &credentials, now)
        };
        assert_eq!(request(1780222918, &credentials.secret_key), Ok(()));
        assert_eq!(request(1780222918 - 299, &credentials.secret_key), Ok(()));
        assert_eq!(
            request(1780222918 - 301, &credentials.secret_key)
                .unwrap_err()
                .1,
            "TIMESTAMP_EXPIRED"
        );
        assert_eq!(
            request(1780222918, "wrong").unwrap_err().1,
            "INVALID_SIGNATURE"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn sales_lower_the_balance_and_a_low_balance_is_topped_up() {
        let simulator = Simulator::start(Kind::Isikuota, Decimal::from(100_000))
            .await
            .unwrap();
        simulator.start_sales(Sales {
            every: Duration::from_secs(1),
            low: Decimal::from(70_000),
            top_up: Decimal::from(1_000_000),
        });
        tokio::time::advance(Duration::from_secs(2)).await;
        // 100 000 - 5 000 - 10 000
        assert_eq!(simulator.shared.state().advance(), Decimal::from(85_000));
        tokio::time::advance(Duration::from_secs(1)).await;
        // - 20 000 = 65 000 < 70 000, so + 1 000 000
        assert_eq!(simulator.shared.state().advance(), Decimal::from(1_065_000));
    }
}
