//! First contact: the exporter started the way people really start it. Not with a cleared
//! environment, but in the environment of a shell and of `cargo run`, in a Kubernetes pod full
//! of service-link variables, with logs at the default `info` level as text.

mod support;

use std::process::Command;

use saldo_exporter::demo::Fault;
use support::{Exporter, client, poll, sample, setting, suppliers};

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What a pod gets for a Service named `saldo-exporter` (and for the API server), next to what
/// its image sets.
const POD: [(&str, &str); 12] = [
    ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
    ("KUBERNETES_SERVICE_PORT", "443"),
    ("KUBERNETES_PORT_443_TCP", "tcp://10.96.0.1:443"),
    ("SALDO_EXPORTER_SERVICE_HOST", "10.96.12.7"),
    ("SALDO_EXPORTER_SERVICE_PORT", "9866"),
    ("SALDO_EXPORTER_SERVICE_PORT_METRICS", "9866"),
    ("SALDO_EXPORTER_PORT", "tcp://10.96.12.7:9866"),
    ("SALDO_EXPORTER_PORT_9866_TCP", "tcp://10.96.12.7:9866"),
    ("SALDO_EXPORTER_PORT_9866_TCP_PROTO", "tcp"),
    ("SALDO_EXPORTER_PORT_9866_TCP_PORT", "9866"),
    ("SALDO_EXPORTER_PORT_9866_TCP_ADDR", "10.96.12.7"),
    ("HOSTNAME", "saldo-exporter-7d9f8c6b5-x2x4q"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_both_balances_in_the_environment_cargo_run_gives() {
    // `cargo run` passes on a build script's variables; an older build named its revision
    // `SALDO_REVISION`, and a developer's shell may hold anything.
    let exporter = Exporter::start_like_a_user(
        &vars(&[
            ("SALDO_REVISION", "0123456789ab"),
            ("CARGO_PKG_NAME", "saldo-exporter"),
            ("SALDO_TIMEOT", "5s"),
        ]),
        &["--demo"],
    )
    .await;
    let text = exporter.scrape().await;
    // The demo suppliers sell and top up while you watch: any positive balance is right.
    for provider in ["isikuota", "ayopop"] {
        let value = sample(&text, "saldo_balance", &[("provider", provider)]);
        assert!(
            value.is_some_and(|v| v > 0.0),
            "{provider}: {value:?}\n{text}"
        );
        assert_eq!(
            sample(&text, "saldo_up", &[("provider", provider)]),
            Some(1.0)
        );
    }
    let output = exporter.output();
    assert!(
        output.contains("SALDO_REVISION: not a setting of saldo_exporter, ignored"),
        "{output}"
    );
    assert!(
        output.contains(
            "SALDO_TIMEOT: not a setting of saldo_exporter, ignored; did you mean SALDO_TIMEOUT?"
        ),
        "{output}"
    );
    // Text logs at info, as the README's command gives them.
    assert!(
        output.contains(" INFO ") && !output.contains(" DEBUG "),
        "{output}"
    );
}

/// The demo's 16 accounts make a 45 KiB text, which plain answers send from a pipe
/// (`src/zero_copy.rs`). On one kept-alive connection, while checks change the text, every
/// plain answer must arrive whole, with the same series as the compressed answer after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_answers_stay_whole_while_the_text_changes() {
    let exporter =
        Exporter::start_like_a_user(&vars(&[("SALDO_MIN_INTERVAL", "1s")]), &["--demo"]).await;
    let (client, url) = (client(), exporter.url("/metrics"));
    let series = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .map(|line| {
                line.rsplit_once(' ')
                    .map_or(line, |(series, _)| series)
                    .to_owned()
            })
            .collect()
    };
    let mut texts = std::collections::HashSet::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    // Three different texts: at least two changes of the text served from the pipe.
    while texts.len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the text changed {} times",
            texts.len()
        );
        let plain = client.get(&url).send().await.unwrap();
        assert_eq!(plain.headers().get("content-encoding"), None);
        let plain = plain.text().await.unwrap();
        let gzip = client
            .get(&url)
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let mut unzipped = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::MultiGzDecoder::new(&gzip[..]),
            &mut unzipped,
        )
        .unwrap();
        assert!(plain.len() > 32 * 1024 && plain.ends_with('\n'), "{plain}");
        assert_eq!(plain.matches("\nsaldo_up{").count(), 16, "{plain}");
        assert_eq!(series(&plain), series(&unzipped), "{plain}");
        texts.insert(
            plain
                .lines()
                .filter(|line| line.starts_with("saldo_"))
                .collect::<Vec<_>>()
                .join("\n"),
        );
    }
    let output = exporter.output();
    assert!(
        !output.contains(" WARN ") && !output.contains(" ERROR "),
        "{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pods_service_links_neither_stop_the_exporter_nor_fill_its_log() {
    let (isikuota, ayopop, mut env) = suppliers().await;
    env.extend(vars(&POD));
    let exporter = Exporter::start_like_a_user(&env, &[]).await;
    let text = exporter.scrape().await;
    assert_eq!(
        sample(&text, "saldo_balance", &[("account", "toko-pusat")]),
        Some(25_490.0)
    );
    assert_eq!(
        sample(&text, "saldo_balance", &[("account", "ppob-utama")]),
        Some(5_523_560.0)
    );
    assert!(
        !exporter.output().contains("SALDO_EXPORTER"),
        "{}",
        exporter.output()
    );
    assert_eq!((isikuota.rejected(), ayopop.rejected()), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_check_names_its_account_at_info_in_text_and_json() {
    let (isikuota, _ayopop, env) = suppliers().await;
    isikuota.set_fault(Some(Fault::Status(503)));
    for format in ["text", "json"] {
        let mut env = env.clone();
        env.push(setting("LOG_FORMAT", format));
        let exporter = Exporter::start_like_a_user(&env, &[]).await;
        exporter.scrape().await;
        let line = poll(|| {
            exporter
                .output()
                .lines()
                .find(|line| line.contains("balance check failed"))
                .map(str::to_owned)
        })
        .await
        .expect("the failed check was logged");
        match format {
            "json" => {
                let event: serde_json::Value = serde_json::from_str(&line).unwrap();
                assert_eq!(event["level"], "WARN");
                assert_eq!(event["account"], "toko-pusat");
                assert_eq!(event["provider"], "isikuota");
                assert_eq!(event["reason"], "http_status");
            }
            _ => {
                assert!(line.contains(" WARN "), "{line}");
                assert!(line.contains("account=toko-pusat"), "{line}");
                assert!(
                    line.contains("provider=\"isikuota\"") || line.contains("provider=isikuota"),
                    "{line}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_scrape_timeout_header_gets_metrics_and_never_a_reset() {
    let (_isikuota, _ayopop, env) = suppliers().await;
    let exporter = Exporter::start_like_a_user(&env, &[]).await;
    let client = client();
    for value in [
        "1e20",
        "inf",
        "-inf",
        "NaN",
        "-5",
        "0",
        "18446744073709551616",
        "99999999999999999999999999999999999999999999",
        "soon",
    ] {
        let response = client
            .get(exporter.url("/metrics"))
            .header("X-Prometheus-Scrape-Timeout-Seconds", value)
            .send()
            .await
            .unwrap_or_else(|err| panic!("{value}: {err}"));
        assert_eq!(response.status(), 200, "{value}");
        let text = response.text().await.unwrap();
        assert!(text.contains("saldo_up{"), "{value}: {text}");
    }
    assert!(
        !exporter.output().contains("panic"),
        "{}",
        exporter.output()
    );
}

#[test]
fn check_config_prints_warnings_and_refuses_absurd_values() {
    let run = |pairs: &[(&str, &str)]| {
        Command::new(env!("CARGO_BIN_EXE_saldo_exporter"))
            .arg("--check-config")
            .env_clear()
            .env("SALDO_ISIKUOTA_API_ID", "id")
            .env("SALDO_ISIKUOTA_API_KEY", "key")
            .env("SALDO_ISIKUOTA_SECRET_KEY", "secret")
            .envs(pairs.iter().copied())
            .output()
            .unwrap()
    };
    let output = run(&[("SALDO_MIN_INTERVL", "1m"), ("SALDO_LOG_LEVEL", "warning")]);
    assert_eq!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("did you mean SALDO_MIN_INTERVAL?"),
        "{stderr}"
    );

    for (setting, value) in [
        ("SALDO_TIMEOUT", "300000000000y"),
        ("SALDO_MIN_INTERVAL", "300000000000y"),
        ("SALDO_LOG_LEVEL", "verbose"),
        ("SALDO_ISIKUOTA_BASE_URL", "gopher://example.com"),
        ("SALDO_ISIKUOTA_CRITICAL_THRESHOLD", "-1"),
        ("SALDO_ISIKUOTA_API_KEY", ""),
    ] {
        let output = run(&[(setting, value)]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{setting}={value}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(setting), "{stderr}");
    }
}
