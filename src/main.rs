//! The `saldo_exporter` command: flags and exit codes only; the work is in the library.

use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use saldo_exporter::config::{Config, ConfigError};
use saldo_exporter::web::WebConfig;
use saldo_exporter::{server, telemetry};

/// Prometheus exporter for the deposit balances (saldo) held with Indonesian PPOB and payment
/// suppliers. Configured by SALDO_* environment variables; see the README.
#[derive(Parser)]
#[command(version = concat!(env!("CARGO_PKG_VERSION"), " (revision ", env!("BUILD_REVISION"), ")"))]
struct Cli {
    /// Validate the configuration, print a summary and exit (0 when valid, 2 when not).
    #[arg(long)]
    check_config: bool,
    /// Also start two simulated suppliers on loopback and collect their accounts: live
    /// balances without credentials.
    #[arg(long)]
    demo: bool,
    /// Web configuration file (TLS, basic auth, headers) in the format of Prometheus' own
    /// exporters; overrides SALDO_WEB_CONFIG_FILE.
    #[arg(long = "web.config.file", value_name = "FILE", global = true)]
    web_config_file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Exit 0 if the exporter listening on SALDO_LISTEN_ADDRESS answers /-/healthy, else 1.
    /// For container health checks, which may have no shell or curl.
    Healthcheck,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Healthcheck) = cli.command {
        return healthcheck(cli.web_config_file.as_deref());
    }
    let config = match Config::from_env().and_then(|mut config| {
        config.web = load_web_config(cli.web_config_file.as_deref(), &config)?;
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
        for warning in &config.warnings {
            eprintln!("saldo_exporter: warning: {warning}");
        }
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

fn healthcheck(web_config_file: Option<&std::path::Path>) -> ExitCode {
    // Only the listen address and TLS matter here; the accounts were checked at start.
    let config = Config::from_env().and_then(|mut config| {
        config.web = load_web_config(web_config_file, &config)?;
        Ok(config)
    });
    let (listen, https) = match config {
        Ok(config) => (config.listen_address, config.web.tls.is_some()),
        Err(err) => {
            eprintln!("saldo_exporter: invalid configuration: {err}");
            return ExitCode::from(2);
        }
    };
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| err.to_string())
        .and_then(|runtime| runtime.block_on(server::healthcheck(listen, https)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("saldo_exporter: unhealthy: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The web configuration: `--web.config.file` if given, else `SALDO_WEB_CONFIG_FILE`; only one
/// of them is read.
fn load_web_config(flag: Option<&Path>, config: &Config) -> Result<WebConfig, ConfigError> {
    let loaded = match (flag, &config.web_config_file) {
        (Some(path), _) => WebConfig::load(path, "--web.config.file")?,
        (None, Some(path)) => WebConfig::load(path, "SALDO_WEB_CONFIG_FILE")?,
        (None, None) => WebConfig::default(),
    };
    Ok(loaded)
}
