//! Every registered provider against its own simulator: the request it sends passes the
//! simulator's verification (the supplier's documented rules), and the answer decodes to the
//! balance the simulator holds. A new provider is covered by its registry line alone.

use rust_decimal::Decimal;
use saldo_exporter::config::Config;
use saldo_exporter::demo::{self, Fault, Simulator};
use saldo_exporter::error::Reason;
use saldo_exporter::providers::{CheckContext, ProviderConfig, REGISTRY};
use serde_json::{Map, Value};

fn provider_for(simulator: &Simulator) -> ProviderConfig {
    let fields: Map<String, Value> = simulator
        .account_fields()
        .into_iter()
        .map(|(field, value)| (field.to_owned(), Value::String(value)))
        .collect();
    ProviderConfig::from_fields(simulator.provider(), fields)
        .expect("a registered provider")
        .expect("the simulator's fields are a valid account")
}

#[tokio::test]
async fn every_provider_round_trips_through_its_simulator() {
    let cx = CheckContext::new(reqwest::Client::new());
    for entry in REGISTRY {
        let simulator = Simulator::start(entry.name, "1234567.5".parse().unwrap())
            .await
            .unwrap();
        let provider = provider_for(&simulator);
        let balance = provider.provider().fetch(&cx).await;
        let balance = balance.unwrap_or_else(|err| panic!("{}: {err}", entry.name));
        assert_eq!(
            balance.amount,
            "1234567.5".parse::<Decimal>().unwrap(),
            "{}",
            entry.name
        );
        assert_eq!(balance.currency, "IDR", "{}", entry.name);
        assert_eq!(simulator.rejected(), 0, "{}", entry.name);
    }
}

#[tokio::test]
async fn every_provider_reads_its_simulators_failure_envelopes() {
    let cx = CheckContext::new(reqwest::Client::new());
    for entry in REGISTRY {
        let simulator = Simulator::start(entry.name, Decimal::ONE).await.unwrap();
        let provider = provider_for(&simulator);
        simulator.set_fault(Some(Fault::Refusal));
        let err = provider.provider().fetch(&cx).await.unwrap_err();
        assert_eq!(err.reason(), Reason::Rejected, "{}: {err}", entry.name);
        simulator.set_fault(None);
        simulator.rotate_secret("rotated-elsewhere");
        let err = provider.provider().fetch(&cx).await.unwrap_err();
        assert_eq!(err.reason(), Reason::Auth, "{}: {err}", entry.name);
        assert!(simulator.rejected() >= 1, "{}", entry.name);
    }
}

#[tokio::test]
async fn the_demo_starts_every_registered_provider_with_one_account_each() {
    let demo = demo::start().await.unwrap();
    let started: Vec<_> = demo.simulators.iter().map(Simulator::provider).collect();
    let registered: Vec<_> = REGISTRY.iter().map(|entry| entry.name).collect();
    // The last simulator is the generic account's Digiflazz.
    assert_eq!(started[..registered.len()], registered);
    assert_eq!(started[registered.len()..], ["digiflazz"]);
    let config = Config::from_vars(demo.env.clone()).unwrap();
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let mut accounts: Vec<_> = demo
        .accounts()
        .unwrap()
        .iter()
        .map(|a| (a.provider.name(), a.name.clone()))
        .collect();
    let mut expected: Vec<_> = registered
        .iter()
        .map(|name| (*name, format!("demo-{name}")))
        .chain([("generic", "demo-generic".to_owned())])
        .collect();
    accounts.sort();
    expected.sort();
    assert_eq!(accounts, expected);
}

/// Accounts of one supplier share its in-flight limit: `SALDO_MAX_IN_FLIGHT` by default, an
/// account's `max_in_flight` for its own host (the smallest if accounts disagree).
#[tokio::test]
async fn a_supplier_never_sees_more_requests_in_flight_than_its_limit() {
    use std::sync::Arc;
    use std::time::Duration;

    use saldo_exporter::collector::Collector;
    use saldo_exporter::metrics::Metrics;

    let busy = Simulator::start("isikuota", Decimal::ONE).await.unwrap();
    let careful = Simulator::start("ayopop", Decimal::ONE).await.unwrap();
    for simulator in [&busy, &careful] {
        simulator.set_latency(Duration::from_millis(50));
    }
    let mut yaml = String::from("accounts:\n");
    for (simulator, accounts) in [(&busy, 12), (&careful, 6)] {
        for i in 0..accounts {
            yaml += &format!(
                "  - name: {}-{i}\n    provider: {}\n",
                simulator.provider(),
                simulator.provider()
            );
            for (field, value) in simulator.account_fields() {
                yaml += &format!("    {field}: {value:?}\n");
            }
            if simulator.provider() == "ayopop" && i == 0 {
                yaml += "    max_in_flight: 1\n";
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accounts.yml");
    std::fs::write(&path, yaml).unwrap();
    let config = Config::from_vars([
        ("SALDO_CONFIG_FILE".to_owned(), path.display().to_string()),
        ("SALDO_MAX_IN_FLIGHT".to_owned(), "3".to_owned()),
    ])
    .unwrap();
    let client = saldo_exporter::check::http_client(config.timeout).unwrap();
    let collector = Collector::new(
        saldo_exporter::app::targets(config, &client),
        Arc::new(Metrics::new()),
    );
    collector
        .refresh(tokio::time::Instant::now() + Duration::from_secs(30))
        .await;
    let up = collector.statuses().iter().filter(|s| s.up).count();
    assert_eq!(up, 18);
    assert_eq!((busy.requests(), careful.requests()), (12, 6));
    assert!(busy.max_in_flight() <= 3, "{}", busy.max_in_flight());
    assert_eq!(careful.max_in_flight(), 1);
}
