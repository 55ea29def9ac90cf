//! The landing page at `/`, the first thing the README sends people to.
//!
//! One small HTML page with no external resource: each account's balance in rupiah, its
//! thresholds and state, its last success and its min-interval. It is built only from account
//! labels, settings and check results, never from a secret, and everything taken from those is
//! escaped: account names come from the user, holders and currencies from the suppliers.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rust_decimal::Decimal;

use crate::collector::AccountStatus;
use crate::error::Reason;

/// What the page says about an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    NotChecked,
    /// The latest check failed; a last good balance, if any, is older.
    Down(Reason),
    /// Below the critical threshold.
    Critical,
    /// Below the warning threshold.
    Low,
    Ok,
}

impl Health {
    /// The state in words, as the page shows it.
    fn word(self) -> &'static str {
        match self {
            Health::NotChecked => "not checked yet",
            Health::Down(_) => "down",
            Health::Critical => "critical",
            Health::Low => "low",
            Health::Ok => "ok",
        }
    }

    fn class(self) -> &'static str {
        match self {
            Health::NotChecked => "unchecked",
            other => other.word(),
        }
    }
}

/// Down when the latest check failed, else the last balance against the thresholds. Below a
/// threshold, as the shipped alerts compare, so the page and Alertmanager never disagree.
fn health(status: &AccountStatus) -> Health {
    if let Some(reason) = status.last_error {
        return Health::Down(reason);
    }
    let Some((balance, _)) = status.last_good.as_ref().filter(|_| status.up) else {
        return Health::NotChecked;
    };
    let reached = |threshold: Option<Decimal>| threshold.is_some_and(|t| balance.amount < t);
    if reached(status.critical_threshold) {
        Health::Critical
    } else if reached(status.warning_threshold) {
        Health::Low
    } else {
        Health::Ok
    }
}

/// Why a check failed, in words a reseller understands, ending with the `reason` label that
/// alerts and dashboards show, so the two can be matched up.
fn describe(reason: Reason, timeout: Duration) -> String {
    let words = match reason {
        Reason::Timeout => format!("no answer within {}", humantime::format_duration(timeout)),
        Reason::Connect => "the supplier could not be reached".to_owned(),
        Reason::HttpStatus => "the supplier answered with an HTTP error".to_owned(),
        Reason::Auth => "the supplier refused the credentials".to_owned(),
        Reason::RateLimited => "the supplier asked to wait before asking again".to_owned(),
        Reason::Decode => "the supplier's answer could not be read".to_owned(),
        Reason::Rejected => "the supplier declined the balance check".to_owned(),
    };
    format!("{words} ({})", reason.as_str())
}

/// An amount the way Indonesians write rupiah: `Rp 5.523.560`, `Rp 1.250,50`, `-Rp 1.000`.
///
/// Whole amounts have no decimals; other amounts show every decimal the supplier sent, at least
/// two, since rounding would misstate a deposit. Another currency is written with its ISO code
/// in place of `Rp` (`USD 1.234,50`) in the same number format: codes need no symbol table and
/// are never ambiguous, and one number format keeps a column of amounts readable.
fn money(amount: Decimal, currency: &str) -> String {
    let code = if currency.eq_ignore_ascii_case("IDR") {
        "Rp"
    } else {
        currency.trim()
    };
    let digits = amount.abs().normalize().to_string();
    let (whole, fraction) = digits.split_once('.').unwrap_or((&digits, ""));
    let mut text = String::with_capacity(digits.len() + 8);
    if amount.is_sign_negative() && !amount.is_zero() {
        text.push('-');
    }
    if !code.is_empty() {
        text.push_str(code);
        text.push(' ');
    }
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            text.push('.');
        }
        text.push(digit);
    }
    if !fraction.is_empty() {
        text.push(',');
        text.push_str(fraction);
        if fraction.len() == 1 {
            text.push('0');
        }
    }
    text
}

/// How long ago, coarsely: `45 s ago`, `3 min ago`, `2 h ago`, `3 days ago`.
fn age(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs();
    match seconds {
        0..60 => format!("{seconds} s ago"),
        60..3600 => format!("{} min ago", seconds / 60),
        3600..172_800 => format!("{} h ago", seconds / 3600),
        _ => format!("{} days ago", seconds / 86_400),
    }
}

/// An instant as `<time>` in UTC (servers usually run in UTC); the page's script rewrites it to
/// the reader's local time, and without JavaScript the UTC text stays.
fn time(at: SystemTime) -> String {
    // humantime panics outside years 1970 to 9999; a broken clock must not break the page.
    let representable = at
        .duration_since(UNIX_EPOCH)
        .is_ok_and(|since| since.as_secs() < 253_402_300_800);
    if !representable {
        return "an unrepresentable time".to_owned();
    }
    let rfc3339 = humantime::format_rfc3339_seconds(at).to_string();
    let utc = rfc3339.replacen('T', " ", 1).replace('Z', " UTC");
    format!("<time datetime=\"{rfc3339}\">{utc}</time>")
}

