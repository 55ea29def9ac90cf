//! The `generic` provider end to end through the real binary: the example files in
//! `examples/generic/` that reproduce six built-in providers, each against that provider's own
//! simulator next to the built-in account; the six suppliers without a built-in, against a
//! loopback server that checks their documented requests; secrets at trace level; and the
//! configuration errors a user sees.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http_body_util::BodyExt;
use hyper::{Request, StatusCode};
use rust_decimal::Decimal;
use saldo_exporter::demo::{Fault, Simulator};
use saldo_exporter::error::Reason;
use saldo_exporter::server::{HttpResponse, accept_loop, respond};
use saldo_exporter::signing;
use serde_json::{Value, json};
use support::{Exporter, read, sample, setting};

/// The built-in providers reproduced in `examples/generic/`, by file name.
const REPRODUCED: [&str; 6] = [
    "isikuota",
    "ayopop",
    "digiflazz",
    "ipaymu",
    "duitku",
    "okeconnect",
];

/// The suppliers without a built-in provider that have an example file.
const WITHOUT_BUILT_IN: [&str; 6] = [
    "apigames",
    "tokovoucher",
    "portalpulsa",
    "serpul",
    "mayar",
    "lapakgaming",
];

/// An example file's single account.
fn example(name: &str) -> Value {
    let file: Value =
        saldo_exporter::yaml::parse(&read(&format!("examples/generic/{name}.yaml"))).unwrap();
    let accounts = file["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 1, "{name}");
    assert_eq!(accounts[0]["provider"], "generic", "{name}");
    accounts[0].clone()
}

/// Points an example account at `base_url` (the URL's origin replaced) with `credentials`, the
/// last one from a file, as a user with a secrets directory writes it.
fn aimed(
    mut account: Value,
    name: &str,
    base_url: &str,
    credentials: &[(&str, String)],
    dir: &std::path::Path,
) -> Value {
    account["name"] = json!(name);
    let url = account["request"]["url"].as_str().unwrap().to_owned();
    let path_start = url["https://".len()..].find('/').unwrap() + "https://".len();
    account["request"]["url"] = json!(format!("{base_url}{}", &url[path_start..]));
    let mut fields = serde_json::Map::new();
    for (i, (field, value)) in credentials.iter().enumerate() {
        if i + 1 == credentials.len() {
            let file = dir.join(format!("{name}-{field}"));
            std::fs::write(&file, format!("{value}\n")).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let owner_only = std::fs::Permissions::from_mode(0o600);
                std::fs::set_permissions(&file, owner_only).unwrap();
            }
            fields.insert(format!("{field}_file"), json!(file.to_str().unwrap()));
        } else {
            fields.insert((*field).to_owned(), json!(value));
        }
    }
    // Every credential the example names is given.
    let named: Vec<String> = account["credentials"]
        .as_object()
        .unwrap()
        .keys()
        .map(|key| key.trim_end_matches("_file").to_owned())
        .collect();
    let given: Vec<String> = credentials.iter().map(|(f, _)| f.to_string()).collect();
    assert_eq!(named, given, "{name}: the example's credentials");
    account["credentials"] = Value::Object(fields);
    account
}

/// Each account's `saldo_upstream_errors_total` by reason.
fn errors(text: &str, account: &str) -> BTreeMap<String, f64> {
    Reason::ALL
        .map(Reason::as_str)
        .into_iter()
        .filter_map(|reason| {
            let value = sample(
                text,
                "saldo_upstream_errors_total",
                &[("account", account), ("reason", reason)],
            )?;
            Some((reason.to_owned(), value))
        })
        .collect()
}

