//! Property tests: the answer decoders and the configuration loader take anything without
//! panicking, and refuse it in the documented ways.
//!
//! Decoders see bytes from suppliers (hostile or broken); configuration comes from operators,
//! who paste secrets next to typos. Failing cases are printed shrunk; no regression files are
//! written (the tree is shared), so copy a failing case into a plain test to keep it.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use rust_decimal::Decimal;
use saldo_exporter::config::Config;
use saldo_exporter::demo::Credentials;
use saldo_exporter::error::{Reason, UpstreamError};
use saldo_exporter::providers::{Balance, REGISTRY, Registration, Separators, parse_amount};
use serde_json::{Value, json};

fn settings() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(256)
    }
}

/// Whether `text` is a plain decimal number as a supplier would write one: sign, digits, an
/// optional fraction and exponent. `_` between digits is allowed too: the decimal parser
/// accepts it as a digit separator, which is lenient but invents no number.
fn looks_numeric(text: &str) -> bool {
    let text = text.trim();
    let text = text.strip_prefix(['+', '-']).unwrap_or(text);
    if text.starts_with(['_', '.']) && text.contains('_') {
        return false;
    }
    let text = text.replace('_', "");
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e.strip_prefix(['+', '-']).unwrap_or(e))),
        None => (text.as_str(), None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    !(whole.is_empty() && fraction.is_empty())
        && digits(whole)
        && digits(fraction)
        && exponent.is_none_or(|e| !e.is_empty() && digits(e))
}

/// Whether a decoder may read a balance from `value`.
fn plausible_amount(value: &Value) -> bool {
    match value {
        Value::Number(_) => true,
        Value::String(text) => looks_numeric(text),
        _ => false,
    }
}

/// Checks one decoder result against the body it came from: a balance is read only from a
/// JSON object that meets the supplier's success conditions, at the supplier's balance field,
/// and it is exactly the amount written there.
fn check_decoded(
    entry: &Registration,
    body: &[u8],
    result: Result<Balance, UpstreamError>,
) -> Result<(), TestCaseError> {
    let provider = entry.name;
    let balance = match result {
        // A body can only be undecodable, a refusal, or a refusal naming credentials.
        Err(err) => {
            prop_assert!(
                matches!(
                    err.reason(),
                    Reason::Decode | Reason::Rejected | Reason::Auth
                ),
                "{provider}: {err} classified as {:?}",
                err.reason()
            );
            return Ok(());
        }
        Ok(balance) => balance,
    };
    let text = String::from_utf8_lossy(body);
    if is_text_answer(entry) {
        return check_text_decoded(provider, &text, &balance);
    }
    prop_assert!(
        text.trim_start().starts_with('{'),
        "{provider}: {balance:?} read from an answer that is no JSON object: {text}"
    );
    let answer: Value = serde_json::from_slice(body).map_err(|err| {
        TestCaseError::fail(format!("{provider}: {balance:?} read from {text} ({err})"))
    })?;
    for (pointer, allowed) in entry.sample.success_when {
        let found = answer.pointer(pointer).cloned().unwrap_or_default();
        prop_assert!(
            allowed
                .iter()
                .any(|value| serde_json::from_str::<Value>(value).unwrap() == found),
            "{provider}: {balance:?} read although {pointer} is {found}: {text}"
        );
    }
    let amount = answer
        .pointer(entry.sample.balance_at)
        .cloned()
        .unwrap_or_default();
    prop_assert!(
        plausible_amount(&amount),
        "{provider}: {balance:?} read from the balance {amount}"
    );
    prop_assert_eq!(parse_amount(&amount), Ok(balance.amount));
    Ok(())
}

/// Whether the supplier answers in plain text (OtomaX and its kin) rather than JSON.
fn is_text_answer(entry: &Registration) -> bool {
    serde_json::from_str::<Value>(entry.sample.answer).is_err()
}

/// A text answer's balance: read only from a text that names a balance (`saldo`), and exactly
/// a number written in it (with the default separators, `.` for thousands).
fn check_text_decoded(provider: &str, text: &str, balance: &Balance) -> Result<(), TestCaseError> {
    prop_assert!(
        text.to_lowercase().contains("saldo"),
        "{provider}: {balance:?} read from a text naming no balance: {text:?}"
    );
    let written = text
        .split(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | ',' | '-')))
        // `Saldo 284.939.` ends a sentence; `10.000,-` means no cents.
        .map(|number| number.trim_end_matches(['.', ',', '-']))
        .any(|number| Separators::INDONESIAN.parse(number) == Ok(balance.amount));
    prop_assert!(
        written,
        "{provider}: {balance:?} is no number written in {text:?}"
    );
    Ok(())
}

