//! The one module that owns the Prometheus registry.
//!
//! Every metric is declared once in [`Metrics`]: the field name is the metric name (after the
//! `saldo_` prefix) and the doc comment is its HELP text. Event counters are updated by
//! [`Metrics::observe_check`] when a check finishes; gauges that describe the current state are
//! filled from the collector's state right before each gather, in [`Metrics::render`], so they
//! can never drift from it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::core::Collector;
use prometheus::{
    CounterVec, Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use crate::error::{Reason, UpstreamError};
use crate::providers::Balance;

/// Upstream latency buckets in seconds: supplier APIs answer in tens of milliseconds to seconds,
/// and the check timeout defaults to 10 s.
const SEVERITIES: [&str; 2] = ["warning", "critical"];

const LATENCY_BUCKETS: [f64; 11] = [0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0];

/// The metric families this module knows how to create.
trait Family: Collector + Clone + Sized + 'static {
    fn create(name: &str, help: &str, labels: &[&str]) -> prometheus::Result<Self>;
}

macro_rules! family {
    ($type:ty) => {
        impl Family for $type {
            fn create(name: &str, help: &str, labels: &[&str]) -> prometheus::Result<Self> {
                <$type>::new(Opts::new(name, help), labels)
            }
        }
    };
}
family!(GaugeVec);
family!(IntGaugeVec);
family!(CounterVec);
family!(IntCounterVec);

impl Family for HistogramVec {
    fn create(name: &str, help: &str, labels: &[&str]) -> prometheus::Result<Self> {
        HistogramVec::new(
            HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
            labels,
        )
    }
}

/// Declares the metrics struct and its constructor from one list.
macro_rules! metrics {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[doc = $doc:literal])+
                pub $field:ident: $type:ty [$($label:literal),*],
            )+
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            /// The standard `process_*` metrics, apart: they change between any two scrapes,
            /// the `saldo_*` families only when a check finishes or the accounts change.
            process: Registry,
            /// The length of the last `saldo_*` text, to size the next one's buffer: at 1,000
            /// accounts growing it by doubling would hold 2 MB and 4 MB at once.
            last_len: AtomicUsize,
            $(
                $(#[doc = $doc])+
                pub $field: $type,
            )+
        }

        impl $name {
            fn register(process: Registry) -> prometheus::Result<Self> {
                $(
                    let help = [$($doc.trim()),+].join(" ");
                    let $field = <$type as Family>::create(
                        concat!("saldo_", stringify!($field)),
                        &help,
                        &[$($label),*],
                    )?;
                )+
                Ok(Self { process, last_len: AtomicUsize::new(0), $($field,)+ })
            }

            /// Every family declared here, with its name.
            fn families(&self) -> Vec<(&'static str, &dyn Collector)> {
                vec![$((concat!("saldo_", stringify!($field)), &self.$field as &dyn Collector),)+]
            }
        }
    };
}

metrics! {
    /// Every metric the exporter serves, besides the process metrics.
    pub struct Metrics {
        /// Low-balance threshold configured for the account, by severity.
        pub balance_threshold: GaugeVec["provider", "account", "severity"],
        /// Sum of the decreases observed between successive successful checks (money spent).
        pub spent_total: CounterVec["provider", "account", "currency"],
        /// Sum of the increases observed between successive successful checks (top-ups).
        pub topup_total: CounterVec["provider", "account", "currency"],
        /// Balance requests sent to the provider.
        pub upstream_requests_total: IntCounterVec["provider", "account"],
        /// Balance checks that failed, by reason: timeout, connect, http_status, auth,
        /// rate_limited, decode or rejected.
        pub upstream_errors_total: IntCounterVec["provider", "account", "reason"],
        /// Duration of balance requests to the provider, failed ones included.
        pub upstream_request_duration_seconds: HistogramVec["provider", "account"],
        /// Version and git revision of the running exporter; always 1.
        pub build_info: IntGaugeVec["version", "revision"],
        /// Whether the latest configuration load succeeded: 1 at start and after a good
        /// reload (SIGHUP), 0 after a reload that was refused (the running configuration is kept).
        pub config_last_reload_successful: IntGaugeVec[],
        /// Unix time of the latest successful configuration load, at start or by reload.
        pub config_last_reload_success_timestamp_seconds: GaugeVec[],
    }
}

