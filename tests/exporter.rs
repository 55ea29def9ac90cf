//! End-to-end: the real binary against simulated isikuota and Ayopop servers on loopback, which
//! refuse any request whose signature, token or headers differ from the documentation.

mod support;

use std::time::Duration;

use rust_decimal::Decimal;
use saldo_exporter::demo::{Fault, Simulator};
use support::{DEADLINE, Exporter, client, poll, require_tool, sample, setting, suppliers};
use tokio::time::Instant;

/// Puts a simulator into one failure mode.
type Breakage = Box<dyn Fn(&Simulator)>;

fn labels<'a>(provider: &'a str, account: &'a str) -> [(&'a str, &'a str); 2] {
    [("provider", provider), ("account", account)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_balances_are_exported_exactly() {
    let (isikuota, ayopop, env) = suppliers().await;
    let exporter = Exporter::start(&env).await;
    let text = exporter.scrape().await;

    let balance = |provider, account| {
        let [p, a] = labels(provider, account);
        sample(&text, "saldo_balance", &[p, a, ("currency", "IDR")])
    };
    assert_eq!(balance("isikuota", "toko-pusat"), Some(25_490.0));
    assert_eq!(balance("ayopop", "ppob-utama"), Some(5_523_560.0));
    for (provider, account) in [("isikuota", "toko-pusat"), ("ayopop", "ppob-utama")] {
        assert_eq!(
            sample(&text, "saldo_up", &labels(provider, account)),
            Some(1.0)
        );
        assert!(
            sample(
                &text,
                "saldo_last_success_timestamp_seconds",
                &labels(provider, account)
            )
            .unwrap()
                > 1.7e9
        );
    }
    // The simulators accepted the signature, the JWT and every header.
    assert_eq!((isikuota.rejected(), ayopop.rejected()), (0, 0));
    assert_eq!((isikuota.requests(), ayopop.requests()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_scrapes_cause_one_upstream_call_per_account() {
    let (isikuota, ayopop, env) = suppliers().await;
    // Slow suppliers, so that the scrapes really overlap the check in flight.
    isikuota.set_latency(Duration::from_millis(500));
    ayopop.set_latency(Duration::from_millis(500));
    let exporter = Exporter::start(&env).await;
    let client = client();
    let scrapes: Vec<_> = (0..100)
        .map(|_| {
            let client = client.clone();
            let url = exporter.url("/metrics");
            tokio::spawn(async move { client.get(url).send().await.unwrap().text().await.unwrap() })
        })
        .collect();
    for scrape in scrapes {
        let text = scrape.await.unwrap();
        assert_eq!(
            sample(&text, "saldo_balance", &labels("isikuota", "toko-pusat")),
            Some(25_490.0)
        );
    }
    assert_eq!((isikuota.requests(), ayopop.requests()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_upstream_call_comes_only_after_the_min_interval() {
    let (isikuota, _ayopop, mut env) = suppliers().await;
    env.push(setting("MIN_INTERVAL", "2s"));
    let exporter = Exporter::start(&env).await;
    // Taken before the first scrape, so the exporter's own clock for the check is later.
    let started = Instant::now();
    exporter.scrape().await;
    loop {
        exporter.scrape().await;
        // Measured after the scrape has finished: one that finished within the interval was
        // served within it, however slow this machine is.
        let elapsed = started.elapsed();
        if elapsed >= Duration::from_millis(1900) {
            break;
        }
        assert_eq!(
            isikuota.requests(),
            1,
            "checked again {elapsed:?} after the first check"
        );
    }
    // Scrapes drive checks, so keep scraping until the interval has passed.
    let scraping = async {
        while isikuota.requests() < 2 {
            exporter.scrape().await;
        }
    };
    tokio::time::timeout(DEADLINE, scraping)
        .await
        .expect("no second check after the interval");
    assert_eq!(isikuota.requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failure_keeps_the_last_balance_and_counts_its_reason() {
    let (isikuota, ayopop, mut env) = suppliers().await;
    env.push(setting("MIN_INTERVAL", "0s"));
    env.push(setting("TIMEOUT", "1s"));
    let exporter = Exporter::start(&env).await;
    exporter.scrape().await;

    let cases: Vec<(&str, Breakage, &str)> = vec![
        (
            "HTTP 500",
            Box::new(|s| s.set_fault(Some(Fault::Status(500)))),
            "http_status",
        ),
        (
            "a rotated secret (HTTP 401)",
            Box::new(|s| s.rotate_secret("rotated-on-the-dashboard")),
            "auth",
        ),
        (
            "an HTML page",
            Box::new(|s| s.set_fault(Some(Fault::Html))),
            "decode",
        ),
        (
            "truncated JSON",
            Box::new(|s| s.set_fault(Some(Fault::TruncatedJson))),
            "decode",
        ),
        (
            "a refusal envelope",
            Box::new(|s| s.set_fault(Some(Fault::Refusal))),
            "rejected",
        ),
        (
            "a hang",
            Box::new(|s| s.set_fault(Some(Fault::Hang))),
            "timeout",
        ),
        // Last: after it, the exporter rightly waits a whole Retry-After.
        (
            "HTTP 429",
            Box::new(|s| s.set_fault(Some(Fault::RateLimited { retry_after: 3600 }))),
            "rate_limited",
        ),
    ];
    for (simulator, provider, account) in [
        (&isikuota, "isikuota", "toko-pusat"),
        (&ayopop, "ayopop", "ppob-utama"),
    ] {
        let good = sample(
            &exporter.scrape().await,
            "saldo_balance",
            &labels(provider, account),
        )
        .unwrap();
        let original = simulator.credentials().secret_key;
        for (what, break_it, reason) in &cases {
            let mut series = labels(provider, account).to_vec();
            series.push(("reason", reason));
            let before = sample(
                &exporter.scrape().await,
                "saldo_upstream_errors_total",
                &series,
            )
            .unwrap();
            break_it(simulator);
            // A hang outlasts the scrape that started its check (both end at SALDO_TIMEOUT),
            // so its timeout is what the next scrape reports.
            let failed = async {
                loop {
                    let text = exporter.scrape().await;
                    if sample(&text, "saldo_up", &labels(provider, account)) == Some(0.0) {
                        return text;
                    }
                }
            };
            let text = tokio::time::timeout(DEADLINE, failed)
                .await
                .unwrap_or_else(|_| panic!("{provider}, {what}: saldo_up never became 0"));
            assert_eq!(
                sample(&text, "saldo_balance", &labels(provider, account)),
                Some(good),
                "{provider}, {what}"
            );
            let counted = sample(&text, "saldo_upstream_errors_total", &series).unwrap() - before;
            // With a 0s min-interval the polling scrape may start a second hanging check.
            let expected_once = *reason != "timeout";
            assert!(
                counted == 1.0 || (!expected_once && counted >= 1.0),
                "{provider}, {what}: reason {reason} counted {counted} times"
            );
            simulator.set_fault(None);
            simulator.rotate_secret(&original);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_with_a_two_second_prometheus_timeout_answers_in_time_despite_a_hanging_supplier()
{
    let (isikuota, _ayopop, mut env) = suppliers().await;
    env.push(setting("MIN_INTERVAL", "0s"));
    env.push(setting("TIMEOUT", "10s"));
    let exporter = Exporter::start(&env).await;
    exporter.scrape().await;
    isikuota.set_fault(Some(Fault::Hang));
    // Prometheus would give up after 2 s; so does this client.
    let response = reqwest::Client::new()
        .get(exporter.url("/metrics"))
        .header("X-Prometheus-Scrape-Timeout-Seconds", "2")
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .expect("answered within the scrape timeout");
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert_eq!(
        sample(&text, "saldo_balance", &labels("isikuota", "toko-pusat")),
        Some(25_490.0)
    );
    assert_eq!(
        sample(&text, "saldo_up", &labels("ayopop", "ppob-utama")),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_call_is_made_before_a_retry_after_has_passed() {
    let (isikuota, _ayopop, mut env) = suppliers().await;
    env.push(setting("MIN_INTERVAL", "0s"));
    let exporter = Exporter::start(&env).await;
    isikuota.set_fault(Some(Fault::RateLimited { retry_after: 2 }));
    let started = Instant::now();
    exporter.scrape().await;
    assert_eq!(isikuota.requests(), 1);
    isikuota.set_fault(None);
    while started.elapsed() < Duration::from_millis(1900) {
        exporter.scrape().await;
        assert_eq!(
            isikuota.requests(),
            1,
            "asked again {:?} into a 2 s Retry-After",
            started.elapsed()
        );
    }
    let recovered = async {
        loop {
            let text = exporter.scrape().await;
            if sample(&text, "saldo_up", &labels("isikuota", "toko-pusat")) == Some(1.0) {
                break;
            }
        }
    };
    tokio::time::timeout(DEADLINE, recovered)
        .await
        .expect("checks resume after Retry-After");
    assert_eq!(isikuota.requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spent_and_top_up_counters_follow_a_fall_and_a_top_up() {
    let (isikuota, _ayopop, mut env) = suppliers().await;
    env.push(setting("MIN_INTERVAL", "0s"));
    let exporter = Exporter::start(&env).await;
    isikuota.set_balance(Decimal::from(1_000_000));
    exporter.scrape().await;
    isikuota.set_balance(Decimal::from(750_000));
    exporter.scrape().await;
    isikuota.set_balance(Decimal::from(2_750_000));
    let text = exporter.scrape().await;
    let series = [
        ("provider", "isikuota"),
        ("account", "toko-pusat"),
        ("currency", "IDR"),
    ];
    assert_eq!(sample(&text, "saldo_spent_total", &series), Some(250_000.0));
    assert_eq!(
        sample(&text, "saldo_topup_total", &series),
        Some(2_000_000.0)
    );
    assert_eq!(sample(&text, "saldo_balance", &series), Some(2_750_000.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_finds_nothing_to_report_on_a_live_metrics_page() {
    if !require_tool("promtool") {
        return;
    }
    let (_isikuota, ayopop, mut env) = suppliers().await;
    env.push(setting("MIN_INTERVAL", "0s"));
    env.push(setting("AYOPOP_WARNING_THRESHOLD", "2000000"));
    env.push(setting("AYOPOP_CRITICAL_THRESHOLD", "1000000"));
    let exporter = Exporter::start(&env).await;
    exporter.scrape().await;
    // Every family present: spent, top-up and an error as well.
    ayopop.set_balance(Decimal::from(5_000_000));
    exporter.scrape().await;
    ayopop.set_fault(Some(Fault::Status(503)));
    let text = exporter.scrape().await;
    for family in [
        "saldo_spent_total",
        "saldo_balance_threshold",
        "saldo_build_info",
        "process_resident_memory_bytes",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} missing"
        );
    }

    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut promtool.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let output = promtool.wait_with_output().unwrap();
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && findings.trim().is_empty(),
        "promtool check metrics:\n{findings}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_content_type_is_text_format_0_0_4() {
    let (_isikuota, _ayopop, env) = suppliers().await;
    let exporter = Exporter::start(&env).await;
    let response = client().get(exporter.url("/metrics")).send().await.unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_landing_page_and_health_endpoints_answer() {
    let (_isikuota, _ayopop, env) = suppliers().await;
    let exporter = Exporter::start(&env).await;
    exporter.scrape().await;
    let client = client();
    let page = exporter.get_text("/").await;
    for expected in [
        "toko-pusat",
        "ppob-utama",
        "isikuota",
        "ayopop",
        "Toko Pulsa Demo",
        env!("CARGO_PKG_VERSION"),
        "href=\"/metrics\"",
    ] {
        assert!(page.contains(expected), "landing page lacks {expected:?}");
    }
    for (path, status) in [("/-/healthy", 200), ("/-/ready", 200), ("/nope", 404)] {
        assert_eq!(
            client
                .get(exporter.url(path))
                .send()
                .await
                .unwrap()
                .status(),
            status,
            "{path}"
        );
    }
    let post = client.post(exporter.url("/metrics")).send().await.unwrap();
    assert_eq!(post.status(), 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs_the_metrics_or_the_landing_page() {
    let (isikuota, ayopop, mut env) = suppliers().await;
    env.push(setting("MIN_INTERVAL", "0s"));
    // Every crate at trace, not only the exporter's own logs.
    env.push(setting("LOG_LEVEL", "trace,saldo_exporter=trace"));
    let secrets: Vec<String> = {
        let ayopop_config = saldo_exporter::providers::ayopop::Config {
            partner_id: ayopop.credentials().id,
            api_key: ayopop.credentials().api_key.into(),
            secret_key: ayopop.credentials().secret_key.into(),
            base_url: ayopop.base_url().parse().unwrap(),
            api_version: Default::default(),
        };
        let token = secrecy::ExposeSecret::expose_secret(&ayopop_config.token()).to_owned();
        vec![
            isikuota.credentials().api_key,
            isikuota.credentials().secret_key,
            ayopop.credentials().api_key,
            ayopop.credentials().secret_key,
            token,
        ]
    };
    let exporter = Exporter::start(&env).await;
    let mut seen = String::new();
    seen += &exporter.scrape().await;
    // Failures too: their messages are where a leak would hide.
    isikuota.rotate_secret("rotated");
    ayopop.rotate_secret("rotated");
    seen += &exporter.scrape().await;
    isikuota.set_fault(Some(Fault::TruncatedJson));
    ayopop.set_fault(Some(Fault::Status(500)));
    seen += &exporter.scrape().await;
    seen += &exporter.get_text("/").await;
    // The failures' log lines arrive through a pipe, possibly after the scrapes.
    poll(|| {
        exporter
            .output()
            .contains("balance check failed")
            .then_some(())
    })
    .await;
    let logs = exporter.output();
    assert!(
        logs.contains("\"level\":\"TRACE\""),
        "trace logging was not on"
    );
    assert!(logs.contains("balance check failed"));
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a secret is in the logs");
        assert!(
            !seen.contains(secret.as_str()),
            "a secret is in /metrics or on /"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shows_both_balances_without_credentials() {
    let exporter = Exporter::start_with_args(&[], &["--demo"]).await;
    let text = exporter.scrape().await;
    for (provider, account) in [
        ("isikuota", "demo-isikuota"),
        ("ayopop", "demo-ayopop"),
        // examples/generic/digiflazz.yaml against a simulator of its own.
        ("generic", "demo-generic"),
    ] {
        assert!(sample(&text, "saldo_balance", &labels(provider, account)).unwrap() > 0.0);
        assert_eq!(
            sample(&text, "saldo_up", &labels(provider, account)),
            Some(1.0)
        );
        assert!(
            sample(
                &text,
                "saldo_balance_threshold",
                &[("account", account), ("severity", "critical")]
            )
            .is_some()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_exporter_cleanly() {
    let (_isikuota, _ayopop, env) = suppliers().await;
    let mut exporter = Exporter::start(&env).await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &exporter.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = exporter
        .exit_status()
        .await
        .expect("still running after SIGTERM");
    assert!(exit.success(), "exited with {exit}");
    // The log arrives through a pipe, possibly after the exit was seen.
    let logged = poll(|| exporter.output().contains("shutting down").then_some(())).await;
    assert!(logged.is_some(), "{}", exporter.output());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_healthcheck_subcommand_passes_against_a_running_exporter() {
    let (_isikuota, _ayopop, env) = suppliers().await;
    let exporter = Exporter::start(&env).await;
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_saldo_exporter"))
        .arg("healthcheck")
        .env_clear()
        .env("SALDO_LISTEN_ADDRESS", exporter.address.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_calls_no_supplier_and_a_timeout_below_the_margin_is_answered_at_once() {
    let (isikuota, ayopop, env) = suppliers().await;
    isikuota.set_fault(Some(Fault::Hang));
    let exporter = Exporter::start(&env).await;
    let client = client();

    let head = client.head(exporter.url("/metrics")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        (isikuota.requests(), ayopop.requests()),
        (0, 0),
        "HEAD started a check"
    );

    // Prometheus with a 0.4 s scrape timeout: waiting for the hanging supplier until the check
    // timeout (10 s) would answer long after Prometheus gave up.
    let started = Instant::now();
    let response = client
        .get(exporter.url("/metrics"))
        .header("X-Prometheus-Scrape-Timeout-Seconds", "0.4")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("saldo_up{"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after {:?}",
        started.elapsed()
    );
    // The checks were started all the same, and serve the next scrape.
    support::poll(|| (isikuota.requests() == 1 && ayopop.requests() == 1).then_some(()))
        .await
        .expect("the due checks started");
}