fn decode_all(body: &[u8]) -> Result<(), TestCaseError> {
    for entry in REGISTRY {
        check_decoded(entry, body, (entry.sample.decode)(body))?;
    }
    Ok(())
}

const FIELD_NAMES: [&str; 12] = [
    "success",
    "code",
    "message",
    "data",
    "balance",
    "currency",
    "name",
    "responseCode",
    "errors",
    "meta",
    "EN",
    "ID",
];

fn numeric_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ +-]{0,2}[0-9]{0,32}(\\.[0-9]{0,32})?([eE][+-]?[0-9]{1,4})? ?",
        prop::sample::select(vec![
            "_",
            "1_000",
            ".",
            "-",
            "+",
            "-.",
            "e5",
            "1e",
            "NaN",
            "inf",
            "-inf",
            "0x10",
            "١٢٣",
            "1,000",
            "1.000,50",
            "",
            " ",
            "--1",
            "+-1",
            "1e-29",
            "1e29",
            "79228162514264337593543950336",
        ])
        .prop_map(String::from),
    ]
}

/// Values a balance field may hold: numbers, numeric text, and anything else.
fn amount_like() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        numeric_text().prop_map(Value::String),
        json_value(),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        numeric_text().prop_map(Value::String),
        ".{0,16}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((field_name(), inner), 0..7)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(FIELD_NAMES.to_vec()).prop_map(String::from),
        1 => "[a-zA-Z_]{0,8}",
    ]
}

/// Answers shaped like the suppliers' envelopes, each part either plausible or arbitrary, so
/// that both the success path and every refusal are reached often.
fn envelope() -> impl Strategy<Value = Value> {
    let success = prop_oneof![3 => Just(json!(true)), 1 => json_value()];
    let code = prop_oneof![
        Just(json!("SUCCESS")),
        Just(json!("INVALID_SIGNATURE")),
        Just(json!(0)),
        Just(json!("0")),
        json_value()
    ];
    let data = (amount_like(), prop::option::of(json_value())).prop_map(|(balance, currency)| {
        let mut data = json!({"balance": balance, "name": "X"});
        if let Some(currency) = currency {
            data["currency"] = currency;
        }
        data
    });
    let data = prop_oneof![4 => data, 1 => json_value()];
    (
        prop::option::of(success),
        prop::option::of(code.clone()),
        prop::option::of(code),
        prop::option::of(json_value()),
        prop::option::of(data),
    )
        .prop_map(|(success, code, response_code, message, data)| {
            let mut answer = serde_json::Map::new();
            for (key, value) in [
                ("success", success),
                ("code", code),
                ("responseCode", response_code),
                ("message", message),
                ("data", data),
            ] {
                if let Some(value) = value {
                    answer.insert(key.into(), value);
                }
            }
            Value::Object(answer)
        })
}

/// One edit to a seed answer, at a position given as a fraction of its length.
#[derive(Debug, Clone)]
enum Edit {
    Delete(f64, usize),
    Insert(f64, Vec<u8>),
    Replace(f64, u8),
    Truncate(f64),
}

fn edit() -> impl Strategy<Value = Edit> {
    let at = 0.0..1.0f64;
    prop_oneof![
        (at.clone(), 1..8usize).prop_map(|(at, n)| Edit::Delete(at, n)),
        (
            at.clone(),
            prop_oneof![
                prop::collection::vec(any::<u8>(), 1..6),
                prop::sample::select(vec![
                    &b"\""[..],
                    b"{",
                    b"}",
                    b"[",
                    b"]",
                    b",",
                    b":",
                    b"null",
                    b"-",
                    b".5",
                    b"e99999",
                    b"\\u0000",
                ])
                .prop_map(<[u8]>::to_vec),
            ]
        )
            .prop_map(|(at, bytes)| Edit::Insert(at, bytes)),
        (at.clone(), any::<u8>()).prop_map(|(at, byte)| Edit::Replace(at, byte)),
        at.prop_map(Edit::Truncate),
    ]
}

