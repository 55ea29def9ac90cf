//! The web configuration file of Prometheus' own exporters (exporter-toolkit's format): TLS,
//! client certificates, bcrypt basic auth and extra response headers for `/metrics` and every
//! other endpoint.
//!
//! As strict as exporter-toolkit, never weaker. Relative paths are resolved against the file's
//! directory. Settings this exporter cannot honour (TLS 1.0/1.1, cipher suite lists, ...) are
//! refused by name rather than ignored, and so are duplicate keys: a security setting that
//! silently does nothing is worse than an error. Errors are one line and name the setting, never
//! a value from the file: the file may not be what the user meant to point at.
//!
//! [`Live`] holds the configuration while serving and reads it again when the file or a
//! certificate, key or CA file it names changes, as exporter-toolkit reads its file per
//! request and its certificates per connection.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use hyper::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;

use crate::yaml;

/// Response headers exporter-toolkit lets the file set, with the values it allows (`None`:
/// any). Names are matched exactly, as exporter-toolkit does.
const ALLOWED_HEADERS: [(&str, Option<&[&str]>); 5] = [
    ("Strict-Transport-Security", None),
    ("X-Content-Type-Options", Some(&["nosniff"])),
    ("X-Frame-Options", Some(&["deny", "sameorigin"])),
    ("X-XSS-Protection", None),
    ("Content-Security-Policy", None),
];

/// Hashes of a higher cost are refused: cost 14 already takes about a second per check on one
/// core, each cost above doubles it, and start-up computes a hash of the highest cost (see
/// [`BasicAuth`]).
const MAX_BCRYPT_COST: u32 = 14;

/// bcrypt checks run one at a time in the whole process, so that a flood of logins with wrong
/// passwords takes one core at most, not all of them.
static BCRYPT: Semaphore = Semaphore::const_new(1);

/// How many login outcomes are remembered. Failures are many so that a scraper retrying a
/// wrong password is not checked every scrape even during a flood: bcrypt itself limits how
/// fast failures can be added (one check at a time, about 50 ms each at cost 10), so 1,024 of
/// them span close to a minute of the fastest flood. A success needs the password, so there
/// are few.
const REMEMBERED_FAILURES: usize = 1024;
const REMEMBERED_SUCCESSES: usize = 64;

/// How often, at most, the files are looked at for changes.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The first byte of a TLS connection: a handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// Go's net/http answer to plain HTTP on a TLS port.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.0 400 Bad Request\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Length: 48\r\n\
Connection: close\r\n\
\r\n\
Client sent an HTTP request to an HTTPS server.\n";

/// A web configuration that cannot be used: the setting that named the file
/// (`--web.config.file`, `SALDO_WEB_CONFIG_FILE`) and what is wrong, in one line without any
/// value from the file.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct WebConfigError {
    pub setting: String,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    tls_server_config: Option<TlsFile>,
    #[serde(default)]
    http_server_config: Option<HttpFile>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, SecretString>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_ca_file: Option<PathBuf>,
    #[serde(default)]
    client_auth_type: ClientAuth,
    min_version: Option<String>,
    max_version: Option<String>,
    /// Accepted for compatibility; rustls always uses its own, secure order.
    #[serde(default)]
    #[allow(dead_code)]
    prefer_server_cipher_suites: Option<bool>,
    // Known to exporter-toolkit, not supported here: refused by name.
    cert: Option<Value>,
    key: Option<Value>,
    cipher_suites: Option<Value>,
    curve_preferences: Option<Value>,
    client_allowed_sans: Option<Value>,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    #[default]
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    /// Accepted for compatibility; the exporter serves HTTP/1.1, which is what Prometheus uses.
    #[serde(default)]
    #[allow(dead_code)]
    http2: Option<bool>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// The loaded web configuration. The default serves plain HTTP to anyone.
#[derive(Clone, Default)]
pub struct WebConfig {
    pub tls: Option<TlsAcceptor>,
    pub headers: HeaderMap,
    pub auth: Option<Arc<BasicAuth>>,
    /// The file this was read from, for [`Live`] to watch; `None` for the default.
    source: Option<Source>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("basic_auth", &self.auth.is_some())
            .finish()
    }
}

#[derive(Clone)]
struct Source {
    path: PathBuf,
    setting: String,
    /// The files read, as they were just before reading them.
    read: Fingerprint,
}

impl WebConfig {
    /// Reads and checks the file. `setting` names how the user gave it, for errors.
    pub fn load(path: &Path, setting: &str) -> Result<Self, WebConfigError> {
        attempt(path, setting, None).0
    }
}

