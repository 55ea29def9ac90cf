//! The template language of the `generic` provider: minijinja (sandboxed, no I/O) with the
//! hashing, HMAC, encoding and clock helpers suppliers sign with.
//!
//! Templates are compiled when they are rendered: a check renders a handful of short templates
//! at most once per min-interval, and owning plain strings keeps [`super::Generic`] free of the
//! environment's lifetimes.

use std::collections::{BTreeMap, HashSet};
use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use minijinja::value::{Kwargs, Value};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, State, UndefinedBehavior};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

use crate::signing;

/// The context key holding the check's instant (Unix nanoseconds): every `now…` call in one
/// check reads it, so a timestamp in the body and the one in its signature agree.
pub const INSTANT: &str = "__saldo_instant";

/// The default zone of `now()`: the suppliers' own clocks are WIB.
pub const DEFAULT_ZONE: &str = "Asia/Jakarta";

/// Our own error texts, which quote nothing; minijinja's own details may quote values.
const OWN_DETAILS: &[&str] = &[
    ENCODING_ERROR,
    ZONE_ERROR,
    FORMAT_ERROR,
    DIGITS_ERROR,
    CLAIMS_ERROR,
    "nothing to hash: the value is none",
];
const ENCODING_ERROR: &str = "encoding must be \"hex\", \"base64\" or \"base64url\"";
const ZONE_ERROR: &str = "unknown time zone (an IANA name such as \"Asia/Jakarta\")";
const FORMAT_ERROR: &str = "the strftime format cannot be rendered";
const DIGITS_ERROR: &str = "random_digits takes a count from 1 to 64";
const CLAIMS_ERROR: &str = "jwt_hs256 claims must be a mapping";

/// Fuel bounds the work one render may do: the templates are configuration, but a loop in one
/// must not stall a check.
const FUEL: u64 = 100_000;

pub static ENV: LazyLock<Environment<'static>> = LazyLock::new(environment);

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // A misspelt variable is an error, not an empty string signed into a request.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_fuel(Some(FUEL));
    env.add_filter("md5", |v: &Value, k: Kwargs| digest::<md5::Md5>(v, k));
    env.add_filter("sha1", |v: &Value, k: Kwargs| digest::<Sha1>(v, k));
    env.add_filter("sha256", |v: &Value, k: Kwargs| digest::<Sha256>(v, k));
    env.add_filter("sha512", |v: &Value, k: Kwargs| digest::<Sha512>(v, k));
    env.add_filter("hmac_sha256", |v: &Value, key: &Value, k: Kwargs| {
        hmac::<Hmac<Sha256>>(v, key, k)
    });
    env.add_filter("hmac_sha512", |v: &Value, key: &Value, k: Kwargs| {
        hmac::<Hmac<Sha512>>(v, key, k)
    });
    env.add_filter("base64", |v: &Value| {
        Ok::<_, Error>(STANDARD.encode(bytes(v)?))
    });
    env.add_filter("base64url", |v: &Value| {
        Ok::<_, Error>(URL_SAFE_NO_PAD.encode(bytes(v)?))
    });
    env.add_function("now", now);
    env.add_function("now_ms", |state: &State| {
        Ok::<_, Error>(instant_nanos(state)?.div_euclid(1_000_000))
    });
    env.add_function("now_unix", |state: &State| {
        Ok::<_, Error>(instant_nanos(state)?.div_euclid(1_000_000_000))
    });
    env.add_function("random_digits", random_digits);
    env.add_function("jwt_hs256", jwt_hs256);
    env
}

/// The names a template may use besides its own context: functions and minijinja's globals.
pub fn globals() -> HashSet<String> {
    ENV.globals().map(|(name, _)| name.to_owned()).collect()
}

/// The context value for `now` as the check's instant.
pub fn instant_value(now: SystemTime) -> Value {
    let nanos = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    Value::from(nanos)
}

/// A template failure, with a message that quotes no rendered value and no credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError(pub String);

