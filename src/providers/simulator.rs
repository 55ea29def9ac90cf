//! The simulator framework: a real HTTP server on loopback per simulated supplier, for
//! `--demo` and the tests.
//!
//! What every simulated supplier shares lives here: the server loop, request and refusal
//! counting, faults, latency, simulated sales and top-ups. What differs (how a request is
//! verified, the success and failure envelopes, the settings of an account pointing at it)
//! is the [`Supplier`] in each supplier's folder, `src/providers/<name>/simulator.rs`.

use std::any::Any;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, RETRY_AFTER};
use hyper::http::request::Parts;
use hyper::{Request, StatusCode};
use rust_decimal::Decimal;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use crate::server::HttpResponse;
use crate::server::{accept_loop, respond};

/// One supplier's server half. `Any`, so a test can reach its own state through
/// [`Simulator::supplier`].
pub trait Supplier: Any + Send + Sync {
    /// The account settings (configuration field names, as in the YAML file) that point an
    /// exporter account with `credentials` at a simulator on `base_url`.
    fn account_fields(
        &self,
        credentials: &Credentials,
        base_url: &str,
    ) -> Vec<(&'static str, String)>;

    /// Checks a request exactly as the supplier's documentation says. A balance request goes
    /// on to faults, latency and [`Supplier::success`]; another step of the supplier's flow
    /// (a token request) is answered at once with [`Route::Answer`].
    fn verify(&self, request: &SimRequest<'_>, credentials: &Credentials)
    -> Result<Route, Refusal>;

    /// The success answer for `balance`.
    fn success(&self, balance: Decimal, credentials: &Credentials, now: SystemTime)
    -> HttpResponse;

    /// The failure envelope for `problem`, an isikuota-style code (`INVALID_SIGNATURE`,
    /// `MAINTENANCE`), sent with `status`.
    fn failure(&self, status: StatusCode, problem: &str) -> HttpResponse;
}

/// A request as a [`Supplier`] sees it.
pub struct SimRequest<'a> {
    pub parts: &'a Parts,
    pub body: &'a [u8],
    /// The simulator's clock, to check signed timestamps against.
    pub now: SystemTime,
}

impl SimRequest<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.parts.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `Content-Type: application/json`, or a 415 refusal.
    pub fn require_json_content(&self) -> Result<(), Refusal> {
        let json = self
            .header(CONTENT_TYPE.as_str())
            .is_some_and(|v| v.starts_with("application/json"));
        if json {
            Ok(())
        } else {
            Err((StatusCode::UNSUPPORTED_MEDIA_TYPE, "INVALID_CONTENT_TYPE"))
        }
    }
}

/// Where a verified request goes.
pub enum Route {
    /// The balance request: faults and latency apply, then the success answer.
    Balance,
    /// Another step of the flow, answered as is.
    Answer(HttpResponse),
}

/// A refused request: the status and the supplier-style problem code for its envelope.
pub type Refusal = (StatusCode, &'static str);

/// The demo account `--demo` runs against a supplier's simulator.
#[derive(Debug, Clone, Copy)]
pub struct DemoAccount {
    pub balance: i64,
    pub sale_every: Duration,
    /// Below this the simulated reseller tops up by `top_up`.
    pub low: i64,
    pub top_up: i64,
    pub warning: i64,
    pub critical: i64,
}

/// The seeded suppliers by their old names; any supplier can be started by its registry name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Isikuota,
    Ayopop,
}

impl AsRef<str> for Kind {
    fn as_ref(&self) -> &str {
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
    /// The account's identity (`api_id`, `partner_id`, a username).
    pub id: String,
    pub api_key: String,
    pub secret_key: String,
}

impl Credentials {
    pub fn demo(provider: &str) -> Self {
        Self {
            id: format!("demo-{provider}-id"),
            api_key: format!("demo-{provider}-api-key-5f1c"),
            secret_key: format!("demo-{provider}-secret-9a7e"),
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
    name: &'static str,
    address: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

struct Shared {
    supplier: Box<dyn Supplier>,
    requests: AtomicU64,
    rejected: AtomicU64,
    /// Requests being answered right now, and the most at any one time.
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    state: Mutex<State>,
}

struct State {
    credentials: Credentials,
    balance: Decimal,
    fault: Option<Fault>,
    /// Added before every balance answer, like a distant or busy supplier.
    latency: Duration,
    sales: Option<(Sales, Instant)>,
    sold: usize,
}

impl Simulator {
    /// Starts the registered supplier `provider` (a name, or a [`Kind`]) on an ephemeral
    /// loopback port with the demo credentials.
    pub async fn start(provider: impl AsRef<str>, balance: Decimal) -> std::io::Result<Self> {
        let entry = super::find(provider.as_ref()).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("no provider {:?} is registered", provider.as_ref()),
            )
        })?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            supplier: (entry.simulator)(),
            requests: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
            state: Mutex::new(State {
                credentials: Credentials::demo(entry.name),
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
            name: entry.name,
            address,
            shared,
            server,
        })
    }

