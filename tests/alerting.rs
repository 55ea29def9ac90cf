//! End-to-end alerting and dashboards: simulated suppliers, the real exporter binary, a real
//! Prometheus loading the shipped rules (only `for:` shortened), a real Alertmanager posting to
//! a webhook inside this test, and every dashboard query run against that Prometheus.
//!
//! Everything listens on 127.0.0.1. Prometheus scrapes and evaluates every second, and the
//! exporter checks on every scrape (min-interval 0s), so a change at a simulator reaches an
//! alert or a panel within seconds.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rust_decimal::Decimal;
use saldo_exporter::demo::{Fault, Sales, Simulator};
use serde_json::{Map, Value, json};
use support::{DEADLINE, Exporter, client, read, repo_path, require_tool};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const RULES: &str = "alerts/saldo.rules.yml";
const DASHBOARDS: &str = "dashboards";
/// Every `for:` of the shipped rules becomes this: a few evaluations at one per second.
const SHORT_FOR: &str = "2s";
/// `$__rate_interval` and friends: Grafana's minimum of four scrapes, at a 1s scrape interval,
/// with room for a slow scrape on a busy machine.
const GRAFANA_INTERVAL: &str = "30s";

const WARNING: i64 = 1_000_000;
const CRITICAL: i64 = 500_000;

