//! Every registered provider end to end through the real binary, configured the two ways users
//! configure it: one account from `SALDO_<PROVIDER>_*` variables and one from the YAML accounts
//! file, each against its own simulator. A new provider is covered by its registry line alone.
//! One binary start for the whole registry.

mod support;

use rust_decimal::Decimal;
use saldo_exporter::demo::Simulator;
use saldo_exporter::providers::REGISTRY;
use support::{Exporter, sample, setting};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_provider_serves_its_balance_from_env_and_from_yaml_configuration() {
    let mut env = Vec::new();
    let mut yaml = String::from("accounts:\n");
    let mut simulators = Vec::new();
    for (i, entry) in REGISTRY.iter().enumerate() {
        // Distinct balances, with decimals, so a mix-up between accounts cannot pass.
        let from_env: Decimal = format!("{}1234.5", i + 1).parse().unwrap();
        let from_yaml: Decimal = format!("{}5678.25", i + 1).parse().unwrap();
        let env_simulator = Simulator::start(entry.name, from_env).await.unwrap();
        let yaml_simulator = Simulator::start(entry.name, from_yaml).await.unwrap();
        env.extend(env_simulator.env(&format!("env-{}", entry.name)));
        yaml += &format!(
            "  - name: yaml-{name}\n    provider: {name}\n",
            name = entry.name
        );
        for (field, value) in yaml_simulator.account_fields() {
            // A JSON string is a YAML double-quoted scalar: any value, PEM keys included.
            yaml += &format!("    {field}: {}\n", serde_json::Value::String(value));
        }
        simulators.push((
            entry.name,
            env_simulator,
            from_env,
            yaml_simulator,
            from_yaml,
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("accounts.yml");
    std::fs::write(&file, yaml).unwrap();
    env.push(setting("CONFIG_FILE", file.to_str().unwrap()));

    let exporter = Exporter::start(&env).await;
    let text = exporter.scrape().await;
    for (name, env_simulator, from_env, yaml_simulator, from_yaml) in &simulators {
        for (account, expected) in [
            (format!("env-{name}"), from_env),
            (format!("yaml-{name}"), from_yaml),
        ] {
            let labels = [("provider", *name), ("account", account.as_str())];
            assert_eq!(
                sample(&text, "saldo_up", &labels),
                Some(1.0),
                "{account}\n{}",
                exporter.output()
            );
            let balance = sample(&text, "saldo_balance", &labels);
            let expected: f64 = expected.to_string().parse().unwrap();
            assert_eq!(balance, Some(expected), "{account}");
        }
        assert_eq!(
            (env_simulator.rejected(), yaml_simulator.rejected()),
            (0, 0),
            "{name}: a request was refused"
        );
    }
}