/// The gauges that describe each account's state now. They are built afresh from a snapshot
/// of the accounts at every render, never reset and refilled in place, so concurrent renders
/// need no lock and a removed account leaves no stale series (Prometheus' "Writing exporters":
/// state from a snapshot, in a custom collector).
struct StateGauges {
    balance: GaugeVec,
    up: IntGaugeVec,
    last_success_timestamp_seconds: GaugeVec,
}

impl StateGauges {
    fn new() -> prometheus::Result<Self> {
        Ok(Self {
            balance: <GaugeVec as Family>::create(
                "saldo_balance",
                "The account's balance as last fetched successfully from the provider, in the \
                 currency's main unit (rupiah for IDR). Checked when /metrics is scraped, at most \
                 once per min-interval, so the value can be up to one min-interval old; kept \
                 after failures.",
                &["provider", "account", "currency"],
            )?,
            up: <IntGaugeVec as Family>::create(
                "saldo_up",
                "1 if the latest balance check of the account succeeded, else 0.",
                &["provider", "account"],
            )?,
            last_success_timestamp_seconds: <GaugeVec as Family>::create(
                "saldo_last_success_timestamp_seconds",
                "Unix time of the latest successful balance check.",
                &["provider", "account"],
            )?,
        })
    }

    fn families(&self) -> [(&'static str, &dyn Collector); 3] {
        [
            ("saldo_balance", &self.balance),
            ("saldo_up", &self.up),
            (
                "saldo_last_success_timestamp_seconds",
                &self.last_success_timestamp_seconds,
            ),
        ]
    }
}

/// The state of one account, as the collector hands it to [`Metrics::render`].
pub struct AccountView<'a> {
    pub provider: &'a str,
    pub account: &'a str,
    pub up: bool,
    pub last_good: Option<(&'a Balance, SystemTime)>,
}

impl Metrics {
    pub fn new() -> Self {
        let process = Registry::new();
        #[cfg(target_os = "linux")]
        process
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("the process collector registers once");
        let metrics = Self::register(process).expect("metric names are valid");
        metrics
            .build_info
            .with_label_values(&[crate::VERSION, crate::REVISION])
            .set(1);
        // The configuration was loaded before the exporter could start.
        metrics.record_reload(true);
        metrics
    }

    /// Records the outcome of a configuration load.
    pub fn record_reload(&self, success: bool) {
        self.config_last_reload_successful
            .with_label_values::<&str>(&[])
            .set(i64::from(success));
        if success {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            self.config_last_reload_success_timestamp_seconds
                .with_label_values::<&str>(&[])
                .set(now.as_secs_f64());
        }
    }

    /// Creates an account's series up front, so `rate()` and alerts see zeros rather than
    /// nothing before the first failure. Idempotent, so a reload can call it again with changed
    /// thresholds.
    pub fn add_account(&self, provider: &str, account: &str, thresholds: &[(&str, Decimal)]) {
        for severity in SEVERITIES {
            let _ = self
                .balance_threshold
                .remove_label_values(&[provider, account, severity]);
        }
        self.upstream_requests_total
            .with_label_values(&[provider, account]);
        for reason in Reason::ALL {
            self.upstream_errors_total
                .with_label_values(&[provider, account, reason.as_str()]);
        }
        self.upstream_request_duration_seconds
            .with_label_values(&[provider, account]);
        for (severity, value) in thresholds {
            self.balance_threshold
                .with_label_values(&[provider, account, severity])
                .set(to_f64(*value));
        }
    }

    /// Drops every series of an account that left the configuration. `currency` is that of its
    /// last good balance, the only other label its counters carry.
    pub fn remove_account(&self, provider: &str, account: &str, currency: Option<&str>) {
        let labels = [provider, account];
        let _ = self.upstream_requests_total.remove_label_values(&labels);
        let _ = self
            .upstream_request_duration_seconds
            .remove_label_values(&labels);
        for reason in Reason::ALL {
            let _ = self.upstream_errors_total.remove_label_values(&[
                provider,
                account,
                reason.as_str(),
            ]);
        }
        for severity in SEVERITIES {
            let _ = self
                .balance_threshold
                .remove_label_values(&[provider, account, severity]);
        }
        if let Some(currency) = currency {
            let _ = self
                .spent_total
                .remove_label_values(&[provider, account, currency]);
            let _ = self
                .topup_total
                .remove_label_values(&[provider, account, currency]);
        }
    }

