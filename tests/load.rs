//! Load: the real binary under many concurrent scrapes while its suppliers flap between good
//! answers and HTTP 500. Nothing here is timed: the figures are printed (see docs/load.md), and
//! the assertions are about answers, upstream calls and memory.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use saldo_exporter::demo::{Fault, Simulator};
use support::{Exporter, client, sample, setting, suppliers};
use tokio::time::Instant;

const SCRAPES: usize = 10_000;
const CLIENTS: usize = 64;
/// Long enough for several min-intervals, so the upstream bound is tested over more than one.
const MIN_RUN: Duration = Duration::from_secs(5);
/// Half a flap period: an odd fraction of the 1 s min-interval, so successive checks land on
/// both sides of the toggle.
const FLAP: Duration = Duration::from_millis(300);
/// The exporter's resident memory must stay under this: twice the peak of a debug build in
/// this test (20 MiB, see docs/load.md), room for allocator and scheduling noise, while a leak
/// of a third of one answer (an answer is about 8 KiB) per scrape, over 10,000 scrapes,
/// passes it.
const RSS_LIMIT_KIB: u64 = 40 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_scrapes_while_the_suppliers_flap_all_answer_200_within_the_upstream_budget() {
    let (isikuota, ayopop, mut env) = suppliers().await;
    env.push(setting("MIN_INTERVAL", "1s"));
    // Per-check debug lines would only grow the captured output.
    env.push(setting("LOG_LEVEL", "info"));
    let exporter = Exporter::start(&env).await;
    let suppliers = Arc::new([isikuota, ayopop]);

    let done = Arc::new(AtomicBool::new(false));
    let max_rss = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (done, max_rss, pid) = (Arc::clone(&done), Arc::clone(&max_rss), exporter.pid());
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                max_rss.fetch_max(vm_rss_kib(pid), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let flapper = {
        let suppliers = Arc::clone(&suppliers);
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                tokio::time::sleep(FLAP).await;
                failing = !failing;
                for supplier in suppliers.iter() {
                    supplier.set_fault(failing.then_some(Fault::Status(500)));
                }
            }
        })
    };

    // Taken before the first scrape: the exporter checks only when scraped.
    let started = Instant::now();
    let taken = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(2 * SCRAPES)));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let client = client();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, url) = (client.clone(), exporter.url("/metrics"));
            let (taken, latencies) = (Arc::clone(&taken), Arc::clone(&latencies));
            let failures = Arc::clone(&failures);
            tokio::spawn(async move {
                let mut mine = Vec::new();
                while taken.fetch_add(1, Ordering::SeqCst) < SCRAPES || started.elapsed() < MIN_RUN
                {
                    let sent = Instant::now();
                    let answer = match client.get(&url).send().await {
                        Ok(response) => {
                            let status = response.status();
                            response
                                .bytes()
                                .await
                                .map(|_| status)
                                .map_err(|e| e.to_string())
                        }
                        Err(err) => Err(err.to_string()),
                    };
                    mine.push(sent.elapsed());
                    match answer {
                        Ok(status) if status == 200 => {}
                        other => failures.lock().unwrap().push(format!("{other:?}")),
                    }
                }
                latencies.lock().unwrap().extend(mine);
            })
        })
        .collect();
    for scraper in clients {
        scraper.await.unwrap();
    }
    let elapsed = started.elapsed();
    flapper.abort();
    done.store(true, Ordering::SeqCst);
    sampler.join().unwrap();

    let mut latencies = std::mem::take(&mut *latencies.lock().unwrap());
    latencies.sort();
    let percentile =
        |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let calls: Vec<u64> = suppliers.iter().map(Simulator::requests).collect();
    let max_rss = max_rss.load(Ordering::SeqCst);
    eprintln!(
        "load: {} scrapes from {CLIENTS} clients in {:.1} s ({:.0}/s), p50 {:?}, p99 {:?}, \
         upstream calls per account {calls:?}, max VmRSS {:.1} MiB",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(0.5),
        percentile(0.99),
        max_rss as f64 / 1024.0,
    );

    let failures = std::mem::take(&mut *failures.lock().unwrap());
    assert!(
        failures.is_empty(),
        "{} of {} scrapes failed, first: {:?}",
        failures.len(),
        latencies.len(),
        failures.first()
    );
    assert!(latencies.len() >= SCRAPES);
    // At most one check per account per started second, plus the one at the very start.
    let bound = elapsed.as_secs_f64().ceil() as u64 + 1;
    for (account, calls) in ["isikuota", "ayopop"].iter().zip(&calls) {
        assert!(
            *calls <= bound,
            "{account}: {calls} upstream calls in {elapsed:?} (bound {bound})"
        );
    }
    assert!(
        max_rss < RSS_LIMIT_KIB,
        "the exporter's RSS reached {max_rss} KiB"
    );
    // The flapping really reached the exporter: some checks failed and some succeeded.
    for supplier in suppliers.iter() {
        supplier.set_fault(None);
    }
    let text = exporter.scrape().await;
    let count = |name: &str, provider: &str, extra: &[(&str, &str)]| {
        let mut labels = vec![("provider", provider)];
        labels.extend_from_slice(extra);
        sample(&text, name, &labels).unwrap_or(0.0)
    };
    let failed: f64 = ["isikuota", "ayopop"]
        .iter()
        .map(|p| {
            count(
                "saldo_upstream_errors_total",
                p,
                &[("reason", "http_status")],
            )
        })
        .sum();
    let sent: f64 = ["isikuota", "ayopop"]
        .iter()
        .map(|p| count("saldo_upstream_requests_total", p, &[]))
        .sum();
    assert!(
        failed > 0.0 && sent > failed,
        "{failed} of {sent} checks failed"
    );
    assert!(
        exporter
            .output()
            .lines()
            .all(|line| !line.contains("panic")),
        "{}",
        exporter.output()
    );
}

fn vm_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmRSS:")?
                    .trim()
                    .strip_suffix(" kB")?
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(0)
}
