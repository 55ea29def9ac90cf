//! Day-two operations: configuration reload on SIGHUP, and logs that log shippers can parse.

mod support;

use std::process::Command;

use rust_decimal::Decimal;
use saldo_exporter::demo::{Kind, Simulator};
use serde_json::Value;
use support::{Exporter, poll, sample, setting};

fn accounts_file(simulators: &[(&Simulator, &str)]) -> String {
    let mut text = String::from("accounts:\n");
    for (simulator, name) in simulators {
        let credentials = simulator.credentials();
        text += &format!(
            "  - name: {name}\n    provider: isikuota\n    api_id: {}\n    api_key: {}\n    secret_key: {}\n    base_url: {}\n",
            credentials.id,
            credentials.api_key,
            credentials.secret_key,
            simulator.base_url()
        );
    }
    text
}

const REFUSED: &str = "configuration not reloaded; the running one is kept";

fn hang_up(exporter: &Exporter) {
    let status = Command::new("kill")
        .args(["-HUP", &exporter.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn accounts(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .lines()
        .filter(|line| line.starts_with("saldo_up{"))
        .filter_map(|line| {
            Some(
                line.split("account=\"")
                    .nth(1)?
                    .split('"')
                    .next()?
                    .to_owned(),
            )
        })
        .collect();
    names.sort();
    names
}

fn log_count(exporter: &Exporter, message: &str) -> usize {
    exporter
        .output()
        .lines()
        .filter(|line| line.contains(&format!("\"message\":\"{message}\"")))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_accounts_file_and_keeps_the_old_one_when_the_new_is_bad() {
    let pusat = Simulator::start(Kind::Isikuota, Decimal::from(1_000_000))
        .await
        .unwrap();
    let cabang = Simulator::start(Kind::Isikuota, Decimal::from(2_000_000))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("saldo.yml");
    std::fs::write(&file, accounts_file(&[(&pusat, "pusat")])).unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n",
    )
    .unwrap();
    let exporter = Exporter::start(&[
        setting("CONFIG_FILE", file.to_str().unwrap()),
        setting("WEB_CONFIG_FILE", web.to_str().unwrap()),
        setting("MIN_INTERVAL", "1h"),
    ])
    .await;
    let text = exporter.scrape().await;
    assert_eq!(accounts(&text), ["pusat"]);
    assert_eq!(
        sample(&text, "saldo_config_last_reload_successful", &[]),
        Some(1.0)
    );
    let started = sample(
        &text,
        "saldo_config_last_reload_success_timestamp_seconds",
        &[],
    )
    .unwrap();
    assert!(started > 1.7e9);

    // The web configuration is read at start only, so breaking it must not block a reload of
    // the accounts.
    std::fs::write(&web, "tls_server_config: [\n").unwrap();

    // A second account appears; the first keeps its cached balance (no new call within 1h).
    std::fs::write(
        &file,
        accounts_file(&[(&pusat, "pusat"), (&cabang, "cabang")]),
    )
    .unwrap();
    hang_up(&exporter);
    poll(|| (exporter.output().contains("configuration reloaded")).then_some(()))
        .await
        .expect("no reload after SIGHUP");
    let text = exporter.scrape().await;
    assert_eq!(accounts(&text), ["cabang", "pusat"]);
    assert_eq!(
        sample(&text, "saldo_balance", &[("account", "cabang")]),
        Some(2_000_000.0)
    );
    assert_eq!(pusat.requests(), 1);
    assert_eq!(
        sample(&text, "saldo_config_last_reload_successful", &[]),
        Some(1.0)
    );
    let reloaded = sample(
        &text,
        "saldo_config_last_reload_success_timestamp_seconds",
        &[],
    )
    .unwrap();
    assert!(reloaded >= started);

    // A broken file and a file without accounts are refused; both accounts stay.
    for bad in ["accounts: [\n", "accounts: []\n"] {
        let refusals = log_count(&exporter, REFUSED);
        std::fs::write(&file, bad).unwrap();
        hang_up(&exporter);
        poll(|| (log_count(&exporter, REFUSED) > refusals).then_some(()))
            .await
            .unwrap_or_else(|| panic!("{bad:?} was not reported"));
        let text = exporter.scrape().await;
        assert_eq!(accounts(&text), ["cabang", "pusat"], "after {bad:?}");
        assert_eq!(
            sample(&text, "saldo_config_last_reload_successful", &[]),
            Some(0.0)
        );
        assert_eq!(
            sample(
                &text,
                "saldo_config_last_reload_success_timestamp_seconds",
                &[]
            ),
            Some(reloaded),
            "a refused reload is no success"
        );
        assert_eq!(
            sample(&text, "saldo_balance", &[("account", "pusat")]),
            Some(1_000_000.0)
        );
    }

    // Removing an account removes its series.
    std::fs::write(&file, accounts_file(&[(&cabang, "cabang")])).unwrap();
    hang_up(&exporter);
    poll(|| (log_count(&exporter, "configuration reloaded") == 2).then_some(()))
        .await
        .expect("second reload not logged");
    let text = exporter.scrape().await;
    assert_eq!(accounts(&text), ["cabang"]);
    assert_eq!(
        sample(&text, "saldo_config_last_reload_successful", &[]),
        Some(1.0)
    );
    assert!(!text.contains("account=\"pusat\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_log_line_is_one_json_object_with_time_level_and_message() {
    let simulator = Simulator::start(Kind::Isikuota, Decimal::from(25_490))
        .await
        .unwrap();
    let mut env = simulator.env("toko-pusat");
    env.push(setting("LOG_LEVEL", "debug"));
    env.push(setting("MIN_INTERVAL", "0s"));
    let exporter = Exporter::start(&env).await;
    exporter.scrape().await;
    simulator.rotate_secret("rotated");
    exporter.scrape().await;
    // The log reaches us through a pipe read by another thread: wait for the line.
    let output = poll(|| {
        let output = exporter.output();
        output.contains("balance check failed").then_some(output)
    })
    .await
    .expect("the failed check was logged");
    let events: Vec<Value> = output
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    for event in &events {
        for field in ["timestamp", "level", "message", "target"] {
            assert!(event.get(field).is_some(), "{event} has no {field}");
        }
    }
    let failure = events
        .iter()
        .find(|e| e["message"] == "balance check failed")
        .expect("the failed check was logged");
    assert_eq!(failure["level"], "WARN");
    assert_eq!(failure["reason"], "auth");
    assert_eq!(failure["span"]["provider"], "isikuota");
    assert_eq!(failure["span"]["account"], "toko-pusat");
    assert!(events.iter().any(|e| e["message"] == "balance check succeeded" && e["duration_seconds"].is_number()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_exporter_style_flags_serve_the_telemetry_path_and_hold_across_a_reload() {
    let pusat = Simulator::start(Kind::Isikuota, Decimal::from(1_000_000))
        .await
        .unwrap();
    let cabang = Simulator::start(Kind::Isikuota, Decimal::from(2_000_000))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("saldo.yml");
    std::fs::write(&file, accounts_file(&[(&pusat, "pusat")])).unwrap();
    // The variable names a file that does not exist: the flag must win, at start and on reload.
    let exporter = Exporter::start_like_a_user(
        &[setting("CONFIG_FILE", "/nonexistent/accounts.yml")],
        &[
            &format!("--config.file={}", file.display()),
            "--web.telemetry-path=/saldo/metrics",
            "--log.format=json",
        ],
    )
    .await;
    let client = support::client();
    let text = exporter.get_text("/saldo/metrics").await;
    assert_eq!(accounts(&text), ["pusat"]);
    let old_path = client.get(exporter.url("/metrics")).send().await.unwrap();
    assert_eq!(old_path.status(), 404);
    let landing = exporter.get_text("/").await;
    assert!(landing.contains("href=\"/saldo/metrics\""));

    std::fs::write(
        &file,
        accounts_file(&[(&pusat, "pusat"), (&cabang, "cabang")]),
    )
    .unwrap();
    hang_up(&exporter);
    poll(|| (log_count(&exporter, "configuration reloaded") == 1).then_some(()))
        .await
        .unwrap_or_else(|| panic!("no reload:\n{}", exporter.output()));
    let text = exporter.get_text("/saldo/metrics").await;
    assert_eq!(accounts(&text), ["cabang", "pusat"]);
}
