//! The HTTP side: `/metrics`, the landing page, `/-/healthy`, `/-/ready`, graceful shutdown.
//!
//! [`serve`] takes the listener and a shutdown future, so tests own the socket and the stop.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use http_body_util::Full;
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::header::{
    ACCEPT_ENCODING, ALLOW, CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue, VARY,
    WWW_AUTHENTICATE,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::time::{Instant, timeout};

use crate::collector::Collector;
use crate::error::UpstreamError;
use crate::landing;
use crate::metrics;
use crate::web::Live;
use crate::zero_copy::{Conn, Texts};

/// Prometheus sends its scrape timeout in this header; answering this much before it leaves
/// room for the answer to travel (blackbox_exporter uses the same margin).
const SCRAPE_TIMEOUT_HEADER: &str = "x-prometheus-scrape-timeout-seconds";
const SCRAPE_TIMEOUT_MARGIN: f64 = 0.5;

/// How long past the check timeout a scrape waits, when Prometheus' timeout allows, for the
/// timeout to be recorded.
const TIMEOUT_REPORT_MARGIN: Duration = Duration::from_millis(250);

/// How long a client may take to complete a TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long open connections may finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

pub struct App {
    pub collector: Collector,
    /// TLS, basic auth and extra headers from `--web.config.file`, read again when it changes.
    pub web: Arc<Live>,
    /// The check timeout, and the scrape deadline when Prometheus sends none.
    pub timeout: Duration,
    /// Where the metrics are served (`--web.telemetry-path`).
    pub telemetry_path: String,
    /// The plain text that answers send from a pipe rather than by copying.
    pub texts: Arc<Texts>,
}

pub type HttpResponse = Response<Full<Bytes>>;

/// The exporter's own answers: a body of shared chunks sent as they are, so that the cached
/// exposition goes out without a copy per response (hyper writes the chunks with one
/// `writev`).
pub type Answer = Response<Chunks>;

/// A body of up to two shared chunks, in order.
#[derive(Default)]
pub struct Chunks([Bytes; 2]);

impl Chunks {
    pub fn new(chunks: [Bytes; 2]) -> Self {
        Self(chunks)
    }
}

impl From<Bytes> for Chunks {
    fn from(body: Bytes) -> Self {
        Self([body, Bytes::new()])
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let next = self
            .get_mut()
            .0
            .iter_mut()
            .find(|chunk| !chunk.is_empty())
            .map(std::mem::take);
        Poll::Ready(next.map(|chunk| Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.iter().all(Bytes::is_empty)
    }

    /// Exact, so hyper sends a Content-Length rather than chunked encoding.
    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.iter().map(|chunk| chunk.len() as u64).sum())
    }
}

/// Serves the exporter on `listener` until `shutdown` completes.
pub async fn serve(listener: TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()>) {
    let tls = app.web.serves_tls().then(|| Arc::clone(&app.web));
    let texts = Arc::clone(&app.texts);
    accept_connections(
        listener,
        tls,
        Some(texts),
        move |request| respond_to(Arc::clone(&app), request),
        shutdown,
    )
    .await;
}

/// Accepts plain HTTP/1 connections and answers each request with `handler` until `shutdown`.
/// Shared with the simulators.
pub async fn accept_loop<H, F>(
    listener: TcpListener,
    handler: H,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
{
    accept_connections(listener, None, None, handler, shutdown).await;
}

/// Accepts HTTP/1 connections (over TLS, with its current certificate, when `tls` is given) and
/// answers each request with `handler`, until `shutdown`; then lets open connections finish for
/// a short grace period. Plain connections send `texts` from a pipe.
pub async fn accept_connections<H, F, B>(
    listener: TcpListener,
    tls: Option<Arc<Live>>,
    texts: Option<Arc<Texts>>,
    handler: H,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes, Error = Infallible> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of file descriptors, usually: back off rather than spin.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let handler = handler.clone();
        let service = service_fn(move |request| {
            let response = handler(request);
            async move { Ok::<_, Infallible>(response.await) }
        });
        let mut http = http1::Builder::new();
        // Enables hyper's header read timeout, so idle half-open clients are dropped.
        http.timer(TokioTimer::new());
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let texts = texts.clone();
        tokio::spawn(async move {
            let served = match tls {
                None => {
                    let stream = Conn::new(stream, texts);
                    let connection = http.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(connection).await
                }
                Some(live) => {
                    // In the connection's task, so a slow client cannot stall accepting others.
                    let stream = match timeout(TLS_HANDSHAKE_TIMEOUT, live.accept(stream)).await {
                        Ok(Ok(Some(stream))) => stream,
                        // Plain HTTP, answered with a 400, or not even that.
                        Ok(Ok(None)) => return,
                        Ok(Err(err)) => {
                            tracing::debug!(error = %err, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake timed out");
                            return;
                        }
                    };
                    let connection = http.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(connection).await
                }
            };
            if let Err(err) = served {
                tracing::debug!(error = %err, "connection closed with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::debug!("connections still open after the shutdown grace period");
        }
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("a SIGTERM handler can be installed");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down");
}

/// Asks a running exporter on `listen` whether it is healthy, for container health checks
/// that have no shell or curl. 401 counts as alive: the endpoint may sit behind basic auth.
pub async fn healthcheck(listen: SocketAddr, https: bool) -> Result<(), String> {
    let host = match listen.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => IpAddr::from(Ipv4Addr::LOCALHOST),
        ip if ip.is_unspecified() => IpAddr::from(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let scheme = if https { "https" } else { "http" };
    let url = format!(
        "{scheme}://{}/-/healthy",
        SocketAddr::new(host, listen.port())
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        // Checking our own process over loopback: its certificate need not name "localhost".
        .tls_danger_accept_invalid_certs(https)
        .build()
        .map_err(|err| err.to_string())?;
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|err| format!("{url}: {}", UpstreamError::from(err)))?;
    match response.status() {
        StatusCode::OK | StatusCode::UNAUTHORIZED => Ok(()),
        status => Err(format!("{url}: HTTP {status}")),
    }
}

/// Applies the web configuration around [`handle`]: basic auth first, extra headers on every
/// answer, 401 included.
async fn respond_to(app: Arc<App>, request: Request<Incoming>) -> Answer {
    let web = app.web.current().await;
    let mut response = match &web.auth {
        Some(auth) if !auth.allows(request.headers()).await => {
            let mut response = text(StatusCode::UNAUTHORIZED, "Unauthorized\n");
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"saldo_exporter\""),
            );
            response
        }
        _ => handle(&app, request).await,
    };
    for (name, value) in &web.headers {
        response.headers_mut().insert(name, value.clone());
    }
    response
}

async fn handle(app: &App, request: Request<Incoming>) -> Answer {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed\n");
        response
            .headers_mut()
            .insert(ALLOW, "GET, HEAD".parse().expect("a valid header value"));
        return response;
    }
    match request.uri().path() {
        path if path == app.telemetry_path => {
            // HEAD asks for the headers only (a link checker, a probe): it must not make the
            // exporter call the suppliers.
            let get = request.method() == Method::GET;
            if get {
                let budget = scrape_budget(request.headers(), app.timeout);
                app.collector.refresh(Instant::now() + budget).await;
            }
            let gzip = accepts_gzip(request.headers());
            let chunks = app.collector.exposition().chunks(gzip);
            if get
                && !gzip
                && let Some(saldo) = chunks.iter().max_by_key(|chunk| chunk.len())
            {
                // The `saldo_*` text: the `process_*` one is small and changes every second. A
                // HEAD answer has no body, so no pipe is made for it.
                app.texts.offer(saldo);
            }
            let body = Chunks::new(chunks);
            let mut response = Response::new(body);
            let headers = response.headers_mut();
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static(metrics::CONTENT_TYPE),
            );
            headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
            if gzip {
                headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            response
        }
        "/" => answer(
            StatusCode::OK,
            "text/html; charset=utf-8",
            Bytes::from(landing::page(
                &app.collector.statuses(),
                &app.telemetry_path,
                SystemTime::now(),
            )),
        ),
        "/-/healthy" => text(StatusCode::OK, "Healthy\n"),
        // Configuration is loaded and checked before the listener exists, so serving means ready.
        "/-/ready" => text(StatusCode::OK, "Ready\n"),
        _ => text(StatusCode::NOT_FOUND, "Not found\n"),
    }
}

/// Whether the client takes a gzip body (Prometheus asks for it on every scrape). A `q=0`
/// refuses it, as RFC 9110 says.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|param| {
                param
                    .trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// How long a scrape may wait for checks: Prometheus' timeout less a margin, or the check
/// timeout when Prometheus sends none. Where Prometheus allows it, the wait goes a moment past
/// the check timeout, so that a check timing out is reported by this scrape, not the next. A
/// timeout shorter than the margin is answered at once with what is known (due checks still
/// start, and serve the next scrape), never after Prometheus has given up.
///
/// The header is client input: any text, `inf`, `NaN` or `1e20` must give a sane budget, never
/// a panic (`Duration::from_secs_f64` panics on values it cannot hold).
pub fn scrape_budget(headers: &HeaderMap, timeout: Duration) -> Duration {
    let longest = timeout + TIMEOUT_REPORT_MARGIN;
    headers
        .get(SCRAPE_TIMEOUT_HEADER)
        .and_then(|value| value.to_str().ok()?.trim().parse::<f64>().ok())
        // NaN fails the comparison; no scraper sends a timeout of zero or less.
        .filter(|seconds| *seconds > 0.0)
        .map(|seconds| (seconds - SCRAPE_TIMEOUT_MARGIN).max(0.0))
        // Infinity is bounded here too.
        .map(|seconds| Duration::from_secs_f64(seconds.min(longest.as_secs_f64())))
        .unwrap_or(timeout)
}

/// A response with a body and its content type; shared with the simulators.
pub fn respond(status: StatusCode, content_type: &str, body: String) -> HttpResponse {
    with_type(status, content_type, Full::new(Bytes::from(body)))
}

fn answer(status: StatusCode, content_type: &'static str, body: Bytes) -> Answer {
    with_type(status, content_type, Chunks::from(body))
}

fn with_type<B>(status: StatusCode, content_type: &str, body: B) -> Response<B> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        content_type.parse().expect("a valid content type"),
    );
    response
}

fn text(status: StatusCode, body: &'static str) -> Answer {
    answer(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real handler and server, twenty accounts (a 50 KiB text): plain answers go out
    /// through a pipe, whole, and compressed ones as before.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn plain_metrics_are_sent_from_a_pipe_and_gzip_as_before() {
        use crate::collector::Target;
        use crate::providers::Balance;

        let targets = (0..20)
            .map(|i| Target {
                provider: "isikuota",
                account: format!("account-{i}"),
                min_interval: Duration::from_secs(3600),
                timeout: Duration::from_secs(5),
                warning_threshold: None,
                critical_threshold: None,
                check: Arc::new(|sent: crate::collector::Sent| {
                    sent.mark();
                    Box::pin(async {
                        Ok(Balance {
                            amount: 1_500_000.into(),
                            currency: "IDR".into(),
                            holder: None,
                        })
                    })
                }),
            })
            .collect();
        let app = Arc::new(App {
            collector: Collector::new(targets, Arc::new(metrics::Metrics::new())),
            web: Arc::new(Live::new(Default::default())),
            timeout: Duration::from_secs(5),
            telemetry_path: "/metrics".into(),
            texts: Arc::default(),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/metrics", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, Arc::clone(&app), async {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::new();
        client.head(&url).send().await.unwrap();
        assert!(!app.texts.holds_a_text(), "a HEAD answer sends no text");
        let mut bodies = Vec::new();
        for _ in 0..3 {
            let response = client.get(&url).send().await.unwrap();
            assert!(response.headers().get(CONTENT_ENCODING).is_none());
            bodies.push(response.text().await.unwrap());
        }
        let gzip = client
            .get(&url)
            .header(ACCEPT_ENCODING, "gzip")
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let saldo = |text: &str| {
            text.lines()
                .filter(|line| line.starts_with("saldo_"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(saldo(&bodies[0]).matches("saldo_balance{").count(), 20);
        assert!(bodies.iter().all(|body| saldo(body) == saldo(&bodies[0])));
        assert!(bodies[0].len() > 32 * 1024, "{} bytes", bodies[0].len());
        let mut unzipped = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::MultiGzDecoder::new(&gzip[..]),
            &mut unzipped,
        )
        .unwrap();
        assert_eq!(saldo(&unzipped), saldo(&bodies[0]));
        assert_eq!(app.texts.spliced(), 3, "each plain answer, and no gzip one");
        stop.send(()).unwrap();
        server.await.unwrap();
    }

    fn budget(header: Option<&'static str>) -> Duration {
        let mut headers = HeaderMap::new();
        if let Some(value) = header {
            headers.insert(SCRAPE_TIMEOUT_HEADER, HeaderValue::from_static(value));
        }
        scrape_budget(&headers, Duration::from_secs(10))
    }

    #[test]
    fn the_scrape_budget_is_prometheus_timeout_less_half_a_second() {
        assert_eq!(budget(Some("2")), Duration::from_millis(1500));
        assert_eq!(budget(Some("9.5")), Duration::from_secs(9));
    }

    #[test]
    fn the_scrape_budget_ends_just_after_the_check_timeout_when_prometheus_waits_longer() {
        assert_eq!(budget(Some("30")), Duration::from_millis(10_250));
        assert_eq!(budget(Some("10.6")), Duration::from_millis(10_100));
        assert_eq!(budget(None), Duration::from_secs(10));
    }

    #[test]
    fn a_useless_scrape_timeout_header_falls_back_to_the_check_timeout() {
        for value in ["0", "-1", "-5", "NaN", "-inf", "soon", ""] {
            assert_eq!(budget(Some(value)), Duration::from_secs(10), "{value}");
        }
    }

    #[test]
    fn a_scrape_timeout_below_the_margin_is_answered_at_once() {
        for value in ["0.5", "0.4", "0.001"] {
            assert_eq!(budget(Some(value)), Duration::ZERO, "{value}");
        }
        assert_eq!(budget(Some("0.6")), Duration::from_millis(100));
    }

    #[test]
    fn gzip_is_served_only_to_clients_that_accept_it() {
        let accepts = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(ACCEPT_ENCODING, HeaderValue::from_static(value));
            accepts_gzip(&headers)
        };
        assert!(accepts("gzip"));
        assert!(accepts("identity, gzip;q=0.5"));
        assert!(accepts("GZIP"));
        assert!(accepts("*"));
        assert!(!accepts("gzip;q=0"));
        assert!(!accepts("gzip; q=0.0, identity"));
        assert!(!accepts("deflate, br"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn a_huge_scrape_timeout_header_is_bounded_rather_than_a_panic() {
        for value in [
            "1e20",
            "inf",
            "+Infinity",
            "1e308",
            "18446744073709551616",
            "99999999999999999999999999999999999999",
        ] {
            assert_eq!(
                budget(Some(value)),
                Duration::from_millis(10_250),
                "{value}"
            );
        }
    }
}
