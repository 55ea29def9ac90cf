//! The web configuration end to end: the shipped example files, checked by `promtool check
//! web-config`, served by the real binary with certificates made for the test.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rust_decimal::Decimal;
use saldo_exporter::demo::{Kind, Simulator};
use serde_json::Value;
use support::{DEADLINE, Exporter, require_tool, setting};
use tokio::time::Instant;

/// The password whose bcrypt hash is in examples/web-config.yml.
const EXAMPLE_PASSWORD: &str = "ganti-password-ini";

struct Pki {
    ca_pem: String,
    client_identity_pem: String,
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, written where the
/// example web configs expect them (`tls.crt`, `tls.key`, `client-ca.crt`).
fn make_pki(dir: &Path) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client = CertificateParams::new(vec!["prometheus".to_owned()])
        .unwrap()
        .signed_by(&client_key, &issuer)
        .unwrap();

    std::fs::write(dir.join("tls.crt"), server.pem()).unwrap();
    std::fs::write(dir.join("tls.key"), server_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("client-ca.crt"), ca_cert.pem()).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        client_identity_pem: format!("{}{}", client.pem(), client_key.serialize_pem()),
    }
}

/// Copies a shipped example next to the generated certificates and checks it with promtool.
fn install_example(name: &str, dir: &Path) -> String {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    let target = dir.join(name);
    std::fs::copy(&source, &target).unwrap();
    if require_tool("promtool") {
        let output = Command::new("promtool")
            .args(["check", "web-config"])
            .arg(&target)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "promtool check web-config {name}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    target.to_str().unwrap().to_owned()
}

async fn exporter_with(web_config: &str) -> (Simulator, Exporter) {
    let simulator = Simulator::start(Kind::Isikuota, Decimal::from(25_490))
        .await
        .unwrap();
    let mut env = simulator.env("toko-pusat");
    env.push(setting("WEB_CONFIG_FILE", web_config));
    let exporter = Exporter::start(&env).await;
    (simulator, exporter)
}

fn trusting(pki: &Pki) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
}

