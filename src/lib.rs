//! saldo_exporter: deposit balances of Indonesian PPOB and payment suppliers, for Prometheus.
//!
//! Balances are checked through each supplier's own API when Prometheus scrapes `/metrics`, at
//! most once per min-interval per account. Who owns what:
//!
//! - [`config`]: `SALDO_*` variables and the YAML accounts file, validated into a
//!   [`config::Config`].
//! - [`providers`]: one file per supplier, registered in one list; each builds its signed request
//!   and decodes answers into a [`providers::Balance`] or a classified [`error::UpstreamError`].
//! - [`signing`]: the pure HMAC and JWT functions the providers sign with.
//! - [`error`]: the one place upstream failures are classified into a `reason`.
//! - [`collector`]: the min-interval guard, single flight and concurrent fan-out per scrape.
//! - [`metrics`]: the one owner of the Prometheus registry.
//! - [`server`]: the HTTP endpoints and graceful shutdown.
//! - [`landing`]: the landing page at `/`.
//! - [`telemetry`]: logging to stderr, as text or JSON lines.
//! - [`web`]: the exporter-toolkit web configuration (TLS, basic auth, headers).
//! - [`yaml`]: the strict YAML loader (no duplicate keys, no values in errors).
//! - [`demo`]: simulated suppliers on loopback, for `--demo` and the tests.

pub mod collector;
pub mod config;
pub mod demo;
pub mod error;
pub mod landing;
pub mod metrics;
pub mod providers;
pub mod server;
pub mod signing;
pub mod telemetry;
pub mod web;
pub mod yaml;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::collector::{Collector, Target};
use crate::config::Config;
use crate::error::UpstreamError;
use crate::metrics::Metrics;
use crate::providers::Balance;
use crate::server::App;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision built from, or `unknown`.
pub const REVISION: &str = env!("BUILD_REVISION");

/// The one HTTP client for every upstream: connection reuse, no redirects (credentials must not
/// follow a redirect to another host), and only the connect phase limited here, since the
/// collector bounds each whole check.
pub fn http_client(config: &Config) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("saldo_exporter/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(config.timeout)
        .build()
}

/// At most this many balance requests run at once, across all accounts: a scrape of many
/// accounts at one supplier then neither opens a connection per account nor arrives at the
/// supplier as a flood. Enough for 100 accounts in one round.
static CHECK_PERMITS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(128);

/// The collector's view of each configured account.
pub fn targets(config: Config, client: &reqwest::Client) -> Vec<Target> {
    config
        .accounts
        .into_iter()
        .map(|account| {
            let provider = Arc::new(account.provider);
            let client = client.clone();
            Target {
                provider: provider.name(),
                account: account.name,
                min_interval: account.min_interval.unwrap_or(config.min_interval),
                timeout: config.timeout,
                warning_threshold: account.warning_threshold,
                critical_threshold: account.critical_threshold,
                check: Arc::new(move || {
                    let provider = Arc::clone(&provider);
                    let client = client.clone();
                    let request = upstream_runtime().spawn(async move {
                        let _permit = CHECK_PERMITS.acquire().await.expect("never closed");
                        providers::check(provider.provider(), &client).await
                    });
                    Box::pin(AbortOnDrop(request))
                }),
            }
        })
        .collect()
}

/// Upstream requests run on a runtime of their own. A supplier that floods the connection (endless
/// `100 Continue` answers) keeps hyper parsing for seconds within one poll, and on the serving
/// runtime that would hold up its timers: the scrape deadline and the check timeout.
fn upstream_runtime() -> &'static tokio::runtime::Handle {
    static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
        tokio::runtime::Builder::new_multi_thread()
            // Supplier requests are I/O: two threads carry thousands of them.
            .worker_threads(2)
            .thread_name("saldo-upstream")
            .enable_all()
            .build()
            .expect("the upstream runtime starts")
    });
    RUNTIME.handle()
}

/// A check running on the upstream runtime, aborted when the collector stops waiting for it
/// (at the check timeout), so that its request stops too.
struct AbortOnDrop(JoinHandle<Result<Balance, UpstreamError>>);

impl Future for AbortOnDrop {
    type Output = Result<Balance, UpstreamError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|joined| match joined {
            Ok(result) => result,
            // Only a panic ends the task early; the collector handles it as before.
            Err(err) => std::panic::resume_unwind(err.into_panic()),
        })
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the exporter on `listener` until `shutdown` completes. With `demo`, the simulated
/// suppliers start first and their two accounts join the configured ones. SIGHUP reloads the
/// accounts (see [`reload`]).
pub async fn run(
    mut config: Config,
    demo: bool,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    // Kept alive for as long as the exporter serves.
    let mut simulators = Vec::new();
    let mut demo_env = Vec::new();
    if demo {
        let (started, env) = demo::start().await.context("starting the demo providers")?;
        simulators = started;
        demo_env = env;
        config.accounts.extend(
            Config::from_vars(demo_env.clone())
                .context("configuring the demo accounts")?
                .accounts,
        );
    }
    let client = http_client(&config).context("building the HTTP client")?;
    let timeout = config.timeout;
    let min_interval = config.min_interval;
    let web = Arc::new(web::Live::new(config.web.clone()));
    log_accounts(&config);
    let app = Arc::new(App {
        collector: Collector::new(targets(config, &client), Arc::new(Metrics::new())),
        web,
        timeout,
        min_interval,
    });
    // Installed before serving: SIGHUP's default action would end the process.
    #[cfg(unix)]
    let reloads = {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
        let (app, client) = (Arc::clone(&app), client.clone());
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                reload(&app, &client, &demo_env);
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
    drop(simulators);
    Ok(())
}

/// Reads the configuration again (the accounts file and secret files included) and switches
/// the collector to its accounts. A configuration that is invalid or has no account is
/// reported and the running one kept: a typo must not stop the monitoring. Listen address and
/// logging apply at start only; the web configuration is not read here (it reloads by itself
/// when its files change, see [`web::Live`]).
pub fn reload(app: &App, client: &reqwest::Client, demo_env: &[(String, String)]) {
    let loaded = Config::from_env().and_then(|mut config| {
        if !demo_env.is_empty() {
            config
                .accounts
                .extend(Config::from_vars(demo_env.to_vec())?.accounts);
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