impl From<Error> for TemplateError {
    fn from(err: Error) -> Self {
        let detail = err.detail().filter(|detail| {
            // minijinja's details for these name the construct, never a value.
            matches!(
                err.kind(),
                ErrorKind::SyntaxError
                    | ErrorKind::UnknownFilter
                    | ErrorKind::UnknownFunction
                    | ErrorKind::UnknownTest
                    | ErrorKind::UnknownMethod
                    | ErrorKind::TooManyArguments
                    | ErrorKind::MissingArgument
                    | ErrorKind::OutOfFuel
            ) || OWN_DETAILS.contains(detail)
        });
        let mut message = match detail {
            Some(detail) => format!("{}: {detail}", err.kind()),
            None => err.kind().to_string(),
        };
        if let Some(line) = err.line().filter(|&line| line > 1) {
            message.push_str(&format!(" (line {line})"));
        }
        TemplateError(message)
    }
}

/// The inside of a template that is exactly one `{{ expression }}`, which keeps its type
/// where a type matters (a JSON leaf, a variable).
pub fn single_expression(source: &str) -> Option<&str> {
    let inner = source.strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    let nested = ["{{", "}}", "{%", "%}", "{#"]
        .iter()
        .any(|mark| inner.contains(mark));
    (!nested && !inner.trim().is_empty()).then(|| inner.trim())
}

/// Checks the syntax and returns the variables the template reads.
pub fn variables(source: &str) -> Result<HashSet<String>, TemplateError> {
    Ok(match single_expression(source) {
        Some(expression) => ENV
            .compile_expression(expression)?
            .undeclared_variables(false),
        None => ENV.template_from_str(source)?.undeclared_variables(false),
    })
}

/// Renders `source` as text.
pub fn render(source: &str, context: &BTreeMap<String, Value>) -> Result<String, TemplateError> {
    Ok(ENV.render_str(source, Value::from(context.clone()))?)
}

/// Renders `source`, keeping the type of a single expression.
pub fn evaluate(source: &str, context: &BTreeMap<String, Value>) -> Result<Value, TemplateError> {
    match single_expression(source) {
        Some(expression) => {
            let value = ENV
                .compile_expression(expression)?
                .eval(Value::from(context.clone()))?;
            if value.is_undefined() {
                return Err(TemplateError("undefined value".into()));
            }
            Ok(value)
        }
        None => Ok(Value::from(render(source, context)?)),
    }
}

/// The bytes a filter works on: a string's UTF-8, bytes as they are, a number as written.
fn bytes(value: &Value) -> Result<Vec<u8>, Error> {
    if value.is_none() || value.is_undefined() {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "nothing to hash: the value is none",
        ));
    }
    Ok(match value.as_bytes() {
        Some(bytes) => bytes.to_vec(),
        None => value.to_string().into_bytes(),
    })
}

fn encode(digest: &[u8], kwargs: &Kwargs) -> Result<String, Error> {
    let encoding: Option<String> = kwargs.get("encoding")?;
    kwargs.assert_all_used()?;
    match encoding.as_deref().unwrap_or("hex") {
        "hex" => Ok(signing::hex(digest)),
        "base64" => Ok(STANDARD.encode(digest)),
        "base64url" => Ok(URL_SAFE_NO_PAD.encode(digest)),
        _ => Err(Error::new(ErrorKind::InvalidOperation, ENCODING_ERROR)),
    }
}

fn digest<D: Digest>(value: &Value, kwargs: Kwargs) -> Result<String, Error> {
    encode(&D::digest(bytes(value)?), &kwargs)
}

fn hmac<M: Mac + hmac::digest::KeyInit>(
    value: &Value,
    key: &Value,
    kwargs: Kwargs,
) -> Result<String, Error> {
    let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(&bytes(key)?)
        .expect("HMAC accepts keys of any length");
    mac.update(&bytes(value)?);
    encode(&mac.finalize().into_bytes(), &kwargs)
}

fn instant_nanos(state: &State) -> Result<i64, Error> {
    state
        .lookup(INSTANT)
        .and_then(|value| value.as_i64())
        .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "no check instant"))
}

