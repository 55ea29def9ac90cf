//! How one balance check runs: the shared HTTP client, the upstream runtime, the limits on
//! requests in flight, the timeout's name for reqwest's own, and the abort when the collector
//! stops waiting.
//!
//! Two limits apply to every check. Per supplier host (`scheme://host:port` of the account's
//! base URL) at most [`DEFAULT_HOST_IN_FLIGHT`] run at once unless configured otherwise, so a
//! reseller with hundreds of accounts at one supplier never arrives there as a flood; across
//! all hosts at most [`GLOBAL_IN_FLIGHT`], a safety net for the exporter itself. A check holds
//! its slots for all of its requests (a token and a balance call count as one in flight).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use url::Url;

use crate::collector::{CheckFuture, Sent};
use crate::error::UpstreamError;
use crate::providers::{Balance, CheckContext, Provider};

/// Requests in flight to one supplier host when nothing is configured. Suppliers publish no
/// concurrency limits, and a PPOB supplier often runs one modest server for its resellers'
/// API. Sixteen is what a fleet spread over eight suppliers already sent each of them under
/// the old global cap, so no supplier sees more than it did then; a fleet concentrated at one
/// supplier, which used to arrive there 128 at a time, now trickles in 16 at a time (80 checks
/// per second at 200 ms per answer).
pub const DEFAULT_HOST_IN_FLIGHT: usize = 16;

/// Requests in flight across all suppliers, whatever is configured: a safety net for the
/// exporter's own sockets and memory. Twice the old cap, so that it binds only beyond sixteen
/// busy suppliers and a fleet spread over more suppliers is checked faster.
pub const GLOBAL_IN_FLIGHT: usize = 256;

/// Idle connections kept per supplier host: half of [`DEFAULT_HOST_IN_FLIGHT`]. Checks come in
/// bursts, every account of a host falling due in the same scrape; a burst reuses these and
/// opens the rest anew. A pooled TLS connection holds about 30 KB (hyper's buffers, its
/// request channel, rustls' state); with all sixteen of each host kept, 50 accounts at two
/// HTTPS suppliers peaked at the 10 MiB target, with eight at 9.6 MiB (bench/notes.md).
/// Go's HTTP client, which most exporters use, keeps two.
pub const IDLE_PER_HOST: usize = DEFAULT_HOST_IN_FLIGHT / 2;

/// The one HTTP client for every upstream: connection reuse, no redirects (credentials must not
/// follow a redirect to another host), and only the connect phase limited here, since the
/// collector bounds each whole check.
pub fn http_client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("saldo_exporter/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout)
        .pool_max_idle_per_host(IDLE_PER_HOST)
        .build()
}

static GLOBAL_PERMITS: Semaphore = Semaphore::const_new(GLOBAL_IN_FLIGHT);

/// The key accounts share a limit by: `scheme://host:port`.
pub fn host_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// One configuration's limits: a semaphore per supplier host.
pub struct HostLimits {
    hosts: HashMap<String, (usize, Arc<Semaphore>)>,
    /// Hosts whose accounts asked for different limits (the smallest applies), for the log.
    pub warnings: Vec<String>,
}

impl HostLimits {
    /// `accounts` are each account's host and its own `max_in_flight`; `default` applies to
    /// hosts none of whose accounts sets one. Accounts of one host that disagree get the
    /// smallest limit: the one asked for by whoever knows the supplier is fragile.
    pub fn new(
        accounts: impl IntoIterator<Item = (String, Option<usize>)>,
        default: usize,
    ) -> Self {
        let mut asked: HashMap<String, Vec<usize>> = HashMap::new();
        for (host, limit) in accounts {
            asked.entry(host).or_default().extend(limit);
        }
        let mut warnings = Vec::new();
        let hosts = asked
            .into_iter()
            .map(|(host, mut limits)| {
                limits.sort_unstable();
                limits.dedup();
                if limits.len() > 1 {
                    warnings.push(format!(
                        "accounts at {host} ask for max_in_flight {limits:?}; {} applies to all of them",
                        limits[0]
                    ));
                }
                let limit = limits.first().copied().unwrap_or(default);
                (host, (limit, Arc::new(Semaphore::new(limit))))
            })
            .collect();
        Self { hosts, warnings }
    }

    /// The limit of `host`'s requests in flight.
    pub fn of(&self, host: &str) -> Arc<Semaphore> {
        // Every account's host was given to `new`; an unknown one gets a limit of its own.
        self.hosts
            .get(host)
            .map(|(_, slots)| Arc::clone(slots))
            .unwrap_or_else(|| Arc::new(Semaphore::new(DEFAULT_HOST_IN_FLIGHT)))
    }

    /// How many requests `host` may have in flight.
    pub fn limit(&self, host: &str) -> Option<usize> {
        self.hosts.get(host).map(|(limit, _)| *limit)
    }
}

/// Starts one check of `provider` on the upstream runtime: waits for a slot at its host and
/// one overall, marks `sent`, and runs the provider's fetch.
pub fn start(
    provider: Arc<dyn Provider>,
    cx: CheckContext,
    host: Arc<Semaphore>,
    timeout: Duration,
    sent: Sent,
) -> CheckFuture {
    let request = upstream_runtime().spawn(async move {
        // The host's slot first: checks queued for a busy supplier must not hold global slots
        // that checks of other suppliers could use.
        let _host = host.acquire_owned().await.expect("never closed");
        let _global = GLOBAL_PERMITS.acquire().await.expect("never closed");
        sent.mark();
        provider.fetch(&cx).await.map_err(|err| match err {
            // reqwest's own connect timeout does not know the configured limit.
            UpstreamError::Timeout(_) => UpstreamError::Timeout(timeout),
            other => other,
        })
    });
    Box::pin(AbortOnDrop(request))
}