fn apply(seed: &str, edits: &[Edit]) -> Vec<u8> {
    let mut body = seed.as_bytes().to_vec();
    for edit in edits {
        let index = |at: f64, len: usize| ((at * len as f64) as usize).min(len);
        match edit {
            Edit::Delete(at, n) => {
                let start = index(*at, body.len());
                let end = (start + n).min(body.len());
                body.drain(start..end);
            }
            Edit::Insert(at, bytes) => {
                let at = index(*at, body.len());
                body.splice(at..at, bytes.iter().copied());
            }
            Edit::Replace(at, byte) => {
                if !body.is_empty() {
                    let at = index(*at, body.len() - 1);
                    body[at] = *byte;
                }
            }
            Edit::Truncate(at) => body.truncate(index(*at, body.len())),
        }
    }
    body
}

proptest! {
    #![proptest_config(settings())]

    #[test]
    fn arbitrary_bytes_are_a_classified_error_or_a_real_balance(
        body in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        decode_all(&body)?;
    }

    #[test]
    fn arbitrary_json_is_a_classified_error_or_a_real_balance(value in json_value()) {
        decode_all(value.to_string().as_bytes())?;
    }

    #[test]
    fn envelopes_of_arbitrary_parts_are_a_classified_error_or_a_real_balance(value in envelope()) {
        decode_all(value.to_string().as_bytes())?;
    }

    #[test]
    fn edited_seed_answers_are_a_classified_error_or_a_real_balance(
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        for entry in REGISTRY {
            decode_all(&apply(entry.sample.answer, &edits))?;
        }
    }

    #[test]
    fn a_seed_answer_decodes_exactly_when_its_balance_is_an_amount(amount in amount_like()) {
        for entry in REGISTRY {
            let provider = entry.name;
            // Text answers have no JSON field to put the amount in; their decoders are held to
            // `check_decoded` by the other properties, and to their reply texts by unit tests.
            if is_text_answer(entry) {
                continue;
            }
            let mut answer: Value = serde_json::from_str(entry.sample.answer).unwrap();
            *answer.pointer_mut(entry.sample.balance_at).unwrap() = amount.clone();
            let body = answer.to_string();
            let result = (entry.sample.decode)(body.as_bytes());
            // The amount as the decoder sees it: JSON text read back, which for long
            // fractions may be the neighbouring f64.
            let sent: Value = serde_json::from_str(&body).unwrap();
            let sent = sent.pointer(entry.sample.balance_at).unwrap();
            match (&result, parse_amount(sent)) {
                (Ok(balance), Ok(expected)) => prop_assert_eq!(balance.amount, expected),
                (Err(err), Err(_)) => prop_assert_eq!(err.reason(), Reason::Decode),
                (result, parsed) => prop_assert!(
                    false,
                    "{provider}: decoded {result:?} but parse_amount gives {parsed:?} for {amount}"
                ),
            }
            check_decoded(entry, body.as_bytes(), result)?;
        }
    }

    #[test]
    fn parse_amount_reads_only_numbers_and_numeric_text(value in amount_like()) {
        if let Ok(amount) = parse_amount(&value) {
            prop_assert!(plausible_amount(&value), "{value} read as {amount}");
            if let Value::Number(number) = &value {
                // The number written, to f64's precision or Decimal's 28 places.
                let written = number.as_f64().unwrap();
                let read: f64 = amount.to_string().parse().unwrap();
                let tolerance = (written.abs() * 1e-12).max(1e-28);
                prop_assert!((read - written).abs() <= tolerance, "{value} read as {amount}");
            }
        }
    }
}

#[test]
fn deeply_nested_answers_are_decode_errors_not_stack_overflows() {
    for depth in [200, 100_000] {
        let body = format!(
            r#"{{"success":true,"responseCode":0,"data":{}{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        for entry in REGISTRY {
            let result = (entry.sample.decode)(body.as_bytes());
            assert_eq!(
                result.unwrap_err().reason(),
                Reason::Decode,
                "{}",
                entry.name
            );
        }
    }
}

