//! Hostile upstreams: the real binary against a fake supplier that misbehaves on the wire.
//!
//! Each case first lets the fake give a good answer, so there is a last good balance, then
//! switches it to one misbehaviour and scrapes as Prometheus would, with a 3 s scrape timeout.
//! Whatever the supplier does, `/metrics` answers 200 within that timeout, the failure is
//! counted under the right `reason` and no other, the last good balance stays, `saldo_up` is 0
//! and the exporter's memory stays bounded. The fake is a raw TCP (or TLS) listener, so the
//! tests decide every byte on the wire, including bytes no HTTP library would send.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use saldo_exporter::error::Reason;
use support::{DEADLINE, Exporter, sample};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};

const GOOD_ANSWER: &str = r#"{"success":true,"code":"SUCCESS","message":"ok","data":{"name":"X","balance":25490,"currency":"IDR","checked_at":"2026-05-31 10:21:58"},"errors":null,"meta":null}"#;
const GOOD_BALANCE: f64 = 25_490.0;

/// What Prometheus would allow a scrape; the client gives up after exactly this long.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);
/// The exporter's limit for one upstream check.
const CHECK_TIMEOUT: &str = "2s";

/// How far the exporter's resident memory may grow during a case. Answers are capped at
/// 1 MiB, and a capped read holds at most about twice that (the buffer doubles) plus
/// hyper's read buffers; the rest is room for allocator arenas and TLS state on a noisy
/// machine. An exporter that buffered a 200 MB body would exceed it six times over.
const MEMORY_MARGIN_BYTES: u64 = 32 * 1024 * 1024;

/// What the fake supplier does with each request.
#[derive(Debug, Clone)]
enum Misbehaviour {
    /// This status, with a short text body.
    Status(u16),
    /// HTTP 200 with this content type and body.
    Body(&'static str, String),
    /// A Content-Length the body never reaches: the connection closes after half.
    CutShort,
    /// HTTP 429 with `Retry-After: 1`.
    RateLimited,
    /// This redirect status, pointing at another loopback listener.
    Redirect(u16),
    /// 200 MB of whitespace (a valid start of JSON), chunked or with a Content-Length,
    /// written until the exporter hangs up.
    Endless { chunked: bool },
    /// Headers at once, then one byte of a good answer a second.
    Drip,
    /// A status line, then header lines without end.
    EndlessHeaders,
    /// `100 Continue` after `100 Continue`, never a final answer.
    EndlessContinues,
    /// Not HTTP at all: another service's banner on the port.
    NotHttp,
    /// Reads the request, then sends nothing.
    Silent,
    /// Reads the request, then resets the connection.
    Reset,
    /// Nothing listens any more.
    Refused,
    /// A self-signed certificate instead of the trusted one.
    UntrustedCertificate,
}

/// The good answer with its balance replaced (`None`: no balance field at all).
fn with_balance(balance: Option<&str>) -> String {
    let mut answer: serde_json::Value = serde_json::from_str(GOOD_ANSWER).unwrap();
    let data = answer["data"].as_object_mut().unwrap();
    match balance {
        Some(balance) => data.insert("balance".into(), serde_json::from_str(balance).unwrap()),
        None => data.remove("balance"),
    };
    answer.to_string()
}

macro_rules! hostile_suppliers {
    ($($name:ident: $misbehaviour:expr => $reason:ident,)+) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            use Misbehaviour::*;
            survives(stringify!($name), $misbehaviour, Reason::$reason).await;
        }
    )+};
}

