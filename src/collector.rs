//! On-demand collection: the min-interval guard, single flight and the concurrent fan-out.
//!
//! A scrape calls [`Collector::refresh`], which starts a check for every account that is due
//! and waits for the checks in flight until the scrape's deadline. Per account there is at most
//! one check in flight and at most one started per min-interval, however many scrapes arrive:
//! scrapes that find a check running wait for that one (single flight), later ones reuse its
//! result, failures included. A check runs as its own task, so one still running at a deadline
//! finishes in the background and its result serves the next scrape.

use std::future::Future;
use std::io::Write as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, SystemTime};

use hyper::body::Bytes;
use rust_decimal::Decimal;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;

use crate::error::{Reason, UpstreamError};
use crate::lock;
use crate::metrics::{AccountView, Metrics};
use crate::providers::{Balance, MAX_RETRY_AFTER};

pub type CheckFuture = Pin<Box<dyn Future<Output = Result<Balance, UpstreamError>> + Send>>;

/// Starts one upstream balance check. Production checks call a provider over HTTP; tests count
/// calls and script answers.
pub type Check = Arc<dyn Fn(Sent) -> CheckFuture + Send + Sync>;

/// Marked by a check when it has its slot under the in-flight limits and sends: the upstream
/// latency is measured from there, so time spent waiting for a slot is not counted as the
/// supplier's. A check that never marks it sent nothing, and adds nothing to the histogram.
#[derive(Clone, Default)]
pub struct Sent(Arc<OnceLock<Instant>>);

impl Sent {
    pub fn mark(&self) {
        let _ = self.0.set(Instant::now());
    }
}

/// One account to collect.
pub struct Target {
    pub provider: &'static str,
    pub account: String,
    pub min_interval: Duration,
    /// Limit for one check, connection to last byte.
    pub timeout: Duration,
    pub warning_threshold: Option<Decimal>,
    pub critical_threshold: Option<Decimal>,
    pub check: Check,
}

/// What the landing page shows of an account: its settings and the outcome of its checks.
#[derive(Debug, Clone)]
pub struct AccountStatus {
    pub provider: &'static str,
    pub account: String,
    pub min_interval: Duration,
    /// The limit of one check, which a timeout's description names.
    pub timeout: Duration,
    pub warning_threshold: Option<Decimal>,
    pub critical_threshold: Option<Decimal>,
    /// Whether the latest check succeeded; false before the first one finishes.
    pub up: bool,
    /// Why the latest check failed, if it did.
    pub last_error: Option<Reason>,
    /// The balance of the latest successful check and when it finished, kept across failures.
    pub last_good: Option<(Balance, SystemTime)>,
}

pub struct Collector {
    /// Swapped whole on a configuration reload; scrapes work on the snapshot they took.
    accounts: RwLock<Arc<[Arc<Account>]>>,
    metrics: Arc<Metrics>,
    /// The last `saldo_*` text and the generation it shows. The lock is held only to read or
    /// swap the slot, never while rendering.
    rendered: Mutex<Option<(u64, Arc<Part>)>>,
    /// Bumped whenever a check records its result or the accounts change, the only times the
    /// `saldo_*` text changes.
    generation: Arc<AtomicU64>,
    /// The last `process_*` text and when it was read: reading `/proc` costs as much as the
    /// rest of a cached scrape, and an age under a second is below what a scraper can tell.
    process: Mutex<Option<(std::time::Instant, Arc<Part>)>>,
    /// Runs in the middle of a render, after the snapshot: tests look at the locks from there.
    #[cfg(test)]
    during_render: Mutex<Option<RenderHook>>,
}

#[cfg(test)]
type RenderHook = Box<dyn Fn(&Collector) + Send>;

/// One part of the exposition (the `process_*` or the `saldo_*` families), plain and, once a
/// client has asked for it, gzip-compressed: a warm compressed scrape compresses nothing.
pub struct Part {
    text: Bytes,
    gzip: OnceLock<Bytes>,
}