/// Reads the file once: the result, and the files it read (the web configuration as read, then
/// the certificate, key and CA files it names as they were just before being read, so that a
/// change made meanwhile is noticed next time). Users and hashes identical to those of
/// `previous` keep its [`BasicAuth`], with the logins it remembers.
fn attempt(
    path: &Path,
    setting: &str,
    previous: Option<&Arc<BasicAuth>>,
) -> (Result<WebConfig, WebConfigError>, Fingerprint) {
    let error = |field: &str, message: &str| {
        let at = if field.is_empty() {
            String::new()
        } else {
            format!(" {field}")
        };
        WebConfigError {
            setting: one_line(setting),
            message: one_line(&format!("{}{at}: {message}", path.display())),
        }
    };
    let bytes = std::fs::read(path);
    let mut read = Fingerprint(vec![(
        path.to_path_buf(),
        bytes
            .as_deref()
            .ok()
            .map(|bytes| Sha256::digest(bytes).into()),
    )]);
    let text = match bytes.map(String::from_utf8) {
        Ok(Ok(text)) => text,
        Ok(Err(_)) => return (Err(error("", "not UTF-8 text")), read),
        Err(err) => return (Err(error("", &format!("cannot read: {err}"))), read),
    };
    let file: File = match yaml::from_str(&text) {
        Ok(file) => file,
        Err(err) => return (Err(error(err.path(), &err.message())), read),
    };
    let base = path.parent().unwrap_or(Path::new("."));
    if let Some(tls) = &file.tls_server_config {
        read.add(
            [&tls.cert_file, &tls.key_file, &tls.client_ca_file]
                .into_iter()
                .flatten()
                .map(|file| base.join(file)),
        );
    }
    let result = build(file, base, previous).map_err(|(field, message)| error(&field, &message));
    let result = result.map(|mut config| {
        config.source = Some(Source {
            path: path.to_path_buf(),
            setting: setting.to_owned(),
            read: read.clone(),
        });
        config
    });
    (result, read)
}

/// A field and what is wrong with it.
type Problem = (String, String);

fn build(file: File, base: &Path, previous: Option<&Arc<BasicAuth>>) -> Result<WebConfig, Problem> {
    let tls = match file.tls_server_config {
        None => None,
        Some(tls) => Some(
            tls_acceptor(tls, base)
                .map_err(|(field, message)| (format!("tls_server_config.{field}"), message))?,
        ),
    };

    let mut headers = HeaderMap::new();
    for (name, value) in file
        .http_server_config
        .map(|h| h.headers)
        .unwrap_or_default()
    {
        let field = format!("http_server_config.headers.{name}");
        let Some((name, values)) = ALLOWED_HEADERS.iter().find(|(allowed, _)| *allowed == name)
        else {
            let names: Vec<&str> = ALLOWED_HEADERS.iter().map(|(name, _)| *name).collect();
            return Err((
                field,
                format!(
                    "not one of the headers that may be set: {}",
                    names.join(", ")
                ),
            ));
        };
        if let Some(values) = values
            && !values.contains(&value.as_str())
        {
            return Err((field, format!("must be one of {}", values.join(", "))));
        }
        let value = HeaderValue::from_str(&value)
            .map_err(|_| (field, "not a valid header value".to_owned()))?;
        let name = HeaderName::from_bytes(name.as_bytes()).expect("allowed names are valid");
        headers.insert(name, value);
    }

    let auth = if file.basic_auth_users.is_empty() {
        None
    } else {
        match previous {
            Some(previous) if previous.has_users(&file.basic_auth_users) => {
                Some(Arc::clone(previous))
            }
            _ => Some(Arc::new(BasicAuth::new(file.basic_auth_users)?)),
        }
    };
    Ok(WebConfig {
        tls,
        headers,
        auth,
        source: None,
    })
}