#[test]
fn a_balance_is_never_read_from_an_array_by_position() {
    for body in [
        r#"[true, "SUCCESS", "ok", {"balance": 25490}]"#,
        r#"[0, true, "ok", {"balance": 25490}]"#,
        r#"{"success": true, "responseCode": 0, "data": [0]}"#,
        r#"{"success": true, "responseCode": 0, "data": ["X", 0]}"#,
    ] {
        for entry in REGISTRY {
            let (provider, result) = (entry.name, (entry.sample.decode)(body.as_bytes()));
            assert_eq!(
                result.as_ref().map_err(UpstreamError::reason).err(),
                Some(Reason::Decode),
                "{provider} read {result:?} from {body}"
            );
        }
    }
}

// Configuration.

/// Files the generated settings may name: the only paths they use, so that no generated value
/// ever names a device or a pipe that would block a read.
struct Files {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    /// Holds [`FILE_SECRET`].
    secret: PathBuf,
    /// Holds [`FILE_SECRET`] and a control character, no valid HTTP header value.
    bad_header_secret: PathBuf,
    /// A valid accounts file.
    yaml: PathBuf,
}

const FILE_SECRET: &str = "sk-fromfile7Qx2Lm9Rt4Vb";
const YAML_SECRET: &str = "sk-inyamlKk3Jd8Wq1Zp";

static FILES: LazyLock<Files> = LazyLock::new(|| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let secret = path.join("secret");
    std::fs::write(&secret, format!("{FILE_SECRET}\n")).unwrap();
    let bad_header_secret = path.join("bad-header-secret");
    std::fs::write(&bad_header_secret, format!("{FILE_SECRET}\u{1}\n")).unwrap();
    let yaml = path.join("accounts.yml");
    std::fs::write(
        &yaml,
        format!(
            "accounts:\n  - name: cabang\n    provider: ayopop\n    partner_id: p\n    \
             api_key_file: {}\n    secret_key: {YAML_SECRET}\n",
            secret.display()
        ),
    )
    .unwrap();
    Files {
        dir: path,
        secret,
        bad_header_secret,
        yaml,
        _dir: dir,
    }
});

fn path_value() -> impl Strategy<Value = String> {
    let files = &*FILES;
    let paths: Vec<String> = [
        files.secret.clone(),
        files.bad_header_secret.clone(),
        files.yaml.clone(),
        files.dir.clone(),
        files.dir.join("missing"),
        // A newline in a path must not break the one-line error.
        files.dir.join("missing\nsecond line"),
    ]
    .iter()
    .map(|path| path.display().to_string())
    .chain(["".to_owned(), "relative/missing".to_owned()])
    .collect();
    prop::sample::select(paths)
}

/// Secrets distinctive enough that finding one in a message can only be a leak.
fn secret_value() -> impl Strategy<Value = String> {
    (
        "[A-Za-z0-9]{12,24}",
        prop::sample::select(vec!["", "", "\n", " ", "\u{1}", "é"]),
    )
        .prop_map(|(body, tail)| format!("sk-{body}{tail}"))
}

fn plain_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,24}",
        "[ -~\n\t]{0,24}",
        "[0-9]{1,4}(ns|ms|s|m|h|d|x)?",
        "[0-9]{0,12}(\\.[0-9]{0,4})?",
        "https?://127\\.0\\.0\\.1(:[0-9]{1,6})?/[a-z/]{0,8}",
        prop::sample::select(vec![
            "127.0.0.1:0",
            "[::1]:0",
            "v1",
            "v2",
            "v3",
            "text",
            "json",
            "info",
            "debug",
            "info,hyper=debug",
            "loud=[",
            "[{a=(}]=info",
            "x[{y=\"\\n\"}]",
            "0s",
            "30s",
            "1h30m",
            "isikuota",
            "ayopop",
            "",
        ])
        .prop_map(String::from),
    ]
}

/// Every registered provider's prefix, a near miss of each (two letters swapped), one with a
/// suffix, and none at all.
fn provider_prefixes() -> Vec<String> {
    let mut prefixes = vec![String::new()];
    for entry in REGISTRY {
        let name = entry.name.to_uppercase();
        let mut swapped: Vec<char> = name.chars().collect();
        // The fourth and fifth letters, or the last two of a shorter name (`IAK`, `OY`).
        let at = swapped.len().min(5) - 2;
        swapped.swap(at, at + 1);
        prefixes.push(swapped.into_iter().collect());
        prefixes.push(format!("{name}_V2"));
        prefixes.push(name);
    }
    prefixes
}