/// The reasons whose count rose between two scrapes.
fn new_reasons(before: &str, after: &str, account: &str) -> Vec<String> {
    let before = errors(before, account);
    errors(after, account)
        .into_iter()
        .filter(|(reason, count)| before.get(reason).copied().unwrap_or(0.0) < *count)
        .map(|(reason, _)| reason)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_built_in_providers_reproduced_by_configuration_behave_like_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut accounts = Vec::new();
    let mut simulators = Vec::new();
    for (i, provider) in REPRODUCED.iter().enumerate() {
        let balance: Decimal = format!("{}4321", i + 1).parse().unwrap();
        let simulator = Simulator::start(provider, balance).await.unwrap();
        let fields = simulator.account_fields();
        let mut builtin = json!({"name": format!("builtin-{provider}"), "provider": provider});
        for (field, value) in &fields {
            builtin[*field] = json!(value);
        }
        accounts.push(builtin);
        let credentials: Vec<(&str, String)> = fields
            .into_iter()
            .filter(|(field, _)| *field != "base_url")
            .collect();
        accounts.push(aimed(
            example(provider),
            &format!("generic-{provider}"),
            &simulator.base_url(),
            &credentials,
            dir.path(),
        ));
        simulators.push((*provider, simulator, balance));
    }
    // JSON is YAML: the accounts file as a user could also write it.
    let file = dir.path().join("accounts.yml");
    std::fs::write(&file, json!({ "accounts": accounts }).to_string()).unwrap();
    let env = [
        setting("CONFIG_FILE", file.to_str().unwrap()),
        setting("MIN_INTERVAL", "0s"),
    ];
    // In the test's whole environment, with text logs at info, as a user runs it.
    let exporter = Exporter::start_like_a_user(&env, &[]).await;

    let healthy = exporter.scrape().await;
    for (provider, simulator, balance) in &simulators {
        let expected: f64 = balance.to_string().parse().unwrap();
        for account in [format!("builtin-{provider}"), format!("generic-{provider}")] {
            assert_eq!(
                sample(&healthy, "saldo_balance", &[("account", &account)]),
                Some(expected),
                "{account}\n{}",
                exporter.output()
            );
        }
        let generic = [("account", format!("generic-{provider}"))];
        let labels = [("provider", "generic"), ("account", generic[0].1.as_str())];
        assert_eq!(sample(&healthy, "saldo_up", &labels), Some(1.0));
        assert_eq!(simulator.rejected(), 0, "{provider}: a request was refused");
        assert!(simulator.requests() >= 2, "{provider}");
    }

    // The same faults give the same reasons to the built-in and the generic account.
    let mut before = healthy;
    for (fault, expected) in [
        ("auth", "auth"),
        ("garbage", "decode"),
        ("rate limit", "rate_limited"),
    ] {
        for (_, simulator, _) in &simulators {
            match fault {
                "auth" => simulator.rotate_secret("rotated-on-the-dashboard"),
                "garbage" => simulator.set_fault(Some(Fault::Html)),
                _ => simulator.set_fault(Some(Fault::RateLimited { retry_after: 0 })),
            }
        }
        let after = exporter.scrape().await;
        for (provider, simulator, _) in &simulators {
            let builtin = new_reasons(&before, &after, &format!("builtin-{provider}"));
            let generic = new_reasons(&before, &after, &format!("generic-{provider}"));
            assert_eq!(builtin, [expected], "{provider}: built-in after {fault}");
            assert_eq!(generic, builtin, "{provider}: generic after {fault}");
            // The last good balance is kept through every failure.
            assert!(
                sample(
                    &after,
                    "saldo_balance",
                    &[("account", &format!("generic-{provider}"))]
                )
                .is_some()
            );
            simulator.set_fault(None);
            if fault == "auth" {
                let original = saldo_exporter::demo::Credentials::demo(provider).secret_key;
                simulator.rotate_secret(&original);
            }
        }
        before = after;
    }
    // The log arrives through a pipe, possibly after the scrape that showed the failure.
    let logged = support::poll(|| {
        let logs = exporter.output();
        logs.lines()
            .any(|line| {
                line.contains("balance check failed") && line.contains("provider=\"generic\"")
            })
            .then_some(())
    })
    .await;
    assert!(
        logged.is_some(),
        "failed checks are logged at info with the provider:\n{}",
        exporter.output()
    );
}

