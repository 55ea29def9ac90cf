//! Runs the real `saldo_exporter` binary against simulated suppliers on loopback.

#![allow(dead_code)] // each test file uses its own part of this module

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rust_decimal::Decimal;
use saldo_exporter::demo::{Kind, Simulator};
use serde_json::Value;
use tokio::time::Instant;

/// How long anything may take before a test gives up. Generous: CI machines are shared.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub struct Exporter {
    child: Child,
    pub address: SocketAddr,
    output: Arc<Mutex<String>>,
}

impl Exporter {
    /// Starts the binary with exactly these `SALDO_*` variables (plus a loopback listen address
    /// and JSON logs unless given) and waits until it listens.
    pub async fn start(env: &[(String, String)]) -> Exporter {
        Self::start_with_args(env, &[]).await
    }

    pub async fn start_with_args(env: &[(String, String)], args: &[&str]) -> Exporter {
        let mut command = Command::new(env!("CARGO_BIN_EXE_saldo_exporter"));
        command
            .args(args)
            .env_clear()
            .env("SALDO_LISTEN_ADDRESS", "127.0.0.1:0")
            .env("SALDO_LOG_FORMAT", "json")
            .env("SALDO_LOG_LEVEL", "debug")
            .envs(env.iter().cloned());
        Self::spawn(command).await
    }

    /// Starts the binary the way a user does: in this process's whole environment (a shell's
    /// or CI's variables, and those `cargo test` adds as `cargo run` would), plus `env`, with
    /// the default log level and text logs unless `env` says otherwise.
    pub async fn start_like_a_user(env: &[(String, String)], args: &[&str]) -> Exporter {
        let mut command = Command::new(env!("CARGO_BIN_EXE_saldo_exporter"));
        command.args(args);
        // Our own test settings must not leak in from the developer's shell.
        for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("SALDO_")) {
            command.env_remove(key);
        }
        command
            .env("SALDO_LISTEN_ADDRESS", "127.0.0.1:0")
            .envs(env.iter().cloned());
        Self::spawn(command).await
    }

    async fn spawn(mut command: Command) -> Exporter {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("the exporter binary starts");
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = Arc::clone(&output);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut output = output.lock().unwrap();
                    output.push_str(&line);
                    output.push('\n');
                }
            });
        }
        let address = poll(|| {
            let output = output.lock().unwrap();
            output.lines().find_map(listening_address)
        })
        .await
        .unwrap_or_else(|| panic!("the exporter did not start:\n{}", output.lock().unwrap()));
        Exporter {
            child,
            address,
            output,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    /// `/metrics` as Prometheus would fetch it, without a scrape timeout header.
    pub async fn scrape(&self) -> String {
        let response = client().get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    /// The body of `GET path`, whatever its status.
    pub async fn get_text(&self, path: &str) -> String {
        let response = client().get(self.url(path)).send().await.unwrap();
        response.text().await.unwrap()
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit by itself.
    pub async fn exit_status(&mut self) -> Option<ExitStatus> {
        poll(|| self.child.try_wait().unwrap()).await
    }
}

/// The address in the "listening" log line, in JSON or text format.
fn listening_address(line: &str) -> Option<SocketAddr> {
    if let Ok(event) = serde_json::from_str::<Value>(line) {
        return (event["message"] == "listening")
            .then(|| event["address"].as_str()?.parse().ok())?;
    }
    // `2026-12-03T07:40:00.123456Z  INFO saldo_exporter: listening address=127.0.0.1:9866 ...`
    let (_, fields) = line.split_once(" listening ")?;
    fields
        .split_whitespace()
        .find_map(|field| field.strip_prefix("address="))?
        .parse()
        .ok()
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(DEADLINE)
        .build()
        .unwrap()
}

/// Calls `check` until it returns `Some` or [`DEADLINE`] passes.
pub async fn poll<T>(mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of the sample `name` whose labels include all of `labels`.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let matches = series_name == name
                && labels.iter().all(|(k, v)| {
                    series_labels
                        .split(',')
                        .any(|pair| pair == format!("{k}=\"{v}\""))
                });
            matches.then(|| value.parse().ok())?
        })
}

/// Variables for the min-interval and timeout, as strings.
pub fn setting(name: &str, value: &str) -> (String, String) {
    (format!("SALDO_{name}"), value.to_owned())
}

/// Whether an external tool is on PATH. Missing outside CI: skip with a note. Missing in CI
/// (`CI=true`): fail, since CI installs it and a skip would hide a broken install.
pub fn require_tool(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "`{tool}` is not on PATH; CI must install it (see .ci/run)"
        );
        eprintln!("note: `{tool}` is not installed, skipping this check outside CI");
    }
    found
}

/// Both simulators with fixed balances (isikuota 25,490, Ayopop 5,523,560), and the variables
/// pointing an exporter at them as accounts `toko-pusat` and `ppob-utama`.
pub async fn suppliers() -> (Simulator, Simulator, Vec<(String, String)>) {
    let isikuota = Simulator::start(Kind::Isikuota, Decimal::from(25_490))
        .await
        .unwrap();
    let ayopop = Simulator::start(Kind::Ayopop, Decimal::from(5_523_560))
        .await
        .unwrap();
    let mut env = isikuota.env("toko-pusat");
    env.extend(ayopop.env("ppob-utama"));
    (isikuota, ayopop, env)
}

/// A path inside the repository.
pub fn repo_path(relative: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// A repository file's text.
pub fn read(relative: &str) -> String {
    let path = repo_path(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}