/// `now(format, tz="Asia/Jakarta")`: the check's instant in `tz`, formatted with strftime.
fn now(state: &State, format: &str, zone: Option<&str>, kwargs: Kwargs) -> Result<String, Error> {
    let keyword: Option<String> = kwargs.get("tz")?;
    kwargs.assert_all_used()?;
    let zone = keyword.as_deref().or(zone).unwrap_or(DEFAULT_ZONE);
    let zone = jiff::tz::TimeZone::get(zone)
        .map_err(|_| Error::new(ErrorKind::InvalidOperation, ZONE_ERROR))?;
    let instant = jiff::Timestamp::from_nanosecond(i128::from(instant_nanos(state)?))
        .map_err(|_| Error::new(ErrorKind::InvalidOperation, FORMAT_ERROR))?;
    jiff::fmt::strtime::format(format, &instant.to_zoned_datetime(zone))
        .map_err(|_| Error::new(ErrorKind::InvalidOperation, FORMAT_ERROR))
}

/// `random_digits(n)`: a nonce of `n` decimal digits from the operating system's generator.
fn random_digits(count: u32) -> Result<String, Error> {
    if !(1..=64).contains(&count) {
        return Err(Error::new(ErrorKind::InvalidOperation, DIGITS_ERROR));
    }
    let mut random = [0u8; 64];
    aws_lc_rs::rand::fill(&mut random[..count as usize])
        .map_err(|_| Error::new(ErrorKind::InvalidOperation, "no randomness available"))?;
    // 256 is not a multiple of 10: the tiny bias does not matter for a nonce.
    Ok(random[..count as usize]
        .iter()
        .map(|b| char::from(b'0' + b % 10))
        .collect())
}