// One line per case: the test, what the supplier does, and the reason it must be counted as.
hostile_suppliers! {
    an_http_500_is_counted_as_http_status: Status(500) => HttpStatus,
    an_http_502_is_counted_as_http_status: Status(502) => HttpStatus,
    an_http_503_is_counted_as_http_status: Status(503) => HttpStatus,
    an_http_403_is_counted_as_auth: Status(403) => Auth,
    an_html_page_is_counted_as_decode:
        Body("text/html", "<!DOCTYPE html><html><body>502 Bad Gateway</body></html>".into()) => Decode,
    truncated_json_is_counted_as_decode:
        Body("application/json", GOOD_ANSWER[..GOOD_ANSWER.len() / 2].into()) => Decode,
    an_empty_body_is_counted_as_decode: Body("application/json", String::new()) => Decode,
    a_null_balance_is_counted_as_decode:
        Body("application/json", with_balance(Some("null"))) => Decode,
    a_text_balance_is_counted_as_decode:
        Body("application/json", with_balance(Some(r#""abc""#))) => Decode,
    a_missing_balance_is_counted_as_decode: Body("application/json", with_balance(None)) => Decode,
    a_failure_envelope_is_counted_as_rejected: Body(
        "application/json",
        r#"{"success":false,"code":"MAINTENANCE","message":"Sedang pemeliharaan","data":null}"#.into(),
    ) => Rejected,
    a_200_mb_chunked_body_is_counted_as_decode_without_being_buffered:
        Endless { chunked: true } => Decode,
    a_200_mb_content_length_is_counted_as_decode_without_being_buffered:
        Endless { chunked: false } => Decode,
    a_body_dripping_one_byte_a_second_is_counted_as_timeout: Drip => Timeout,
    headers_that_never_come_are_counted_as_timeout: Silent => Timeout,
    a_connection_reset_is_counted_as_connect: Reset => Connect,
    an_answer_cut_short_of_its_content_length_is_counted_as_connect: CutShort => Connect,
    a_refused_connection_is_counted_as_connect: Refused => Connect,
    a_302_redirect_is_counted_as_http_status_and_not_followed: Redirect(302) => HttpStatus,
    a_307_redirect_is_counted_as_http_status_and_not_followed: Redirect(307) => HttpStatus,
    a_429_with_retry_after_is_counted_as_rate_limited: RateLimited => RateLimited,
    an_untrusted_certificate_is_counted_as_connect: UntrustedCertificate => Connect,
    endless_headers_are_counted_as_connect_without_being_buffered: EndlessHeaders => Connect,
    // hyper parses these for seconds within one poll of its task; the scrape must still answer.
    endless_100_continues_are_counted_as_timeout_in_time: EndlessContinues => Timeout,
    another_service_on_the_port_is_counted_as_connect: NotHttp => Connect,
}

/// Runs one case against a fresh fake and a fresh exporter (a 429's Retry-After, a hanging
/// check or a refused port would otherwise leak into the next case).
async fn survives(case: &str, misbehaviour: Misbehaviour, reason: Reason) {
    let tls = matches!(misbehaviour, Misbehaviour::UntrustedCertificate).then(Tls::new);
    let mut fake = Fake::start(
        tls.as_ref()
            .map(|tls| (tls.trusted.clone(), tls.untrusted.clone())),
    )
    .await;
    let mut env: Vec<(String, String)> = [
        ("SALDO_ISIKUOTA_API_ID", "hostile-id"),
        ("SALDO_ISIKUOTA_API_KEY", "hostile-api-key"),
        ("SALDO_ISIKUOTA_SECRET_KEY", "hostile-secret-key"),
        ("SALDO_ISIKUOTA_ACCOUNT", "toko-pusat"),
        ("SALDO_MIN_INTERVAL", "0s"),
        ("SALDO_TIMEOUT", CHECK_TIMEOUT),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect();
    env.push(("SALDO_ISIKUOTA_BASE_URL".into(), fake.base_url()));
    if let Some(tls) = &tls {
        // The exporter trusts the system's roots; this makes the test CA one of them.
        env.push(("SSL_CERT_FILE".into(), tls.ca_file.display().to_string()));
    }
    let exporter = Exporter::start(&env).await;
    let client = reqwest::Client::new();

    let good = scrape_until(&exporter, &client, |text| {
        sample(text, "saldo_up", &ACCOUNT) == Some(1.0)
    })
    .await
    .unwrap_or_else(|text| panic!("{case}: no good answer first:\n{text}"));
    assert_eq!(sample(&good, "saldo_balance", &ACCOUNT), Some(GOOD_BALANCE));
    // A slow first check on a loaded machine may have failed before the good answer.
    let counted_before: Vec<f64> = Reason::ALL.iter().map(|r| counted(&good, *r)).collect();
    let memory_before = memory(exporter.pid());
    let requests_before = fake.requests();

    let mut redirect_target = None;
    match &misbehaviour {
        Misbehaviour::Refused => fake.close().await,
        Misbehaviour::Redirect(_) => {
            let target = Recorder::start().await;
            fake.set(misbehaviour.clone(), Some(target.address));
            redirect_target = Some(target);
        }
        _ => fake.set(misbehaviour.clone(), None),
    }

    let newly_counted = |text: &str, reason: Reason| {
        let index = Reason::ALL.iter().position(|r| *r == reason).unwrap();
        counted(text, reason) - counted_before[index]
    };
    let text = scrape_until(&exporter, &client, |text| {
        sample(text, "saldo_up", &ACCOUNT) == Some(0.0) && newly_counted(text, reason) >= 1.0
    })
    .await
    .unwrap_or_else(|text| panic!("{case}: {reason:?} never counted:\n{text}"));

    assert_eq!(
        sample(&text, "saldo_balance", &ACCOUNT),
        Some(GOOD_BALANCE),
        "{case}: the last good balance is gone"
    );
    for other in Reason::ALL.into_iter().filter(|r| *r != reason) {
        assert_eq!(
            newly_counted(&text, other),
            0.0,
            "{case}: counted as {other:?} too"
        );
    }
    let memory_after = memory(exporter.pid());
    eprintln!(
        "{case}: VmRSS {} -> {} KiB, VmHWM {} -> {} KiB, {} MiB written by the fake",
        memory_before.rss / 1024,
        memory_after.rss / 1024,
        memory_before.peak / 1024,
        memory_after.peak / 1024,
        fake.written() / (1024 * 1024),
    );
    for (what, after) in [("VmRSS", memory_after.rss), ("VmHWM", memory_after.peak)] {
        assert!(
            after < memory_before.rss + MEMORY_MARGIN_BYTES,
            "{case}: {what} grew from {} to {after} bytes",
            memory_before.rss
        );
    }
    if let Some(target) = redirect_target {
        assert_eq!(
            target.connections(),
            0,
            "{case}: the redirect was followed; credentials went to another host"
        );
    }
    if tls.is_some() {
        assert_eq!(
            fake.requests(),
            requests_before,
            "{case}: a request was sent to a server with an untrusted certificate"
        );
    }
    let output = exporter.output();
    for secret in ["hostile-api-key", "hostile-secret-key"] {
        assert!(!output.contains(secret), "{case}: a secret is in the logs");
    }
}

const ACCOUNT: [(&str, &str); 2] = [("provider", "isikuota"), ("account", "toko-pusat")];

/// `saldo_upstream_errors_total` for the account and `reason`.
fn counted(text: &str, reason: Reason) -> f64 {
    let series = [ACCOUNT[0], ACCOUNT[1], ("reason", reason.as_str())];
    sample(text, "saldo_upstream_errors_total", &series)
        .unwrap_or_else(|| panic!("no saldo_upstream_errors_total for {reason:?}:\n{text}"))
}

/// `/metrics` as Prometheus fetches it: with its scrape timeout in the header, giving up when
/// that timeout has passed.
async fn scrape(exporter: &Exporter, client: &reqwest::Client) -> String {
    let response = client
        .get(exporter.url("/metrics"))
        .header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            SCRAPE_TIMEOUT.as_secs().to_string(),
        )
        .timeout(SCRAPE_TIMEOUT)
        .send()
        .await
        .unwrap_or_else(|err| panic!("/metrics did not answer within {SCRAPE_TIMEOUT:?}: {err:?}"));
    assert_eq!(response.status(), 200);
    response
        .text()
        .await
        .unwrap_or_else(|err| panic!("/metrics did not finish within {SCRAPE_TIMEOUT:?}: {err}"))
}

/// Scrapes until `done` holds for the page, or [`DEADLINE`] passes (then the last page is the
/// error). With a 0 s min-interval every scrape starts a check, so the pause between scrapes
/// keeps a failing case from hammering the fake.
async fn scrape_until(
    exporter: &Exporter,
    client: &reqwest::Client,
    mut done: impl FnMut(&str) -> bool,
) -> Result<String, String> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let text = scrape(exporter, client).await;
        if done(&text) {
            return Ok(text);
        }
        if Instant::now() > deadline {
            return Err(text);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Memory {
    /// VmRSS: resident now.
    rss: u64,
    /// VmHWM: the most ever resident.
    peak: u64,
}

fn memory(pid: u32) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        let line = status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"));
        let kib: u64 = line.trim().trim_end_matches("kB").trim().parse().unwrap();
        kib * 1024
    };
    Memory {
        rss: field("VmRSS:"),
        peak: field("VmHWM:"),
    }
}

/// A fake isikuota on loopback. It answers every request with the good answer until told to
/// misbehave; each answer closes its connection, so every check opens a new one and meets the
/// current behaviour.
struct Fake {
    address: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

#[derive(Default)]
struct Shared {
    misbehaviour: Mutex<Option<(Misbehaviour, Option<SocketAddr>)>>,
    /// Requests read in full.
    requests: AtomicU64,
    /// Body bytes written to the exporter.
    written: AtomicU64,
}

impl Fake {
    /// `tls`: the trusted and the untrusted certificate to serve, if over TLS.
    async fn start(tls: Option<(TlsAcceptor, TlsAcceptor)>) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let accept = tokio::spawn({
            let shared = Arc::clone(&shared);
            let tls = tls.clone();
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let shared = Arc::clone(&shared);
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        // Errors are the exporter hanging up, which is what it should do.
                        let _ = shared.serve(stream, tls).await;
                    });
                }
            }
        });
        Fake {
            address,
            tls: tls.is_some(),
            shared,
            accept,
        }
    }

    fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.address)
    }

    fn set(&self, misbehaviour: Misbehaviour, redirect_to: Option<SocketAddr>) {
        *self.shared.misbehaviour.lock().unwrap() = Some((misbehaviour, redirect_to));
    }

    fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    fn written(&self) -> u64 {
        self.shared.written.load(Ordering::SeqCst)
    }

    /// Stops listening: from now on connections are refused.
    async fn close(&mut self) {
        self.accept.abort();
        // The listener is dropped with the task, so once this returns nothing listens. The
        // error is the abort itself.
        let _ = (&mut self.accept).await;
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Shared {
    async fn serve(
        &self,
        stream: TcpStream,
        tls: Option<(TlsAcceptor, TlsAcceptor)>,
    ) -> std::io::Result<()> {
        let Some((trusted, untrusted)) = tls else {
            let mut stream = stream;
            self.read_request(&mut stream).await?;
            if matches!(self.misbehaviour(), Some((Misbehaviour::Reset, _))) {
                // SO_LINGER 0: closing sends RST instead of FIN.
                stream.set_zero_linger()?;
                drop(stream);
                return Ok(());
            }
            return self.answer(&mut stream).await;
        };
        let acceptor = match self.misbehaviour() {
            Some((Misbehaviour::UntrustedCertificate, _)) => untrusted,
            _ => trusted,
        };
        let mut stream = acceptor.accept(stream).await?;
        self.read_request(&mut stream).await?;
        self.answer(&mut stream).await
    }

    fn misbehaviour(&self) -> Option<(Misbehaviour, Option<SocketAddr>)> {
        self.misbehaviour.lock().unwrap().clone()
    }

    /// Reads one request: headers, then as much body as Content-Length says.
    async fn read_request(&self, stream: &mut (impl AsyncRead + Unpin)) -> std::io::Result<()> {
        let mut request = Vec::new();
        let mut buffer = [0; 4096];
        let header_end = loop {
            if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            if request.len() > 64 * 1024 {
                return Err(std::io::Error::other("request headers too long"));
            }
            let n = stream.read(&mut buffer).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            request.extend_from_slice(&buffer[..n]);
        };
        let headers = String::from_utf8_lossy(&request[..header_end]).to_lowercase();
        let length: usize = headers
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .map_or(0, |value| value.trim().parse().unwrap_or(0));
        while request.len() < header_end + length {
            let n = stream.read(&mut buffer).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            request.extend_from_slice(&buffer[..n]);
        }
        self.requests.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn answer(
        &self,
        stream: &mut (impl AsyncWrite + AsyncRead + Unpin),
    ) -> std::io::Result<()> {
        let misbehaviour = self.misbehaviour();
        let (head, body) = match &misbehaviour {
            None | Some((Misbehaviour::UntrustedCertificate, _)) => (
                head(200, "application/json", GOOD_ANSWER.len()),
                GOOD_ANSWER.to_owned(),
            ),
            Some((Misbehaviour::Status(status), _)) => {
                let body = "upstream failure";
                (head(*status, "text/plain", body.len()), body.to_owned())
            }
            Some((Misbehaviour::Body(content_type, body), _)) => {
                (head(200, content_type, body.len()), body.clone())
            }
            Some((Misbehaviour::CutShort, _)) => {
                let half = &GOOD_ANSWER[..GOOD_ANSWER.len() / 2];
                (
                    head(200, "application/json", GOOD_ANSWER.len()),
                    half.to_owned(),
                )
            }
            Some((Misbehaviour::RateLimited, _)) => (
                "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned(),
                String::new(),
            ),
            Some((Misbehaviour::Redirect(status), to)) => {
                let to = to.expect("a redirect target");
                (
                    format!(
                        "HTTP/1.1 {status} Redirect\r\nLocation: http://{to}/v1/balance\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    ),
                    String::new(),
                )
            }
            Some((Misbehaviour::Endless { chunked }, _)) => {
                return self.endless(stream, *chunked).await;
            }
            Some((Misbehaviour::Drip, _)) => return self.drip(stream).await,
            Some((Misbehaviour::EndlessHeaders, _)) => {
                return self
                    .repeat(stream, "HTTP/1.1 200 OK\r\n", "X-Padding: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n")
                    .await;
            }
            Some((Misbehaviour::EndlessContinues, _)) => {
                return self.repeat(stream, "", "HTTP/1.1 100 Continue\r\n\r\n").await;
            }
            Some((Misbehaviour::NotHttp, _)) => (
                "SSH-2.0-OpenSSH_9.6\r\n".to_owned(),
                "Invalid SSH identification string.\r\n".to_owned(),
            ),
            Some((Misbehaviour::Silent, _)) => {
                // Holds the connection open until the exporter gives up on it.
                let mut buffer = [0; 1024];
                while stream.read(&mut buffer).await? > 0 {}
                return Ok(());
            }
            Some((Misbehaviour::Reset | Misbehaviour::Refused, _)) => {
                unreachable!("handled before answering")
            }
        };
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        self.written.fetch_add(body.len() as u64, Ordering::SeqCst);
        stream.shutdown().await
    }

    /// 200 MB of whitespace in 64 KiB pieces, until done or the exporter hangs up.
    async fn endless(
        &self,
        stream: &mut (impl AsyncWrite + Unpin),
        chunked: bool,
    ) -> std::io::Result<()> {
        const TOTAL: usize = 200 * 1024 * 1024;
        const PIECE: usize = 64 * 1024;
        let framing = if chunked {
            "Transfer-Encoding: chunked".to_owned()
        } else {
            format!("Content-Length: {TOTAL}")
        };
        stream
            .write_all(
                format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{framing}\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let piece = vec![b' '; PIECE];
        for _ in 0..TOTAL / PIECE {
            if chunked {
                stream
                    .write_all(format!("{PIECE:x}\r\n").as_bytes())
                    .await?;
            }
            stream.write_all(&piece).await?;
            if chunked {
                stream.write_all(b"\r\n").await?;
            }
            self.written.fetch_add(PIECE as u64, Ordering::SeqCst);
        }
        if chunked {
            stream.write_all(b"0\r\n\r\n").await?;
        }
        Ok(())
    }

    /// `first`, then `again` over and over (up to 200 MB) until the exporter hangs up.
    async fn repeat(
        &self,
        stream: &mut (impl AsyncWrite + Unpin),
        first: &str,
        again: &str,
    ) -> std::io::Result<()> {
        stream.write_all(first.as_bytes()).await?;
        let piece = again.repeat(64 * 1024 / again.len());
        for _ in 0..200 * 1024 * 1024 / piece.len() {
            stream.write_all(piece.as_bytes()).await?;
            self.written.fetch_add(piece.len() as u64, Ordering::SeqCst);
        }
        Ok(())
    }

    /// The good answer, one byte a second after prompt headers.
    async fn drip(&self, stream: &mut (impl AsyncWrite + Unpin)) -> std::io::Result<()> {
        stream
            .write_all(head(200, "application/json", GOOD_ANSWER.len()).as_bytes())
            .await?;
        let mut every_second = tokio::time::interval(Duration::from_secs(1));
        for byte in GOOD_ANSWER.bytes() {
            every_second.tick().await;
            stream.write_all(&[byte]).await?;
            stream.flush().await?;
            self.written.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

fn head(status: u16, content_type: &str, length: usize) -> String {
    format!(
        "HTTP/1.1 {status} Whatever\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    )
}

/// A listener that only counts connections: the target of a redirect.
struct Recorder {
    address: SocketAddr,
    connections: Arc<AtomicU64>,
    accept: JoinHandle<()>,
}

impl Recorder {
    async fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicU64::new(0));
        let accept = tokio::spawn({
            let connections = Arc::clone(&connections);
            async move {
                while listener.accept().await.is_ok() {
                    connections.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Recorder {
            address,
            connections,
            accept,
        }
    }

    fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// A test CA (trusted by the exporter through `SSL_CERT_FILE`) with a certificate for
/// 127.0.0.1, and a self-signed certificate for 127.0.0.1 that nothing trusts.
struct Tls {
    _dir: tempfile::TempDir,
    ca_file: PathBuf,
    trusted: TlsAcceptor,
    untrusted: TlsAcceptor,
}

impl Tls {
    fn new() -> Tls {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa,
            KeyPair,
        };

        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let mut leaf_params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();
        let self_signed = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();

        let acceptor = |cert: &CertificateDer<'static>, key: &KeyPair| {
            let config = ServerConfig::builder()
                .with_no_client_auth()
                .with_single_cert(
                    vec![cert.clone()],
                    PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
                )
                .unwrap();
            TlsAcceptor::from(Arc::new(config))
        };
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        Tls {
            trusted: acceptor(leaf.der(), &leaf_key),
            untrusted: acceptor(self_signed.cert.der(), &self_signed.signing_key),
            ca_file,
            _dir: dir,
        }
    }
}
