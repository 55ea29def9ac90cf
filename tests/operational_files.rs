//! The operational files are code too: the Prometheus rules and their unit tests, the example
//! Prometheus and Alertmanager configurations and the Grafana dashboards are checked here, by
//! the real tools where one exists (`promtool`, `amtool`) and by structural checks otherwise.
//!
//! A tool missing from PATH fails the test when `CI=true` (CI must install it: Debian's
//! `prometheus` and `prometheus-alertmanager` packages) and is skipped with a note elsewhere,
//! so `cargo test` still works on a laptop without Prometheus.

mod support;

use std::collections::{BTreeSet, HashSet};
use std::process::Command;
use std::{env, fs};

use serde_json::Value;
use support::{read, repo_path, require_tool};

const RULES: &str = "alerts/saldo.rules.yml";
const RULE_TESTS: &str = "alerts/saldo.rules.test.yml";
const PROMETHEUS_CONFIG: &str = "examples/prometheus.yml";
const ALERTMANAGER_CONFIG: &str = "examples/alertmanager.yml";
const DASHBOARDS: &str = "dashboards";
const RUNBOOK: &str = "docs/runbook.md";

/// Every metric name the exporter serves: its public interface. A rule or panel that names
/// anything else would silently show nothing.
const EXPORTER_METRICS: &[&str] = &[
    "saldo_balance",
    "saldo_up",
    "saldo_last_success_timestamp_seconds",
    "saldo_balance_threshold",
    "saldo_spent_total",
    "saldo_topup_total",
    "saldo_upstream_requests_total",
    "saldo_upstream_errors_total",
    "saldo_upstream_request_duration_seconds_bucket",
    "saldo_upstream_request_duration_seconds_sum",
    "saldo_upstream_request_duration_seconds_count",
    "saldo_build_info",
    "saldo_config_last_reload_successful",
    "saldo_config_last_reload_success_timestamp_seconds",
];

/// Runs the tool from the repository root and returns its combined output, failing the test
/// with that output when the tool exits non-zero.
fn run(tool: &str, args: &[&str]) -> String {
    let output = Command::new(tool)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "`{} {}` failed with {}:\n{text}",
        tool,
        args.join(" "),
        output.status
    );
    text
}

#[test]
fn the_rule_file_loads_without_warnings() {
    if !require_tool("promtool") {
        return;
    }
    let output = run(
        "promtool",
        &["check", "rules", "--lint=all", "--lint-fatal", RULES],
    );
    assert!(
        !output.to_lowercase().contains("warn"),
        "promtool warned about {RULES}:\n{output}"
    );
}

#[test]
fn every_alert_fires_and_stays_silent_as_the_rule_tests_say() {
    if !require_tool("promtool") {
        return;
    }
    run("promtool", &["test", "rules", RULE_TESTS]);
}

#[test]
fn the_example_prometheus_config_is_valid_and_loads_the_rules() {
    if !require_tool("promtool") {
        return;
    }
    let output = run("promtool", &["check", "config", PROMETHEUS_CONFIG]);
    assert!(
        output.contains("1 rule files found"),
        "{PROMETHEUS_CONFIG} should load {RULES}:\n{output}"
    );
}

#[test]
fn the_example_alertmanager_config_is_valid() {
    if !require_tool("amtool") {
        return;
    }
    run("amtool", &["check-config", ALERTMANAGER_CONFIG]);
}

#[test]
fn every_alert_links_to_its_own_section_of_the_runbook() {
    let headings: HashSet<String> = read(RUNBOOK)
        .lines()
        .filter(|line| line.starts_with('#'))
        .map(|line| github_anchor(line.trim_start_matches('#')))
        .collect();
    let rules = read(RULES);
    let alerts: Vec<&str> = rules.split("- alert:").skip(1).collect();
    assert!(!alerts.is_empty(), "{RULES} defines no alert");
    for alert in alerts {
        let name = alert.split_whitespace().next().unwrap_or_default();
        let anchor = alert
            .lines()
            .find_map(|line| line.trim().strip_prefix("runbook_url:"))
            .and_then(|url| url.trim().split_once('#'))
            .map(|(_, anchor)| anchor.to_string())
            .unwrap_or_else(|| panic!("alert {name} has no runbook_url with an anchor"));
        assert_eq!(
            anchor,
            name.to_lowercase(),
            "alert {name} links to the wrong section"
        );
        assert!(
            headings.contains(&anchor),
            "{RUNBOOK} has no heading for #{anchor}"
        );
    }
}

/// GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to dashes.
fn github_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every dashboard in dashboards/, parsed, with its file name.
fn dashboards() -> Vec<(String, Value)> {
    let dir = repo_path(DASHBOARDS);
    let mut found: Vec<(String, Value)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = fs::read_to_string(&path).expect("readable dashboard");
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{name} is not valid JSON: {e}"));
            (name, json)
        })
        .collect();
    assert!(!found.is_empty(), "no dashboard in {}", dir.display());
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// Every panel, including those nested in rows.
fn panels(dashboard: &Value) -> Vec<&Value> {
    fn collect<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in list.as_array().into_iter().flatten() {
            out.push(panel);
            collect(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    collect(&dashboard["panels"], &mut out);
    out
}

/// Every string stored under `key`, anywhere in the document.
fn strings_under<'a>(value: &'a Value, key: &str, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match v.as_str() {
                    Some(s) if k == key => out.push(s),
                    _ => strings_under(v, key, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| strings_under(v, key, out)),
        _ => {}
    }
}

#[test]
fn every_dashboard_parses_with_its_stable_uid_and_unique_panel_ids() {
    let expected_uids = BTreeSet::from(["saldo-account", "saldo-overview"]);
    let mut uids = BTreeSet::new();
    for (name, dashboard) in dashboards() {
        uids.insert(
            dashboard["uid"]
                .as_str()
                .unwrap_or_else(|| panic!("{name} has no uid"))
                .to_string(),
        );
        let mut ids = HashSet::new();
        for panel in panels(&dashboard) {
            let id = panel["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("{name}: a panel has no id"));
            assert!(ids.insert(id), "{name}: panel id {id} is used twice");
        }
    }
    let uids: BTreeSet<&str> = uids.iter().map(String::as_str).collect();
    assert_eq!(
        uids, expected_uids,
        "dashboard uids are links and must not change"
    );
}

#[test]
fn no_two_dashboard_panels_overlap() {
    for (name, dashboard) in dashboards() {
        let mut boxes: Vec<(String, [u64; 4])> = Vec::new();
        for panel in panels(&dashboard) {
            let title = panel["title"].as_str().unwrap_or("?").to_string();
            let pos = &panel["gridPos"];
            let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| {
                pos[k]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{name}: {title} has no gridPos.{k}"))
            });
            assert!(w > 0 && h > 0, "{name}: {title} has an empty gridPos");
            assert!(
                x + w <= 24,
                "{name}: {title} is wider than the 24-column grid"
            );
            for (other, [ox, oy, ow, oh]) in &boxes {
                let apart = x + w <= *ox || *ox + ow <= x || y + h <= *oy || *oy + oh <= y;
                assert!(apart, "{name}: {title} overlaps {other}");
            }
            boxes.push((title, [x, y, w, h]));
        }
    }
}

#[test]
fn every_dashboard_panel_has_a_unit() {
    for (name, dashboard) in dashboards() {
        for panel in panels(&dashboard)
            .into_iter()
            .filter(|p| p["type"] != "row")
        {
            let unit = panel["fieldConfig"]["defaults"]["unit"]
                .as_str()
                .unwrap_or_default();
            assert!(
                !unit.is_empty(),
                "{name}: panel {} has no unit",
                panel["title"]
            );
        }
    }
}

#[test]
fn every_rate_in_a_dashboard_uses_the_rate_interval() {
    for (name, dashboard) in dashboards() {
        let mut exprs = Vec::new();
        strings_under(&dashboard, "expr", &mut exprs);
        for expr in exprs {
            for call in ["rate(", "increase("] {
                for (start, _) in expr.match_indices(call) {
                    let args = call_arguments(&expr[start + call.len() - 1..]);
                    let ranges = args.matches('[').count();
                    let good = args.matches("[$__rate_interval]").count();
                    assert!(
                        ranges > 0 && ranges == good,
                        "{name}: `{expr}` must use [$__rate_interval] in {call}...)"
                    );
                }
            }
        }
    }
}

/// The text between the opening parenthesis `text` starts with and its matching close.
fn call_arguments(text: &str) -> &str {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 1 => return &text[1..i],
            ')' => depth -= 1,
            _ => {}
        }
    }
    panic!("unbalanced parentheses in `{text}`");
}

/// Metric names (`saldo_…` or `saldo:…`) the text mentions. A name inside a URL path or a
/// longer word (`saldo-overview`, `/saldo_exporter/`) is not one.
fn metric_names(text: &str) -> BTreeSet<String> {
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = BTreeSet::new();
    for (start, _) in text.match_indices("saldo") {
        let before = text[..start].chars().next_back();
        if before.is_some_and(|c| is_name_char(c) || matches!(c, '/' | '.' | '-')) {
            continue;
        }
        let rest = &text[start + "saldo".len()..];
        if !(rest.starts_with('_') || rest.starts_with(':')) {
            continue;
        }
        let len = rest.find(|c: char| !is_name_char(c)).unwrap_or(rest.len());
        // In prose a colon after a name is punctuation ("saldo_up: 1 if ...").
        let name = rest[..len].trim_end_matches(':');
        if name.len() > 1 {
            names.insert(format!("saldo{name}"));
        }
    }
    names
}

#[test]
fn dashboards_and_rules_use_only_metrics_the_exporter_serves_or_the_rules_record() {
    let rules = read(RULES);
    let recorded: BTreeSet<String> = rules
        .lines()
        .filter_map(|line| line.trim().trim_start_matches("- ").strip_prefix("record:"))
        .map(|name| name.trim().to_string())
        .collect();
    assert!(recorded.contains("saldo:spent:rate1h") && recorded.contains("saldo:runway:seconds"));
    let known = |name: &str| EXPORTER_METRICS.contains(&name) || recorded.contains(name);

    let mut sources = vec![(RULES.to_string(), rules.clone())];
    for (name, dashboard) in dashboards() {
        sources.push((name, dashboard.to_string()));
    }
    for (source, text) in sources {
        let unknown: Vec<String> = metric_names(&text)
            .into_iter()
            .filter(|n| !known(n))
            .collect();
        assert!(
            unknown.is_empty(),
            "{source} names metrics the exporter does not serve: {unknown:?}"
        );
    }
}

#[test]
fn the_metric_name_scanner_skips_urls_and_prose_and_reads_recording_rules_whole() {
    let text =
        "rate(saldo_spent_total[1h]) saldo:spent:rate1h: /saldo_exporter/ saldo-overview saldo_*";
    let names: Vec<String> = metric_names(text).into_iter().collect();
    assert_eq!(names, ["saldo:spent:rate1h", "saldo_spent_total"]);
}
