//! End-to-end: the landing page of the real binary, against the simulated suppliers (isikuota
//! holding Rp 25.490 as `toko-pusat`, Ayopop Rp 5.523.560 as `ppob-utama`).

mod support;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use saldo_exporter::demo::Fault;
use support::{DEADLINE, Exporter, client, setting, suppliers};

async fn landing_page(url: String) -> String {
    let response = client().get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    response.text().await.unwrap()
}

/// The table row of one account (the page writes each row on one line).
fn row<'a>(page: &'a str, account: &str) -> &'a str {
    let cell = format!("<td><b>{account}</b>");
    page.lines()
        .find(|line| line.starts_with("<tr>") && line.contains(&cell))
        .unwrap_or_else(|| panic!("no row for {account} in\n{page}"))
}

fn assert_contains(text: &str, expected: &[&str]) {
    for expected in expected {
        assert!(text.contains(expected), "{expected:?} missing from\n{text}");
    }
}

const CHECK_NOW: &str = "Balances are checked when /metrics is scraped (by Prometheus, or now: \
                         <a href=\"/metrics\">check now</a>)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_any_scrape_the_page_says_that_checks_run_on_scrape_and_links_metrics() {
    let (isikuota, ayopop, env) = suppliers().await;
    let exporter = Exporter::start(&env).await;
    let page = landing_page(exporter.url("/")).await;
    assert_contains(&page, &[CHECK_NOW]);
    for account in ["toko-pusat", "ppob-utama"] {
        assert_contains(
            row(&page, account),
            &["not checked yet", "<td>never</td>", "<td>30s</td>"],
        );
    }
    // Viewing the page checks nothing: only scrapes reach the suppliers.
    assert_eq!((isikuota.requests(), ayopop.requests()), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_one_scrape_the_page_shows_each_balance_threshold_state_and_min_interval() {
    let (_isikuota, _ayopop, mut env) = suppliers().await;
    env.extend([
        setting("MIN_INTERVAL", "45s"),
        setting("AYOPOP_MIN_INTERVAL", "2m"),
        // Above the 25,490 held: low.
        setting("ISIKUOTA_WARNING_THRESHOLD", "30000"),
        setting("ISIKUOTA_CRITICAL_THRESHOLD", "10000"),
        setting("AYOPOP_WARNING_THRESHOLD", "1000000"),
    ]);
    let exporter = Exporter::start(&env).await;
    exporter.scrape().await;
    let page = landing_page(exporter.url("/")).await;
    assert!(!page.contains("check now"), "the first-scrape note stays");
    assert_contains(
        row(&page, "toko-pusat"),
        &[
            "<td class=\"num\">Rp 25.490</td>",
            "<span class=\"state low\">low</span>",
            "<td class=\"num\">Rp 30.000</td><td class=\"num\">Rp 10.000</td>",
            "<time datetime=\"",
            " UTC</time>",
            " s ago</small>",
            "<td>45s</td>",
        ],
    );
    assert_contains(
        row(&page, "ppob-utama"),
        &[
            "<td class=\"num\">Rp 5.523.560</td>",
            "<span class=\"state ok\">ok</span>",
            "<td class=\"num\">Rp 1.000.000</td><td class=\"num\">—</td>",
            "<td>2m</td>",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_supplier_shows_down_with_the_reason_in_words_and_the_last_good_balance() {
    let (isikuota, ayopop, mut env) = suppliers().await;
    env.push(setting("MIN_INTERVAL", "0s"));
    let exporter = Exporter::start(&env).await;
    exporter.scrape().await;
    isikuota.rotate_secret("rotated-on-the-dashboard");
    ayopop.set_fault(Some(Fault::Status(500)));
    let page = async {
        loop {
            exporter.scrape().await;
            let page = landing_page(exporter.url("/")).await;
            if row(&page, "toko-pusat").contains("down")
                && row(&page, "ppob-utama").contains("down")
            {
                return page;
            }
        }
    };
    let page = tokio::time::timeout(DEADLINE, page)
        .await
        .expect("the page never showed both accounts down");
    assert_contains(
        row(&page, "toko-pusat"),
        &[
            "<span class=\"state down\">down</span>: the supplier refused the credentials (auth)",
            "Rp 25.490<br><small>at the last success</small>",
        ],
    );
    assert_contains(
        row(&page, "ppob-utama"),
        &[
            "<span class=\"state down\">down</span>: the supplier answered with an HTTP error (http_status)",
            "Rp 5.523.560<br><small>at the last success</small>",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_account_name_is_escaped_and_no_secret_reaches_the_page() {
    let (isikuota, ayopop, mut env) = suppliers().await;
    let hostile = "<script>alert(\"saldo\")</script>";
    for (name, value) in &mut env {
        if name == "SALDO_ISIKUOTA_ACCOUNT" {
            *value = hostile.to_owned();
        }
    }
    let secrets: Vec<String> = env
        .iter()
        .filter(|(name, _)| name.ends_with("_API_KEY") || name.ends_with("_SECRET_KEY"))
        .map(|(_, value)| value.clone())
        .collect();
    assert_eq!(secrets.len(), 4);
    env.push(setting("MIN_INTERVAL", "0s"));
    let exporter = Exporter::start(&env).await;
    let mut pages = vec![landing_page(exporter.url("/")).await];
    exporter.scrape().await;
    pages.push(landing_page(exporter.url("/")).await);
    // Failures too: an error's text is where a leak would hide.
    isikuota.set_fault(Some(Fault::TruncatedJson));
    ayopop.rotate_secret("rotated");
    exporter.scrape().await;
    pages.push(landing_page(exporter.url("/")).await);

    let escaped = "&lt;script&gt;alert(&quot;saldo&quot;)&lt;/script&gt;";
    assert_contains(row(&pages[1], escaped), &["Rp 25.490"]);
    assert_contains(row(&pages[2], escaped), &["(decode)"]);
    assert_contains(row(&pages[2], "ppob-utama"), &["(auth)"]);
    let pages = pages.concat();
    assert!(
        !pages.contains("<script>alert"),
        "the account name is not escaped"
    );
    for secret in &secrets {
        assert!(!pages.contains(secret.as_str()), "a secret is on the page");
    }
}

/// The binary run as the README says (`--demo`), with the caller's whole environment rather
/// than a cleared one, and a time zone other than UTC.
struct UserRun {
    child: Child,
    address: String,
    log: tempfile::NamedTempFile,
}

impl UserRun {
    fn start() -> UserRun {
        // A free port, for a listen address given the way a user gives one.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_saldo_exporter"))
            .arg("--demo")
            .env("SALDO_LISTEN_ADDRESS", &address)
            .env("TZ", "Asia/Jakarta")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("the exporter binary starts");
        UserRun {
            child,
            address,
            log,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for UserRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_run_as_a_user_runs_it_shows_checked_balances_after_check_now() {
    let mut demo = UserRun::start();
    let first = async {
        loop {
            if let Some(status) = demo.child.try_wait().unwrap() {
                panic!("the demo exited with {status}:\n{}", demo.log());
            }
            if let Ok(response) = client().get(demo.url("/")).send().await {
                return response.text().await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let first = tokio::time::timeout(DEADLINE, first)
        .await
        .unwrap_or_else(|_| panic!("the demo never served its page:\n{}", demo.log()));
    assert_contains(&first, &[CHECK_NOW]);

    // Follow the link, as a reader would.
    let metrics = client().get(demo.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let page = landing_page(demo.url("/")).await;
    for (account, warning, critical) in [
        ("demo-isikuota", "Rp 1.000.000", "Rp 500.000"),
        ("demo-ayopop", "Rp 2.000.000", "Rp 1.000.000"),
    ] {
        let row = row(&page, account);
        assert_contains(
            row,
            &[
                "<td class=\"num\">Rp ",
                &format!("<td class=\"num\">{warning}</td><td class=\"num\">{critical}</td>"),
                "<td>5s</td>",
            ],
        );
        assert!(
            ["state ok", "state low", "state critical"]
                .iter()
                .any(|state| row.contains(state)),
            "{account} was not checked: {row}"
        );
        // The server's zone (Asia/Jakarta here) does not shift the instant it shows as UTC.
        let datetime = row
            .split("<time datetime=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no time element in {row}"));
        let at = humantime::parse_rfc3339(datetime).unwrap();
        let off = SystemTime::now()
            .duration_since(at)
            .unwrap_or_else(|e| e.duration());
        assert!(
            off < DEADLINE,
            "last success {datetime} is {off:?} from now"
        );
    }
    assert_contains(&page, &["Toko Pulsa Demo"]);
}
