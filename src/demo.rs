//! `--demo`: every registered supplier's simulator on loopback, one demo account each.
//!
//! The simulators themselves (the framework in [`crate::providers::simulator`], each
//! supplier's verification in its folder) are re-exported here for the tests.

use rust_decimal::Decimal;

use crate::providers::REGISTRY;
pub use crate::providers::simulator::{Credentials, Fault, Kind, Sales, Simulator};

/// Starts one trading simulator per registered supplier, and returns them with the variables
/// that point one exporter account (`demo-<provider>`) at each.
pub async fn start() -> std::io::Result<(Vec<Simulator>, Vec<(String, String)>)> {
    let mut simulators = Vec::new();
    let mut env = Vec::new();
    for entry in REGISTRY {
        let demo = entry.demo;
        let simulator = Simulator::start(entry.name, Decimal::from(demo.balance)).await?;
        simulator.start_sales(Sales {
            every: demo.sale_every,
            low: Decimal::from(demo.low),
            top_up: Decimal::from(demo.top_up),
        });
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
    Ok((simulators, env))
}