/// Upstream requests run on a runtime of their own. A supplier that floods the connection (endless
/// `100 Continue` answers) keeps hyper parsing for seconds within one poll, and on the serving
/// runtime that would hold up its timers: the scrape deadline and the check timeout.
fn upstream_runtime() -> &'static tokio::runtime::Handle {
    static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
        tokio::runtime::Builder::new_multi_thread()
            // Supplier requests are I/O: two threads carry thousands of them.
            .worker_threads(2)
            .thread_name("saldo-upstream")
            .enable_all()
            .build()
            .expect("the upstream runtime starts")
    });
    RUNTIME.handle()
}

/// A check running on the upstream runtime, aborted when the collector stops waiting for it
/// (at the check timeout), so that its request stops too.
struct AbortOnDrop(JoinHandle<Result<Balance, UpstreamError>>);

impl Future for AbortOnDrop {
    type Output = Result<Balance, UpstreamError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|joined| match joined {
            Ok(result) => result,
            // Only a panic ends the task early; the collector handles it as before.
            Err(err) => std::panic::resume_unwind(err.into_panic()),
        })
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A burst of as many requests as a host may have in flight needs that many connections;
    /// afterwards [`IDLE_PER_HOST`] stay open for the next burst, which opens only the rest.
    #[tokio::test]
    async fn a_burst_leaves_half_its_connections_open_for_the_next() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/saldo", listener.local_addr().unwrap());
        let (accepted, open) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        // Every answer waits until the whole burst has arrived: one connection per request.
        let burst = Arc::new(tokio::sync::Barrier::new(DEFAULT_HOST_IN_FLIGHT));
        tokio::spawn({
            let (accepted, open) = (Arc::clone(&accepted), Arc::clone(&open));
            async move {
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    accepted.fetch_add(1, Ordering::SeqCst);
                    open.fetch_add(1, Ordering::SeqCst);
                    let (open, burst) = (Arc::clone(&open), Arc::clone(&burst));
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |_| {
                            let burst = Arc::clone(&burst);
                            async move {
                                burst.wait().await;
                                Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                    http_body_util::Full::new(hyper::body::Bytes::from("1")),
                                ))
                            }
                        });
                        let io = hyper_util::rt::TokioIo::new(stream);
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .await;
                        open.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            }
        });
        let client = http_client(Duration::from_secs(5)).unwrap();
        let send_burst = || async {
            let requests = (0..DEFAULT_HOST_IN_FLIGHT).map(|_| {
                let (client, url) = (client.clone(), url.clone());
                tokio::spawn(async move { client.get(url).send().await?.bytes().await })
            });
            for request in requests.collect::<Vec<_>>() {
                assert_eq!(&request.await.unwrap().unwrap()[..], b"1");
            }
        };
        let until_open_is = |n: usize| {
            let open = Arc::clone(&open);
            async move {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                while open.load(Ordering::SeqCst) != n {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "{} connections open, not {n}",
                        open.load(Ordering::SeqCst)
                    );
                    tokio::task::yield_now().await;
                }
            }
        };

        send_burst().await;
        assert_eq!(accepted.load(Ordering::SeqCst), DEFAULT_HOST_IN_FLIGHT);
        // The pool closes what it does not keep once every connection has come back to it.
        until_open_is(IDLE_PER_HOST).await;
        send_burst().await;
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2 * DEFAULT_HOST_IN_FLIGHT - IDLE_PER_HOST,
            "the second burst reuses the idle connections and opens only the rest"
        );
        until_open_is(IDLE_PER_HOST).await;
    }

    fn host(url: &str) -> String {
        host_of(&Url::parse(url).unwrap())
    }

    #[test]
    fn accounts_share_a_limit_by_scheme_host_and_port() {
        assert_eq!(
            host("https://api.isikuota.com/v1/"),
            "https://api.isikuota.com"
        );
        assert_eq!(
            host("https://api.isikuota.com:443"),
            "https://api.isikuota.com"
        );
        assert_ne!(host("http://127.0.0.1:8080"), host("http://127.0.0.1:8081"));
        assert_ne!(host("http://gw.example"), host("https://gw.example"));
    }

    #[test]
    fn a_host_gets_the_default_unless_an_account_asks_and_then_the_smallest() {
        let limits = HostLimits::new(
            [
                ("https://a".to_owned(), None),
                ("https://a".to_owned(), None),
                ("https://b".to_owned(), Some(3)),
                ("https://b".to_owned(), None),
                ("https://c".to_owned(), Some(5)),
                ("https://c".to_owned(), Some(2)),
            ],
            8,
        );
        assert_eq!(limits.limit("https://a"), Some(8));
        assert_eq!(limits.limit("https://b"), Some(3));
        assert_eq!(limits.limit("https://c"), Some(2));
        assert_eq!(limits.warnings.len(), 1);
        assert!(
            limits.warnings[0].contains("https://c"),
            "{:?}",
            limits.warnings
        );
        // Accounts of one host share one semaphore.
        assert!(Arc::ptr_eq(
            &limits.of("https://a"),
            &limits.of("https://a")
        ));
    }
}
