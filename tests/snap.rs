//! End-to-end: the real binary against a simulated SNAP BI bank on loopback, which verifies the
//! RSA signature of the token request and the HMAC-SHA512 signature of every inquiry, and
//! refuses expired tokens and replayed external ids.

mod support;

use std::time::Duration;

use rust_decimal::Decimal;
use saldo_exporter::demo::{Fault, Simulator};
use saldo_exporter::providers::snap::simulator::Snap;
use support::{DEADLINE, Exporter, poll, sample, setting};
use tokio::time::Instant;

const ACCOUNT: &str = "float-bca";

fn labels() -> [(&'static str, &'static str); 2] {
    [("provider", "snap"), ("account", ACCOUNT)]
}

async fn bank() -> Simulator {
    Simulator::start("snap", "187450000.25".parse::<Decimal>().unwrap())
        .await
        .unwrap()
}

fn snap(simulator: &Simulator) -> &Snap {
    simulator.supplier::<Snap>().unwrap()
}

/// The variables of one SNAP account against `simulator`, checked on every scrape.
fn env(simulator: &Simulator) -> Vec<(String, String)> {
    let mut env = simulator.env(ACCOUNT);
    env.push(setting("MIN_INTERVAL", "0s"));
    env
}

fn errors(text: &str, reason: &str) -> f64 {
    let [provider, account] = labels();
    sample(
        text,
        "saldo_upstream_errors_total",
        &[provider, account, ("reason", reason)],
    )
    .unwrap_or_else(|| panic!("no error counter for {reason}:\n{text}"))
}

/// Scrapes until the account's `saldo_up` is `up`, and returns that scrape.
async fn scrape_until_up(exporter: &Exporter, up: f64) -> String {
    let mut last = String::new();
    for _ in 0..200 {
        last = exporter.scrape().await;
        if sample(&last, "saldo_up", &labels()) == Some(up) {
            return last;
        }
    }
    panic!("saldo_up never became {up}:\n{last}\n{}", exporter.output());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_from_yaml_with_a_mounted_key_fetches_one_token_for_a_hundred_scrapes() {
    let simulator = bank().await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("snap-private-key.pem");
    std::fs::write(&key, snap(&simulator).private_key_pem()).unwrap();
    let mut yaml = format!(
        "accounts:\n  - name: {ACCOUNT}\n    provider: snap\n    private_key_file: {}\n",
        key.display()
    );
    for (field, value) in simulator.account_fields() {
        if field != "private_key" {
            yaml += &format!("    {field}: {value:?}\n");
        }
    }
    let accounts = dir.path().join("accounts.yml");
    std::fs::write(&accounts, yaml).unwrap();
    let exporter = Exporter::start(&[
        setting("CONFIG_FILE", &accounts.display().to_string()),
        setting("MIN_INTERVAL", "0s"),
    ])
    .await;

    for _ in 0..100 {
        let text = exporter.scrape().await;
        let [provider, account] = labels();
        assert_eq!(
            sample(
                &text,
                "saldo_balance",
                &[provider, account, ("currency", "IDR")]
            ),
            Some(187_450_000.25)
        );
        assert_eq!(sample(&text, "saldo_up", &labels()), Some(1.0));
    }
    // A check per scrape (a 0s min-interval), each with a fresh external id, on one token.
    assert_eq!(snap(&simulator).token_requests(), 1);
    assert_eq!((simulator.requests(), simulator.rejected()), (101, 0));
    // The key and the secret never reach the log.
    let output = exporter.output();
    let credentials = simulator.credentials();
    assert!(!output.contains(&credentials.secret_key), "{output}");
    assert!(!output.contains("PRIVATE KEY"), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_from_the_environment_survives_an_expired_token_and_refreshes_a_short_one() {
    let simulator = bank().await;
    let exporter = Exporter::start(&env(&simulator)).await;
    let text = exporter.scrape().await;
    assert_eq!(
        sample(&text, "saldo_balance", &labels()),
        Some(187_450_000.25)
    );
    assert_eq!(snap(&simulator).token_requests(), 1);

    // The bank forgets the token: one refused inquiry (4011101), one new token, one retry, and
    // the check succeeds.
    snap(&simulator).set_token_lifetime(Duration::from_secs(3));
    snap(&simulator).expire_tokens();
    let text = exporter.scrape().await;
    assert_eq!(sample(&text, "saldo_up", &labels()), Some(1.0));
    assert_eq!(errors(&text, "auth"), 0.0);
    assert_eq!(snap(&simulator).token_requests(), 2);
    assert_eq!((simulator.requests(), simulator.rejected()), (5, 1));

    // The new token lives 3 s: the exporter fetches the next one ahead of its expiry, and no
    // check fails meanwhile.
    let deadline = Instant::now() + DEADLINE;
    let mut text = String::new();
    while snap(&simulator).token_requests() < 3 {
        assert!(Instant::now() < deadline, "no refresh ahead of expiry");
        text = exporter.scrape().await;
        assert_eq!(sample(&text, "saldo_up", &labels()), Some(1.0), "{text}");
        // Polling: one scrape every 50 ms while the token ages.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(snap(&simulator).token_requests() >= 3);
    for reason in ["auth", "decode", "rejected", "http_status"] {
        assert_eq!(errors(&text, reason), 0.0, "{reason}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_client_secret_is_an_auth_failure() {
    let simulator = bank().await;
    let exporter = Exporter::start(&env(&simulator)).await;
    scrape_until_up(&exporter, 1.0).await;
    simulator.rotate_secret("rotated-on-the-bank-portal");
    let text = scrape_until_up(&exporter, 0.0).await;
    assert!(errors(&text, "auth") >= 1.0);
    // The last good balance stays exported.
    assert_eq!(
        sample(&text, "saldo_balance", &labels()),
        Some(187_450_000.25)
    );
    // A bad signature is no token problem: no new token was fetched for it.
    assert_eq!(snap(&simulator).token_requests(), 1);
    // The log arrives through a pipe, possibly after the scrape that showed the failure.
    let logged = poll(|| exporter.output().contains("4011100").then_some(())).await;
    assert!(logged.is_some(), "{}", exporter.output());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_bank_is_reported_as_rate_limited() {
    let simulator = bank().await;
    let exporter = Exporter::start(&env(&simulator)).await;
    scrape_until_up(&exporter, 1.0).await;
    simulator.set_fault(Some(Fault::RateLimited { retry_after: 3600 }));
    let text = scrape_until_up(&exporter, 0.0).await;
    assert_eq!(errors(&text, "rate_limited"), 1.0);
    assert_eq!(errors(&text, "auth"), 0.0);
}