impl Part {
    fn new(text: String) -> Self {
        Self {
            text: Bytes::from(text),
            gzip: OnceLock::new(),
        }
    }

    pub fn text(&self) -> &Bytes {
        &self.text
    }

    /// The text as one gzip member. Members concatenate into a valid gzip stream (RFC 1952
    /// §2.2), so the parts are compressed apart and joined as they are.
    pub fn gzip(&self) -> &Bytes {
        self.gzip.get_or_init(|| {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(self.text.len() / 8),
                // Level 1: most of the size reduction at a fraction of the default level's
                // cost; the result is kept until the text changes.
                flate2::Compression::fast(),
            );
            encoder
                .write_all(&self.text)
                .and_then(|()| encoder.finish())
                .map(Bytes::from)
                .expect("compressing into memory cannot fail")
        })
    }
}

/// What a scrape serves: the parts, in order.
pub struct Exposition {
    pub parts: [Arc<Part>; 2],
}

impl Exposition {
    /// The parts, plain or with `gzip` compressed, to be sent one after the other: shared, not
    /// copied.
    pub fn chunks(&self, gzip: bool) -> [Bytes; 2] {
        self.parts
            .each_ref()
            .map(|part| if gzip { part.gzip() } else { part.text() }.clone())
    }

    /// The plain text, or with `gzip` the compressed body, in one buffer.
    pub fn body(&self, gzip: bool) -> Bytes {
        Bytes::from(self.chunks(gzip).concat())
    }
}

/// How long the `process_*` text is reused.
const PROCESS_MAX_AGE: Duration = Duration::from_secs(1);

struct Account {
    target: Target,
    state: Mutex<State>,
    generation: Arc<AtomicU64>,
}

#[derive(Default, Clone)]
struct State {
    last_started: Option<Instant>,
    /// Set by a 429's `Retry-After`: no request before then.
    not_before: Option<Instant>,
    /// Closed when the running check has recorded its result.
    in_flight: Option<watch::Receiver<()>>,
    /// `None` until a check finishes, then whether the latest one failed and why.
    latest: Option<Result<(), Reason>>,
    last_good: Option<(Balance, SystemTime)>,
}

impl Collector {
    pub fn new(targets: Vec<Target>, metrics: Arc<Metrics>) -> Self {
        let collector = Self {
            accounts: RwLock::new(Arc::new([])),
            metrics,
            rendered: Mutex::new(None),
            generation: Arc::new(AtomicU64::new(0)),
            process: Mutex::new(None),
            #[cfg(test)]
            during_render: Mutex::new(None),
        };
        collector.replace(targets);
        collector
    }