    /// The registry name of the supplier simulated.
    pub fn provider(&self) -> &'static str {
        self.name
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The supplier's own half, for state only it has (issued tokens, a token lifetime).
    pub fn supplier<T: Supplier>(&self) -> Option<&T> {
        let supplier: &dyn Any = &*self.shared.supplier;
        supplier.downcast_ref()
    }

    pub fn credentials(&self) -> Credentials {
        self.shared.state().credentials.clone()
    }

    /// The settings of an account pointing at this simulator, as configuration field names
    /// (`api_id`, `base_url`, ...) for a YAML accounts file.
    pub fn account_fields(&self) -> Vec<(&'static str, String)> {
        self.shared
            .supplier
            .account_fields(&self.credentials(), &self.base_url())
    }

    /// The `SALDO_*` variables that configure an exporter account against this simulator.
    pub fn env(&self, account: &str) -> Vec<(String, String)> {
        let prefix = format!("SALDO_{}_", self.name.to_uppercase());
        self.account_fields()
            .into_iter()
            .chain([("account", account.to_owned())])
            .map(|(field, value)| (format!("{prefix}{}", field.to_uppercase()), value))
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

    /// The most requests this simulator was answering at one time.
    pub fn max_in_flight(&self) -> u64 {
        self.shared.max_in_flight.load(Ordering::SeqCst)
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

/// Decrements the in-flight count however the answer ends (a hung request is dropped).
struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn handle(self: Arc<Self>, request: Request<Incoming>) -> HttpResponse {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let now_in_flight = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let _in_flight = InFlight(&self.in_flight);
        self.max_in_flight
            .fetch_max(now_in_flight, Ordering::SeqCst);
        let (parts, body) = request.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return plain(StatusCode::BAD_REQUEST, "unreadable body"),
        };
        let credentials = self.state().credentials.clone();
        let request = SimRequest {
            parts: &parts,
            body: &body,
            now: SystemTime::now(),
        };
        match self.supplier.verify(&request, &credentials) {
            Err((status, problem)) => {
                self.rejected.fetch_add(1, Ordering::SeqCst);
                return self.supplier.failure(status, problem);
            }
            Ok(Route::Answer(response)) => return response,
            Ok(Route::Balance) => {}
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
            Some(Fault::Refusal) => return self.supplier.failure(StatusCode::OK, "MAINTENANCE"),
        }
        let balance = self.state().advance();
        self.supplier
            .success(balance, &credentials, SystemTime::now())
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

/// The decoded `user:password` of a Basic `Authorization` header.
pub fn basic_credentials(header: Option<&str>) -> Option<String> {
    let encoded = header?.strip_prefix("Basic ")?;
    String::from_utf8(BASE64_STANDARD.decode(encoded).ok()?).ok()
}

pub fn plain(status: StatusCode, body: &'static str) -> HttpResponse {
    respond(status, "text/plain", body.into())
}

/// A JSON answer.
pub fn json(status: StatusCode, body: &serde_json::Value) -> HttpResponse {
    respond(status, "application/json", body.to_string())
}

/// A balance as a JSON number, exactly as the decimal reads.
pub fn json_amount(balance: Decimal) -> serde_json::Value {
    serde_json::Value::Number(
        balance
            .normalize()
            .to_string()
            .parse()
            .expect("a decimal is a JSON number"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn basic_credentials_are_decoded_and_other_schemes_are_not() {
        assert_eq!(
            basic_credentials(Some("Basic eG5kX2RldmVsb3BtZW50X0VYQU1QTEU6")).as_deref(),
            Some("xnd_development_EXAMPLE:")
        );
        assert_eq!(basic_credentials(Some("Bearer abc")), None);
        assert_eq!(basic_credentials(Some("Basic !!")), None);
        assert_eq!(basic_credentials(None), None);
    }

    #[tokio::test]
    async fn an_unregistered_provider_cannot_be_started() {
        let err = Simulator::start("nope", Decimal::ONE).await.err().unwrap();
        assert!(err.to_string().contains("\"nope\""), "{err}");
    }
}
