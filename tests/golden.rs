//! The whole `/metrics` page for a fixed set of accounts, checked against a golden copy in
//! `tests/golden/metrics.txt` (values that change from run to run masked), as node_exporter
//! does with its `e2e-output.txt`. Any change to a metric's name, HELP, TYPE, labels or series
//! shows up here as a diff to review. After an intended change, regenerate the copy with
//!
//! ```sh
//! UPDATE_GOLDEN=1 cargo test --test golden
//! ```
//!
//! and commit it. The unmasked page also goes through `promtool check metrics`.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use saldo_exporter::demo::Fault;
use support::{Exporter, repo_path, require_tool, setting, suppliers};

const GOLDEN: &str = "tests/golden/metrics.txt";

/// Families whose values differ between runs (clocks, latencies, the process itself).
fn volatile(series: &str) -> bool {
    series.starts_with("process_")
        || series.contains("_timestamp_seconds")
        || series.starts_with("saldo_upstream_request_duration_seconds_bucket")
        || series.starts_with("saldo_upstream_request_duration_seconds_sum")
}

fn mask(text: &str) -> String {
    text.lines()
        .map(|line| {
            if line.starts_with('#') {
                return line.to_owned();
            }
            let Some((series, _value)) = line.rsplit_once(' ') else {
                return line.to_owned();
            };
            let series = match series.find("revision=\"") {
                // The git revision of this build.
                Some(start) => {
                    let value = start + "revision=\"".len();
                    let end = value + series[value..].find('"').unwrap_or(0);
                    format!("{}REVISION{}", &series[..value], &series[end..])
                }
                None => series.to_owned(),
            };
            if volatile(&series) {
                format!("{series} <masked>")
            } else {
                line.replacen(line.rsplit_once(' ').unwrap().0, &series, 1)
            }
        })
        .map(|line| line + "\n")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_page_matches_the_golden_copy_and_passes_promtool() {
    let (_isikuota, ayopop, mut env) = suppliers().await;
    env.push(setting("ISIKUOTA_WARNING_THRESHOLD", "1000000"));
    env.push(setting("ISIKUOTA_CRITICAL_THRESHOLD", "250000"));
    env.push(setting("MIN_INTERVAL", "0s"));
    let exporter = Exporter::start(&env).await;
    // One success each, then one Ayopop failure: every family has a series.
    exporter.scrape().await;
    ayopop.set_fault(Some(Fault::Status(503)));
    let text = exporter.scrape().await;

    let masked = mask(&text);
    let path = repo_path(GOLDEN);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &masked).unwrap();
    }
    let golden = std::fs::read_to_string(&path).unwrap_or_default();
    if golden != masked {
        let first = golden
            .lines()
            .zip(masked.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(golden.lines().count().min(masked.lines().count()));
        panic!(
            "/metrics differs from {GOLDEN} from line {} on:\n  golden: {:?}\n  now:    {:?}\n\
             If the change is intended: UPDATE_GOLDEN=1 cargo test --test golden\n\nnow:\n{masked}",
            first + 1,
            golden.lines().nth(first),
            masked.lines().nth(first),
        );
    }

    if require_tool("promtool") {
        let mut child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn masking_hides_values_that_change_between_runs_and_nothing_else() {
    let text = "# HELP process_threads Threads.\nprocess_threads 7\n\
                saldo_build_info{revision=\"abc123\",version=\"0.1.0\"} 1\n\
                saldo_up{account=\"a\",provider=\"isikuota\"} 1\n\
                saldo_last_success_timestamp_seconds{account=\"a\",provider=\"isikuota\"} 1780000000.5\n";
    assert_eq!(
        mask(text),
        "# HELP process_threads Threads.\nprocess_threads <masked>\n\
         saldo_build_info{revision=\"REVISION\",version=\"0.1.0\"} 1\n\
         saldo_up{account=\"a\",provider=\"isikuota\"} 1\n\
         saldo_last_success_timestamp_seconds{account=\"a\",provider=\"isikuota\"} <masked>\n"
    );
}