    /// Switches to a new set of accounts (a configuration reload). An account that stays, by
    /// provider and name, keeps its last balance, its interval and its Retry-After; the series
    /// of an account that leaves are removed.
    pub fn replace(&self, targets: Vec<Target>) {
        let old = self.accounts();
        let accounts: Arc<[Arc<Account>]> = targets
            .into_iter()
            .map(|target| {
                let thresholds: Vec<(&str, Decimal)> = [
                    ("warning", target.warning_threshold),
                    ("critical", target.critical_threshold),
                ]
                .into_iter()
                .filter_map(|(severity, value)| value.map(|v| (severity, v)))
                .collect();
                self.metrics
                    .add_account(target.provider, &target.account, &thresholds);
                let state = old
                    .iter()
                    .find(|a| a.is(target.provider, &target.account))
                    .map(|previous| State {
                        // A check still running reports to the account it started for.
                        in_flight: None,
                        ..lock(&previous.state).clone()
                    })
                    .unwrap_or_default();
                Arc::new(Account {
                    target,
                    state: Mutex::new(state),
                    generation: Arc::clone(&self.generation),
                })
            })
            .collect();
        for gone in old.iter().filter(|a| {
            !accounts
                .iter()
                .any(|n| n.is(a.target.provider, &a.target.account))
        }) {
            self.metrics
                .remove_account(gone.target.provider, &gone.target.account);
        }
        *self.accounts.write().unwrap_or_else(|p| p.into_inner()) = accounts;
        self.metrics.record_reload(true);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Records a configuration reload that was refused; a successful one is recorded by
    /// [`Collector::replace`].
    pub fn reload_failed(&self) {
        self.metrics.record_reload(false);
        self.generation.fetch_add(1, Ordering::Release);
    }

    fn accounts(&self) -> Arc<[Arc<Account>]> {
        Arc::clone(&self.accounts.read().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn len(&self) -> usize {
        self.accounts().len()
    }

    pub fn is_empty(&self) -> bool {
        self.accounts().is_empty()
    }

    /// Starts every due check, then waits for all checks in flight until `deadline`.
    pub async fn refresh(&self, deadline: Instant) {
        // One reading of the clock for every account: a warm scrape is mostly this loop.
        let now = Instant::now();
        let waits: Vec<_> = self
            .accounts()
            .iter()
            .filter_map(|account| account.start_if_due(now, &self.metrics))
            .collect();
        // The checks run concurrently as tasks; waiting on them one after the other costs no
        // more than the slowest, and the shared deadline bounds it.
        for mut done in waits {
            // Err means the check finished (its sender is dropped), which is what we wait for.
            if tokio::time::timeout_at(deadline, done.changed())
                .await
                .is_err()
            {
                break;
            }
        }
    }

    /// The exposition text, reflecting the state right now.
    pub fn render(&self) -> String {
        String::from_utf8(self.exposition().body(false).to_vec()).expect("the text format is UTF-8")
    }

    /// The exposition, reflecting the state right now. The `saldo_*` part is rendered again
    /// only when a check has finished or the accounts changed since the last render, from a
    /// snapshot taken one account at a time: a check finishing during a render never waits for
    /// it, and no lock is held across a render.
    pub fn exposition(&self) -> Exposition {
        // Read before the states: a change meanwhile makes the next render redo the text.
        let generation = self.generation.load(Ordering::Acquire);
        let cached = lock(&self.rendered)
            .as_ref()
            .filter(|(shown, _)| *shown == generation)
            .map(|(_, part)| Arc::clone(part));
        let accounts = cached.unwrap_or_else(|| {
            let accounts = self.accounts();
            let snapshot: Vec<(bool, Option<(Balance, SystemTime)>)> = accounts
                .iter()
                .map(|account| {
                    let state = lock(&account.state);
                    (
                        matches!(state.latest, Some(Ok(()))),
                        state.last_good.clone(),
                    )
                })
                .collect();
            let views = accounts
                .iter()
                .zip(&snapshot)
                .map(|(account, (up, last_good))| AccountView {
                    provider: account.target.provider,
                    account: &account.target.account,
                    up: *up,
                    last_good: last_good.as_ref().map(|(b, at)| (b, *at)),
                });
            #[cfg(test)]
            if let Some(hook) = lock(&self.during_render).as_ref() {
                hook(self);
            }
            let part = Arc::new(Part::new(self.metrics.render_accounts(views)));
            let mut slot = lock(&self.rendered);
            // Two renders may race; the newer generation stays.
            if slot.as_ref().is_none_or(|(shown, _)| *shown <= generation) {
                *slot = Some((generation, Arc::clone(&part)));
            }
            part
        });
        let cached = lock(&self.process)
            .as_ref()
            .filter(|(read, _)| read.elapsed() < PROCESS_MAX_AGE)
            .map(|(_, part)| Arc::clone(part));
        let process = cached.unwrap_or_else(|| {
            let part = Arc::new(Part::new(self.metrics.render_process()));
            *lock(&self.process) = Some((std::time::Instant::now(), Arc::clone(&part)));
            part
        });
        Exposition {
            parts: [process, accounts],
        }
    }

    /// Every account's settings and latest outcome. Each account's lock is held only while its
    /// own state is copied, so a page view never stalls a check recording its result.
    pub fn statuses(&self) -> Vec<AccountStatus> {
        self.accounts()
            .iter()
            .map(|account| {
                let target = &account.target;
                let (latest, last_good) = {
                    let state = lock(&account.state);
                    (state.latest, state.last_good.clone())
                };
                AccountStatus {
                    provider: target.provider,
                    account: target.account.clone(),
                    min_interval: target.min_interval,
                    timeout: target.timeout,
                    warning_threshold: target.warning_threshold,
                    critical_threshold: target.critical_threshold,
                    up: matches!(latest, Some(Ok(()))),
                    last_error: latest.and_then(Result::err),
                    last_good,
                }
            })
            .collect()
    }
}

impl Account {
    fn is(&self, provider: &str, account: &str) -> bool {
        self.target.provider == provider && self.target.account == account
    }

    /// Starts a check if one is due, and returns what to wait on if one is running.
    fn start_if_due(
        self: &Arc<Self>,
        now: Instant,
        metrics: &Arc<Metrics>,
    ) -> Option<watch::Receiver<()>> {
        let mut state = lock(&self.state);
        // A sender dropped without recording (a panicking check) no longer counts as running.
        if let Some(done) = state.in_flight.as_ref().filter(|d| d.has_changed().is_ok()) {
            return Some(done.clone());
        }
        let due = state
            .last_started
            .is_none_or(|started| now >= started + self.target.min_interval)
            && state.not_before.is_none_or(|t| now >= t);
        if !due {
            return None;
        }
        let (finished, done) = watch::channel(());
        state.last_started = Some(now);
        state.in_flight = Some(done.clone());
        let span = tracing::debug_span!(
            "check",
            provider = self.target.provider,
            account = %self.target.account
        );
        tokio::spawn(
            Arc::clone(self)
                .run(Arc::clone(metrics), finished)
                .instrument(span),
        );
        Some(done)
    }

    async fn run(self: Arc<Self>, metrics: Arc<Metrics>, finished: watch::Sender<()>) {
        let target = &self.target;
        let started = Instant::now();
        let sent = Sent::default();
        // The timeout bounds the whole check, waiting for a slot included.
        let result = tokio::time::timeout(target.timeout, (target.check)(sent.clone()))
            .await
            .unwrap_or(Err(UpstreamError::Timeout(target.timeout)));
        let duration = started.elapsed();
        let upstream = sent.0.get().map(|at| at.elapsed());
        match &result {
            Ok(balance) => tracing::debug!(
                duration_seconds = duration.as_secs_f64(),
                balance = %balance.amount,
                currency = %balance.currency,
                "balance check succeeded"
            ),
            // The span names the account only at debug level; an operator at `info` must still
            // see which account failed.
            Err(err) => tracing::warn!(
                provider = target.provider,
                account = %target.account,
                duration_seconds = duration.as_secs_f64(),
                reason = err.reason().as_str(),
                error = %err,
                "balance check failed"
            ),
        }

        let mut state = lock(&self.state);
        metrics.observe_check(
            target.provider,
            &target.account,
            upstream,
            &result,
            state.last_good.as_ref().map(|(b, _)| b),
        );
        state.in_flight = None;
        match result {
            Ok(balance) => {
                state.latest = Some(Ok(()));
                state.last_good = Some((balance, SystemTime::now()));
            }
            Err(err) => {
                state.latest = Some(Err(err.reason()));
                if let UpstreamError::RateLimited {
                    retry_after: Some(delay),
                } = err
                {
                    state.not_before = Some(Instant::now() + delay.min(MAX_RETRY_AFTER));
                }
            }
        }
        // After the result is recorded, so that a render seeing the new generation shows it.
        self.generation.fetch_add(1, Ordering::Release);
        // Waiters wake when `finished` drops, which must come after the result is recorded.
        drop(state);
        drop(finished);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A scripted upstream: each call takes `latency` of (paused) tokio time and returns the
    /// next scripted answer, repeating the last one.
    struct Upstream {
        calls: AtomicUsize,
        latency: Mutex<Duration>,
        answers: Mutex<VecDeque<Result<i64, Reason>>>,
    }

    impl Upstream {
        fn new(answers: &[Result<i64, Reason>]) -> Arc<Self> {
            Arc::new(Self {
                calls: AtomicUsize::new(0),
                latency: Mutex::new(Duration::from_millis(100)),
                answers: Mutex::new(answers.iter().copied().collect()),
            })
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }

        fn check(self: &Arc<Self>) -> Check {
            let upstream = Arc::clone(self);
            Arc::new(move |sent: Sent| {
                let upstream = Arc::clone(&upstream);
                Box::pin(async move {
                    sent.mark();
                    upstream.calls.fetch_add(1, Ordering::SeqCst);
                    let latency = *upstream.latency.lock().unwrap();
                    tokio::time::sleep(latency).await;
                    let answer = {
                        let mut answers = upstream.answers.lock().unwrap();
                        if answers.len() > 1 {
                            answers.pop_front().unwrap()
                        } else {
                            answers[0]
                        }
                    };
                    match answer {
                        Ok(amount) => Ok(Balance {
                            amount: Decimal::from(amount),
                            currency: "IDR".into(),
                            holder: None,
                        }),
                        Err(Reason::RateLimited) => Err(UpstreamError::RateLimited {
                            retry_after: Some(Duration::from_secs(120)),
                        }),
                        Err(Reason::HttpStatus) => Err(UpstreamError::HttpStatus(
                            reqwest::StatusCode::INTERNAL_SERVER_ERROR,
                        )),
                        Err(other) => Err(UpstreamError::Rejected(format!("{other:?}"))),
                    }
                })
            })
        }
    }

    const MIN_INTERVAL: Duration = Duration::from_secs(30);

    fn collector(upstream: &Arc<Upstream>) -> Arc<Collector> {
        let target = Target {
            provider: "isikuota",
            account: "main".into(),
            min_interval: MIN_INTERVAL,
            timeout: Duration::from_secs(10),
            warning_threshold: None,
            critical_threshold: None,
            check: upstream.check(),
        };
        Arc::new(Collector::new(vec![target], Arc::new(Metrics::new())))
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_can_record_its_result_while_a_render_is_in_progress() {
        let upstream = Upstream::new(&[Ok(1_000_000)]);
        let collector = collector(&upstream);
        scrape(&collector).await;
        collector.generation.fetch_add(1, Ordering::Release);
        let free = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = Arc::clone(&free);
        *lock(&collector.during_render) = Some(Box::new(move |collector: &Collector| {
            // What a finishing check needs is its account's state lock: it must be free.
            let all_free = collector
                .accounts()
                .iter()
                .all(|account| account.state.try_lock().is_ok());
            seen.store(all_free, Ordering::SeqCst);
        }));
        let text = collector.render();
        assert!(
            free.load(Ordering::SeqCst),
            "a render held an account's lock"
        );
        assert!(text.contains("saldo_balance{"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_gzip_body_is_the_text_compressed_and_is_made_once_per_change() {
        use std::io::Read as _;

        let upstream = Upstream::new(&[Ok(1_000_000)]);
        let collector = collector(&upstream);
        scrape(&collector).await;
        let exposition = collector.exposition();
        let mut decoded = String::new();
        flate2::read::MultiGzDecoder::new(&exposition.body(true)[..])
            .read_to_string(&mut decoded)
            .unwrap();
        assert_eq!(decoded.as_bytes(), &exposition.body(false)[..]);
        assert!(decoded.contains("saldo_balance{"));
        // A second scrape without a change reuses the compressed accounts part.
        let again = collector.exposition();
        assert!(std::ptr::eq(
            exposition.parts[1].gzip().as_ptr(),
            again.parts[1].gzip().as_ptr()
        ));
    }

    async fn scrape(collector: &Collector) -> String {
        collector
            .refresh(Instant::now() + Duration::from_secs(5))
            .await;
        collector.render()
    }

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
    }

    const BALANCE: &str = "saldo_balance{account=\"main\",currency=\"IDR\",provider=\"isikuota\"}";
    const UP: &str = "saldo_up{account=\"main\",provider=\"isikuota\"}";

    fn errors(reason: &str) -> String {
        format!(
            "saldo_upstream_errors_total{{account=\"main\",provider=\"isikuota\",reason=\"{reason}\"}}"
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_scrape_within_the_interval_reuses_the_cached_balance() {
        let upstream = Upstream::new(&[Ok(1_000_000), Ok(900_000)]);
        let collector = collector(&upstream);
        assert_eq!(value(&scrape(&collector).await, BALANCE), Some(1_000_000.0));
        tokio::time::advance(MIN_INTERVAL - Duration::from_secs(1)).await;
        assert_eq!(value(&scrape(&collector).await, BALANCE), Some(1_000_000.0));
        assert_eq!(upstream.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_scrape_after_the_interval_checks_again() {
        let upstream = Upstream::new(&[Ok(1_000_000), Ok(900_000)]);
        let collector = collector(&upstream);
        scrape(&collector).await;
        tokio::time::advance(MIN_INTERVAL).await;
        assert_eq!(value(&scrape(&collector).await, BALANCE), Some(900_000.0));
        assert_eq!(upstream.calls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hundred_concurrent_scrapes_share_one_upstream_request() {
        let upstream = Upstream::new(&[Ok(1_000_000)]);
        let collector = collector(&upstream);
        let scrapes: Vec<_> = (0..100)
            .map(|_| {
                let collector = Arc::clone(&collector);
                tokio::spawn(async move { scrape(&collector).await })
            })
            .collect();
        for scrape in scrapes {
            assert_eq!(value(&scrape.await.unwrap(), BALANCE), Some(1_000_000.0));
        }
        assert_eq!(upstream.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_keeps_the_last_good_balance_and_sets_up_to_zero() {
        let upstream = Upstream::new(&[Ok(1_000_000), Err(Reason::HttpStatus)]);
        let collector = collector(&upstream);
        assert_eq!(value(&scrape(&collector).await, UP), Some(1.0));
        tokio::time::advance(MIN_INTERVAL).await;
        let text = scrape(&collector).await;
        assert_eq!(value(&text, UP), Some(0.0));
        assert_eq!(value(&text, BALANCE), Some(1_000_000.0));
        assert_eq!(value(&text, &errors("http_status")), Some(1.0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_is_reused_within_the_interval_too() {
        let upstream = Upstream::new(&[Err(Reason::HttpStatus), Ok(1_000_000)]);
        let collector = collector(&upstream);
        let text = scrape(&collector).await;
        assert_eq!(value(&text, UP), Some(0.0));
        assert_eq!(
            value(&text, BALANCE),
            None,
            "no balance before the first success"
        );
        tokio::time::advance(MIN_INTERVAL / 2).await;
        assert_eq!(value(&scrape(&collector).await, UP), Some(0.0));
        assert_eq!(upstream.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn no_request_is_made_before_retry_after_has_passed() {
        // The script's 429 asks for 120 s, four times the min-interval.
        let upstream = Upstream::new(&[Err(Reason::RateLimited), Ok(1_000_000)]);
        let collector = collector(&upstream);
        let text = scrape(&collector).await;
        assert_eq!(value(&text, &errors("rate_limited")), Some(1.0));
        for _ in 0..3 {
            tokio::time::advance(MIN_INTERVAL).await;
            scrape(&collector).await;
        }
        assert_eq!(upstream.calls(), 1, "asked again before Retry-After");
        tokio::time::advance(MIN_INTERVAL).await;
        assert_eq!(value(&scrape(&collector).await, BALANCE), Some(1_000_000.0));
        assert_eq!(upstream.calls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_check_is_left_running_at_the_deadline_and_serves_the_next_scrape() {
        let upstream = Upstream::new(&[Ok(1_000_000)]);
        *upstream.latency.lock().unwrap() = Duration::from_secs(4);
        let collector = collector(&upstream);
        let started = Instant::now();
        collector
            .refresh(started + Duration::from_millis(1500))
            .await;
        assert_eq!(started.elapsed(), Duration::from_millis(1500));
        let text = collector.render();
        assert_eq!(value(&text, BALANCE), None);
        assert_eq!(value(&text, UP), Some(0.0));
        tokio::time::advance(Duration::from_secs(3)).await;
        // The next scrape, within the interval, finds the finished result without a new call.
        assert_eq!(value(&scrape(&collector).await, BALANCE), Some(1_000_000.0));
        assert_eq!(upstream.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_longer_than_the_timeout_is_a_timeout() {
        let upstream = Upstream::new(&[Ok(1_000_000)]);
        *upstream.latency.lock().unwrap() = Duration::from_secs(60);
        let collector = collector(&upstream);
        collector
            .refresh(Instant::now() + Duration::from_secs(11))
            .await;
        let text = collector.render();
        assert_eq!(value(&text, &errors("timeout")), Some(1.0));
        assert_eq!(value(&text, UP), Some(0.0));
    }

    #[tokio::test(start_paused = true)]
    async fn time_spent_waiting_for_a_slot_is_not_upstream_latency() {
        let waited = |queued: Duration, sent: Option<Duration>| -> Check {
            Arc::new(move |mark: Sent| {
                Box::pin(async move {
                    tokio::time::sleep(queued).await;
                    if let Some(latency) = sent {
                        mark.mark();
                        tokio::time::sleep(latency).await;
                        Ok(Balance {
                            amount: Decimal::ONE,
                            currency: "IDR".into(),
                            holder: None,
                        })
                    } else {
                        std::future::pending().await
                    }
                })
            })
        };
        let target = |account: &str, check: Check| Target {
            provider: "isikuota",
            account: account.into(),
            min_interval: MIN_INTERVAL,
            timeout: Duration::from_secs(10),
            warning_threshold: None,
            critical_threshold: None,
            check,
        };
        let collector = Collector::new(
            vec![
                // Queued 3 s behind other checks, then answered in 200 ms.
                target(
                    "queued",
                    waited(Duration::from_secs(3), Some(Duration::from_millis(200))),
                ),
                // Never got a slot before the timeout: nothing was sent.
                target("starved", waited(Duration::from_secs(60), None)),
            ],
            Arc::new(Metrics::new()),
        );
        collector
            .refresh(Instant::now() + Duration::from_secs(11))
            .await;
        let text = collector.render();
        let sum = |account: &str| {
            value(
                &text,
                &format!(
                    "saldo_upstream_request_duration_seconds_sum{{account=\"{account}\",provider=\"isikuota\"}}"
                ),
            )
        };
        assert_eq!(sum("queued"), Some(0.2));
        // The series exists from the start; nothing was observed into it.
        assert_eq!(sum("starved"), Some(0.0), "{text}");
        assert_eq!(
            value(
                &text,
                "saldo_upstream_errors_total{account=\"starved\",provider=\"isikuota\",reason=\"timeout\"}"
            ),
            Some(1.0)
        );
        // A request never sent is no request to the supplier.
        let requests = |account: &str| {
            value(
                &text,
                &format!(
                    "saldo_upstream_requests_total{{account=\"{account}\",provider=\"isikuota\"}}"
                ),
            )
        };
        assert_eq!(
            (requests("queued"), requests("starved")),
            (Some(1.0), Some(0.0))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn statuses_show_each_accounts_settings_and_keep_the_last_good_balance_through_a_failure()
    {
        let upstream = Upstream::new(&[Ok(25_490), Err(Reason::HttpStatus)]);
        let target = Target {
            provider: "isikuota",
            account: "main".into(),
            min_interval: Duration::from_secs(120),
            timeout: Duration::from_secs(7),
            warning_threshold: Some(Decimal::from(50_000)),
            critical_threshold: Some(Decimal::from(10_000)),
            check: upstream.check(),
        };
        let collector = Collector::new(vec![target], Arc::new(Metrics::new()));
        let status = || collector.statuses().remove(0);

        let unchecked = status();
        assert_eq!(
            (unchecked.up, unchecked.last_error, unchecked.last_good),
            (false, None, None)
        );
        assert_eq!(unchecked.min_interval, Duration::from_secs(120));
        assert_eq!(unchecked.timeout, Duration::from_secs(7));
        assert_eq!(unchecked.warning_threshold, Some(Decimal::from(50_000)));
        assert_eq!(unchecked.critical_threshold, Some(Decimal::from(10_000)));

        collector
            .refresh(Instant::now() + Duration::from_secs(5))
            .await;
        let checked = status();
        assert!(checked.up);
        let (balance, at) = checked.last_good.expect("a balance after a success");
        assert_eq!(
            (balance.amount, balance.currency.as_str()),
            (Decimal::from(25_490), "IDR")
        );

        tokio::time::advance(Duration::from_secs(120)).await;
        collector
            .refresh(Instant::now() + Duration::from_secs(5))
            .await;
        let failed = status();
        assert_eq!(
            (failed.up, failed.last_error),
            (false, Some(Reason::HttpStatus))
        );
        assert_eq!(
            failed.last_good,
            Some((balance, at)),
            "the last good balance is kept"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn accounts_are_checked_concurrently() {
        let upstreams: Vec<_> = (0..20).map(|_| Upstream::new(&[Ok(5)])).collect();
        let targets = upstreams
            .iter()
            .enumerate()
            .map(|(i, upstream)| Target {
                provider: "ayopop",
                account: format!("a{i}"),
                min_interval: MIN_INTERVAL,
                timeout: Duration::from_secs(10),
                warning_threshold: None,
                critical_threshold: None,
                check: upstream.check(),
            })
            .collect();
        let collector = Collector::new(targets, Arc::new(Metrics::new()));
        let started = Instant::now();
        collector.refresh(started + Duration::from_secs(5)).await;
        // Twenty checks of 100 ms each finish together, not one after the other.
        assert_eq!(started.elapsed(), Duration::from_millis(100));
        assert!(collector.statuses().iter().all(|s| s.up));
    }

    #[tokio::test(start_paused = true)]
    async fn a_reload_keeps_the_state_of_accounts_that_stay_and_drops_those_that_leave() {
        let upstream = Upstream::new(&[Ok(1_000_000)]);
        let collector = collector(&upstream);
        scrape(&collector).await;
        let other = Upstream::new(&[Ok(42)]);
        let target = |account: &str, upstream: &Arc<Upstream>| Target {
            provider: "isikuota",
            account: account.into(),
            min_interval: MIN_INTERVAL,
            timeout: Duration::from_secs(10),
            warning_threshold: Some(Decimal::from(500)),
            critical_threshold: None,
            check: upstream.check(),
        };
        collector.replace(vec![target("main", &upstream), target("cabang", &other)]);
        let text = scrape(&collector).await;
        // "main" keeps its balance and its interval: no second call yet.
        assert_eq!(value(&text, BALANCE), Some(1_000_000.0));
        assert_eq!(upstream.calls(), 1);
        assert!(text.contains(
            "saldo_balance_threshold{account=\"main\",provider=\"isikuota\",severity=\"warning\"} 500"
        ));
        assert!(text.contains(
            "saldo_balance{account=\"cabang\",currency=\"IDR\",provider=\"isikuota\"} 42"
        ));

        collector.replace(vec![target("cabang", &other)]);
        let text = scrape(&collector).await;
        assert!(
            !text.contains("account=\"main\""),
            "series of a removed account remain:\n{text}"
        );
        assert_eq!(collector.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn spending_and_top_ups_follow_successive_balances() {
        let upstream = Upstream::new(&[Ok(1_000_000), Ok(700_000), Ok(2_700_000)]);
        let collector = collector(&upstream);
        let mut text = String::new();
        for _ in 0..3 {
            text = scrape(&collector).await;
            tokio::time::advance(MIN_INTERVAL).await;
        }
        let labels = "{account=\"main\",currency=\"IDR\",provider=\"isikuota\"}";
        assert_eq!(
            value(&text, &format!("saldo_spent_total{labels}")),
            Some(300_000.0)
        );
        assert_eq!(
            value(&text, &format!("saldo_topup_total{labels}")),
            Some(2_000_000.0)
        );
    }
}