/// Every field any registered provider's account has, the shared ones, `_FILE` variants, and
/// fields of no provider.
fn account_fields() -> Vec<String> {
    let credentials = Credentials {
        id: "i".into(),
        api_key: "k".into(),
        secret_key: "s".into(),
    };
    let mut fields: Vec<String> = [
        "API_VERSION",
        "ACCOUNT",
        "NAME",
        "PROVIDER",
        "WARNING_THRESHOLD",
        "CRITICAL_THRESHOLD",
        "MIN_INTERVAL",
    ]
    .map(String::from)
    .to_vec();
    for entry in REGISTRY {
        for (field, _) in (entry.simulator)().account_fields(&credentials, "http://127.0.0.1:9") {
            let field = field.to_uppercase();
            fields.push(format!("{field}_FILE"));
            fields.push(field);
        }
    }
    fields.sort();
    fields.dedup();
    fields
}

const GLOBALS: [&str; 6] = [
    "LISTEN_ADDRESS",
    "MIN_INTERVAL",
    "TIMEOUT",
    "CONFIG_FILE",
    "LOG_LEVEL",
    "LOG_FORMAT",
];

fn variable_name() -> impl Strategy<Value = String> {
    let account = (
        prop::sample::select(provider_prefixes()),
        prop::sample::select(account_fields()),
        any::<bool>(),
    )
        .prop_map(|(provider, field, lower)| {
            let name = format!("{provider}_{field}");
            if lower { name.to_lowercase() } else { name }
        });
    let name = prop_oneof![
        6 => account,
        2 => prop::sample::select(GLOBALS.to_vec()).prop_map(String::from),
        // Unknown settings; never ending in `_FILE`, which would read whatever they name.
        1 => "[A-Za-z_]{0,12}[A-EG-Za-eg-z]".prop_map(String::from),
    ];
    prop_oneof![
        9 => name.prop_map(|name| format!("SALDO_{name}")),
        1 => "[A-Za-z_]{1,12}[A-EG-Za-eg-z]".prop_map(String::from),
    ]
}

fn is_secret_name(name: &str) -> bool {
    let name = name.to_uppercase();
    name.ends_with("_API_KEY") || name.ends_with("_SECRET_KEY")
}

fn variable() -> impl Strategy<Value = (String, String)> {
    variable_name().prop_flat_map(|name| {
        let upper = name.to_uppercase();
        let value = if is_secret_name(&name) {
            secret_value().boxed()
        } else if upper.ends_with("_FILE") {
            path_value().boxed()
        } else {
            plain_value().boxed()
        };
        (Just(name), value)
    })
}

/// An account's variables as its supplier's simulator would set them, with these credentials.
fn account_vars(entry: &Registration, credentials: &Credentials) -> Vec<(String, String)> {
    let prefix = format!("SALDO_{}_", entry.name.to_uppercase());
    (entry.simulator)()
        .account_fields(credentials, "http://127.0.0.1:9")
        .into_iter()
        .map(|(field, value)| (format!("{prefix}{}", field.to_uppercase()), value))
        .collect()
}

/// A working account of any registered supplier, so that the generated variables also reach
/// the checks after the first.
fn base_account() -> impl Strategy<Value = Vec<(String, String)>> {
    (
        prop::option::of(prop::sample::select(REGISTRY.to_vec())),
        secret_value(),
        secret_value(),
    )
        .prop_map(|(entry, api_key, secret_key)| match entry {
            None => Vec::new(),
            Some(entry) => account_vars(
                entry,
                &Credentials {
                    id: "id-1".into(),
                    api_key,
                    secret_key,
                },
            ),
        })
}

fn variables() -> impl Strategy<Value = Vec<(String, String)>> {
    (base_account(), prop::collection::vec(variable(), 0..8)).prop_map(|(mut base, more)| {
        base.extend(more);
        base
    })
}

/// Checks a configuration result: an error is one line without any secret value in it.
fn check_config(
    result: Result<Config, saldo_exporter::config::ConfigError>,
    secrets: &[&str],
) -> Result<(), TestCaseError> {
    if let Err(err) = result {
        let message = err.to_string();
        prop_assert!(!message.contains('\n'), "more than one line: {message:?}");
        for secret in secrets {
            // Secrets may end in a character that an escaped message writes differently.
            let distinctive = secret.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
            prop_assert!(
                !message.contains(distinctive),
                "a secret is in the error: {message:?}"
            );
        }
    }
    Ok(())
}