/// Credential names and values, as an example file names them.
type Credentials = Vec<(&'static str, String)>;

/// A loopback stand-in for the six suppliers without a built-in provider, checking each
/// request as providers.md documents it.
struct Documented {
    refused: AtomicU64,
}

const APIGAMES: (&str, &str) = ("M230724TEST", "apg-secret-77");
const TOKOVOUCHER: (&str, &str) = ("MEMBER-TEST", "tv-secret-key");
const PORTALPULSA: (&str, &str, &str) = ("P123456", "pp-key-31", "pp-secret-99");
const SERPUL_KEY: &str = "serpul-key-5a";
const MAYAR_KEY: &str = "mayar-key-c4";
const LAPAKGAMING_KEY: &str = "lapak-key-e2";

impl Documented {
    async fn answer(self: Arc<Self>, request: Request<hyper::body::Incoming>) -> HttpResponse {
        let (parts, body) = request.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let query: BTreeMap<String, String> = parts
            .uri
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        let get = parts.method == hyper::Method::GET;
        let answer = match parts.uri.path() {
            path if get && path == format!("/merchant/{}", APIGAMES.0) => {
                let sign = signing::md5_hex(&[APIGAMES.0, APIGAMES.1]);
                (query.get("signature") == Some(&sign)).then(|| {
                    json!({"status": 1, "rc": 200, "message": "Sukses", "data": {
                        "id": 7, "merchant_id": APIGAMES.0, "nama": "Toko", "saldo": 19690000}, "ts": 1})
                })
            }
            "/member" if get => {
                let sign = signing::md5_hex(&[TOKOVOUCHER.0, ":", TOKOVOUCHER.1]);
                let ok = query.get("member_code").map(String::as_str) == Some(TOKOVOUCHER.0)
                    && query.get("signature") == Some(&sign);
                ok.then(|| json!({"status": 1, "rc": 200, "data": {"saldo": 500000}}))
            }
            "/api/connect/" if parts.method == hyper::Method::POST => {
                let ok = header("portal-userid") == Some(PORTALPULSA.0)
                    && header("portal-key") == Some(PORTALPULSA.1)
                    && header("portal-secret") == Some(PORTALPULSA.2)
                    && header("content-type") == Some("application/x-www-form-urlencoded")
                    && &body[..] == b"inquiry=S";
                ok.then(|| json!({"result": "success", "balance": "1.250.000"}))
            }
            "/account" if get => (header("authorization") == Some(SERPUL_KEY))
                .then(|| json!({"responseCode": 200, "responseData": {"balance": 750000}})),
            "/hl/v1/balance" if get => {
                (header("authorization") == Some(&format!("Bearer {MAYAR_KEY}"))).then(|| {
                    json!({"statusCode": 200, "messages": "success", "data": {
                    "balanceActive": 320000, "balancePending": 5000, "balance": 325000}})
                })
            }
            "/api/balance" if get => (header("authorization")
                == Some(&format!("Bearer {LAPAKGAMING_KEY}")))
            .then(|| json!({"code": "SUCCESS", "data": {"balance": 88000}})),
            _ => None,
        };
        match answer {
            Some(answer) => respond(StatusCode::OK, "application/json", answer.to_string()),
            None => {
                self.refused.fetch_add(1, Ordering::SeqCst);
                respond(
                    StatusCode::UNAUTHORIZED,
                    "application/json",
                    json!({"status": 0, "message": "signature invalid"}).to_string(),
                )
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_for_suppliers_without_a_built_in_send_their_documented_requests() {
    let server = Arc::new(Documented {
        refused: AtomicU64::new(0),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let handler = Arc::clone(&server);
    tokio::spawn(accept_loop(
        listener,
        move |request| Arc::clone(&handler).answer(request),
        std::future::pending(),
    ));
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, Credentials, f64); 6] = [
        (
            "apigames",
            vec![
                ("merchant_id", APIGAMES.0.into()),
                ("secret_key", APIGAMES.1.into()),
            ],
            19_690_000.0,
        ),
        (
            "tokovoucher",
            vec![
                ("member_code", TOKOVOUCHER.0.into()),
                ("secret", TOKOVOUCHER.1.into()),
            ],
            500_000.0,
        ),
        (
            "portalpulsa",
            vec![
                ("user_id", PORTALPULSA.0.into()),
                ("key", PORTALPULSA.1.into()),
                ("secret", PORTALPULSA.2.into()),
            ],
            1_250_000.0,
        ),
        ("serpul", vec![("api_key", SERPUL_KEY.into())], 750_000.0),
        ("mayar", vec![("api_key", MAYAR_KEY.into())], 320_000.0),
        (
            "lapakgaming",
            vec![("api_key", LAPAKGAMING_KEY.into())],
            88_000.0,
        ),
    ];
    let accounts: Vec<Value> = cases
        .iter()
        .map(|(name, credentials, _)| {
            aimed(example(name), name, &base_url, credentials, dir.path())
        })
        .collect();
    let file = dir.path().join("accounts.yml");
    std::fs::write(&file, json!({ "accounts": accounts }).to_string()).unwrap();
    let exporter = Exporter::start(&[setting("CONFIG_FILE", file.to_str().unwrap())]).await;
    let text = exporter.scrape().await;
    for (name, _, balance) in &cases {
        assert_eq!(
            sample(
                &text,
                "saldo_balance",
                &[("provider", "generic"), ("account", name)]
            ),
            Some(*balance),
            "{name}\n{}",
            exporter.output()
        );
    }
    assert_eq!(
        server.refused.load(Ordering::SeqCst),
        0,
        "a request was refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credential_or_value_built_from_one_reaches_any_output_even_at_trace() {
    // Credentials in the query (OkeConnect), in headers with a JWT (Ayopop) and in a signed
    // body (Duitku), failing as well as succeeding.
    let dir = tempfile::tempdir().unwrap();
    let mut accounts = Vec::new();
    let mut simulators = Vec::new();
    let mut secrets = Vec::new();
    for provider in ["okeconnect", "ayopop", "duitku"] {
        let simulator = Simulator::start(provider, Decimal::from(100_000))
            .await
            .unwrap();
        let credentials: Vec<(&str, String)> = simulator
            .account_fields()
            .into_iter()
            .filter(|(field, _)| *field != "base_url")
            .collect();
        secrets.extend(credentials.iter().map(|(_, value)| value.clone()));
        accounts.push(aimed(
            example(provider),
            provider,
            &simulator.base_url(),
            &credentials,
            dir.path(),
        ));
        simulators.push(simulator);
    }
    let ayopop = simulators[1].credentials();
    secrets.push(signing::ayopop_token(
        &json!({"partnerId": ayopop.id}),
        &ayopop.secret_key,
    ));
    let file = dir.path().join("accounts.yml");
    std::fs::write(&file, json!({ "accounts": accounts }).to_string()).unwrap();
    let env = [
        setting("CONFIG_FILE", file.to_str().unwrap()),
        setting("MIN_INTERVAL", "0s"),
        // Every crate at trace, not only the exporter's own logs.
        setting("LOG_LEVEL", "trace,saldo_exporter=trace"),
    ];
    let exporter = Exporter::start(&env).await;
    let mut seen = exporter.scrape().await;
    for simulator in &simulators {
        simulator.rotate_secret("rotated");
    }
    seen += &exporter.scrape().await;
    seen += &exporter.get_text("/").await;
    // Failed checks are logged last; the log arrives through a pipe.
    support::poll(|| {
        let logs = exporter.output();
        (logs.matches("balance check failed").count() >= 3).then_some(())
    })
    .await
    .expect("three failed checks logged");
    let logs = exporter.output();
    assert!(
        logs.contains("sending the generic balance request"),
        "{logs}"
    );
    assert!(logs.contains("[redacted]"), "{logs}");
    assert!(
        logs.contains("\"level\":\"TRACE\""),
        "trace logging was not on"
    );
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a credential is in the logs"
        );
        assert!(
            !seen.contains(secret.as_str()),
            "a credential is in /metrics or on /"
        );
    }
    // Values built from credentials: OkeConnect's URL query and Duitku's signature are
    // redacted whole, so no hex digest of 64 characters appears.
    let hex64 = regex::Regex::new("[0-9a-f]{64}").unwrap();
    assert!(!hex64.is_match(&logs), "a signature is in the logs");
}

fn check_config(file: &std::path::Path, extra: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_saldo_exporter"))
        .arg("--check-config")
        .env_clear()
        .env("SALDO_CONFIG_FILE", file)
        .envs(extra.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn template_errors_exit_2_with_one_line_naming_the_account_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("tokovoucher");
    std::fs::write(&secret, "tv-very-secret-value\n").unwrap();
    let good = |signature: &str| {
        format!(
            "accounts:
  - name: first
    provider: generic
    credentials: {{ member_code: M1, secret_file: {secret} }}
    request:
      url: https://api.tokovoucher.net/member
      query: {{ signature: \"{{{{ (member_code ~ ':' ~ secret) | md5 }}}}\" }}
    balance: {{ json: /data/saldo }}
  - name: second
    provider: generic
    credentials: {{ member_code: M1, secret_file: {secret} }}
    request:
      url: https://api.tokovoucher.net/member
      query: {{ signature: \"{signature}\" }}
    balance: {{ json: /data/saldo }}
",
            secret = secret.display()
        )
    };
    let file = dir.path().join("accounts.yml");
    // Valid: `--check-config` renders every template with the real credentials and prints
    // none of it.
    std::fs::write(&file, good("{{ (member_code ~ secret) | sha256 }}")).unwrap();
    let output = check_config(&file, &[]);
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(0), "{printed}");
    let signature = signing::md5_hex(&["M1:tv-very-secret-value"]);
    for value in ["tv-very-secret-value", signature.as_str()] {
        assert!(!printed.contains(value), "{printed}");
    }

    for (template, message) in [
        (
            "{{ (member_code ~ secert) | md5 }}",
            "unknown variable \"secert\"",
        ),
        ("{{ secret | md6 }}", "unknown filter"),
        ("{{ secret | md5 ", "syntax error"),
    ] {
        std::fs::write(&file, good(template)).unwrap();
        let output = check_config(&file, &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("accounts[1].request.query.signature") && stderr.contains(message),
            "{stderr}"
        );
        assert!(!stderr.contains("tv-very-secret-value"), "{stderr}");
    }

    // The environment cannot describe a generic account; saying so beats a warning.
    std::fs::write(&file, good("x")).unwrap();
    let output = check_config(&file, &[("SALDO_GENERIC_URL", "https://example.test")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("SALDO_GENERIC_URL") && stderr.contains("accounts file"),
        "{stderr}"
    );
}

#[test]
fn every_example_file_is_run_by_these_tests_and_listed_in_the_readme() {
    let mut files: Vec<String> = std::fs::read_dir(support::repo_path("examples/generic"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut tested: Vec<String> = REPRODUCED
        .iter()
        .chain(&WITHOUT_BUILT_IN)
        .map(|name| format!("{name}.yaml"))
        .collect();
    tested.sort();
    assert_eq!(files, tested);
    let readme = read("README.md");
    for file in files {
        assert!(
            readme.contains(&format!("(examples/generic/{file})")),
            "README does not list {file}"
        );
    }
}
