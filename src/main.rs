//! The `saldo_exporter` command: flags and exit codes only; the work is in the library.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use saldo_exporter::config::{Config, ConfigError, Override};
use saldo_exporter::providers::REGISTRY;
use saldo_exporter::web::WebConfig;
use saldo_exporter::{server, telemetry};

/// Prometheus exporter for the deposit balances (saldo) held with Indonesian PPOB and payment
/// suppliers. Configured by SALDO_* environment variables (listed below; see the README); the
/// flags named like node_exporter's override the variable each one mirrors.
#[derive(Parser)]
#[command(name = "saldo_exporter", disable_version_flag = true)]
struct Cli {
    /// Address to serve /metrics and the landing page on [SALDO_LISTEN_ADDRESS]
    #[arg(long = "web.listen-address", value_name = "ADDRESS", global = true)]
    listen_address: Option<String>,
    /// Path under which to serve the metrics [SALDO_TELEMETRY_PATH]
    #[arg(long = "web.telemetry-path", value_name = "PATH")]
    telemetry_path: Option<String>,
    /// Web configuration file: TLS, basic auth, headers, in the format of Prometheus' own
    /// exporters [SALDO_WEB_CONFIG_FILE]
    #[arg(long = "web.config.file", value_name = "FILE", global = true)]
    web_config_file: Option<String>,
    /// YAML file of accounts [SALDO_CONFIG_FILE]
    #[arg(long = "config.file", value_name = "FILE")]
    config_file: Option<String>,
    /// Log level (trace, debug, info, warn, error, off) or a filter such as info,hyper=debug
    /// [SALDO_LOG_LEVEL]
    #[arg(long = "log.level", value_name = "LEVEL")]
    log_level: Option<String>,
    /// Log format: text or json [SALDO_LOG_FORMAT]
    #[arg(long = "log.format", value_name = "FORMAT")]
    log_format: Option<String>,
    /// Validate the configuration, print a summary and exit (0 when valid, 2 when not).
    #[arg(long)]
    check_config: bool,
    /// Also start a simulated supplier of every kind on loopback and collect one account at
    /// each: live balances without credentials.
    #[arg(long)]
    demo: bool,
    /// Print the version, revision and build details, and exit.
    #[arg(long)]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Exit 0 if the exporter listening on SALDO_LISTEN_ADDRESS answers /-/healthy, else 1.
    /// For container health checks, which may have no shell or curl.
    Healthcheck,
}

impl Cli {
    /// The flags given, as overrides of the variables they mirror.
    fn overrides(&self) -> Vec<Override> {
        [
            (
                "SALDO_LISTEN_ADDRESS",
                "--web.listen-address",
                &self.listen_address,
            ),
            (
                "SALDO_TELEMETRY_PATH",
                "--web.telemetry-path",
                &self.telemetry_path,
            ),
            (
                "SALDO_WEB_CONFIG_FILE",
                "--web.config.file",
                &self.web_config_file,
            ),
            ("SALDO_CONFIG_FILE", "--config.file", &self.config_file),
            ("SALDO_LOG_LEVEL", "--log.level", &self.log_level),
            ("SALDO_LOG_FORMAT", "--log.format", &self.log_format),
        ]
        .into_iter()
        .filter_map(|(variable, flag, value)| {
            Some(Override {
                variable,
                flag,
                value: value.clone()?,
            })
        })
        .collect()
    }
}

/// Every variable, for `--help`.
fn variables() -> String {
    let providers: Vec<String> = REGISTRY
        .iter()
        .map(|entry| format!("SALDO_{}_*", entry.name.to_uppercase()))
        .collect();
    format!(
        "Environment variables (a flag above wins over the variable it mirrors):
  SALDO_LISTEN_ADDRESS         address to listen on [default: 0.0.0.0:9866]
  SALDO_TELEMETRY_PATH         path of the metrics [default: /metrics]
  SALDO_MIN_INTERVAL           at most one check per account per interval [default: 30s]
  SALDO_TIMEOUT                limit for one check [default: 10s]
  SALDO_MAX_IN_FLIGHT          requests in flight per supplier host [default: 16]
  SALDO_CONFIG_FILE            YAML file of accounts
  SALDO_WEB_CONFIG_FILE        web configuration (TLS, basic auth, headers)
  SALDO_LOG_LEVEL              log level or filter [default: info]
  SALDO_LOG_FORMAT             text or json [default: text]
  SALDO_<PROVIDER>_<FIELD>     one account of that provider, e.g. SALDO_ISIKUOTA_API_KEY;
                               every field also as <NAME>_FILE, holding a path
Providers: {}
Any other supplier: `provider: generic` in SALDO_CONFIG_FILE (see the README)",
        providers.join(", ")
    )
}

/// Like Prometheus' `version` package prints it.
fn version() -> String {
    format!(
        "saldo_exporter, version {} (revision: {})
  rustc version:    {}
  platform:         {}",
        env!("CARGO_PKG_VERSION"),
        env!("BUILD_REVISION"),
        env!("BUILD_RUSTC_VERSION"),
        env!("BUILD_TARGET"),
    )
}

fn main() -> ExitCode {
    let matches = Cli::command().after_help(variables()).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    if cli.version {
        println!("{}", version());
        return ExitCode::SUCCESS;
    }
    let overrides = cli.overrides();
    if let Some(Command::Healthcheck) = cli.command {
        return healthcheck(&overrides);
    }
    let config = match Config::from_env_with(&overrides).and_then(|mut config| {
        config.web = load_web_config(&config)?;
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
    limit_allocator();
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

/// Before any thread starts. glibc gives each thread that allocates an arena of its own (up to
/// eight per core), and once a large block has been freed it raises its thresholds so that
/// blocks up to 32 MiB come from, and stay in, the arenas: the megabyte buffers of a render at
/// 1,000 accounts then stay resident for good. Two arenas keep the serving and upstream threads
/// from contending much; fixed thresholds keep blocks over 128 KiB in mappings of their own,
/// returned when freed (bench/notes.md has the figures).
fn limit_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator settings; no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
    }
}

fn healthcheck(overrides: &[Override]) -> ExitCode {
    // Only the listen address and TLS matter here; the accounts were checked at start.
    let config = Config::from_env_with(overrides).and_then(|mut config| {
        config.web = load_web_config(&config)?;
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

/// The web configuration named by `--web.config.file` or, failing that,
/// `SALDO_WEB_CONFIG_FILE`: only one of them is read.
fn load_web_config(config: &Config) -> Result<WebConfig, ConfigError> {
    let Some(path) = &config.web_config_file else {
        return Ok(WebConfig::default());
    };
    let setting = config
        .overrides
        .iter()
        .find(|o| o.variable == "SALDO_WEB_CONFIG_FILE")
        .map_or("SALDO_WEB_CONFIG_FILE", |o| o.flag);
    Ok(WebConfig::load(path, setting)?)
}
