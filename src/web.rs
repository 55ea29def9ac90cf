//! The web configuration file of Prometheus' own exporters (exporter-toolkit's format): TLS,
//! client certificates, bcrypt basic auth and extra response headers for `/metrics` and every
//! other endpoint.
//!
//! Relative paths are resolved against the file's directory, as exporter-toolkit does. Settings
//! this exporter cannot honour (TLS 1.0/1.1, cipher suite lists, ...) are refused by name rather
//! than ignored: a security setting that silently does nothing is worse than an error.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use hyper::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};

use crate::config::ConfigError;

/// Response headers exporter-toolkit lets the file set; anything else is refused.
const ALLOWED_HEADERS: [&str; 5] = [
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-XSS-Protection",
    "Content-Security-Policy",
];

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

impl WebConfig {
    /// Reads and checks the file. `setting` names how the user gave it, for errors.
    pub fn load(path: &Path, setting: &str) -> Result<Self, ConfigError> {
        let error = |field: &str, message: String| {
            let at = if field.is_empty() {
                String::new()
            } else {
                format!(" {field}")
            };
            ConfigError {
                setting: setting.to_owned(),
                message: format!("{}{at}: {message}", path.display()),
            }
        };
        let text = std::fs::read_to_string(path)
            .map_err(|err| error("", format!("cannot read: {err}")))?;
        let value: Value = yaml_serde::from_str(&text).map_err(|err| error("", err.to_string()))?;
        // An empty file is a valid configuration that changes nothing.
        let value = if value.is_null() {
            Value::Object(Default::default())
        } else {
            value
        };
        let file: File = serde_path_to_error::deserialize(value)
            .map_err(|err| error(&err.path().to_string(), err.into_inner().to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));

        let tls = match file.tls_server_config {
            None => None,
            Some(tls) => Some(tls_acceptor(tls, base).map_err(|(field, message)| {
                error(&format!("tls_server_config.{field}"), message)
            })?),
        };

        let mut headers = HeaderMap::new();
        for (name, value) in file
            .http_server_config
            .map(|h| h.headers)
            .unwrap_or_default()
        {
            let field = format!("http_server_config.headers.{name}");
            if !ALLOWED_HEADERS
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(&name))
            {
                return Err(error(
                    &field,
                    format!(
                        "not one of the headers that may be set: {}",
                        ALLOWED_HEADERS.join(", ")
                    ),
                ));
            }
            let name = HeaderName::from_bytes(name.as_bytes()).expect("allowed names are valid");
            let value = HeaderValue::from_str(&value)
                .map_err(|_| error(&field, "not a valid header value".into()))?;
            headers.insert(name, value);
        }

        let auth = if file.basic_auth_users.is_empty() {
            None
        } else {
            let mut cost = bcrypt::DEFAULT_COST;
            for (user, hash) in &file.basic_auth_users {
                let parts = hash
                    .expose_secret()
                    .parse::<bcrypt::HashParts>()
                    .map_err(|_| {
                        error(
                            &format!("basic_auth_users.{user}"),
                            "not a bcrypt hash".into(),
                        )
                    })?;
                cost = parts.get_cost();
            }
            // Checked for unknown users, so a login takes as long whether the user exists or not.
            let dummy = bcrypt::hash(format!("{:?}", std::time::SystemTime::now()), cost)
                .map_err(|err| error("basic_auth_users", err.to_string()))?;
            Some(Arc::new(BasicAuth {
                users: file.basic_auth_users,
                dummy,
                verified: Mutex::default(),
            }))
        };
        Ok(WebConfig { tls, headers, auth })
    }
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
        Some(other) => Err((
            field,
            format!("{other:?} is not supported (TLS12 or TLS13)"),
        )),
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

    let resolve = |path: &Path| base.join(path);
    let cert_file = tls
        .cert_file
        .ok_or(("cert_file", "required for TLS".into()))?;
    let key_file = tls
        .key_file
        .ok_or(("key_file", "required for TLS".into()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(resolve(&cert_file))
        .and_then(|certs| certs.collect())
        .map_err(|err| ("cert_file", format!("{}: {err}", cert_file.display())))?;
    if certs.is_empty() {
        return Err((
            "cert_file",
            format!("{}: no certificate", cert_file.display()),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(resolve(&key_file))
        .map_err(|err| ("key_file", format!("{}: {err}", key_file.display())))?;

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
            for cert in CertificateDer::pem_file_iter(resolve(&ca_file))
                .map_err(|err| ("client_ca_file", format!("{}: {err}", ca_file.display())))?
            {
                let cert = cert.map_err(|err| ("client_ca_file", err.to_string()))?;
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

/// Basic auth against bcrypt hashes. bcrypt is slow by design (tens of milliseconds), so a
/// verified user and password is remembered by its SHA-256 and not hashed again every scrape.
pub struct BasicAuth {
    users: BTreeMap<String, SecretString>,
    dummy: String,
    verified: Mutex<HashSet<[u8; 32]>>,
}

impl BasicAuth {
    /// Whether `headers` carry valid credentials. Runs bcrypt on a blocking thread.
    pub async fn allows(self: &Arc<Self>, headers: &HeaderMap) -> bool {
        let Some((user, password)) = credentials(headers) else {
            return false;
        };
        let key: [u8; 32] = Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0])
            .chain_update(password.expose_secret().as_bytes())
            .finalize()
            .into();
        if self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&key)
        {
            return true;
        }
        let auth = Arc::clone(self);
        let valid = tokio::task::spawn_blocking(move || {
            let (hash, known) = match auth.users.get(&user) {
                Some(hash) => (hash.expose_secret(), true),
                None => (auth.dummy.as_str(), false),
            };
            known && bcrypt::verify(password.expose_secret(), hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if valid {
            self.verified
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key);
        }
        valid
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

    fn load(text: &str) -> Result<WebConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yml");
        std::fs::write(&path, text).unwrap();
        WebConfig::load(&path, "--web.config.file").map_err(|err| err.to_string())
    }

    fn basic(user: &str, password: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        headers.insert(AUTHORIZATION, format!("Basic {token}").parse().unwrap());
        headers
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

    #[tokio::test]
    async fn basic_auth_accepts_only_the_right_password_and_remembers_it() {
        let hash = bcrypt::hash("rahasia", 4).unwrap();
        let config = load(&format!("basic_auth_users:\n  prometheus: '{hash}'\n")).unwrap();
        let auth = config.auth.unwrap();
        assert!(auth.allows(&basic("prometheus", "rahasia")).await);
        assert!(auth.allows(&basic("prometheus", "rahasia")).await);
        assert_eq!(auth.verified.lock().unwrap().len(), 1);
        assert!(!auth.allows(&basic("prometheus", "salah")).await);
        assert!(!auth.allows(&basic("grafana", "rahasia")).await);
        assert!(!auth.allows(&HeaderMap::new()).await);
    }
}
