//! The one module that owns the metrics.
//!
//! Every `saldo_*` family is declared once in [`families!`]: the doc comment is its HELP text.
//! Event counters are updated by [`Metrics::observe_check`] when a check finishes; gauges that
//! describe the current state are written from the collector's snapshot of the accounts at each
//! render, in [`Metrics::render_accounts`], so they can never drift from it.
//!
//! The `saldo_*` series are kept here, per account, and written in the text format by this
//! module rather than through the `prometheus` crate's vectors: those keep, for every series
//! (about 30 per account), its own label pairs and a copy of its family's description, about
//! 10 MiB at 1,000 accounts, where an account's counters here take a few hundred bytes. The
//! crate still provides the standard `process_*` metrics. `tests/golden/metrics.txt` pins the
//! output byte for byte, and `promtool check metrics` checks it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{Encoder, Registry, TextEncoder};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use crate::error::{Reason, UpstreamError};
use crate::lock;
use crate::providers::Balance;

/// Upstream latency buckets in seconds: supplier APIs answer in tens of milliseconds to seconds,
/// and the check timeout defaults to 10 s.
const LATENCY_BUCKETS: [f64; 11] = [0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0];

/// Severities of the thresholds, in the order their series are written (by label value).
const SEVERITIES: [&str; 2] = ["critical", "warning"];

/// One metric family's name, HELP text and type.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
}