/// The page for these accounts as of `now`, which is passed in so that tests control the ages.
pub fn page(statuses: &[AccountStatus], metrics_path: &str, now: SystemTime) -> String {
    let mut rows = String::new();
    for status in statuses {
        let health = health(status);
        // Thresholds share the balance's currency; both suppliers only know rupiah.
        let currency = status
            .last_good
            .as_ref()
            .map_or("IDR", |(balance, _)| balance.currency.as_str());
        let balance = match (&status.last_good, health) {
            (None, _) => "—".to_owned(),
            (Some((balance, _)), Health::Down(_)) => format!(
                "{}<br><small>at the last success</small>",
                escape(&money(balance.amount, &balance.currency))
            ),
            (Some((balance, _)), _) => escape(&money(balance.amount, &balance.currency)),
        };
        let mut state = format!(
            "<span class=\"state {}\">{}</span>",
            health.class(),
            health.word()
        );
        if let Health::Down(reason) = health {
            let _ = write!(state, ": {}", escape(&describe(reason, status.timeout)));
        }
        let threshold = |value: Option<Decimal>| {
            value.map_or_else(|| "—".to_owned(), |v| escape(&money(v, currency)))
        };
        let last_success = match &status.last_good {
            Some((_, at)) => format!(
                "{}<br><small>{}</small>",
                time(*at),
                age(now.duration_since(*at).unwrap_or_default())
            ),
            None => "never".to_owned(),
        };
        // The supplier and the holder it knows the account by, under the account's name.
        let mut who = escape(status.provider);
        if let Some(holder) = status
            .last_good
            .as_ref()
            .and_then(|(b, _)| b.holder.as_deref())
        {
            let _ = write!(who, " · {}", escape(holder));
        }
        let _ = writeln!(
            rows,
            "<tr><td><b>{account}</b><br><small>{who}</small></td>\
             <td class=\"num\">{balance}</td><td class=\"why\">{state}</td>\
             <td class=\"num\">{warning}</td><td class=\"num\">{critical}</td>\
             <td>{last_success}</td><td>{interval}</td></tr>",
            account = escape(&status.account),
            warning = threshold(status.warning_threshold),
            critical = threshold(status.critical_threshold),
            interval = humantime::format_duration(status.min_interval),
        );
    }
    let checked = statuses
        .iter()
        .any(|s| s.up || s.last_error.is_some() || s.last_good.is_some());
    let metrics = escape(metrics_path);
    let note = if checked {
        format!(
            "<p>Balances are checked when <a href=\"{metrics}\">{metrics}</a> is scraped, at \
             most once per min-interval per account; this page shows the latest results.</p>"
        )
    } else {
        format!(
            "<p class=\"note\">No account has been checked yet. Balances are checked when \
             {metrics} is scraped (by Prometheus, or now: <a href=\"{metrics}\">check \
             now</a>), then shown here.</p>"
        )
    };
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>saldo_exporter</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}
table{{border-collapse:collapse}}
th,td{{padding:.4em .8em;text-align:left;vertical-align:top;border-bottom:1px solid #ddd}}
th,b,.num{{white-space:nowrap}}
.scroll{{overflow-x:auto}}
.num{{text-align:right}}
.why{{min-width:12em}}
small{{color:#666}}
.note{{display:inline-block;background:#fff6d5;border:1px solid #e0c060;padding:.6em 1em}}
.state{{font-weight:bold;padding:.1em .6em;border-radius:1em;white-space:nowrap}}
.ok{{background:#dafbe1;color:#116329}}.low{{background:#fff1c2;color:#7a4d00}}
.critical,.down{{background:#ffe0de;color:#a40e26}}.unchecked{{background:#eee;color:#555}}
</style>
</head>
<body>
<h1>saldo_exporter</h1>
<p>Deposit balances of PPOB and payment supplier accounts, for Prometheus.
Version {version} (revision {revision}).</p>
{note}
<div class="scroll"><table>
<tr><th>Account</th><th class="num">Balance</th><th>State</th><th class="num">Warning at</th><th class="num">Critical at</th><th>Last success</th><th>Min-interval</th></tr>
{rows}</table></div>
<p><a href="{metrics}">Metrics</a> · <a href="/-/healthy">Health</a> · <a href="/-/ready">Readiness</a></p>
<p><small>Page generated {generated}.</small></p>
<script>
for (const t of document.querySelectorAll("time[datetime]")) {{
  const local = new Date(t.dateTime);
  if (!isNaN(local)) {{ t.title = t.textContent; t.textContent = local.toLocaleString(undefined, {{timeZoneName: "short"}}); }}
}}
</script>
</body>
</html>
"#,
        version = escape(crate::VERSION),
        revision = escape(crate::REVISION),
        generated = time(now),
    )
}

/// Escapes text for HTML element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;
    use crate::providers::Balance;

    fn idr(amount: &str) -> String {
        money(Decimal::from_str(amount).unwrap(), "IDR")
    }

    #[test]
    fn whole_rupiah_have_dots_between_thousands_and_no_decimals() {
        assert_eq!(idr("0"), "Rp 0");
        assert_eq!(idr("999"), "Rp 999");
        assert_eq!(idr("1000"), "Rp 1.000");
        assert_eq!(idr("25490"), "Rp 25.490");
        assert_eq!(idr("25490.00"), "Rp 25.490");
        assert_eq!(idr("5523560"), "Rp 5.523.560");
    }

    #[test]
    fn fractional_rupiah_have_a_decimal_comma_and_at_least_two_decimals() {
        assert_eq!(idr("1250.50"), "Rp 1.250,50");
        assert_eq!(idr("1250.5"), "Rp 1.250,50");
        assert_eq!(idr("0.125"), "Rp 0,125");
    }

    #[test]
    fn large_amounts_keep_every_digit() {
        assert_eq!(idr("1234567890123.45"), "Rp 1.234.567.890.123,45");
    }

    #[test]
    fn a_negative_amount_puts_the_minus_before_rp() {
        assert_eq!(idr("-1000"), "-Rp 1.000");
        assert_eq!(idr("-0.5"), "-Rp 0,50");
        assert_eq!(idr("-0"), "Rp 0");
    }

    #[test]
    fn another_currency_is_written_with_its_code_in_the_same_number_format() {
        let usd = |amount| money(Decimal::from_str(amount).unwrap(), "USD");
        assert_eq!(usd("1234.5"), "USD 1.234,50");
        assert_eq!(usd("-7"), "-USD 7");
        assert_eq!(money(Decimal::from(1000), "idr"), "Rp 1.000");
    }

    fn account(name: &str) -> AccountStatus {
        AccountStatus {
            provider: "isikuota",
            account: name.to_owned(),
            min_interval: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            warning_threshold: None,
            critical_threshold: None,
            up: false,
            last_error: None,
            last_good: None,
        }
    }

    /// An account whose latest check found `amount` rupiah at `at`.
    fn checked(amount: i64, at: SystemTime) -> AccountStatus {
        AccountStatus {
            up: true,
            last_good: Some((
                Balance {
                    amount: Decimal::from(amount),
                    currency: "IDR".into(),
                    holder: Some("Toko Makmur".into()),
                },
                at,
            )),
            ..account("toko-pusat")
        }
    }

    fn with_thresholds(mut status: AccountStatus, warning: i64, critical: i64) -> AccountStatus {
        status.warning_threshold = Some(Decimal::from(warning));
        status.critical_threshold = Some(Decimal::from(critical));
        status
    }

    #[test]
    fn the_state_follows_the_balance_against_the_thresholds() {
        let at = |amount| health(&with_thresholds(checked(amount, now()), 100_000, 50_000));
        assert_eq!(at(100_000), Health::Ok, "equal to the warning threshold");
        assert_eq!(at(99_999), Health::Low);
        assert_eq!(at(50_000), Health::Low, "equal to the critical threshold");
        assert_eq!(at(49_999), Health::Critical);
        assert_eq!(at(-1), Health::Critical);
        assert_eq!(health(&checked(0, now())), Health::Ok, "no thresholds");
    }

    #[test]
    fn a_failed_latest_check_is_down_whatever_the_last_balance() {
        let mut status = with_thresholds(checked(10, now()), 100_000, 50_000);
        status.up = false;
        status.last_error = Some(Reason::Auth);
        assert_eq!(health(&status), Health::Down(Reason::Auth));
        let never_succeeded = AccountStatus {
            last_error: Some(Reason::Timeout),
            ..account("baru")
        };
        assert_eq!(health(&never_succeeded), Health::Down(Reason::Timeout));
    }

    #[test]
    fn an_account_is_not_checked_yet_before_its_first_check() {
        assert_eq!(health(&account("baru")), Health::NotChecked);
    }

    #[test]
    fn every_reason_has_its_own_words_ending_in_its_label() {
        let ten = Duration::from_secs(10);
        assert_eq!(
            describe(Reason::Timeout, ten),
            "no answer within 10s (timeout)"
        );
        assert_eq!(
            describe(Reason::Auth, ten),
            "the supplier refused the credentials (auth)"
        );
        let mut phrases: Vec<_> = Reason::ALL.iter().map(|r| describe(*r, ten)).collect();
        for (reason, phrase) in Reason::ALL.iter().zip(&phrases) {
            assert!(
                phrase.ends_with(&format!(" ({})", reason.as_str())),
                "{phrase}"
            );
        }
        phrases.sort();
        phrases.dedup();
        assert_eq!(phrases.len(), Reason::ALL.len());
    }

    #[test]
    fn ages_are_given_in_the_largest_whole_unit() {
        let ago = |seconds| age(Duration::from_secs(seconds));
        assert_eq!(ago(0), "0 s ago");
        assert_eq!(ago(59), "59 s ago");
        assert_eq!(ago(60), "1 min ago");
        assert_eq!(ago(3 * 60 + 59), "3 min ago");
        assert_eq!(ago(3600), "1 h ago");
        assert_eq!(ago(2 * 3600 + 1), "2 h ago");
        assert_eq!(ago(47 * 3600), "47 h ago");
        assert_eq!(ago(3 * 86_400), "3 days ago");
    }

    /// 2026-12-03 07:12:00 UTC.
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_796_281_920)
    }

    #[test]
    fn the_last_success_is_a_utc_time_element_with_its_age() {
        let page = page(
            &[checked(25_490, now() - Duration::from_secs(180))],
            "/metrics",
            now(),
        );
        assert!(
            page.contains(
                "<time datetime=\"2026-12-03T07:09:00Z\">2026-12-03 07:09:00 UTC</time>\
                 <br><small>3 min ago</small>"
            ),
            "{page}"
        );
        assert!(page.contains("toLocaleString"), "no script for local time");
    }

    #[test]
    fn a_checked_account_shows_its_balance_thresholds_state_and_min_interval() {
        let mut status = with_thresholds(checked(25_490, now()), 30_000, 10_000);
        status.min_interval = Duration::from_secs(120);
        let page = page(&[status], "/metrics", now());
        for expected in [
            "<td class=\"num\">Rp 25.490</td>",
            "<span class=\"state low\">low</span>",
            "<td class=\"num\">Rp 30.000</td><td class=\"num\">Rp 10.000</td>",
            "<td>2m</td>",
            "<b>toko-pusat</b><br><small>isikuota · Toko Makmur</small>",
        ] {
            assert!(page.contains(expected), "{expected} missing from\n{page}");
        }
        assert!(!page.contains("check now"), "the first-scrape note stays");
    }

    #[test]
    fn a_down_account_says_why_and_keeps_its_last_balance_marked_as_such() {
        let mut status = checked(25_490, now() - Duration::from_secs(7200));
        status.up = false;
        status.last_error = Some(Reason::Timeout);
        let page = page(&[status], "/metrics", now());
        for expected in [
            "<span class=\"state down\">down</span>: no answer within 10s (timeout)",
            "Rp 25.490<br><small>at the last success</small>",
            "<small>2 h ago</small>",
        ] {
            assert!(page.contains(expected), "{expected} missing from\n{page}");
        }
    }

    #[test]
    fn before_any_check_the_page_says_that_checks_run_on_scrape_and_links_metrics() {
        let page = page(
            &[account("toko-pusat"), account("ppob-utama")],
            "/metrics",
            now(),
        );
        assert!(page.contains(
            "Balances are checked when /metrics is scraped (by Prometheus, or now: \
             <a href=\"/metrics\">check now</a>)"
        ));
        assert!(page.contains("<span class=\"state unchecked\">not checked yet</span>"));
        assert!(page.contains("<td>never</td>"));
    }

    #[test]
    fn the_links_follow_the_telemetry_path() {
        let page = page(&[account("toko-pusat")], "/saldo/metrics", now());
        assert!(page.contains("<a href=\"/saldo/metrics\">check now</a>"));
        assert!(page.contains("<a href=\"/saldo/metrics\">Metrics</a>"));
        assert!(!page.contains("\"/metrics\""));
    }

    #[test]
    fn a_hostile_account_name_holder_or_currency_is_escaped() {
        let mut status = checked(1, now());
        status.account = "<script>alert('x')</script>".into();
        if let Some((balance, _)) = &mut status.last_good {
            balance.holder = Some("<img src=x onerror=alert(1)>".into());
            balance.currency = "<i>".into();
        }
        let page = page(&[status], "/metrics", now());
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(page.contains("&lt;i&gt; 1"));
        assert!(!page.contains("<script>alert"));
        assert!(!page.contains("<img"));
        assert!(!page.contains("<i>"));
    }

    #[test]
    fn escaping_covers_every_character_that_could_end_text_or_an_attribute() {
        assert_eq!(
            escape("<b>\"toko\" & 'co'</b>"),
            "&lt;b&gt;&quot;toko&quot; &amp; &#39;co&#39;&lt;/b&gt;"
        );
    }
}
