//! saldo_exporter: deposit balances of Indonesian PPOB and payment suppliers, for Prometheus.
//!
//! Balances are checked through each supplier's own API when Prometheus scrapes `/metrics`, at
//! most once per min-interval per account. Who owns what:
//!
//! - [`app`]: the wiring: configuration to collector targets, `--demo`, SIGHUP reloads, serving.
//! - [`config`]: `SALDO_*` variables and the YAML accounts file, validated into a
//!   [`config::Config`].
//! - [`providers`]: one folder per supplier (its client and its simulator), registered in one
//!   table, [`providers::REGISTRY`]; each turns a check into a [`providers::Balance`] or a
//!   classified [`error::UpstreamError`].
//! - [`check`]: how one check runs: the HTTP client, the upstream runtime, the limits on
//!   requests in flight.
//! - [`signing`]: the pure HMAC and JWT functions the providers sign with.
//! - [`error`]: the one place upstream failures are classified into a `reason`.
//! - [`collector`]: the min-interval guard, single flight and concurrent fan-out per scrape.
//! - [`metrics`]: the one owner of the Prometheus registry.
//! - [`server`]: the HTTP endpoints and graceful shutdown.
//! - [`landing`]: the landing page at `/`.
//! - [`telemetry`]: logging to stderr, as text or JSON lines.
//! - [`web`]: the exporter-toolkit web configuration (TLS, basic auth, headers).
//! - [`yaml`]: the strict YAML loader (no duplicate keys, no values in errors).
//! - [`demo`]: every supplier's simulator on loopback, for `--demo` and the tests.
//! - [`zero_copy`]: plain `/metrics` answers spliced from a pipe rather than copied.

pub mod app;
pub mod check;
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
pub mod zero_copy;

pub use app::run;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision built from, or `unknown`.
pub const REVISION: &str = env!("BUILD_REVISION");

/// Every update under the crate's mutexes is one assignment or increment, so the guarded state
/// stays consistent across a panic and a poisoned lock is safe to keep using.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