/// Any YAML-ish text: lines built from the accounts file's own words and YAML's syntax.
fn yaml_text() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        prop::sample::select(vec![
            "accounts:",
            "- ",
            "name:",
            "provider:",
            "isikuota",
            "ayopop",
            "api_id:",
            "partner_id:",
            "api_key:",
            "secret_key:",
            "api_key_file:",
            "secret_key_file:",
            "base_url:",
            "api_version:",
            "v2",
            "warning_threshold:",
            "critical_threshold:",
            "min_interval:",
            "1m",
            "-1",
            "1e400",
            "[",
            "]",
            "{",
            "}",
            ",",
            "&a ",
            "*a",
            "!!binary ",
            "? ",
            ": ",
            "\"",
            "'",
            "|",
            ">",
            "#",
            "~",
            "null",
            "true",
            "0x1F",
            ".inf",
            "---",
            "...",
            "%YAML 1.2",
            "<<: *a",
            "\t",
        ])
        .prop_map(String::from),
        "[ -~]{0,8}",
        "\\PC{0,4}",
    ];
    let line = ("[ ]{0,6}", prop::collection::vec(word, 0..5))
        .prop_map(|(indent, words)| format!("{indent}{}", words.join(" ")));
    prop_oneof![
        3 => prop::collection::vec(line, 0..12).prop_map(|lines| lines.join("\n")),
        1 => "\\PC{0,64}",
    ]
}

/// Scalars a secret may be written as in YAML; unquoted digits are a number to the parser.
fn yaml_secret() -> impl Strategy<Value = (String, String)> {
    prop_oneof![
        "[1-9][0-9]{11,17}".prop_map(|digits| (digits.clone(), digits)),
        "[1-9][0-9]{5,8}\\.[0-9]{1,4}[1-9]".prop_map(|number| (number.clone(), number)),
        secret_value().prop_map(|secret| (format!("{secret:?}"), secret)),
        secret_value()
            .prop_filter("plain scalars only", |s| s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-'))
            .prop_map(|secret| (secret.clone(), secret)),
        secret_value().prop_map(|secret| (format!("[{secret:?}]"), secret)),
    ]
}

proptest! {
    #![proptest_config(settings())]

    #[test]
    fn any_saldo_variables_load_or_fail_in_one_line_without_secrets(vars in variables()) {
        let secrets: Vec<&str> = vars
            .iter()
            .filter(|(name, _)| is_secret_name(name))
            .map(|(_, value)| value.as_str())
            .chain([FILE_SECRET, YAML_SECRET])
            .collect();
        check_config(Config::from_vars(vars.clone()), &secrets)?;
    }

    #[test]
    fn any_yaml_text_as_the_accounts_file_loads_or_fails_in_one_line(text in yaml_text()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("saldo.yml");
        std::fs::write(&path, &text).unwrap();
        let result = Config::from_vars(vec![config_file(&path)]);
        check_config(result, &[FILE_SECRET])?;
    }

    #[test]
    fn a_secret_in_the_accounts_file_never_appears_in_an_error(
        (written, secret) in yaml_secret(),
        entry in prop::sample::select(REGISTRY.to_vec()),
        field in prop::sample::select(vec!["api_key", "secret_key"]),
        broken in prop::sample::select(vec!["", "    warning_threshold: banyak\n", "    extra: 1\n"]),
    ) {
        const MARK: &str = "sk-markZ1x2c3v4b5";
        const OTHER: &str = "sk-otherQ8w7e6r5t4y3";
        let (api_key, secret_key) = if field == "api_key" { (MARK, OTHER) } else { (OTHER, MARK) };
        let credentials = Credentials { id: "1".into(), api_key: api_key.into(), secret_key: secret_key.into() };
        let mut text = format!("accounts:\n  - name: x\n    provider: {}\n", entry.name);
        for (name, value) in (entry.simulator)().account_fields(&credentials, "http://127.0.0.1:9") {
            let value = if value == MARK { written.clone() } else { format!("{value:?}") };
            text += &format!("    {name}: {value}\n");
        }
        text += broken;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("saldo.yml");
        std::fs::write(&path, &text).unwrap();
        check_config(
            Config::from_vars(vec![config_file(&path)]),
            &[&secret, OTHER],
        )?;
    }
}

fn config_file(path: &Path) -> (String, String) {
    ("SALDO_CONFIG_FILE".into(), path.display().to_string())
}

#[test]
fn configuration_errors_stay_on_one_line_whatever_a_value_path_or_key_holds() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("saldo.yml");
    std::fs::write(&yaml, "{\na\n\naccounts:").unwrap();
    let yaml = yaml.display().to_string();
    let ayopop = |version: &str| {
        [
            ("SALDO_AYOPOP_PARTNER_ID", "p-1"),
            ("SALDO_AYOPOP_API_KEY", "k-1"),
            ("SALDO_AYOPOP_SECRET_KEY", "s-1"),
            ("SALDO_AYOPOP_API_VERSION", version),
        ]
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .to_vec()
    };
    for vars in [
        vec![(
            "SALDO_ISIKUOTA_API_KEY_FILE".to_owned(),
            "/nonexistent/first\nsecond".to_owned(),
        )],
        vec![(
            "SALDO_CONFIG_FILE".to_owned(),
            "/nonexistent/first\nsecond.yml".to_owned(),
        )],
        vec![("SALDO_CONFIG_FILE".to_owned(), yaml)],
        ayopop("v1\nv2"),
    ] {
        let message = Config::from_vars(vars.clone()).unwrap_err().to_string();
        assert!(!message.contains('\n'), "{vars:?}: {message:?}");
    }
}

