//! The `saldo_exporter` command: flags and exit codes only; the work is in the library.

use std::process::ExitCode;

use clap::Parser;
use saldo_exporter::config::Config;
use saldo_exporter::{server, telemetry};

/// Prometheus exporter for the deposit balances (saldo) held with Indonesian PPOB and payment
/// suppliers. Configured by SALDO_* environment variables; see the README.
#[derive(Parser)]
#[command(version = concat!(env!("CARGO_PKG_VERSION"), " (revision ", env!("SALDO_REVISION"), ")"))]
struct Cli {
    /// Validate the configuration, print a summary and exit (0 when valid, 2 when not).
    #[arg(long)]
    check_config: bool,
    /// Also start two simulated suppliers on loopback and collect their accounts: live
    /// balances without credentials.
    #[arg(long)]
    demo: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env().and_then(|config| {
        if !cli.demo {
            config.require_accounts()?;
        }
        Ok(config)
    }) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("saldo_exporter: invalid configuration: {err}");
            return ExitCode::from(2);
        }
    };
    if cli.check_config {
        println!(
            "configuration is valid: {} account(s)",
            config.accounts.len()
        );
        for account in &config.accounts {
            println!("  {} {}", account.provider.name(), account.name);
        }
        return ExitCode::SUCCESS;
    }

    telemetry::init(&config.log_level, config.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("saldo_exporter: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen_address)
            .await
            .map_err(|err| anyhow::anyhow!("cannot listen on {}: {err}", config.listen_address))?;
        saldo_exporter::run(config, cli.demo, listener, server::shutdown_signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("saldo_exporter: {err:#}");
            ExitCode::FAILURE
        }
    }
}