fn tls_acceptor(tls: TlsFile, base: &Path) -> Result<TlsAcceptor, (&'static str, String)> {
    for (field, given) in [
        ("cert", tls.cert.is_some()),
        ("key", tls.key.is_some()),
        ("cipher_suites", tls.cipher_suites.is_some()),
        ("curve_preferences", tls.curve_preferences.is_some()),
        ("client_allowed_sans", tls.client_allowed_sans.is_some()),
    ] {
        if given {
            return Err((field, "not supported by saldo_exporter".into()));
        }
    }
    let version = |name: &Option<String>, field| match name.as_deref() {
        None => Ok(None),
        Some("TLS12") => Ok(Some(&rustls::version::TLS12)),
        Some("TLS13") => Ok(Some(&rustls::version::TLS13)),
        Some(_) => Err((field, "not supported: TLS12 or TLS13".to_owned())),
    };
    let min = version(&tls.min_version, "min_version")?;
    let max = version(&tls.max_version, "max_version")?;
    let mut versions = vec![&rustls::version::TLS12, &rustls::version::TLS13];
    if min == Some(&rustls::version::TLS13) {
        versions.retain(|v| v.version == rustls::ProtocolVersion::TLSv1_3);
    }
    if max == Some(&rustls::version::TLS12) {
        versions.retain(|v| v.version == rustls::ProtocolVersion::TLSv1_2);
    }
    if versions.is_empty() {
        return Err(("min_version", "is above max_version".into()));
    }

    // A CA that is read but not used would let clients without a certificate in, unnoticed.
    let verifies = matches!(
        tls.client_auth_type,
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
    );
    if tls.client_ca_file.is_some() && !verifies {
        return Err((
            "client_ca_file",
            "given without a client_auth_type that verifies client certificates \
             (VerifyClientCertIfGiven or RequireAndVerifyClientCert)"
                .into(),
        ));
    }

    let cert_file = tls
        .cert_file
        .ok_or(("cert_file", "required for TLS".into()))?;
    let key_file = tls
        .key_file
        .ok_or(("key_file", "required for TLS".into()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(base.join(&cert_file))
        .and_then(|certs| certs.collect())
        .map_err(|err| ("cert_file", pem_problem(err)))?;
    if certs.is_empty() {
        return Err(("cert_file", "holds no certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_file(base.join(&key_file))
        .map_err(|err| ("key_file", pem_problem(err)))?;

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|err| ("min_version", err.to_string()))?;
    let builder = match tls.client_auth_type {
        ClientAuth::NoClientCert => builder.with_no_client_auth(),
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => {
            return Err((
                "client_auth_type",
                "only NoClientCert, VerifyClientCertIfGiven and RequireAndVerifyClientCert are supported".into(),
            ));
        }
        auth @ (ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert) => {
            let ca_file = tls.client_ca_file.ok_or((
                "client_ca_file",
                "required to verify client certificates".into(),
            ))?;
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(base.join(&ca_file))
                .map_err(|err| ("client_ca_file", pem_problem(err)))?
            {
                let cert = cert.map_err(|err| ("client_ca_file", pem_problem(err)))?;
                roots
                    .add(cert)
                    .map_err(|err| ("client_ca_file", err.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == ClientAuth::VerifyClientCertIfGiven {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|err| ("client_ca_file", err.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|err| ("key_file", err.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Why a PEM file could not be used. Some of the parser's own messages quote a line of the
/// file, which may be a key: those are replaced.
fn pem_problem(err: pem::Error) -> String {
    match err {
        pem::Error::Io(err) => format!("cannot read: {err}"),
        pem::Error::NoItemsFound => "holds no PEM item of the expected kind".into(),
        _ => "not a valid PEM file".into(),
    }
}

fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_control())
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the files read held, by SHA-256: a file written in place, replaced by a rename (as
/// Kubernetes does with secrets) or removed is noticed whatever its size and times say, and a
/// file only touched is not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Fingerprint(Vec<(PathBuf, Option<[u8; 32]>)>);

impl Fingerprint {
    fn add(&mut self, paths: impl IntoIterator<Item = PathBuf>) {
        for path in paths {
            let digest = digest(&path);
            self.0.push((path, digest));
        }
    }

    fn is_current(&self) -> bool {
        self.0.iter().all(|(path, seen)| digest(path) == *seen)
    }
}

/// `None` when the file cannot be read. Follows symbolic links.
fn digest(path: &Path) -> Option<[u8; 32]> {
    let content = std::fs::read(path).ok()?;
    Some(Sha256::digest(content).into())
}

/// The web configuration while serving: read again when its file, or a certificate, key or
/// CA file it names, changes, so that a rotated certificate or a new password needs no restart.
///
/// The files are looked at by the requests and connections themselves, at most once per
/// [`CHECK_INTERVAL`]: no traffic, no work. One caller reads them, on a blocking thread (a
/// new file may mean a bcrypt hash to compute); the others go on with the configuration in
/// place. A file that cannot be used is logged once and the last good configuration kept; it
/// is read again when it changes again.
pub struct Live {
    current: RwLock<Arc<WebConfig>>,
    /// Whether the listener speaks TLS, fixed at start: a plain listener cannot turn TLS on.
    tls: bool,
    watch: tokio::sync::Mutex<Watch>,
    check_interval: Duration,
}

struct Watch {
    checked: Instant,
    /// The files of the last attempt, good or not, as they were when read.
    seen: Fingerprint,
}

impl Live {
    pub fn new(config: WebConfig) -> Self {
        Self::checking_every(config, CHECK_INTERVAL)
    }

    fn checking_every(config: WebConfig, check_interval: Duration) -> Self {
        let seen = config
            .source
            .as_ref()
            .map(|source| source.read.clone())
            .unwrap_or_default();
        Self {
            tls: config.tls.is_some(),
            current: RwLock::new(Arc::new(config)),
            watch: tokio::sync::Mutex::new(Watch {
                checked: Instant::now(),
                seen,
            }),
            check_interval,
        }
    }

    /// Whether the listener speaks TLS.
    pub fn serves_tls(&self) -> bool {
        self.tls
    }

    /// The configuration in place, without looking at the files.
    pub fn snapshot(&self) -> Arc<WebConfig> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The configuration for a new request or connection, read again first if a file changed.
    pub async fn current(&self) -> Arc<WebConfig> {
        self.refresh().await;
        self.snapshot()
    }

    async fn refresh(&self) {
        let config = self.snapshot();
        let Some(source) = config.source.clone() else {
            return;
        };
        // Someone else is looking: go on with what is in place.
        let Ok(mut watch) = self.watch.try_lock() else {
            return;
        };
        if watch.checked.elapsed() < self.check_interval {
            return;
        }
        watch.checked = Instant::now();
        let seen = watch.seen.clone();
        let previous = config.auth.clone();
        let read = tokio::task::spawn_blocking(move || {
            (!seen.is_current()).then(|| attempt(&source.path, &source.setting, previous.as_ref()))
        })
        .await;
        let Ok(Some((result, read))) = read else {
            return;
        };
        watch.seen = read;
        match result {
            Ok(new) => self.install(new, &config),
            Err(err) => tracing::error!(
                setting = %err.setting,
                error = %err.message,
                "web configuration not reloaded; the running one is kept until the file changes again"
            ),
        }
    }

    fn install(&self, mut new: WebConfig, old: &WebConfig) {
        let setting = new
            .source
            .as_ref()
            .map(|source| source.setting.clone())
            .unwrap_or_default();
        if new.tls.is_some() != self.tls {
            tracing::error!(
                setting = %setting,
                "tls_server_config turns TLS {} while the listener {}: that needs a restart; \
                 until then the rest of the file applies",
                if self.tls { "off" } else { "on" },
                if self.tls {
                    "serves HTTPS (with the last certificate)"
                } else {
                    "serves plain HTTP"
                },
            );
            new.tls = old.tls.clone();
        }
        tracing::info!(
            setting = %setting,
            tls = new.tls.is_some(),
            basic_auth = new.auth.is_some(),
            "web configuration reloaded"
        );
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(new);
    }

    /// Completes a TLS handshake with the current certificate. A client that sends plain HTTP
    /// gets Go's 400 answer instead; anything else that is not TLS is dropped. `None` when
    /// the connection is not TLS.
    pub async fn accept(&self, stream: TcpStream) -> io::Result<Option<TlsStream<TcpStream>>> {
        let mut first = [0; 1];
        if stream.peek(&mut first).await? == 0 {
            return Ok(None);
        }
        if first[0] != TLS_HANDSHAKE {
            // Every HTTP method starts with a capital letter.
            if first[0].is_ascii_uppercase() {
                answer_plain_http(stream).await?;
            }
            return Ok(None);
        }
        let acceptor = self
            .current()
            .await
            .tls
            .clone()
            .ok_or_else(|| io::Error::other("TLS is not configured"))?;
        acceptor.accept(stream).await.map(Some)
    }
}

/// Answers 400 and closes. The client's request is read to the end of the connection after
/// answering: closing with unread data would reset the connection, and the client might then
/// never see the answer. The caller's handshake timeout bounds it all.
async fn answer_plain_http(mut stream: TcpStream) -> io::Result<()> {
    stream.write_all(PLAIN_HTTP_ANSWER).await?;
    stream.shutdown().await?;
    let mut discard = [0; 4096];
    while stream.read(&mut discard).await? > 0 {}
    Ok(())
}

/// Basic auth against bcrypt hashes.
///
/// bcrypt is slow by design (tens of milliseconds), so each outcome, success or failure, is
/// remembered by the SHA-256 of user and password and not checked again. A login that is
/// checked costs the same whether the user exists or not: an unknown user's password is
/// checked against a hash of the highest configured cost.
pub struct BasicAuth {
    users: BTreeMap<String, SecretString>,
    dummy: String,
    remembered: Mutex<Remembered>,
    /// bcrypt checks run so far.
    checks: AtomicUsize,
}

impl BasicAuth {
    fn new(users: BTreeMap<String, SecretString>) -> Result<Self, Problem> {
        let mut highest = 0;
        for (user, hash) in &users {
            let field = format!("basic_auth_users.{user}");
            let cost = hash
                .expose_secret()
                .parse::<bcrypt::HashParts>()
                .map_err(|_| (field.clone(), "not a bcrypt hash".to_owned()))?
                .get_cost();
            if cost > MAX_BCRYPT_COST {
                return Err((
                    field,
                    format!(
                        "bcrypt cost {cost} is above {MAX_BCRYPT_COST}: each login check would \
                         take seconds, and start-up hashes once at that cost; hash the password \
                         again with a lower cost"
                    ),
                ));
            }
            highest = highest.max(cost);
        }
        let dummy = bcrypt::hash(format!("{:?}", SystemTime::now()), highest)
            .map_err(|err| ("basic_auth_users".to_owned(), err.to_string()))?;
        Ok(Self {
            users,
            dummy,
            remembered: Mutex::default(),
            checks: AtomicUsize::new(0),
        })
    }

    fn has_users(&self, users: &BTreeMap<String, SecretString>) -> bool {
        self.users.len() == users.len()
            && self
                .users
                .iter()
                .zip(users)
                .all(|((a, a_hash), (b, b_hash))| {
                    a == b && a_hash.expose_secret() == b_hash.expose_secret()
                })
    }

    /// Whether `headers` carry valid credentials. Runs bcrypt on a blocking thread.
    pub async fn allows(self: &Arc<Self>, headers: &HeaderMap) -> bool {
        let Some((user, password)) = credentials(headers) else {
            return false;
        };
        let key = login_key(&user, &password);
        if let Some(valid) = self.remembered(&key) {
            return valid;
        }
        let Ok(permit) = BCRYPT.acquire().await else {
            return false;
        };
        let auth = Arc::clone(self);
        // The permit goes with the check: a client that hangs up does not free it while
        // bcrypt still runs.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            // Whoever held the permit before may just have checked the same login.
            if let Some(valid) = auth.remembered(&key) {
                return valid;
            }
            let valid = auth.check(&user, &password);
            auth.remembered
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, valid);
            valid
        })
        .await
        .unwrap_or(false)
    }

    fn remembered(&self, key: &[u8; 32]) -> Option<bool> {
        self.remembered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
    }

    fn check(&self, user: &str, password: &SecretString) -> bool {
        self.checks.fetch_add(1, Ordering::Relaxed);
        let (hash, known) = match self.users.get(user) {
            Some(hash) => (hash.expose_secret(), true),
            None => (self.dummy.as_str(), false),
        };
        // bcrypt runs whether the user is known or not, and only then is `known` taken into
        // account: `known && verify(..)` would answer an unknown user at once.
        let verified = bcrypt::verify(password.expose_secret(), hash).unwrap_or(false);
        verified & known
    }
}

/// The cache key of a login. The user's length comes first so that no two (user, password)
/// pairs give the same bytes.
fn login_key(user: &str, password: &SecretString) -> [u8; 32] {
    Sha256::new()
        .chain_update((user.len() as u64).to_be_bytes())
        .chain_update(user.as_bytes())
        .chain_update(password.expose_secret().as_bytes())
        .finalize()
        .into()
}

/// Recent login outcomes. Failures and successes are kept apart, each bounded, the oldest
/// forgotten first: a flood of distinct wrong passwords then cycles through the failures and
/// never pushes out the login Prometheus scrapes with.
struct Remembered {
    successes: Recent,
    failures: Recent,
}

impl Default for Remembered {
    fn default() -> Self {
        Self {
            successes: Recent::new(REMEMBERED_SUCCESSES),
            failures: Recent::new(REMEMBERED_FAILURES),
        }
    }
}

impl Remembered {
    fn get(&self, key: &[u8; 32]) -> Option<bool> {
        if self.successes.keys.contains(key) {
            Some(true)
        } else if self.failures.keys.contains(key) {
            Some(false)
        } else {
            None
        }
    }

    fn insert(&mut self, key: [u8; 32], valid: bool) {
        if valid {
            self.successes.insert(key);
        } else {
            self.failures.insert(key);
        }
    }
}

/// A set of at most `capacity` keys that forgets the oldest first.
struct Recent {
    keys: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
    capacity: usize,
}

impl Recent {
    fn new(capacity: usize) -> Self {
        Self {
            keys: HashSet::with_capacity(capacity),
            order: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    fn insert(&mut self, key: [u8; 32]) {
        if !self.keys.insert(key) {
            return;
        }
        self.order.push_back(key);
        if self.order.len() > self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.keys.remove(&oldest);
        }
    }
}

fn credentials(headers: &HeaderMap) -> Option<(String, SecretString)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), SecretString::from(password)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_in(dir: &Path, text: &str) -> Result<WebConfig, String> {
        let path = dir.join("web.yml");
        std::fs::write(&path, text).unwrap();
        WebConfig::load(&path, "--web.config.file").map_err(|err| err.to_string())
    }

    fn load(text: &str) -> Result<WebConfig, String> {
        load_in(tempfile::tempdir().unwrap().path(), text)
    }

    fn basic(user: &str, password: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        headers.insert(AUTHORIZATION, format!("Basic {token}").parse().unwrap());
        headers
    }

    /// A valid hash of `password` at the lowest cost, quick to check.
    fn quick_hash(password: &str) -> String {
        bcrypt::hash(password, 4).unwrap()
    }

    /// A self-signed certificate for 127.0.0.1 and its key, written as tls.crt and tls.key.
    fn write_certificate(dir: &Path) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.join("tls.crt"), cert.pem()).unwrap();
        std::fs::write(dir.join("tls.key"), key.serialize_pem()).unwrap();
    }

    #[test]
    fn an_empty_file_changes_nothing() {
        let config = load("").unwrap();
        assert!(config.tls.is_none() && config.auth.is_none() && config.headers.is_empty());
    }

    #[test]
    fn unsupported_and_unknown_settings_are_refused_by_name() {
        for (text, named) in [
            (
                "tls_server_config: {cert_file: a, key_file: b, cipher_suites: [TLS_AES_128_GCM_SHA256]}",
                "tls_server_config.cipher_suites",
            ),
            (
                "tls_server_config: {cert_file: a, key_file: b, min_version: TLS10}",
                "tls_server_config.min_version",
            ),
            (
                "tls_server_config: {cert_file: /nonexistent.pem, key_file: b}",
                "tls_server_config.cert_file",
            ),
            (
                "http_server_config: {headers: {Server: x}}",
                "http_server_config.headers.Server",
            ),
            (
                "http_server_config: {headers: {X-Frame-Options: allowall}}",
                "http_server_config.headers.X-Frame-Options",
            ),
            (
                "basic_auth_users: {prometheus: plaintext}",
                "basic_auth_users.prometheus",
            ),
            ("basic_auth: {}", "basic_auth"),
        ] {
            let message = load(text).unwrap_err();
            assert!(message.contains(named), "{message:?} does not name {named}");
            assert!(!message.contains('\n'));
        }
    }

    #[test]
    fn a_duplicate_key_is_refused_by_name_at_the_top() {
        let dir = tempfile::tempdir().unwrap();
        write_certificate(dir.path());
        // Without the check the second, empty section wins and TLS is off.
        let message = load_in(
            dir.path(),
            "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\ntls_server_config:\n",
        )
        .unwrap_err();
        assert!(
            message.ends_with("web.yml tls_server_config: given twice"),
            "{message}"
        );
        let hash = quick_hash("rahasia");
        let message = load(&format!(
            "basic_auth_users:\n  prometheus: {hash}\nbasic_auth_users: {{}}\n"
        ))
        .unwrap_err();
        assert!(
            message.ends_with(" basic_auth_users: given twice"),
            "{message}"
        );
    }

    #[test]
    fn a_duplicate_key_is_refused_by_its_path_further_down() {
        let (first, second) = (quick_hash("satu"), quick_hash("dua"));
        let message = load(&format!(
            "basic_auth_users:\n  prometheus: {first}\n  prometheus: {second}\n"
        ))
        .unwrap_err();
        assert!(
            message.ends_with(" basic_auth_users.prometheus: given twice"),
            "{message}"
        );
        assert!(!message.contains(&first) && !message.contains(&second));
        let message = load(
            "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-Frame-Options: sameorigin\n",
        )
        .unwrap_err();
        assert!(
            message.ends_with(" http_server_config.headers.X-Frame-Options: given twice"),
            "{message}"
        );
    }

    #[test]
    fn an_unquoted_number_is_read_as_the_string_a_header_wants() {
        let config = load("http_server_config:\n  headers:\n    X-XSS-Protection: 1\n").unwrap();
        assert_eq!(config.headers["x-xss-protection"], "1");
    }

    #[tokio::test]
    async fn a_user_name_that_looks_like_a_number_keeps_its_digits() {
        let hash = quick_hash("rahasia");
        let config = load(&format!("basic_auth_users:\n  007: {hash}\n")).unwrap();
        let auth = config.auth.unwrap();
        assert!(auth.allows(&basic("007", "rahasia")).await);
    }

    #[test]
    fn a_client_ca_without_a_verifying_client_auth_type_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write_certificate(dir.path());
        std::fs::copy(dir.path().join("tls.crt"), dir.path().join("ca.crt")).unwrap();
        for auth in ["", "client_auth_type: NoClientCert"] {
            let message = load_in(
                dir.path(),
                &format!(
                    "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  client_ca_file: ca.crt\n  {auth}\n"
                ),
            )
            .unwrap_err();
            assert!(
                message
                    .contains("tls_server_config.client_ca_file: given without a client_auth_type"),
                "{message}"
            );
        }
        let verifying = "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  client_ca_file: ca.crt\n  client_auth_type: VerifyClientCertIfGiven\n";
        assert!(load_in(dir.path(), verifying).unwrap().tls.is_some());
    }

    #[test]
    fn a_bcrypt_cost_above_14_is_refused_without_printing_the_hash() {
        // Computing a real cost-15 hash takes seconds; the cost is read from the prefix.
        let hash = quick_hash("rahasia").replacen("$04$", "$15$", 1);
        let message = load(&format!(
            "basic_auth_users:\n  grafana: {}\n  prometheus: '{hash}'\n",
            quick_hash("x")
        ))
        .unwrap_err();
        assert!(
            message.contains(" basic_auth_users.prometheus: bcrypt cost 15 is above 14: each login check would take seconds"),
            "{message}"
        );
        assert!(!message.contains(&hash[7..]), "{message}");
        let fourteen = quick_hash("rahasia").replacen("$04$", "$14$", 1);
        assert!(
            BasicAuth::new(BTreeMap::from([("p".into(), SecretString::from(fourteen))]))
                .err()
                .is_none_or(|(_, message)| !message.contains("cost")),
            "cost 14 is allowed"
        );
    }

    #[test]
    fn a_file_holding_a_secret_instead_of_a_web_config_is_not_quoted() {
        let secret = "sk_live_51HhunterTwoRahasia";
        for text in [
            secret.to_owned(),
            format!("{secret}\n"),
            format!("token: {secret}\n"),
            format!("tls_server_config: {secret}\n"),
            format!("basic_auth_users: {{prometheus: {secret}}}\n"),
            format!("basic_auth_users: [{secret}]\n"),
            format!("tls_server_config: {{client_auth_type: {secret}}}\n"),
            format!("tls_server_config: {{cert_file: a, key_file: b, min_version: {secret}}}\n"),
            format!("http_server_config: {{headers: {{X-Frame-Options: {secret}}}}}\n"),
            format!("tls_server_config: {{prefer_server_cipher_suites: {secret}}}\n"),
            format!("\"{secret}"),
        ] {
            let message = load(&text).unwrap_err();
            assert!(!message.contains(secret), "{text:?} gave {message:?}");
            assert!(message.starts_with("--web.config.file: "), "{message}");
            assert!(!message.contains('\n'));
        }
    }

    #[test]
    fn a_key_file_that_is_not_pem_is_not_quoted() {
        let dir = tempfile::tempdir().unwrap();
        write_certificate(dir.path());
        let secret = "-----BEGIN hunter2-rahasia";
        std::fs::write(dir.path().join("tls.key"), format!("{secret}\nAAAA\n")).unwrap();
        let message = load_in(
            dir.path(),
            "tls_server_config: {cert_file: tls.crt, key_file: tls.key}",
        )
        .unwrap_err();
        // rustls' own message would give the line, as a list of byte values.
        assert!(
            message.ends_with(" tls_server_config.key_file: not a valid PEM file"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn basic_auth_accepts_only_the_right_password_and_remembers_it() {
        let hash = quick_hash("rahasia");
        let config = load(&format!("basic_auth_users:\n  prometheus: '{hash}'\n")).unwrap();
        let auth = config.auth.unwrap();
        assert!(auth.allows(&basic("prometheus", "rahasia")).await);
        assert!(auth.allows(&basic("prometheus", "rahasia")).await);
        assert_eq!(auth.checks.load(Ordering::Relaxed), 1);
        assert!(!auth.allows(&basic("prometheus", "salah")).await);
        assert!(!auth.allows(&basic("grafana", "rahasia")).await);
        assert!(!auth.allows(&HeaderMap::new()).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn forty_identical_wrong_logins_run_bcrypt_once_even_at_once() {
        let hash = quick_hash("rahasia");
        let config = load(&format!("basic_auth_users:\n  prometheus: '{hash}'\n")).unwrap();
        let auth = config.auth.unwrap();
        for _ in 0..40 {
            assert!(!auth.allows(&basic("prometheus", "salah")).await);
        }
        assert_eq!(auth.checks.load(Ordering::Relaxed), 1);
        // At once, too: bcrypt runs one at a time, and those waiting for it find the answer of
        // the one before them.
        let logins: Vec<_> = (0..40)
            .map(|_| {
                let auth = Arc::clone(&auth);
                tokio::spawn(async move { auth.allows(&basic("prometheus", "keliru")).await })
            })
            .collect();
        for login in logins {
            assert!(!login.await.unwrap());
        }
        assert_eq!(auth.checks.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn remembered_failures_are_bounded_and_never_push_out_a_success() {
        let mut remembered = Remembered::default();
        let key = |n: usize| -> [u8; 32] { Sha256::digest(n.to_be_bytes()).into() };
        remembered.insert(key(0), true);
        for n in 1..=REMEMBERED_FAILURES + 10 {
            remembered.insert(key(n), false);
        }
        assert_eq!(remembered.failures.keys.len(), REMEMBERED_FAILURES);
        assert_eq!(remembered.failures.order.len(), REMEMBERED_FAILURES);
        assert_eq!(remembered.get(&key(0)), Some(true));
        assert_eq!(
            remembered.get(&key(1)),
            None,
            "the oldest failure is forgotten"
        );
        assert_eq!(remembered.get(&key(REMEMBERED_FAILURES + 10)), Some(false));
        for n in 0..REMEMBERED_SUCCESSES + 5 {
            remembered.insert(key(100_000 + n), true);
        }
        assert_eq!(remembered.successes.keys.len(), REMEMBERED_SUCCESSES);
    }

    #[test]
    fn a_login_key_cannot_be_forged_by_moving_the_separator() {
        let a = login_key("a\0b", &SecretString::from("c"));
        let b = login_key("a", &SecretString::from("b\0c"));
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn an_unknown_user_is_checked_against_a_hash_of_the_highest_configured_cost() {
        // What makes both cost the same, checked without a stopwatch (the machine is shared):
        // the dummy hash has the highest cost of any user, and bcrypt runs for an unknown user.
        let low = bcrypt::hash("rahasia", 4).unwrap();
        let high = bcrypt::hash("rahasia", 6).unwrap();
        let config = load(&format!(
            "basic_auth_users:\n  prometheus: '{low}'\n  grafana: '{high}'\n"
        ))
        .unwrap();
        let auth = config.auth.unwrap();
        let cost = |hash: &str| hash.parse::<bcrypt::HashParts>().unwrap().get_cost();
        assert_eq!(cost(&auth.dummy), 6);
        assert!(!auth.allows(&basic("alertmanager", "rahasia")).await);
        assert_eq!(auth.checks.load(Ordering::Relaxed), 1, "bcrypt did not run");
        // A known user with a wrong password costs one check too.
        assert!(!auth.allows(&basic("grafana", "salah")).await);
        assert_eq!(auth.checks.load(Ordering::Relaxed), 2);
    }

    /// Replaces the web config as an editor or Kubernetes would: a new file renamed over it.
    fn replace(dir: &Path, text: &str) {
        std::fs::write(dir.join("web.yml.new"), text).unwrap();
        std::fs::rename(dir.join("web.yml.new"), dir.join("web.yml")).unwrap();
    }

    fn live(dir: &Path, text: &str) -> Live {
        let config = load_in(dir, text).unwrap();
        Live::checking_every(config, Duration::ZERO)
    }

    fn users(password: &str) -> String {
        format!(
            "basic_auth_users:\n  prometheus: '{}'\n",
            quick_hash(password)
        )
    }

    #[tokio::test]
    async fn new_users_apply_to_the_next_request_and_remembered_logins_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let live = live(dir.path(), &users("satu"));
        let before = live.current().await.auth.clone().unwrap();
        assert!(before.allows(&basic("prometheus", "satu")).await);

        replace(dir.path(), &users("dua"));
        let after = live.current().await.auth.clone().unwrap();
        assert!(!after.allows(&basic("prometheus", "satu")).await);
        assert!(after.allows(&basic("prometheus", "dua")).await);
    }

    #[tokio::test]
    async fn unchanged_users_keep_their_remembered_logins_when_other_settings_change() {
        let dir = tempfile::tempdir().unwrap();
        let text = users("satu");
        let live = live(dir.path(), &text);
        let before = live.current().await.auth.clone().unwrap();
        replace(
            dir.path(),
            &format!("{text}http_server_config:\n  headers:\n    X-Frame-Options: deny\n"),
        );
        let after = live.current().await;
        assert_eq!(after.headers["x-frame-options"], "deny");
        assert!(Arc::ptr_eq(&before, after.auth.as_ref().unwrap()));
    }

    #[tokio::test]
    async fn a_broken_file_keeps_the_last_good_configuration_until_it_changes_again() {
        let dir = tempfile::tempdir().unwrap();
        let live = live(
            dir.path(),
            "http_server_config: {headers: {X-Frame-Options: deny}}\n",
        );
        replace(
            dir.path(),
            "http_server_config: {headers: {X-Frame-Options: deny}\n",
        );
        assert_eq!(live.current().await.headers["x-frame-options"], "deny");
        replace(
            dir.path(),
            "http_server_config: {headers: {X-Frame-Options: sameorigin}}\n",
        );
        assert_eq!(
            live.current().await.headers["x-frame-options"],
            "sameorigin"
        );
    }

    #[tokio::test]
    async fn a_replaced_certificate_is_used_by_the_next_connection() {
        let dir = tempfile::tempdir().unwrap();
        write_certificate(dir.path());
        let live = live(
            dir.path(),
            "tls_server_config: {cert_file: tls.crt, key_file: tls.key}\n",
        );
        let before = live.current().await.tls.clone().unwrap();
        assert!(Arc::ptr_eq(
            before.config(),
            live.current().await.tls.as_ref().unwrap().config()
        ));
        write_certificate(dir.path());
        let after = live.current().await.tls.clone().unwrap();
        assert!(!Arc::ptr_eq(before.config(), after.config()));
    }

    #[tokio::test]
    async fn turning_tls_on_in_a_running_file_keeps_plain_http_until_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        write_certificate(dir.path());
        let live = live(dir.path(), "");
        replace(
            dir.path(),
            "tls_server_config: {cert_file: tls.crt, key_file: tls.key}\nhttp_server_config: {headers: {X-Frame-Options: deny}}\n",
        );
        let config = live.current().await;
        assert!(config.tls.is_none() && !live.serves_tls());
        assert_eq!(
            config.headers["x-frame-options"], "deny",
            "the rest applies"
        );
    }

    #[tokio::test]
    async fn turning_tls_off_in_a_running_file_keeps_the_last_certificate() {
        let dir = tempfile::tempdir().unwrap();
        write_certificate(dir.path());
        let live = live(
            dir.path(),
            "tls_server_config: {cert_file: tls.crt, key_file: tls.key}\n",
        );
        replace(dir.path(), &users("satu"));
        let config = live.current().await;
        assert!(config.tls.is_some() && live.serves_tls());
        assert!(config.auth.is_some(), "the rest applies");
    }

    #[tokio::test]
    async fn the_files_are_looked_at_once_per_interval_at_most() {
        let dir = tempfile::tempdir().unwrap();
        let config = load_in(dir.path(), "").unwrap();
        let live = Live::checking_every(config, Duration::from_secs(3600));
        replace(
            dir.path(),
            "http_server_config: {headers: {X-Frame-Options: deny}}\n",
        );
        assert!(live.current().await.headers.is_empty());
    }
}