/// Declares each family from its doc comment, which becomes the HELP text.
macro_rules! families {
    ($( $(#[doc = $doc:literal])+ $constant:ident = $name:literal $kind:literal; )+) => {
        $(
            const $constant: Family = Family {
                name: $name,
                // Each doc line starts with the space that separates it from the one before.
                help: concat!($($doc),+),
                kind: $kind,
            };
        )+
    };
}

families! {
    /// The account's balance as last fetched successfully from the provider, in the
    /// currency's main unit (rupiah for IDR). Checked when /metrics is scraped, at most once
    /// per min-interval, so the value can be up to one min-interval old; kept after failures.
    BALANCE = "saldo_balance" "gauge";
    /// Low-balance threshold configured for the account, by severity.
    BALANCE_THRESHOLD = "saldo_balance_threshold" "gauge";
    /// Version and git revision of the running exporter; always 1.
    BUILD_INFO = "saldo_build_info" "gauge";
    /// Unix time of the latest successful configuration load, at start or by reload.
    RELOAD_SUCCESS_TIMESTAMP = "saldo_config_last_reload_success_timestamp_seconds" "gauge";
    /// Whether the latest configuration load succeeded: 1 at start and after a good
    /// reload (SIGHUP), 0 after a reload that was refused (the running configuration is kept).
    RELOAD_SUCCESSFUL = "saldo_config_last_reload_successful" "gauge";
    /// Unix time of the latest successful balance check.
    LAST_SUCCESS_TIMESTAMP = "saldo_last_success_timestamp_seconds" "gauge";
    /// Sum of the decreases observed between successive successful checks (money spent).
    SPENT = "saldo_spent_total" "counter";
    /// Sum of the increases observed between successive successful checks (top-ups).
    TOPUP = "saldo_topup_total" "counter";
    /// 1 if the latest balance check of the account succeeded, else 0.
    UP = "saldo_up" "gauge";
    /// Balance checks that failed, by reason: timeout, connect, http_status, auth,
    /// rate_limited, decode or rejected.
    UPSTREAM_ERRORS = "saldo_upstream_errors_total" "counter";
    /// Duration of balance requests to the provider, failed ones included.
    UPSTREAM_DURATION = "saldo_upstream_request_duration_seconds" "histogram";
    /// Balance requests sent to the provider.
    UPSTREAM_REQUESTS = "saldo_upstream_requests_total" "counter";
}

/// The counters of one account, and its thresholds.
#[derive(Clone, Default)]
struct Counters {
    /// By [`SEVERITIES`].
    thresholds: [Option<f64>; 2],
    requests: u64,
    /// By [`Reason::ALL`].
    errors: [u64; Reason::ALL.len()],
    /// Observations per bucket of [`LATENCY_BUCKETS`], not cumulative; the rest are above.
    buckets: [u64; LATENCY_BUCKETS.len()],
    duration_sum: f64,
    duration_count: u64,
    /// Money spent and topped up, per currency the account's balance has been in.
    flows: Vec<Flow>,
}

#[derive(Clone)]
struct Flow {
    currency: String,
    spent: f64,
    topup: f64,
}

/// One account's series. Its lock is held only to update or copy the counters, never across a
/// render.
struct Series {
    provider: String,
    account: String,
    counters: Mutex<Counters>,
}

/// The state of one account, as the collector hands it to [`Metrics::render`].
pub struct AccountView<'a> {
    pub provider: &'a str,
    pub account: &'a str,
    pub up: bool,
    pub last_good: Option<(&'a Balance, SystemTime)>,
}

/// Every metric the exporter serves.
pub struct Metrics {
    /// The standard `process_*` metrics, apart: they change between any two scrapes, the
    /// `saldo_*` families only when a check finishes or the accounts change.
    process: Registry,
    /// Every configured account's series, by account and provider: the order in which the
    /// text format lists them (labels sort by name, and `account` comes before `provider`).
    accounts: RwLock<BTreeMap<(String, String), Arc<Series>>>,
    /// Whether the latest configuration load succeeded, and the Unix time of the latest that did.
    reload: Mutex<(bool, f64)>,
    /// The length of the last `saldo_*` text, to size the next one's buffer: at 1,000
    /// accounts growing it by doubling would hold 2 MB and 4 MB at once.
    last_len: AtomicUsize,
    /// Runs in the middle of a render, after the copy: tests look at the locks from there.
    #[cfg(test)]
    during_render: Mutex<Option<RenderHook>>,
}

#[cfg(test)]
type RenderHook = Box<dyn Fn(&Metrics) + Send>;

impl Metrics {
    pub fn new() -> Self {
        let process = Registry::new();
        #[cfg(target_os = "linux")]
        process
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("the process collector registers once");
        let metrics = Self {
            process,
            accounts: RwLock::default(),
            reload: Mutex::new((false, 0.0)),
            last_len: AtomicUsize::new(0),
            #[cfg(test)]
            during_render: Mutex::new(None),
        };
        // The configuration was loaded before the exporter could start.
        metrics.record_reload(true);
        metrics
    }

    /// Records the outcome of a configuration load.
    pub fn record_reload(&self, success: bool) {
        let mut reload = lock(&self.reload);
        reload.0 = success;
        if success {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            reload.1 = now.as_secs_f64();
        }
    }

    /// Creates an account's series up front, so `rate()` and alerts see zeros rather than
    /// nothing before the first failure. Idempotent, so a reload can call it again with changed
    /// thresholds; the counters are kept.
    pub fn add_account(&self, provider: &str, account: &str, thresholds: &[(&str, Decimal)]) {
        let mut values = [None; SEVERITIES.len()];
        for (severity, value) in thresholds {
            if let Some(i) = SEVERITIES.iter().position(|s| s == severity) {
                values[i] = Some(to_f64(*value));
            }
        }
        let mut accounts = self.accounts.write().unwrap_or_else(|p| p.into_inner());
        let series = accounts
            .entry((account.to_owned(), provider.to_owned()))
            .or_insert_with(|| {
                Arc::new(Series {
                    provider: provider.to_owned(),
                    account: account.to_owned(),
                    counters: Mutex::default(),
                })
            });
        lock(&series.counters).thresholds = values;
    }

    /// Drops every series of an account that left the configuration.
    pub fn remove_account(&self, provider: &str, account: &str) {
        self.accounts
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(account.to_owned(), provider.to_owned()));
    }

    fn series(&self, provider: &str, account: &str) -> Option<Arc<Series>> {
        let accounts = self.accounts.read().unwrap_or_else(|p| p.into_inner());
        accounts
            .get(&(account.to_owned(), provider.to_owned()))
            .map(Arc::clone)
    }

    /// Records one finished check. `previous` is the last good balance before it, for the
    /// spent/top-up counters. A check of an account no longer configured records nothing.
    pub fn observe_check(
        &self,
        provider: &str,
        account: &str,
        upstream: Option<Duration>,
        result: &Result<Balance, UpstreamError>,
        previous: Option<&Balance>,
    ) {
        let Some(series) = self.series(provider, account) else {
            return;
        };
        let mut counters = lock(&series.counters);
        // None: the check timed out waiting for a slot before it could send, which says
        // nothing of the supplier and is no request to it (the failure is still counted).
        if let Some(duration) = upstream {
            let seconds = duration.as_secs_f64();
            counters.requests += 1;
            if let Some(bucket) = LATENCY_BUCKETS.iter().position(|le| seconds <= *le) {
                counters.buckets[bucket] += 1;
            }
            counters.duration_sum += seconds;
            counters.duration_count += 1;
        }
        match result {
            Err(err) => {
                let reason = Reason::ALL.iter().position(|r| *r == err.reason());
                counters.errors[reason.expect("every reason is in Reason::ALL")] += 1;
            }
            Ok(balance) => {
                let flows = &mut counters.flows;
                let flow = match flows.iter().position(|f| f.currency == balance.currency) {
                    Some(i) => &mut flows[i],
                    None => {
                        flows.push(Flow {
                            currency: balance.currency.clone(),
                            spent: 0.0,
                            topup: 0.0,
                        });
                        flows.last_mut().expect("just pushed")
                    }
                };
                // A currency change is a new series, not a spend or a top-up.
                if let Some(previous) = previous.filter(|p| p.currency == balance.currency) {
                    let change = balance.amount - previous.amount;
                    if change < Decimal::ZERO {
                        flow.spent += to_f64(-change);
                    } else if change > Decimal::ZERO {
                        flow.topup += to_f64(change);
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
        let mut out = Vec::with_capacity(2048);
        TextEncoder::new()
            .encode(&self.process.gather(), &mut out)
            .expect("the text encoder writes to memory");
        String::from_utf8(out).expect("the text format is UTF-8")
    }

    /// Like [`Metrics::render`], but only the `saldo_*` families, which change only when a
    /// check finishes or the accounts change. Families come in name order and series in
    /// label-value order, as a Prometheus registry's `gather` gives them, so the page does not
    /// shuffle between renders.
    pub fn render_accounts<'a>(&self, accounts: impl Iterator<Item = AccountView<'a>>) -> String {
        // A copy of each account's counters, taken one account at a time: a check recording
        // its result waits for one copy at most, never for the render.
        let series: Vec<(Arc<Series>, Counters)> = {
            let map = self.accounts.read().unwrap_or_else(|p| p.into_inner());
            map.values().map(Arc::clone).collect::<Vec<_>>()
        }
        .into_iter()
        .map(|series| {
            let counters = lock(&series.counters).clone();
            (series, counters)
        })
        .collect();
        #[cfg(test)]
        if let Some(hook) = lock(&self.during_render).as_ref() {
            hook(self);
        }
        let mut views: Vec<AccountView<'a>> = accounts.collect();
        views.sort_by(|a, b| (a.account, a.provider).cmp(&(b.account, b.provider)));
        let (reload_successful, reload_at) = *lock(&self.reload);

        // The first render has no length to go by: about 2.7 KB per account (histogram buckets
        // and error reasons, mostly), rather than doubling up from nothing.
        let estimate = match self.last_len.load(Ordering::Relaxed) {
            0 => series.len() * 3072,
            last => last,
        };
        let mut out = Text(String::with_capacity(estimate + 4096));

        // saldo_balance{account, currency, provider}: an account has a balance series only
        // once a check has succeeded.
        let mut balances: Vec<(&str, &str, &str, f64)> = views
            .iter()
            .filter_map(|v| {
                let (balance, _) = v.last_good?;
                Some((
                    v.account,
                    balance.currency.as_str(),
                    v.provider,
                    to_f64(balance.amount),
                ))
            })
            .collect();
        balances.sort_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
        out.family(&BALANCE, !balances.is_empty());
        for (account, currency, provider, value) in balances {
            out.sample(
                BALANCE.name,
                &[
                    ("account", account),
                    ("currency", currency),
                    ("provider", provider),
                ],
                value,
            );
        }

        let thresholds = series.iter().flat_map(|(s, c)| {
            SEVERITIES
                .iter()
                .zip(c.thresholds)
                .filter_map(move |(severity, value)| Some((s, *severity, value?)))
        });
        out.family(&BALANCE_THRESHOLD, thresholds.clone().next().is_some());
        for (s, severity, value) in thresholds {
            out.sample(
                BALANCE_THRESHOLD.name,
                &[
                    ("account", &s.account),
                    ("provider", &s.provider),
                    ("severity", severity),
                ],
                value,
            );
        }

        out.family(&BUILD_INFO, true);
        out.sample(
            BUILD_INFO.name,
            &[("revision", crate::REVISION), ("version", crate::VERSION)],
            1.0,
        );
        out.family(&RELOAD_SUCCESS_TIMESTAMP, true);
        out.sample(RELOAD_SUCCESS_TIMESTAMP.name, &[], reload_at);
        out.family(&RELOAD_SUCCESSFUL, true);
        out.sample(
            RELOAD_SUCCESSFUL.name,
            &[],
            f64::from(u8::from(reload_successful)),
        );

        let succeeded = views.iter().filter_map(|v| Some((v, v.last_good?.1)));
        out.family(&LAST_SUCCESS_TIMESTAMP, succeeded.clone().next().is_some());
        for (v, at) in succeeded {
            let seconds = at.duration_since(UNIX_EPOCH).unwrap_or_default();
            out.sample(
                LAST_SUCCESS_TIMESTAMP.name,
                &[("account", v.account), ("provider", v.provider)],
                seconds.as_secs_f64(),
            );
        }

        // saldo_spent_total and saldo_topup_total{account, currency, provider}.
        let mut flows: Vec<(&Series, &Flow)> = series
            .iter()
            .flat_map(|(s, c)| c.flows.iter().map(move |f| (&**s, f)))
            .collect();
        flows.sort_by(|(s, f), (t, g)| {
            (&s.account, &f.currency, &s.provider).cmp(&(&t.account, &g.currency, &t.provider))
        });
        for topup in [false, true] {
            let family = if topup { &TOPUP } else { &SPENT };
            out.family(family, !flows.is_empty());
            for (s, flow) in &flows {
                out.sample(
                    family.name,
                    &[
                        ("account", &s.account),
                        ("currency", &flow.currency),
                        ("provider", &s.provider),
                    ],
                    if topup { flow.topup } else { flow.spent },
                );
            }
        }

        out.family(&UP, !views.is_empty());
        for v in &views {
            out.sample(
                UP.name,
                &[("account", v.account), ("provider", v.provider)],
                f64::from(u8::from(v.up)),
            );
        }

        let mut reasons: Vec<(usize, &str)> = Reason::ALL
            .iter()
            .enumerate()
            .map(|(i, r)| (i, r.as_str()))
            .collect();
        reasons.sort_by_key(|(_, name)| *name);
        out.family(&UPSTREAM_ERRORS, !series.is_empty());
        for (s, c) in &series {
            for (i, reason) in &reasons {
                out.sample(
                    UPSTREAM_ERRORS.name,
                    &[
                        ("account", &s.account),
                        ("provider", &s.provider),
                        ("reason", reason),
                    ],
                    c.errors[*i] as f64,
                );
            }
        }

        out.family(&UPSTREAM_DURATION, !series.is_empty());
        for (s, c) in &series {
            let labels = [("account", s.account.as_str()), ("provider", &s.provider)];
            let name = UPSTREAM_DURATION.name;
            let mut cumulative = 0;
            for (le, count) in LATENCY_BUCKETS.iter().zip(c.buckets) {
                cumulative += count;
                out.line(name, "_bucket", &labels, Some(*le), cumulative as f64);
            }
            let count = c.duration_count as f64;
            out.line(name, "_bucket", &labels, Some(f64::INFINITY), count);
            out.line(name, "_sum", &labels, None, c.duration_sum);
            out.line(name, "_count", &labels, None, count);
        }

        out.family(&UPSTREAM_REQUESTS, !series.is_empty());
        for (s, c) in &series {
            out.sample(
                UPSTREAM_REQUESTS.name,
                &[("account", &s.account), ("provider", &s.provider)],
                c.requests as f64,
            );
        }

        self.last_len.store(out.0.len(), Ordering::Relaxed);
        // The text is served as it is, capacity included, until the next render; shrinking a
        // large block is a `mremap`, not a copy.
        out.0.shrink_to_fit();
        out.0
    }
}

/// The text exposition format, version 0.0.4, written as Prometheus' client libraries write it.
struct Text(String);

impl Text {
    /// The HELP and TYPE lines of a family, if it has any series: a family without series is
    /// not exposed.
    fn family(&mut self, family: &Family, has_series: bool) {
        if has_series {
            let help = escape(family.help.trim_start(), false);
            let _ = writeln!(self.0, "# HELP {} {help}", family.name);
            let _ = writeln!(self.0, "# TYPE {} {}", family.name, family.kind);
        }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.line(name, "", labels, None, value);
    }

    /// One sample line. `le` is a histogram bucket's upper bound, the last label.
    fn line(
        &mut self,
        name: &str,
        suffix: &str,
        labels: &[(&str, &str)],
        le: Option<f64>,
        value: f64,
    ) {
        self.0.push_str(name);
        self.0.push_str(suffix);
        let mut separator = '{';
        for (name, value) in labels {
            let _ = write!(self.0, "{separator}{name}=\"{}\"", escape(value, true));
            separator = ',';
        }
        if let Some(le) = le {
            let _ = write!(self.0, "{separator}le=\"");
            self.number(le);
            self.0.push('"');
            separator = ',';
        }
        if separator == ',' {
            self.0.push('}');
        }
        self.0.push(' ');
        self.number(value);
        self.0.push('\n');
    }

    fn number(&mut self, value: f64) {
        // The spellings Prometheus parses; Rust's `Display` writes `inf`.
        match value {
            v if v.is_nan() => self.0.push_str("NaN"),
            f64::INFINITY => self.0.push_str("+Inf"),
            f64::NEG_INFINITY => self.0.push_str("-Inf"),
            v => {
                let _ = write!(self.0, "{v}");
            }
        }
    }
}

/// Escapes `\` and line feeds, and with `quote` also `"`, as the text format requires.
fn escape(value: &str, quote: bool) -> std::borrow::Cow<'_, str> {
    let special = |c: char| c == '\\' || c == '\n' || (quote && c == '"');
    if !value.contains(special) {
        return value.into();
    }
    let mut escaped = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            '"' if quote => escaped.push_str("\\\""),
            c => escaped.push(c),
        }
    }
    escaped.into()
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
    fn a_check_can_record_its_result_while_the_text_is_written() {
        let metrics = Metrics::new();
        metrics.add_account("isikuota", "main", &[]);
        let free = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = Arc::clone(&free);
        *lock(&metrics.during_render) = Some(Box::new(move |metrics: &Metrics| {
            // What a finishing check takes: the map of accounts, and its account's counters.
            let map_free = metrics.accounts.try_write().is_ok();
            let counters_free = metrics
                .series("isikuota", "main")
                .is_some_and(|series| series.counters.try_lock().is_ok());
            seen.store(map_free && counters_free, Ordering::SeqCst);
        }));
        metrics.render_accounts(std::iter::empty());
        assert!(
            free.load(Ordering::SeqCst),
            "a render held a lock a check needs"
        );
    }

    #[test]
    fn spending_and_top_ups_are_counted_separately() {
        let metrics = Metrics::new();
        metrics.add_account("ayopop", "a", &[]);
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
        let text = metrics.render_accounts(std::iter::empty());
        let labels = "{account=\"a\",currency=\"IDR\",provider=\"ayopop\"}";
        assert!(text.contains(&format!("saldo_spent_total{labels} 150000\n")));
        assert!(text.contains(&format!("saldo_topup_total{labels} 500000\n")));
        assert!(
            text.contains("saldo_upstream_requests_total{account=\"a\",provider=\"ayopop\"} 4\n")
        );
    }

    fn families(text: &str) -> Vec<&str> {
        text.lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap())
            .collect()
    }

    #[test]
    fn families_come_in_name_order_each_with_its_help_and_type() {
        let metrics = Metrics::new();
        metrics.add_account("isikuota", "main", &[("critical", Decimal::ONE)]);
        metrics.observe_check(
            "isikuota",
            "main",
            Some(Duration::from_millis(30)),
            &Ok(balance(5)),
            None,
        );
        let text = metrics.render_accounts(std::iter::once(AccountView {
            provider: "isikuota",
            account: "main",
            up: true,
            last_good: Some((&balance(5), SystemTime::now())),
        }));
        let names = families(&text);
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        assert_eq!(names.len(), 12, "{text}");
        for name in names {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
        }
    }

    #[test]
    fn latency_buckets_are_cumulative_and_a_bound_holds_its_own_value() {
        let metrics = Metrics::new();
        metrics.add_account("ayopop", "a", &[]);
        for millis in [25, 26, 40_000] {
            metrics.observe_check(
                "ayopop",
                "a",
                Some(Duration::from_millis(millis)),
                &Ok(balance(1)),
                None,
            );
        }
        let text = metrics.render_accounts(std::iter::empty());
        let bucket = |le: &str| {
            let prefix = format!(
                "saldo_upstream_request_duration_seconds_bucket{{account=\"a\",provider=\"ayopop\",le=\"{le}\"}} "
            );
            line(&text, &prefix).map(|l| l[prefix.len()..].to_owned())
        };
        assert_eq!(bucket("0.025").as_deref(), Some("1"));
        assert_eq!(bucket("0.05").as_deref(), Some("2"));
        assert_eq!(bucket("30").as_deref(), Some("2"));
        assert_eq!(bucket("+Inf").as_deref(), Some("3"));
        assert!(text.contains(
            "saldo_upstream_request_duration_seconds_count{account=\"a\",provider=\"ayopop\"} 3\n"
        ));
        assert!(text.contains(
            "saldo_upstream_request_duration_seconds_sum{account=\"a\",provider=\"ayopop\"} 40.051\n"
        ));
    }

    #[test]
    fn a_removed_account_leaves_no_series_not_even_of_an_earlier_currency() {
        let metrics = Metrics::new();
        metrics.add_account("xendit", "gone", &[("warning", Decimal::ONE)]);
        metrics.add_account("xendit", "kept", &[]);
        let mut usd = balance(1);
        usd.currency = "USD".into();
        for (account, result) in [("gone", usd), ("gone", balance(2)), ("kept", balance(3))] {
            metrics.observe_check(
                "xendit",
                account,
                Some(Duration::from_millis(1)),
                &Ok(result),
                None,
            );
        }
        let before = metrics.render_accounts(std::iter::empty());
        assert!(before.contains("saldo_spent_total{account=\"gone\",currency=\"USD\""));
        metrics.remove_account("xendit", "gone");
        // A check that was in flight when its account left records nothing.
        metrics.observe_check(
            "xendit",
            "gone",
            Some(Duration::from_millis(1)),
            &Ok(balance(4)),
            None,
        );
        let after = metrics.render_accounts(std::iter::empty());
        assert!(!after.contains("\"gone\""), "{after}");
        assert!(
            after.contains(
                "saldo_upstream_requests_total{account=\"kept\",provider=\"xendit\"} 1\n"
            )
        );
    }

    #[test]
    fn label_values_and_odd_numbers_are_written_as_prometheus_parses_them() {
        assert_eq!(escape("a\"b\\c\nd", true), "a\\\"b\\\\c\\nd");
        assert_eq!(escape("a\"b", false), "a\"b");
        let mut text = Text(String::new());
        for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.1, 1e21, -0.0] {
            text.sample("x", &[], value);
        }
        assert_eq!(
            text.0,
            "x NaN\nx +Inf\nx -Inf\nx 0.1\nx 1000000000000000000000\nx -0\n"
        );
    }
}