    /// Records one finished check. `previous` is the last good balance before it, for the
    /// spent/top-up counters.
    pub fn observe_check(
        &self,
        provider: &str,
        account: &str,
        upstream: Option<Duration>,
        result: &Result<Balance, UpstreamError>,
        previous: Option<&Balance>,
    ) {
        let labels = [provider, account];
        // None: the check timed out waiting for a slot before it could send, which says
        // nothing of the supplier and is no request to it (the failure is still counted).
        if let Some(duration) = upstream {
            self.upstream_requests_total
                .with_label_values(&labels)
                .inc();
            self.upstream_request_duration_seconds
                .with_label_values(&labels)
                .observe(duration.as_secs_f64());
        }
        match result {
            Err(err) => self
                .upstream_errors_total
                .with_label_values(&[provider, account, err.reason().as_str()])
                .inc(),
            Ok(balance) => {
                let labels = [provider, account, balance.currency.as_str()];
                let spent = self.spent_total.with_label_values(&labels);
                let topup = self.topup_total.with_label_values(&labels);
                // A currency change is a new series, not a spend or a top-up.
                if let Some(previous) = previous.filter(|p| p.currency == balance.currency) {
                    let change = balance.amount - previous.amount;
                    if change < Decimal::ZERO {
                        spent.inc_by(to_f64(-change));
                    } else if change > Decimal::ZERO {
                        topup.inc_by(to_f64(change));
                    }
                }
            }
        }
    }

    /// The state gauges of `accounts` and every other metric, in the text format.
    pub fn render<'a>(&self, accounts: impl Iterator<Item = AccountView<'a>>) -> String {
        let mut text = self.render_process();
        text.push_str(&self.render_accounts(accounts));
        text
    }

    /// The `process_*` families, read from `/proc` now.
    pub fn render_process(&self) -> String {
        encode(&self.process.gather())
    }

