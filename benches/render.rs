//! Render cost: what a `/metrics` answer costs besides HTTP once every balance is known.
//!
//! - `render/accounts/N`: [`Collector::exposition`] and its plain chunks with N accounts that
//!   all hold a balance, which is exactly what a warm scrape calls.
//! - `encode/accounts/N`: [`Metrics::render`] for the same N accounts: reading `/proc/self`,
//!   copying each account's counters and writing the text, the whole work when nothing is
//!   reused.
//! - `due/accounts/N`: [`Collector::refresh`] when no check is due, the other half of what a
//!   warm scrape calls: a look at every account's interval.
//! - `process_collector`: the standard `process_*` metrics alone (reading `/proc/self`).
//!
//! The per-account cost is the slope between the sizes. `bench/run.sh` reads the results from
//! `target/criterion/`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use prometheus::core::Collector as _;
use rust_decimal::Decimal;
use saldo_exporter::collector::{Check, Collector, Sent, Target};
use saldo_exporter::metrics::{AccountView, Metrics};
use saldo_exporter::providers::Balance;
use tokio::time::Instant;

const SIZES: [usize; 3] = [1, 50, 1000];

/// A collector whose every account has been checked once and holds a balance, with both
/// thresholds set, as a configured production account would.
fn warm_collector(accounts: usize) -> Collector {
    let targets = (0..accounts)
        .map(|i| {
            let check: Check = Arc::new(move |sent: Sent| {
                sent.mark();
                Box::pin(async move { Ok(balance(i)) })
            });
            Target {
                provider: provider(i),
                account: format!("toko-{i:04}"),
                min_interval: Duration::from_secs(3600),
                timeout: Duration::from_secs(10),
                warning_threshold: Some(Decimal::from(500_000)),
                critical_threshold: Some(Decimal::from(100_000)),
                check,
            }
        })
        .collect();
    let collector = Collector::new(targets, Arc::new(Metrics::new()));
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime")
        .block_on(collector.refresh(Instant::now() + Duration::from_secs(10)));
    collector
}

fn provider(i: usize) -> &'static str {
    ["isikuota", "ayopop"][i % 2]
}

fn balance(i: usize) -> Balance {
    Balance {
        amount: Decimal::from(1_000_000 + 12_345 * i as i64),
        currency: "IDR".into(),
        holder: Some("Toko Pulsa Demo".into()),
    }
}

fn render(c: &mut Criterion) {
    let mut group = c.benchmark_group("render");
    for accounts in SIZES {
        let collector = warm_collector(accounts);
        let text = collector.render();
        assert_eq!(
            text.matches("saldo_balance{").count(),
            accounts,
            "every account has a balance"
        );
        eprintln!(
            "render/accounts/{accounts}: {} bytes, {:.0} bytes per account",
            text.len(),
            text.len() as f64 / accounts as f64
        );
        group.throughput(Throughput::Elements(accounts as u64));
        group.bench_with_input(
            BenchmarkId::new("accounts", accounts),
            &collector,
            |b, collector| b.iter(|| collector.exposition().chunks(false)),
        );
    }
    group.finish();
}

fn due(c: &mut Criterion) {
    let mut group = c.benchmark_group("due");
    for accounts in SIZES {
        let collector = warm_collector(accounts);
        let deadline = Instant::now() + Duration::from_secs(10);
        // Nothing is due, so the future is ready at its first poll: no runtime in the way.
        let refresh = || {
            let mut refresh = std::pin::pin!(collector.refresh(deadline));
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            assert!(refresh.as_mut().poll(&mut cx).is_ready(), "nothing is due");
        };
        group.throughput(Throughput::Elements(accounts as u64));
        group.bench_function(BenchmarkId::new("accounts", accounts), |b| b.iter(refresh));
    }
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for accounts in SIZES {
        let metrics = Metrics::new();
        let thresholds = [
            ("warning", Decimal::from(500_000)),
            ("critical", Decimal::from(100_000)),
        ];
        let names: Vec<String> = (0..accounts).map(|i| format!("toko-{i:04}")).collect();
        let balances: Vec<Balance> = (0..accounts).map(balance).collect();
        for (i, name) in names.iter().enumerate() {
            metrics.add_account(provider(i), name, &thresholds);
        }
        let checked = SystemTime::now();
        let views = || {
            names
                .iter()
                .zip(&balances)
                .enumerate()
                .map(|(i, (name, balance))| AccountView {
                    provider: provider(i),
                    account: name,
                    up: true,
                    last_good: Some((balance, checked)),
                })
        };
        assert_eq!(
            metrics.render(views()).matches("saldo_balance{").count(),
            accounts
        );
        group.throughput(Throughput::Elements(accounts as u64));
        group.bench_function(BenchmarkId::new("accounts", accounts), |b| {
            b.iter(|| metrics.render(views()))
        });
    }
    group.finish();
}

/// The fixed part of every render: the standard `process_*` metrics read `/proc/self`.
fn process_collector(c: &mut Criterion) {
    let process = prometheus::process_collector::ProcessCollector::for_self();
    c.bench_function("process_collector", |b| b.iter(|| process.collect()));
}

criterion_group! {
    name = benches;
    // Short by default; `--warm-up-time` and `--measurement-time` on the command line win.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = render, due, encode, process_collector
}
criterion_main!(benches);
