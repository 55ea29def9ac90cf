//! The application wiring: configuration to collector targets, the demo suppliers, SIGHUP
//! reloads, and serving until shutdown.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::collector::{Collector, Target};
use crate::config::{Config, Override};
use crate::metrics::Metrics;
use crate::providers::CheckContext;
use crate::server::{self, App};
use crate::{REVISION, VERSION, check, demo, web};

/// The collector's view of each configured account.
pub fn targets(config: Config, client: &reqwest::Client) -> Vec<Target> {
    let cx = CheckContext::new(client.clone());
    let host = |account: &crate::config::AccountConfig| {
        check::host_of(account.provider.provider().base_url())
    };
    let limits = check::HostLimits::new(
        config
            .accounts
            .iter()
            .map(|account| (host(account), account.max_in_flight)),
        config
            .max_in_flight
            .unwrap_or(check::DEFAULT_HOST_IN_FLIGHT),
    );
    for warning in &limits.warnings {
        tracing::warn!("{warning}");
    }
    let timeout = config.timeout;
    config
        .accounts
        .into_iter()
        .map(|account| {
            let provider = Arc::clone(account.provider.provider());
            let cx = cx.clone();
            let slots = limits.of(&host(&account));
            Target {
                provider: account.provider.name(),
                account: account.name,
                min_interval: account.min_interval.unwrap_or(config.min_interval),
                timeout: config.timeout,
                warning_threshold: account.warning_threshold,
                critical_threshold: account.critical_threshold,
                check: Arc::new(move |sent| {
                    let provider = Arc::clone(&provider);
                    check::start(provider, cx.clone(), Arc::clone(&slots), timeout, sent)
                }),
            }
        })
        .collect()
}

/// Runs the exporter on `listener` until `shutdown` completes. With `demo`, the simulated
/// suppliers start first and their accounts join the configured ones. SIGHUP reloads the
/// accounts (see [`reload`]).
pub async fn run(
    mut config: Config,
    demo: bool,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    // Kept alive for as long as the exporter serves.
    let demo = if demo {
        let started = demo::start().await.context("starting the demo providers")?;
        Some(Arc::new(started))
    } else {
        None
    };
    if let Some(demo) = &demo {
        config
            .accounts
            .extend(demo.accounts().context("configuring the demo accounts")?);
    }
    let client = check::http_client(config.timeout).context("building the HTTP client")?;
    let timeout = config.timeout;
    let telemetry_path = config.telemetry_path.clone();
    let overrides = config.overrides.clone();
    let web = Arc::new(web::Live::new(config.web.clone()));
    log_accounts(&config);
    let app = Arc::new(App {
        collector: Collector::new(targets(config, &client), Arc::new(Metrics::new())),
        web,
        timeout,
        telemetry_path,
        texts: Arc::default(),
    });
    // Installed before serving: SIGHUP's default action would end the process.
    #[cfg(unix)]
    let reloads = {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
        let (app, client, demo) = (Arc::clone(&app), client.clone(), demo.clone());
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                reload(&app, &client, &overrides, demo.as_deref());
            }
        })
    };
    tracing::info!(
        address = %listener.local_addr()?,
        tls = app.web.serves_tls(),
        basic_auth = app.web.snapshot().auth.is_some(),
        version = VERSION,
        revision = REVISION,
        "listening"
    );
    server::serve(listener, app, shutdown).await;
    #[cfg(unix)]
    reloads.abort();
    drop(demo);
    Ok(())
}

/// Reads the configuration again (the accounts file and secret files included) and switches
/// the collector to its accounts. A configuration that is invalid or has no account is
/// reported and the running one kept: a typo must not stop the monitoring. Listen address and
/// logging apply at start only; the web configuration is not read here (it reloads by itself
/// when its files change, see [`web::Live`]).
pub fn reload(
    app: &App,
    client: &reqwest::Client,
    overrides: &[Override],
    demo: Option<&demo::Demo>,
) {
    // The command line's settings still hold: `--config.file` names the file to read again.
    let loaded = Config::from_env_with(overrides).and_then(|mut config| {
        if let Some(demo) = demo {
            config.accounts.extend(demo.accounts()?);
        }
        config.require_accounts()?;
        Ok(config)
    });
    match loaded {
        Ok(config) => {
            log_accounts(&config);
            let accounts = config.accounts.len();
            app.collector.replace(targets(config, client));
            tracing::info!(accounts, "configuration reloaded");
        }
        Err(err) => {
            app.collector.reload_failed();
            tracing::error!(
                error = %err,
                accounts = app.collector.len(),
                "configuration not reloaded; the running one is kept"
            )
        }
    }
}

/// Logs the accounts and the configuration's warnings.
pub fn log_accounts(config: &Config) {
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    for account in &config.accounts {
        tracing::info!(
            provider = account.provider.name(),
            account = %account.name,
            "collecting account"
        );
    }
}
