//! `--demo`: every registered supplier's simulator on loopback, one demo account each, and one
//! `generic` account (`examples/generic/digiflazz.yaml`) against a Digiflazz simulator of its
//! own.
//!
//! The simulators themselves (the framework in [`crate::providers::simulator`], each
//! supplier's verification in its folder) are re-exported here for the tests.

use std::path::Path;

use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::config::{self, AccountConfig, Config, ConfigError};
use crate::providers::REGISTRY;
use crate::providers::simulator::DemoAccount;
pub use crate::providers::simulator::{Credentials, Fault, Kind, Sales, Simulator};

/// The generic demo account's configuration: the example a user would start from.
const GENERIC_EXAMPLE: &str = include_str!("../examples/generic/digiflazz.yaml");

/// The demo's suppliers and the accounts pointing at them.
pub struct Demo {
    /// Kept alive for as long as the demo accounts are checked.
    pub simulators: Vec<Simulator>,
    /// One account (`demo-<provider>`) per registered supplier, as `SALDO_<PROVIDER>_*`.
    pub env: Vec<(String, String)>,
    /// An accounts file with the `demo-generic` account.
    pub accounts_file: String,
}

impl Demo {
    /// Every demo account, read as users' accounts are (so a reload reads them again).
    pub fn accounts(&self) -> Result<Vec<AccountConfig>, ConfigError> {
        let mut accounts = Config::from_vars(self.env.clone())?.accounts;
        accounts.extend(config::accounts_from_yaml(
            &self.accounts_file,
            Path::new("examples/generic/digiflazz.yaml"),
            "--demo",
            &mut Vec::new(),
        )?);
        Ok(accounts)
    }
}

/// Starts one trading simulator per registered supplier, plus the generic account's.
pub async fn start() -> std::io::Result<Demo> {
    let mut simulators = Vec::new();
    let mut env = Vec::new();
    for entry in REGISTRY {
        let demo = entry.demo;
        let simulator = trading(entry.name, demo).await?;
        let prefix = format!("SALDO_{}_", entry.name.to_uppercase());
        env.extend(simulator.env(&format!("demo-{}", entry.name)));
        env.push((
            format!("{prefix}WARNING_THRESHOLD"),
            demo.warning.to_string(),
        ));
        env.push((
            format!("{prefix}CRITICAL_THRESHOLD"),
            demo.critical.to_string(),
        ));
        // Loopback costs nothing, and a demo should move while you watch.
        env.push((format!("{prefix}MIN_INTERVAL"), "5s".into()));
        simulators.push(simulator);
    }
    // A balance of its own, so the page does not seem to show demo-digiflazz twice.
    let demo = DemoAccount {
        balance: 8_750_000,
        ..crate::providers::digiflazz::PROVIDER.demo
    };
    let simulator = trading("digiflazz", demo).await?;
    let accounts_file = generic_account(&simulator, demo).to_string();
    simulators.push(simulator);
    Ok(Demo {
        simulators,
        env,
        accounts_file,
    })
}

async fn trading(provider: &str, demo: DemoAccount) -> std::io::Result<Simulator> {
    let simulator = Simulator::start(provider, Decimal::from(demo.balance)).await?;
    simulator.start_sales(Sales {
        every: demo.sale_every,
        low: Decimal::from(demo.low),
        top_up: Decimal::from(demo.top_up),
    });
    Ok(simulator)
}

/// `examples/generic/digiflazz.yaml`'s account as JSON (which is YAML), called `name` and
/// aimed at the Digiflazz `simulator` with its credentials.
pub fn generic_digiflazz(simulator: &Simulator, name: &str) -> Value {
    let file = crate::yaml::parse(GENERIC_EXAMPLE).expect("the shipped example is valid YAML");
    let mut account = file["accounts"][0].clone();
    let fields: serde_json::Map<String, Value> = simulator
        .account_fields()
        .into_iter()
        .map(|(field, value)| (field.to_owned(), Value::String(value)))
        .collect();
    account["name"] = json!(name);
    account["request"]["url"] = json!(format!("{}/v1/cek-saldo", simulator.base_url()));
    account["credentials"] = json!({
        "username": fields["username"],
        "api_key": fields["api_key"],
    });
    account
}

/// The demo's generic account, as an accounts file.
fn generic_account(simulator: &Simulator, demo: DemoAccount) -> Value {
    let mut account = generic_digiflazz(simulator, "demo-generic");
    account["warning_threshold"] = json!(demo.warning);
    account["critical_threshold"] = json!(demo.critical);
    account["min_interval"] = json!("5s");
    json!({ "accounts": [account] })
}