/// Accounts, one per state the dashboards tell apart.
const BUSY: &str = "toko-ramai";
const LOW: &str = "toko-menipis";
const DROPPING: &str = "toko-kritis";
const BREAKING: &str = "ppob-gagal";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_critical_balance_and_a_failing_check_reach_alertmanager_with_their_labels() {
    let Some(stack) = Stack::start(true).await else {
        return;
    };
    stack.degrade();

    let critical = stack
        .delivered("SaldoBalanceCritical", DROPPING)
        .await
        .unwrap_or_else(|| {
            panic!(
                "SaldoBalanceCritical never arrived\n{}",
                stack.diagnostics()
            )
        });
    assert_eq!(
        labels(&critical),
        stack.expected_labels(&[
            ("alertname", "SaldoBalanceCritical"),
            ("severity", "critical"),
            ("provider", "generic"),
            ("account", DROPPING),
            ("currency", "IDR"),
        ])
    );
    assert_eq!(
        critical["annotations"]["summary"],
        "generic/toko-kritis balance Rp 120k is below its critical threshold"
    );
    // The threshold comes from a `query` in the template, so this proves it ran against the
    // live series.
    let description = critical["annotations"]["description"].as_str().unwrap();
    assert!(
        description.contains("below its critical threshold of Rp 500000."),
        "{description}"
    );

    let failing = stack
        .delivered("SaldoCheckFailing", BREAKING)
        .await
        .unwrap_or_else(|| panic!("SaldoCheckFailing never arrived\n{}", stack.diagnostics()));
    assert_eq!(
        labels(&failing),
        stack.expected_labels(&[
            ("alertname", "SaldoCheckFailing"),
            ("severity", "warning"),
            ("provider", "ayopop"),
            ("account", BREAKING),
        ])
    );
    assert_eq!(
        failing["annotations"]["summary"],
        "Balance checks of ayopop/ppob-gagal failing for 10m (last known balance: Rp 4M)"
    );

    // Each alert names only the account that caused it: the low account is not critical and
    // the healthy ones are not failing.
    for alert in stack.webhook_alerts() {
        let only = match alert["labels"]["alertname"].as_str() {
            Some("SaldoBalanceCritical") => DROPPING,
            Some("SaldoCheckFailing") => BREAKING,
            _ => continue,
        };
        assert_eq!(
            alert["labels"]["account"], only,
            "unexpected alert: {alert}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_data_from_a_live_prometheus() {
    let Some(stack) = Stack::start(false).await else {
        return;
    };
    stack.degrade();
    // The data the panels need: spending for the runway recording rule, a recent top-up, a
    // recent error, and one account in each colour of the balance tiles.
    for condition in [
        format!("saldo:runway:seconds{{account=\"{BUSY}\"}}"),
        format!("increase(saldo_topup_total{{account=\"{BUSY}\"}}[{GRAFANA_INTERVAL}]) > 0"),
        format!(
            "rate(saldo_upstream_errors_total{{account=\"{BREAKING}\"}}[{GRAFANA_INTERVAL}]) > 0"
        ),
        format!("saldo_balance{{account=\"{DROPPING}\"}} < {CRITICAL}"),
    ] {
        stack
            .has_data(&condition)
            .await
            .unwrap_or_else(|| panic!("never true: {condition}\n{}", stack.diagnostics()));
    }

    // Prometheus asks for gzip, and got it: the data above came through compressed answers.
    let gzip = stack.relay.gzip_answers.load(Ordering::SeqCst);
    assert!(gzip > 0, "no scrape was answered with gzip");

    let mut problems = Vec::new();
    let mut checked = 0;
    for path in dashboard_files() {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let selections = stack
            .resolve_variables(&file, &dashboard, &mut problems)
            .await;
        let mut targets = Vec::new();
        collect_targets(&dashboard["panels"], "", &mut targets);
        assert!(!targets.is_empty(), "{file}: no panel queries found");
        for (place, expr) in targets {
            checked += 1;
            // Single-value variables (the account dashboard's provider and account) fork one
            // selection per value; a query must work in all of them and show data in one,
            // since the balance tiles' OK, LOW, CRITICAL and NO_THRESHOLD queries exclude
            // each other for one account.
            let mut has_data = false;
            for selection in &selections {
                let query = interpolate(&expr, selection);
                if query.contains('$') {
                    problems.push(format!("{file} {place}: unknown variable left in {query}"));
                    continue;
                }
                let answer = stack.query(&query).await;
                if answer["status"] != "success" {
                    problems.push(format!("{file} {place}: {query}\n  -> {answer}"));
                } else if answer["data"]["result"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty())
                {
                    has_data = true;
                }
            }
            if !has_data {
                problems.push(format!("{file} {place}: no data for {expr}"));
            }
        }
    }
    assert!(checked > 0, "no dashboards found in {DASHBOARDS}");
    assert!(
        problems.is_empty(),
        "{} of {checked} dashboard queries failed:\n{}\n{}",
        problems.len(),
        problems.join("\n"),
        stack.diagnostics()
    );
}

/// Simulated suppliers, the exporter, Prometheus and (for alerting) Alertmanager with its
/// webhook. Fields drop in order: the processes die before their directory is removed.
struct Stack {
    suppliers: Suppliers,
    exporter: Exporter,
    /// Between Prometheus and the exporter, to see what travels.
    relay: ScrapeRelay,
    prometheus: Process,
    alertmanager: Option<(Process, Webhook)>,
    client: reqwest::Client,
    _dir: TempDir,
}

/// One account per state: selling and topped up (above its thresholds), low (between them),
/// one that will drop below critical, and one without thresholds that will fail.
struct Suppliers {
    busy: Simulator,
    low: Simulator,
    dropping: Simulator,
    breaking: Simulator,
}

impl Stack {
    /// `None` (after a note) when Prometheus or Alertmanager is not installed outside CI.
    async fn start(alerting: bool) -> Option<Stack> {
        let tools: &[&str] = if alerting {
            &["prometheus", "prometheus-alertmanager"]
        } else {
            &["prometheus"]
        };
        if !tools.iter().all(|tool| require_tool(tool)) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let suppliers = Suppliers::start().await;
        let accounts_file = dir.path().join("accounts.yml");
        std::fs::write(&accounts_file, suppliers.accounts_file().to_string()).unwrap();
        let exporter = Exporter::start(&[
            (
                "SALDO_CONFIG_FILE".into(),
                accounts_file.display().to_string(),
            ),
            // Every scrape checks, so a change at a simulator shows at the next scrape.
            ("SALDO_MIN_INTERVAL".into(), "0s".into()),
        ])
        .await;
        let client = client();

        let alertmanager = if alerting {
            let webhook = Webhook::start().await;
            let port = free_port();
            std::fs::write(
                dir.path().join("alertmanager.yml"),
                format!(
                    r#"route:
  receiver: test
  group_by: [alertname, provider, account]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: test
    webhook_configs:
      - url: http://{}/alerts
"#,
                    webhook.address
                ),
            )
            .unwrap();
            let mut process = Process::spawn(
                "prometheus-alertmanager",
                &[
                    "--config.file=alertmanager.yml".into(),
                    "--storage.path=alertmanager-data".into(),
                    format!("--web.listen-address=127.0.0.1:{port}"),
                    // Empty: no gossip, so nothing listens beyond the one loopback port.
                    "--cluster.listen-address=".into(),
                ],
                dir.path(),
                port,
            );
            process.wait_ready(&client).await;
            Some((process, webhook))
        } else {
            None
        };

        let relay = ScrapeRelay::start(exporter.address).await;
        std::fs::write(dir.path().join("saldo.rules.yml"), shortened_rules()).unwrap();
        let alerting_section = match &alertmanager {
            Some((process, _)) => format!(
                "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [\"127.0.0.1:{}\"]\n",
                process.port
            ),
            None => String::new(),
        };
        std::fs::write(
            dir.path().join("prometheus.yml"),
            format!(
                r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [saldo.rules.yml]
{alerting_section}scrape_configs:
  - job_name: saldo
    static_configs:
      - targets: ["{}"]
"#,
                relay.address
            ),
        )
        .unwrap();
        let port = free_port();
        let mut prometheus = Process::spawn(
            "prometheus",
            &[
                "--config.file=prometheus.yml".into(),
                "--storage.tsdb.path=prometheus-data".into(),
                format!("--web.listen-address=127.0.0.1:{port}"),
            ],
            dir.path(),
            port,
        );
        prometheus.wait_ready(&client).await;

        let stack = Stack {
            suppliers,
            exporter,
            relay,
            prometheus,
            alertmanager,
            client,
            _dir: dir,
        };
        // Every account checked at least once before a test changes anything, so a failing
        // account keeps a last known balance and a dropping one is seen above its threshold.
        stack
            .has_data("count(saldo_up == 1) == 4")
            .await
            .unwrap_or_else(|| panic!("the four accounts never came up\n{}", stack.diagnostics()));
        Some(stack)
    }

    /// Drops one balance below its critical threshold and breaks the other supplier.
    fn degrade(&self) {
        self.suppliers.dropping.set_balance(Decimal::from(120_000));
        self.suppliers.breaking.set_fault(Some(Fault::Status(500)));
    }

    async fn query(&self, promql: &str) -> Value {
        self.api("/api/v1/query", &[("query", promql)]).await
    }

    async fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let url = url::Url::parse_with_params(
            &format!("http://127.0.0.1:{}{path}", self.prometheus.port),
            params,
        )
        .unwrap();
        let response = self
            .client
            .get(url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("Prometheus did not answer {path}: {e}"));
        // Errors (bad PromQL) come as JSON too, with status "error".
        response.json().await.unwrap()
    }

    /// Waits until the instant query returns at least one series.
    async fn has_data(&self, promql: &str) -> Option<()> {
        within_deadline(|| async move {
            let answer = self.query(promql).await;
            let result = answer["data"]["result"].as_array()?;
            (!result.is_empty()).then_some(())
        })
        .await
    }

    /// The first firing alert with this name and account that reached the webhook.
    async fn delivered(&self, alertname: &str, account: &str) -> Option<Value> {
        within_deadline(|| async move {
            self.webhook_alerts().into_iter().find(|alert| {
                alert["status"] == "firing"
                    && alert["labels"]["alertname"] == alertname
                    && alert["labels"]["account"] == account
            })
        })
        .await
    }

    fn webhook_alerts(&self) -> Vec<Value> {
        let (_, webhook) = self.alertmanager.as_ref().expect("started with alerting");
        webhook.alerts.lock().unwrap().clone()
    }

    /// `labels` plus the target labels Prometheus adds to every series of the exporter.
    fn expected_labels(&self, labels: &[(&str, &str)]) -> BTreeMap<String, String> {
        let instance = self.relay.address.to_string();
        labels
            .iter()
            .map(|&(k, v)| (k.to_owned(), v.to_owned()))
            .chain([
                ("job".into(), "saldo".into()),
                ("instance".into(), instance),
            ])
            .collect()
    }

    /// One map of variable values per combination Grafana could show: multi-value variables
    /// hold all their values as one regex, single-value ones fork a selection per value.
    /// Also checks that each templating query finds exactly the setup's jobs, instances,
    /// providers and accounts.
    async fn resolve_variables(
        &self,
        file: &str,
        dashboard: &Value,
        problems: &mut Vec<String>,
    ) -> Vec<BTreeMap<String, String>> {
        let builtins = ["__rate_interval", "__interval", "__range"]
            .map(|name| (name.to_owned(), GRAFANA_INTERVAL.to_owned()));
        let mut selections = vec![BTreeMap::from(builtins)];
        let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let variables = dashboard["templating"]["list"].as_array().unwrap();
        for variable in variables {
            let name = variable["name"].as_str().unwrap().to_owned();
            match variable["type"].as_str() {
                Some("datasource") => {
                    assert_eq!(variable["query"], "prometheus", "{file}: ${name}");
                    for selection in &mut selections {
                        selection.insert(name.clone(), "prometheus".into());
                    }
                }
                Some("query") => {
                    let query = variable["query"]["query"]
                        .as_str()
                        .or(variable["query"].as_str())
                        .unwrap_or_else(|| panic!("{file}: ${name} has no query"));
                    let multi = variable["multi"] == true;
                    let mut next = Vec::new();
                    for selection in selections {
                        let values = self.label_values(&interpolate(query, &selection)).await;
                        if values.is_empty() {
                            problems.push(format!("{file}: ${name} finds nothing: {query}"));
                        }
                        found
                            .entry(name.clone())
                            .or_default()
                            .extend(values.clone());
                        if multi {
                            let mut selection = selection;
                            selection.insert(name.clone(), multi_value(&values));
                            next.push(selection);
                        } else {
                            for value in values {
                                let mut selection = selection.clone();
                                selection.insert(name.clone(), value);
                                next.push(selection);
                            }
                        }
                    }
                    selections = next;
                }
                other => panic!("{file}: ${name} has type {other:?}, unknown to this test"),
            }
        }
        let setup = [
            ("job", vec!["saldo".to_owned()]),
            ("instance", vec![self.relay.address.to_string()]),
            (
                "provider",
                ["ayopop", "generic", "isikuota", "snap"]
                    .map(String::from)
                    .to_vec(),
            ),
            (
                "account",
                [BUSY, LOW, DROPPING, BREAKING].map(String::from).to_vec(),
            ),
        ];
        for (name, expected) in setup {
            let expected: BTreeSet<String> = expected.into_iter().collect();
            if let Some(values) = found.get(name).filter(|values| **values != expected) {
                problems.push(format!(
                    "{file}: ${name} offers {values:?}, not {expected:?}"
                ));
            }
        }
        selections
    }

    /// Grafana's `label_values(selector, label)` (and `label_values(label)`), through the
    /// label values API as Grafana's Prometheus data source does it.
    async fn label_values(&self, query: &str) -> Vec<String> {
        let arguments = query
            .trim()
            .strip_prefix("label_values(")
            .and_then(|rest| rest.strip_suffix(')'))
            .unwrap_or_else(|| panic!("not a label_values() query, unknown to this test: {query}"));
        let (selector, label) = match arguments.rsplit_once(',') {
            Some((selector, label)) => (Some(selector.trim()), label.trim()),
            None => (None, arguments.trim()),
        };
        let params: Vec<(&str, &str)> = selector.map(|s| ("match[]", s)).into_iter().collect();
        let answer = self
            .api(&format!("/api/v1/label/{label}/values"), &params)
            .await;
        assert_eq!(answer["status"], "success", "{query}: {answer}");
        answer["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }

    /// The processes' recent output and what reached the webhook, for a failure message.
    fn diagnostics(&self) -> String {
        let mut text = format!(
            "--- prometheus\n{}\n--- exporter\n{}",
            self.prometheus.log_tail(),
            tail(&self.exporter.output())
        );
        if let Some((process, webhook)) = &self.alertmanager {
            let alerts = webhook.alerts.lock().unwrap();
            text += &format!(
                "\n--- alertmanager\n{}\n--- webhook received\n{}",
                process.log_tail(),
                alerts
                    .iter()
                    .map(|alert| format!("{} {}", alert["status"], alert["labels"]))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        text
    }
}

impl Suppliers {
    async fn start() -> Suppliers {
        let start = |kind: &'static str, balance: i64| async move {
            Simulator::start(kind, Decimal::from(balance))
                .await
                .unwrap()
        };
        let busy = start("isikuota", 3_000_000).await;
        // About 150 000 rupiah a second: a top-up every few seconds, and a runway.
        busy.start_sales(Sales {
            every: Duration::from_millis(200),
            low: Decimal::from(2_500_000),
            top_up: Decimal::from(1_000_000),
        });
        Suppliers {
            busy,
            // Suppliers added after the rules and dashboards were written, one with a token
            // flow and one reached through a `generic` account: they must show and alert with
            // no change to either.
            low: start("snap", 800_000).await,
            dropping: start("digiflazz", 2_000_000).await,
            breaking: start("ayopop", 4_000_000).await,
        }
    }

    /// The exporter's accounts file (JSON, which is YAML): the env has room for one account
    /// per provider, these are four.
    fn accounts_file(&self) -> Value {
        let thresholds = Some((WARNING, CRITICAL));
        let accounts = [
            (&self.busy, "isikuota", BUSY, thresholds),
            (&self.low, "snap", LOW, thresholds),
            (&self.dropping, "digiflazz", DROPPING, thresholds),
            (&self.breaking, "ayopop", BREAKING, None),
        ]
        .map(|(simulator, provider, name, thresholds)| {
            if provider == "digiflazz" {
                return generic(simulator, name, thresholds);
            }
            // The simulator's SALDO_<PROVIDER>_<FIELD> variables are the file's fields.
            let prefix = format!("SALDO_{}_", provider.to_uppercase());
            let mut fields: Map<String, Value> = simulator
                .env(name)
                .into_iter()
                .map(|(key, value)| {
                    let field = key.strip_prefix(&prefix).unwrap().to_lowercase();
                    let field = if field == "account" {
                        "name".into()
                    } else {
                        field
                    };
                    (field, Value::String(value))
                })
                .collect();
            fields.insert("provider".into(), provider.into());
            if let Some((warning, critical)) = thresholds {
                fields.insert("warning_threshold".into(), warning.into());
                fields.insert("critical_threshold".into(), critical.into());
            }
            Value::Object(fields)
        });
        json!({ "accounts": accounts })
    }
}

/// The dropping account as a `generic` account (`examples/generic/digiflazz.yaml`, aimed as the
/// demo aims it) with the same thresholds: the rules and dashboards must show and alert on it
/// with no change.
fn generic(simulator: &Simulator, name: &str, thresholds: Option<(i64, i64)>) -> Value {
    let mut account = saldo_exporter::demo::generic_digiflazz(simulator, name);
    if let Some((warning, critical)) = thresholds {
        account["warning_threshold"] = warning.into();
        account["critical_threshold"] = critical.into();
    }
    account
}

/// The shipped rules with every `for:` shortened to [`SHORT_FOR`], and proof that nothing
/// else changed: both files parse to the same rules once `for` is set aside.
fn shortened_rules() -> String {
    let original = read(RULES);
    let mut shortened = String::new();
    for line in original.lines() {
        let rest = line.trim_start();
        if rest.starts_with("for: ") && rest.len() < line.len() {
            let indent = &line[..line.len() - rest.len()];
            shortened += &format!("{indent}for: {SHORT_FOR}\n");
        } else {
            shortened += line;
            shortened.push('\n');
        }
    }
    let parse = |text: &str| -> Value { yaml_serde::from_str(text).unwrap() };
    let (mut before, mut after) = (parse(&original), parse(&shortened));
    let mut shortened_rules = 0;
    for (rules_before, rules_after) in before["groups"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .zip(after["groups"].as_array_mut().unwrap())
    {
        assert!(
            rules_before.get("interval").is_none(),
            "{RULES}: a group interval would need shortening too"
        );
        for (rule_before, rule_after) in rules_before["rules"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .zip(rules_after["rules"].as_array_mut().unwrap())
        {
            let (was, now) = (
                rule_before.as_object_mut().unwrap().remove("for"),
                rule_after.as_object_mut().unwrap().remove("for"),
            );
            assert_eq!(was.is_some(), now.is_some(), "{rule_before}");
            if let Some(now) = now {
                assert_eq!(now, SHORT_FOR, "{rule_before}");
                shortened_rules += 1;
            }
        }
    }
    assert!(shortened_rules > 0, "{RULES}: no `for:` found to shorten");
    assert_eq!(
        before, after,
        "{RULES}: shortening `for:` changed something else"
    );
    shortened
}

/// Every panel target's `expr` with where it is, including panels inside rows.
fn collect_targets(panels: &Value, outer: &str, out: &mut Vec<(String, String)>) {
    for panel in panels.as_array().into_iter().flatten() {
        let place = format!("{outer}panel {:?}", panel["title"].as_str().unwrap_or(""));
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("{place}: a target without `expr`: {target}"));
            let ref_id = target["refId"].as_str().unwrap_or("?");
            out.push((format!("{place} {ref_id}"), expr.to_owned()));
        }
        collect_targets(&panel["panels"], &format!("{place} > "), out);
    }
}

/// Replaces `${name}` and `$name`, longest names first so `$__interval` cannot eat the start
/// of a longer name.
fn interpolate(query: &str, values: &BTreeMap<String, String>) -> String {
    let mut names: Vec<&String> = values.keys().collect();
    names.sort_by_key(|name| std::cmp::Reverse(name.len()));
    let mut query = query.to_owned();
    for name in names {
        query = query
            .replace(&format!("${{{name}}}"), &values[name])
            .replace(&format!("${name}"), &values[name]);
    }
    query
}

/// Several values of a multi-value variable, as Grafana writes them for `=~`: regex-escaped
/// (a backslash doubled for the PromQL string) and joined into one alternation.
fn multi_value(values: &[String]) -> String {
    let escaped: Vec<String> = values
        .iter()
        .map(|value| {
            value
                .chars()
                .map(|c| {
                    if r"\.+*?()|[]{}^$".contains(c) {
                        format!(r"\\{c}")
                    } else {
                        c.to_string()
                    }
                })
                .collect()
        })
        .collect();
    match escaped.as_slice() {
        [one] => one.clone(),
        many => format!("({})", many.join("|")),
    }
}

fn dashboard_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_path(DASHBOARDS))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn labels(alert: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(alert["labels"].clone()).unwrap()
}

/// An Alertmanager webhook receiver: stores every alert of every notification it is sent.
struct Webhook {
    address: SocketAddr,
    alerts: Arc<Mutex<Vec<Value>>>,
    server: JoinHandle<()>,
}

impl Webhook {
    /// A plain hyper server rather than the crate's own accept loop, so this test does not
    /// follow changes to the exporter's server.
    async fn start() -> Webhook {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let alerts = Arc::new(Mutex::new(Vec::new()));
        let received = Arc::clone(&alerts);
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let received = Arc::clone(&received);
                let service = service_fn(move |request: Request<Incoming>| {
                    let received = Arc::clone(&received);
                    async move {
                        let status = match notification(request).await {
                            Some(batch) => {
                                received.lock().unwrap().extend(batch);
                                StatusCode::OK
                            }
                            None => StatusCode::BAD_REQUEST,
                        };
                        let mut response = Response::new(Full::new(Bytes::new()));
                        *response.status_mut() = status;
                        Ok::<_, Infallible>(response)
                    }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        Webhook {
            address,
            alerts,
            server,
        }
    }
}

/// The alerts of an Alertmanager notification; `None` for anything else, which is refused
/// and so never counts as one.
async fn notification(request: Request<Incoming>) -> Option<Vec<Value>> {
    let body = request.into_body().collect().await.ok()?.to_bytes();
    let mut payload: Value = serde_json::from_slice(&body).ok()?;
    match payload["alerts"].take() {
        Value::Array(alerts) => Some(alerts),
        _ => None,
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A child process killed when the test ends, however it ends, with its output in a file.
struct Process {
    child: Child,
    program: &'static str,
    port: u16,
    log: PathBuf,
}

impl Process {
    fn spawn(program: &'static str, args: &[String], dir: &Path, port: u16) -> Process {
        let log = dir.join(format!("{program}.log"));
        let output = std::fs::File::create(&log).unwrap();
        let child = Command::new(program)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        Process {
            child,
            program,
            port,
            log,
        }
    }

    /// Waits until `/-/ready` answers 200, failing at once if the process exits.
    async fn wait_ready(&mut self, client: &reqwest::Client) {
        let url = format!("http://127.0.0.1:{}/-/ready", self.port);
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "{} exited with {status}:\n{}",
                    self.program,
                    self.log_tail()
                );
            }
            let response = client.get(&url).send().await;
            if response.is_ok_and(|r| r.status() == StatusCode::OK) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready:\n{}",
                self.program,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log_tail(&self) -> String {
        tail(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Calls `check` until it returns `Some` or [`DEADLINE`] passes.
async fn within_deadline<T, F>(mut check: impl FnMut() -> F) -> Option<T>
where
    F: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A port free a moment ago: the tools take a listen address, not a socket.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// A TCP relay from Prometheus to the exporter that counts the answers sent with
/// `Content-Encoding: gzip`.
struct ScrapeRelay {
    address: SocketAddr,
    gzip_answers: Arc<AtomicUsize>,
    _task: JoinHandle<()>,
}

impl ScrapeRelay {
    async fn start(exporter: SocketAddr) -> ScrapeRelay {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let gzip_answers = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&gzip_answers);
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = tokio::net::TcpStream::connect(exporter).await else {
                    continue;
                };
                let (mut from_prometheus, mut to_prometheus) = inbound.into_split();
                let (mut from_exporter, mut to_exporter) = outbound.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut from_prometheus, &mut to_exporter).await;
                });
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    const MARK: &[u8] = b"content-encoding: gzip";
                    let mut buffer = vec![0; 64 * 1024];
                    // The end of the previous read, so a header split across reads is found.
                    let mut carry: Vec<u8> = Vec::new();
                    while let Ok(read) = from_exporter.read(&mut buffer).await {
                        if read == 0 || to_prometheus.write_all(&buffer[..read]).await.is_err() {
                            break;
                        }
                        let mut seen = std::mem::take(&mut carry);
                        seen.extend(buffer[..read].iter().map(u8::to_ascii_lowercase));
                        let found = seen.windows(MARK.len()).filter(|w| *w == MARK).count();
                        counter.fetch_add(found, Ordering::SeqCst);
                        carry = seen[seen.len().saturating_sub(MARK.len() - 1)..].to_vec();
                    }
                });
            }
        });
        ScrapeRelay {
            address,
            gzip_answers,
            _task: task,
        }
    }
}