fn https(exporter: &Exporter, path: &str) -> String {
    format!("https://{}{path}", exporter.address)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_basic_auth_protect_metrics_as_the_example_says() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let config = install_example("web-config.yml", dir.path());
    let (_simulator, exporter) = exporter_with(&config).await;
    let client = trusting(&pki).build().unwrap();
    let url = https(&exporter, "/metrics");

    let anonymous = client.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(
        anonymous.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    let wrong = client
        .get(&url)
        .basic_auth("prometheus", Some("salah"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let unknown = client
        .get(&url)
        .basic_auth("grafana", Some(EXAMPLE_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 401);

    let right = client
        .get(&url)
        .basic_auth("prometheus", Some(EXAMPLE_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    assert_eq!(right.headers()["x-frame-options"], "deny");
    assert_eq!(right.headers()["x-content-type-options"], "nosniff");
    assert!(right.text().await.unwrap().contains("saldo_balance{"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_rejects_a_client_without_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let config = install_example("web-config-mtls.yml", dir.path());
    let (_simulator, exporter) = exporter_with(&config).await;
    let url = https(&exporter, "/metrics");

    let without = trusting(&pki).build().unwrap().get(&url).send().await;
    assert!(without.is_err(), "answered a client without a certificate");

    let identity = reqwest::Identity::from_pem(pki.client_identity_pem.as_bytes()).unwrap();
    let with = trusting(&pki)
        .identity(identity)
        .build()
        .unwrap()
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(with.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_healthcheck_works_behind_tls_and_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let config = install_example("web-config.yml", dir.path());
    let (_simulator, exporter) = exporter_with(&config).await;
    let status = Command::new(env!("CARGO_BIN_EXE_saldo_exporter"))
        .args(["healthcheck", "--web.config.file", &config])
        .env_clear()
        .env("SALDO_LISTEN_ADDRESS", exporter.address.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_bad_web_config_exits_2_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.yml");
    std::fs::write(
        &path,
        "basic_auth_users:\n  prometheus: plaintext-password\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_saldo_exporter"))
        .args(["--demo", "--web.config.file"])
        .arg(&path)
        .env_clear()
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--web.config.file") && stderr.contains("basic_auth_users.prometheus"));
    assert!(
        !stderr.contains("plaintext-password"),
        "the password was printed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_headers_are_sent_with_a_401_too() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let config = install_example("web-config.yml", dir.path());
    let (_simulator, exporter) = exporter_with(&config).await;
    let client = trusting(&pki).build().unwrap();

    let anonymous = client
        .get(https(&exporter, "/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["x-frame-options"], "deny");
    assert_eq!(anonymous.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        anonymous.headers()["strict-transport-security"],
        "max-age=31536000"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_the_tls_port_gets_a_400() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let config = install_example("web-config.yml", dir.path());
    let (_simulator, exporter) = exporter_with(&config).await;

    let plain = support::client()
        .get(exporter.url("/metrics"))
        .send()
        .await
        .expect("an answer, not a dropped connection");
    assert_eq!(plain.status(), 400);
    assert_eq!(
        plain.text().await.unwrap(),
        "Client sent an HTTP request to an HTTPS server.\n"
    );
}

/// Calls `attempt` until it returns `Some` or [`DEADLINE`] passes; `what` says what was awaited.
async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    mut attempt: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A fresh connection (a new client each time) trusting only `pki`'s CA, asking `/-/healthy`.
async fn healthy_with(pki: &Pki, exporter: &Exporter) -> bool {
    trusting(pki)
        .build()
        .unwrap()
        .get(https(exporter, "/-/healthy"))
        .basic_auth("prometheus", Some(EXAMPLE_PASSWORD))
        .send()
        .await
        .is_ok_and(|response| response.status() == 200)
}

/// The JSON log events whose message starts with `message`.
fn events(exporter: &Exporter, message: &str) -> Vec<Value> {
    exporter
        .output()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| {
            event["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(message))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_replaced_on_disk_is_served_to_the_next_connection_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let old = make_pki(dir.path());
    let config = install_example("web-config.yml", dir.path());
    let (_simulator, exporter) = exporter_with(&config).await;
    assert!(healthy_with(&old, &exporter).await);

    // Written in place, certificate and key one after the other, as a renewal script would.
    let new = make_pki(dir.path());
    eventually("the new certificate to be served", || async {
        healthy_with(&new, &exporter).await.then_some(())
    })
    .await;
    assert!(
        !healthy_with(&old, &exporter).await,
        "new connections still get the old certificate"
    );
    assert!(
        !events(&exporter, "web configuration reloaded").is_empty(),
        "{}",
        exporter.output()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_certificate_keeps_the_old_one_and_logs_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let config = install_example("web-config.yml", dir.path());
    let (_simulator, exporter) = exporter_with(&config).await;

    let garbage = "-----BEGIN hunter2 rahasia";
    std::fs::write(dir.path().join("tls.crt"), format!("{garbage}\nAAAA\n")).unwrap();
    let error = eventually("the failed reload to be logged", || async {
        assert!(
            healthy_with(&pki, &exporter).await,
            "the old certificate is no longer served"
        );
        events(&exporter, "web configuration not reloaded").pop()
    })
    .await;
    assert_eq!(error["level"], "ERROR");
    assert_eq!(error["setting"], "SALDO_WEB_CONFIG_FILE");
    let message = error["error"].as_str().unwrap();
    assert!(message.contains("tls_server_config.cert_file"), "{message}");
    assert!(
        !exporter.output().contains("hunter2"),
        "the file was quoted"
    );
    assert!(healthy_with(&pki, &exporter).await);
    assert_eq!(
        events(&exporter, "web configuration not reloaded").len(),
        1,
        "logged once, not at every check"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_basic_auth_users_apply_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let config = install_example("web-config.yml", dir.path());
    let (_simulator, exporter) = exporter_with(&config).await;
    let client = trusting(&pki).build().unwrap();
    let url = https(&exporter, "/-/healthy");
    let status = |user: &'static str, password: &'static str| {
        let request = client.get(&url).basic_auth(user, Some(password));
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(status("prometheus", EXAMPLE_PASSWORD).await, 200);

    let hash = bcrypt::hash("kata-sandi-baru", 4).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    let (before, _) = text.split_once("basic_auth_users:").unwrap();
    std::fs::write(
        &config,
        format!("{before}basic_auth_users:\n  grafana: '{hash}'\n"),
    )
    .unwrap();
    eventually("the new user to be let in", || async {
        (status("grafana", "kata-sandi-baru").await == 200).then_some(())
    })
    .await;
    assert_eq!(
        status("prometheus", EXAMPLE_PASSWORD).await,
        401,
        "the removed user's remembered login still lets it in"
    );
}

#[test]
fn a_secret_given_as_the_web_config_file_is_not_printed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api-key");
    let secret = "sk_live_51HhunterTwoRahasia";
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_saldo_exporter"))
        .arg("--demo")
        .env_clear()
        .env("SALDO_WEB_CONFIG_FILE", &path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("SALDO_WEB_CONFIG_FILE"), "{stderr}");
    assert!(!stderr.contains(secret), "the secret was printed: {stderr}");
}