    /// Like [`Metrics::render`], but only the `saldo_*` families, which change only when a
    /// check finishes or the accounts change.
    pub fn render_accounts<'a>(&self, accounts: impl Iterator<Item = AccountView<'a>>) -> String {
        // A series appears only while the state says it should: no balance before the first
        // success, and no series left behind by a changed currency.
        let state = StateGauges::new().expect("metric names are valid");
        for view in accounts {
            let labels = [view.provider, view.account];
            state.up.with_label_values(&labels).set(i64::from(view.up));
            if let Some((balance, at)) = view.last_good {
                state
                    .balance
                    .with_label_values(&[view.provider, view.account, &balance.currency])
                    .set(to_f64(balance.amount));
                let seconds = at.duration_since(UNIX_EPOCH).unwrap_or_default();
                state
                    .last_success_timestamp_seconds
                    .with_label_values(&labels)
                    .set(seconds.as_secs_f64());
            }
        }
        let mut families = self.families();
        families.extend(state.families());
        families.sort_by_key(|(name, _)| *name);
        // One family at a time, as a registry's `gather` would order them, but without holding
        // a copy of every series at once (30 per account).
        let mut out = Vec::with_capacity(self.last_len.load(Ordering::Relaxed) + 4096);
        for (_, family) in families {
            for mut family in family.collect() {
                if family.get_metric().is_empty() {
                    continue;
                }
                // By label values, as `gather` sorts them: collected directly they come in
                // hash order, and the page would shuffle between renders.
                family
                    .mut_metric()
                    .sort_by(|a, b| label_values(a).cmp(label_values(b)));
                TextEncoder::new()
                    .encode(&[family], &mut out)
                    .expect("the text encoder writes to memory");
            }
        }
        self.last_len.store(out.len(), Ordering::Relaxed);
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

fn label_values(metric: &prometheus::proto::Metric) -> impl Iterator<Item = &str> {
    metric.get_label().iter().map(|pair| pair.value())
}

fn encode(families: &[prometheus::proto::MetricFamily]) -> String {
    let mut out = Vec::with_capacity(16 * 1024);
    TextEncoder::new()
        .encode(families, &mut out)
        .expect("the text encoder writes to memory");
    String::from_utf8(out).expect("the text format is UTF-8")
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The content type of what [`Metrics::render`] returns: text format 0.0.4, as Prometheus'
/// own client libraries send it.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn to_f64(value: Decimal) -> f64 {
    // Amounts within ±7.9e28 always convert; f64 is what Prometheus stores.
    value.to_f64().unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balance(amount: i64) -> Balance {
        Balance {
            amount: Decimal::from(amount),
            currency: "IDR".into(),
            holder: None,
        }
    }

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(prefix))
    }

    #[test]
    fn state_series_come_in_label_order_like_every_other_family() {
        let metrics = Metrics::new();
        let names: Vec<String> = (0..40).map(|i| format!("toko-{i:02}")).collect();
        let good = balance(1);
        let views = names.iter().rev().map(|name| AccountView {
            provider: "isikuota",
            account: name,
            up: true,
            last_good: Some((&good, SystemTime::now())),
        });
        let text = metrics.render_accounts(views);
        for family in [
            "saldo_balance{",
            "saldo_up{",
            "saldo_last_success_timestamp_seconds{",
        ] {
            let order: Vec<&str> = text
                .lines()
                .filter(|line| line.starts_with(family))
                .map(|line| {
                    line.split("account=\"")
                        .nth(1)
                        .unwrap()
                        .split('"')
                        .next()
                        .unwrap()
                })
                .collect();
            assert_eq!(order, names, "{family}");
        }
    }

    #[test]
    fn help_texts_come_from_the_doc_comments() {
        let metrics = Metrics::new();
        // Families without series are not exposed, so give them one account.
        metrics.add_account("isikuota", "main", &[]);
        let text = metrics.render(std::iter::once(AccountView {
            provider: "isikuota",
            account: "main",
            up: true,
            last_good: Some((&balance(1), SystemTime::now())),
        }));
        assert!(text.contains(
            "# HELP saldo_upstream_requests_total Balance requests sent to the provider.\n"
        ));
        assert!(text.contains("can be up to one min-interval old"));
        assert!(text.contains("# TYPE saldo_upstream_errors_total counter\n"));
        assert!(text.contains("saldo_build_info{revision="));
    }

    #[test]
    fn an_account_never_checked_has_no_balance_series_but_zeroed_error_counters() {
        let metrics = Metrics::new();
        metrics.add_account("isikuota", "main", &[("warning", Decimal::from(500_000))]);
        let text = metrics.render(std::iter::once(AccountView {
            provider: "isikuota",
            account: "main",
            up: false,
            last_good: None,
        }));
        assert!(line(&text, "saldo_balance{").is_none());
        assert_eq!(
            line(
                &text,
                "saldo_upstream_errors_total{account=\"main\",provider=\"isikuota\",reason=\"auth\"}"
            ),
            Some(
                "saldo_upstream_errors_total{account=\"main\",provider=\"isikuota\",reason=\"auth\"} 0"
            )
        );
        assert!(text.contains(
            "saldo_balance_threshold{account=\"main\",provider=\"isikuota\",severity=\"warning\"} 500000\n"
        ));
        assert!(text.contains("saldo_up{account=\"main\",provider=\"isikuota\"} 0\n"));
    }

    #[test]
    fn spending_and_top_ups_are_counted_separately() {
        let metrics = Metrics::new();
        let observe = |now: i64, before: Option<i64>| {
            metrics.observe_check(
                "ayopop",
                "a",
                Some(Duration::from_millis(30)),
                &Ok(balance(now)),
                before.map(balance).as_ref(),
            )
        };
        observe(1_000_000, None);
        observe(900_000, Some(1_000_000));
        observe(1_400_000, Some(900_000));
        observe(1_350_000, Some(1_400_000));
        let labels = ["ayopop", "a", "IDR"];
        assert_eq!(
            metrics.spent_total.with_label_values(&labels).get(),
            150_000.0
        );
        assert_eq!(
            metrics.topup_total.with_label_values(&labels).get(),
            500_000.0
        );
        assert_eq!(
            metrics
                .upstream_requests_total
                .with_label_values(&["ayopop", "a"])
                .get(),
            4
        );
    }
}