/// `jwt_hs256(claims, key)`: a compact HS256 JWT of `claims` (a mapping) signed with `key`.
fn jwt_hs256(claims: &Value, key: &Value) -> Result<String, Error> {
    let claims = serde_json::to_value(claims)
        .ok()
        .filter(serde_json::Value::is_object)
        .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, CLAIMS_ERROR))?;
    let key = bytes(key)?;
    Ok(signing::jwt_hs256(&claims, &key))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A context with `names` bound to strings, at 2023-11-14T22:13:20Z (1,700,000,000 s).
    fn context(names: &[(&str, &str)]) -> BTreeMap<String, Value> {
        let mut context: BTreeMap<String, Value> = names
            .iter()
            .map(|(name, value)| (name.to_string(), Value::from(*value)))
            .collect();
        let instant = UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        context.insert(INSTANT.into(), instant_value(instant));
        context
    }

    fn rendered(source: &str, names: &[(&str, &str)]) -> String {
        render(source, &context(names)).unwrap()
    }

    #[test]
    fn apigames_signs_merchant_and_secret_both_ways() {
        // providers.md §2.13: the documented form and the disputed colon form.
        let names = [("merchant_id", "M230724TEST"), ("secret_key", "secret123")];
        assert_eq!(
            rendered("{{ (merchant_id ~ secret_key) | md5 }}", &names),
            "773ce3adc8312a40ef684f6381829c43"
        );
        assert_eq!(
            rendered("{{ (merchant_id ~ ':' ~ secret_key) | md5 }}", &names),
            "f501f4a62ab54e7dcaf22ea8bd77bd42"
        );
    }

    #[test]
    fn tokovoucher_signs_member_code_colon_secret() {
        // providers.md §2.14.
        let names = [("member_code", "MEMBER-TEST"), ("secret", "secret-key")];
        assert_eq!(
            rendered("{{ (member_code ~ ':' ~ secret) | md5 }}", &names),
            "de8e20cd4c9c5b31a38a7151daf5a619"
        );
    }

    #[test]
    fn otomax_signs_with_raw_sha1_in_base64url_and_its_hex_variant() {
        // providers.md §2.2: the derived balance vector and the Qiospay-style hex variant.
        let names = [
            ("member_id", "YUSUF"),
            ("pin", "1144"),
            ("password", "abcd"),
        ];
        let text = "'OtomaX|CheckBalance|' ~ member_id ~ '|' ~ pin ~ '|' ~ password";
        assert_eq!(
            rendered(
                &format!("{{{{ ({text}) | sha1(encoding='base64url') }}}}"),
                &names
            ),
            "YFuaekLx4HR_wei0nLRzxjqll0Q"
        );
        assert_eq!(
            rendered(&format!("{{{{ ({text}) | sha1 | base64 }}}}"), &names),
            "NjA1YjlhN2E0MmYxZTA3NDdmYzFlOGI0OWNiNDczYzYzYWE1OTc0NA=="
        );
        // The verified transaction vector from gigapulsa.
        assert_eq!(
            rendered(
                "{{ 'OtomaX|YUSUF|X10|08123456789|2140669|1144|abcd' | sha1(encoding='base64url') }}",
                &[]
            ),
            "Cp9NLVuKWBt5Sey_uMlYsvnKvJI"
        );
    }

    #[test]
    fn duitku_signs_email_millisecond_timestamp_and_secret() {
        // providers.md §2.12, at the vector's own instant.
        let names = [
            ("email", "test@chakratechnology.com"),
            (
                "secret_key",
                "de56f832487bc1ce1de5ff2cfacf8d9486c61da69df6fd61d5537b6b7d6d354d",
            ),
        ];
        let mut context = context(&names);
        context.insert(
            INSTANT.into(),
            instant_value(UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_000)),
        );
        assert_eq!(
            render("{{ (email ~ now_ms() ~ secret_key) | sha256 }}", &context).unwrap(),
            "23002394506a14310b36c0264c0f1aa8b056689aed89fff865cefc82937f9491"
        );
        // The JSON leaf keeps the number.
        assert_eq!(
            evaluate("{{ now_ms() }}", &context).unwrap(),
            Value::from(1_700_000_000_000i64)
        );
    }

    #[test]
    fn digiflazz_and_ipaymu_vectors_render() {
        // providers.md §2.1 and §2.11.
        assert_eq!(
            rendered(
                "{{ (username ~ api_key ~ 'depo') | md5 }}",
                &[("username", "user1"), ("api_key", "key1")]
            ),
            "af162411e54244ce2f8b3103c45e9b1f"
        );
        let names = [
            ("va", "1179000899"),
            ("api_key", "QbGcoO0Qds9sQFDmY0MWg1Tq.xtuh1"),
            ("body", r#"{"account":"1179000899"}"#),
        ];
        assert_eq!(
            rendered(
                "{{ ('POST:' ~ va ~ ':' ~ (body | sha256) ~ ':' ~ api_key) | hmac_sha256(api_key) }}",
                &names
            ),
            "68292de8c3194960e40dd0a2951f4667be3ea8abd60aabcbb68f83eddd5747fc"
        );
    }

    #[test]
    fn encodings_and_string_filters() {
        assert_eq!(
            rendered("{{ 'a' | sha256(encoding='base64') }}", &[]),
            "ypeBEsobvcr6wjGzmiPcTaeG7/gUfE5yuYB3ha/uSLs="
        );
        assert_eq!(rendered("{{ 'user:' | base64 }}", &[]), "dXNlcjo=");
        assert_eq!(rendered("{{ '??>' | base64url }}", &[]), "Pz8-");
        assert_eq!(rendered("{{ 'a b&c' | urlencode }}", &[]), "a%20b%26c");
        assert_eq!(
            rendered("{{ 'Ab' | upper }}{{ 'Ab' | lower }}", &[]),
            "ABab"
        );
        assert_eq!(
            rendered(
                "{{ 'data' | hmac_sha512('key', encoding='base64url') }}",
                &[]
            )
            .len(),
            86
        );
        let err = render("{{ 'a' | md5(encoding='hax') }}", &context(&[])).unwrap_err();
        assert!(err.0.contains("encoding must be"), "{err:?}");
    }

    #[test]
    fn every_clock_function_reads_the_same_instant() {
        let context = context(&[]);
        assert_eq!(
            render("{{ now_unix() }} {{ now_ms() }}", &context).unwrap(),
            "1700000000 1700000000123"
        );
        // WIB by default, any zone by name or keyword.
        assert_eq!(
            render("{{ now('%Y%m%d%H%M%S') }}", &context).unwrap(),
            "20231115051320"
        );
        assert_eq!(
            render("{{ now('%Y-%m-%dT%H:%M:%S%:z', 'UTC') }}", &context).unwrap(),
            "2023-11-14T22:13:20+00:00"
        );
        assert_eq!(
            render("{{ now('%H %:z', tz='Asia/Jayapura') }}", &context).unwrap(),
            "07 +09:00"
        );
        let err = render("{{ now('%H', tz='Mars/Base') }}", &context).unwrap_err();
        assert!(err.0.contains("unknown time zone"), "{err:?}");
    }

    #[test]
    fn the_indonesian_zones_are_built_in_for_systems_without_a_zone_database() {
        // A scratch image has no /usr/share/zoneinfo; jiff then falls back to this copy.
        let bundled = jiff::tz::TimeZoneDatabase::bundled();
        for zone in [DEFAULT_ZONE, "Asia/Makassar", "Asia/Jayapura", "UTC"] {
            assert!(bundled.get(zone).is_ok(), "{zone}");
        }
    }

    #[test]
    fn random_digits_and_jwt() {
        let digits = rendered("{{ random_digits(12) }}", &[]);
        assert_eq!(digits.len(), 12);
        assert!(digits.bytes().all(|b| b.is_ascii_digit()));
        // The Ayopop sample token's payload segment (providers.md, seed).
        let token = rendered(
            "{{ jwt_hs256({'partnerId': partner}, secret) }}",
            &[("partner", "ayopop"), ("secret", "ayopop-api-secret")],
        );
        assert_eq!(
            token.split('.').nth(1),
            Some("eyJwYXJ0bmVySWQiOiJheW9wb3AifQ")
        );
        assert_eq!(
            token,
            signing::jwt_hs256(
                &serde_json::json!({"partnerId": "ayopop"}),
                b"ayopop-api-secret"
            )
        );
    }

    #[test]
    fn a_single_expression_keeps_its_type_and_anything_else_is_text() {
        let context = context(&[("id", "42")]);
        assert_eq!(
            evaluate("{{ id | int }}", &context).unwrap(),
            Value::from(42)
        );
        assert_eq!(evaluate("{{ 1 + 1 }}", &context).unwrap(), Value::from(2));
        assert_eq!(
            evaluate("n{{ 1 + 1 }}", &context).unwrap(),
            Value::from("n2")
        );
        assert_eq!(
            evaluate("{{ 1 }}{{ 2 }}", &context).unwrap(),
            Value::from("12")
        );
        assert_eq!(single_expression("{{- x -}}"), Some("x"));
        assert_eq!(single_expression("{{ }}"), None);
    }

    #[test]
    fn errors_name_the_problem_but_never_a_value() {
        let context = context(&[("secret", "hunter2-very-secret")]);
        let unknown = render("{{ secret | md6 }}", &context).unwrap_err();
        assert!(unknown.0.contains("unknown filter"), "{unknown:?}");
        let syntax = variables("{{ secret ").unwrap_err();
        assert!(syntax.0.contains("syntax error"), "{syntax:?}");
        let undefined = render("{{ secrte }}", &context).unwrap_err();
        assert!(undefined.0.contains("undefined"), "{undefined:?}");
        // minijinja's own detail would quote the value here.
        let invalid = render("{{ secret | int + [] }}", &context).unwrap_err();
        for err in [unknown, syntax, undefined, invalid] {
            assert!(!err.0.contains("hunter2"), "{err:?}");
        }
        assert_eq!(
            variables("{% set x = a %}{{ x ~ b | md5 }}").unwrap(),
            HashSet::from(["a".to_owned(), "b".to_owned()])
        );
    }

    #[test]
    fn a_runaway_loop_runs_out_of_fuel() {
        let err = render(
            "{% for i in range(10000) %}{% for j in range(10000) %}x{% endfor %}{% endfor %}",
            &context(&[]),
        )
        .unwrap_err();
        assert!(err.0.contains("fuel"), "{err:?}");
    }
}