#[test]
fn a_secret_file_named_as_the_accounts_file_is_not_printed() {
    let path = &FILES.secret;
    let message = Config::from_vars(vec![config_file(path)])
        .unwrap_err()
        .to_string();
    assert!(message.starts_with("SALDO_CONFIG_FILE: "), "{message}");
    assert!(!message.contains(FILE_SECRET), "{message}");
}

#[test]
fn an_alias_bomb_in_the_accounts_file_is_refused_not_expanded() {
    // Eleven levels of ten aliases each: 10^12 scalars if expanded.
    let mut text =
        String::from("accounts:\n  - name: x\n    a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for level in 1..12 {
        let below = format!("*a{}", level - 1);
        let items = [below.as_str(); 10].join(", ");
        text += &format!("    a{level}: &a{level} [{items}]\n");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.yml");
    std::fs::write(&path, text).unwrap();
    let message = Config::from_vars(vec![config_file(&path)])
        .unwrap_err()
        .to_string();
    assert!(message.starts_with("SALDO_CONFIG_FILE: "), "{message}");
}

#[test]
fn every_providers_sample_answer_decodes_to_its_balance() {
    for entry in REGISTRY {
        let balance = (entry.sample.decode)(entry.sample.answer.as_bytes()).unwrap();
        assert_eq!(
            balance.amount,
            Decimal::from(entry.sample.balance),
            "{}",
            entry.name
        );
    }
}

/// `n` grouped by threes with `separator`.
fn grouped(n: u64, separator: char) -> String {
    let digits = n.to_string();
    let mut text = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            text.push(separator);
        }
        text.push(digit);
    }
    text
}

proptest! {
    #![proptest_config(settings())]

    #[test]
    fn indonesian_and_english_amount_text_reads_back_exactly(
        whole in 0u64..1_000_000_000_000_000,
        cents in 0u32..100,
        prefix in prop::sample::select(vec!["", "Rp ", "Rp.", "Rp", "IDR "]),
    ) {
        use saldo_exporter::providers::Separators;
        let expected: Decimal = format!("{whole}.{cents:02}").parse().unwrap();
        let indonesian = format!("{prefix}{},{cents:02}", grouped(whole, '.'));
        prop_assert_eq!(Separators::INDONESIAN.parse(&indonesian), Ok(expected));
        let english = format!("{prefix}{}.{cents:02}", grouped(whole, ','));
        prop_assert_eq!(Separators::ENGLISH.parse(&english), Ok(expected));
    }

    #[test]
    fn any_text_is_an_amount_only_if_it_holds_digits(text in "\\PC{0,24}|[Rp .,0-9-]{0,16}") {
        use saldo_exporter::providers::Separators;
        for separators in [Separators::INDONESIAN, Separators::ENGLISH, Separators::PLAIN] {
            if separators.parse(&text).is_ok() {
                prop_assert!(text.bytes().any(|b| b.is_ascii_digit()), "{text:?}");
            }
        }
    }
}
