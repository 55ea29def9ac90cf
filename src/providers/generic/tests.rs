use std::time::{Duration, UNIX_EPOCH};

use serde_json::json;

use super::*;

fn fields(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(fields) => fields,
        _ => unreachable!("an object"),
    }
}

/// The TokoVoucher example from the issue, minus the file credential.
fn tokovoucher() -> Value {
    json!({
        "credentials": {"member_code": "M230724TEST", "secret": "tv-secret-value"},
        "vars": {"sig": "{{ (member_code ~ ':' ~ secret) | md5 }}"},
        "request": {
            "method": "GET",
            "url": "https://api.tokovoucher.net/member",
            "query": {"member_code": "{{ member_code }}", "signature": "{{ sig }}"},
            "headers": {}
        },
        "balance": {"json": "/data/saldo", "thousands_separator": ".", "currency": "IDR"},
        "success": [{"json": "/status", "equals": [1, "1"]}],
        "auth": [{"json": "/rc", "equals": [401, 403]}, {"text": "(?i)signature|ip tidak"}],
        "rate_limited": [{"status": [429]}]
    })
}

fn generic(value: Value) -> Generic {
    let spec: Spec = serde_path_to_error::deserialize(value).unwrap();
    Generic::new(spec).unwrap()
}

fn parse_error(value: Value) -> FieldError {
    match parse(fields(value)) {
        Ok(provider) => panic!("accepted: {provider:?}"),
        Err(err) => err,
    }
}

fn at(instant_ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(instant_ms)
}

#[test]
fn the_issue_example_renders_a_signed_query_and_its_host_is_the_limit_key() {
    let generic = generic(tokovoucher());
    assert_eq!(generic.base_url.as_str(), "https://api.tokovoucher.net/");
    let rendered = generic.render(at(1_700_000_000_000)).unwrap();
    // md5("M230724TEST:tv-secret-value"), URL-encoded into the query.
    let signature = crate::signing::md5_hex(&["M230724TEST:tv-secret-value"]);
    assert_eq!(
        rendered.url.as_str(),
        format!("https://api.tokovoucher.net/member?member_code=M230724TEST&signature={signature}")
    );
    // The member code is a credential too, so both are redacted in the log.
    assert_eq!(
        rendered.log_url,
        "https://api.tokovoucher.net/member?member_code=%5Bredacted%5D&signature=%5Bredacted%5D"
    );
    assert!(rendered.secrets.contains(&signature));
}

#[test]
fn a_json_body_keeps_key_order_literals_and_the_type_of_single_expressions() {
    let generic = generic(json!({
        "credentials": {"user_id": "3551", "email": "you@example.com", "secret_key": "s3cr3t"},
        "request": {
            "method": "POST",
            "url": "http://127.0.0.1:1/check",
            "json": {
                "userId": "{{ user_id | int }}",
                "email": "{{ email }}",
                "timestamp": "{{ now_ms() }}",
                "signature": "{{ (email ~ now_ms() ~ secret_key) | sha256 }}",
                "literal": 7, "flag": true, "nothing": null,
                "label": "ts-{{ now_unix() }}",
                "list": ["{{ 1 + 1 }}", "x"]
            },
            "headers": {"X-Body-Hash": "{{ body | sha256 }}", "Accept": "application/json"}
        },
        "balance": {"json": "/balance"}
    }));
    let rendered = generic.render(at(1_700_000_000_000)).unwrap();
    let body = String::from_utf8(rendered.body.clone().unwrap()).unwrap();
    let signature = crate::signing::sha256_hex(b"you@example.com1700000000000s3cr3t");
    assert_eq!(
        body,
        format!(
            r#"{{"userId":3551,"email":"you@example.com","timestamp":1700000000000,"signature":"{signature}","literal":7,"flag":true,"nothing":null,"label":"ts-1700000000","list":[2,"x"]}}"#
        )
    );
    assert_eq!(rendered.content_type.as_deref(), Some("application/json"));
    // The header signs the exact bytes sent; it is built from credentials, so it is redacted.
    let hash = &rendered.headers[0].1;
    assert_eq!(
        hash.to_str().unwrap(),
        crate::signing::sha256_hex(body.as_bytes())
    );
    assert!(hash.is_sensitive());
    assert!(!rendered.headers[1].1.is_sensitive());
    assert_eq!(
        rendered.log_headers,
        "x-body-hash: [redacted], accept: application/json"
    );
    assert!(!rendered.log_body.contains("you@example.com"));
    assert!(!rendered.log_body.contains(&signature));
    assert!(rendered.log_body.contains(r#""timestamp":1700000000000"#));
}

#[test]
fn a_form_body_is_url_encoded_and_vars_see_earlier_vars() {
    let generic = generic(json!({
        "credentials": {"api_id": "id 1", "api_key": "k&y"},
        "vars": {"joined": "{{ api_id ~ api_key }}", "sign": "{{ joined | md5 }}", "stamp": "{{ now_unix() }}"},
        "request": {
            "method": "post",
            "url": "http://127.0.0.1:1/api/profile",
            "form": {"key": "{{ api_key }}", "sign": "{{ sign }}", "at": "{{ stamp }}"}
        },
        "balance": {"json": "/data/balance"}
    }));
    assert_eq!(generic.method, Method::POST);
    let rendered = generic.render(at(1_700_000_000_000)).unwrap();
    let body = String::from_utf8(rendered.body.unwrap()).unwrap();
    assert_eq!(
        body,
        format!(
            "key=k%26y&sign={}&at=1700000000",
            crate::signing::md5_hex(&["id 1k&y"])
        )
    );
    assert_eq!(
        rendered.log_body,
        "key=%5Bredacted%5D&sign=%5Bredacted%5D&at=1700000000"
    );
}

#[test]
fn bad_fields_are_named_by_their_dotted_path() {
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"request": {"query": {"signature": "{{ sgi }}"}}}),
            "request.query.signature",
            "unknown variable \"sgi\"",
        ),
        (
            json!({"request": {"query": {"signature": "{{ sig | md6 }}"}}}),
            "request.query.signature",
            "unknown filter",
        ),
        (
            json!({"request": {"headers": {"X-Sign": "{{ sig "}}}),
            "request.headers.X-Sign",
            "syntax error",
        ),
        (
            json!({"vars": {"sig": "{{ later }}", "later": "1"}}),
            "vars.sig",
            "unknown variable \"later\"",
        ),
        (
            json!({"request": {"headers": {"X-Line": "{{ 'a\nb' }}"}}}),
            "request.headers.X-Line",
            "valid header value",
        ),
        (
            json!({"request": {"url": "ftp://example.test/x"}}),
            "request.url",
            "http(s) URL",
        ),
        (
            json!({"request": {"method": "PUT"}}),
            "request.method",
            "GET or POST",
        ),
        (
            json!({"request": {"json": {"a": "{{ sig }}"}}}),
            "request.method",
            "must be POST",
        ),
        (
            json!({"balance": {"json": "data.saldo"}}),
            "balance.json",
            "JSON pointer",
        ),
        (
            json!({"balance": {"json": null, "text": "Saldo ([0-9.]+) ([0-9]+)"}}),
            "balance.text",
            "exactly one capture group",
        ),
        (
            json!({"auth": [{"json": "/rc", "equals": [1]}, {"json": "/rc"}]}),
            "auth[1]",
            "equals",
        ),
        (
            json!({"success": [{"text": "(unclosed"}]}),
            "success[0].text",
            "regular expression",
        ),
        (
            json!({"credentials": {"secret": ""}}),
            "credentials.secret",
            "must not be empty",
        ),
        (
            json!({"credentials": {"body": "x"}}),
            "credentials.body",
            "reserved",
        ),
        (json!({"vars": {"none": "x"}}), "vars.none", "reserved"),
        (
            json!({"credentials": {"now_ms": "x"}}),
            "credentials.now_ms",
            "reserved",
        ),
        (
            json!({"request": {"query": {"at": "{{ now('%Y', tz='Mars/Base') }}"}}}),
            "request.query.at",
            "unknown time zone",
        ),
        (
            json!({"balance": {"currency": "rupiah"}}),
            "balance.currency",
            "ISO 4217",
        ),
        (
            json!({"requests": {}}),
            "requests",
            "unknown field `requests`",
        ),
    ];
    for (patch, path, message) in cases {
        let mut value = tokovoucher();
        merge(&mut value, patch);
        let err = parse_error(value);
        assert!(err.path == path, "{path}: {err}");
        assert!(err.message.contains(message), "{path}: {err}");
        for secret in ["tv-secret-value", "M230724TEST"] {
            assert!(!err.to_string().contains(secret), "{err}");
        }
    }
}

/// Merges `patch` into `value`; a null in the patch removes the key.
fn merge(value: &mut Value, patch: Value) {
    match (value, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, item) in patch {
                if item.is_null() {
                    target.remove(&key);
                } else if let Some(existing) = target.get_mut(&key) {
                    merge(existing, item);
                } else {
                    target.insert(key, item);
                }
            }
        }
        (target, patch) => *target = patch,
    }
}

fn classify(generic: &Generic, status: u16, body: &str) -> Result<Balance, UpstreamError> {
    let secrets = generic.render(at(0)).unwrap().secrets;
    generic.classify(
        StatusCode::from_u16(status).unwrap(),
        None,
        body.as_bytes(),
        &secrets,
    )
}

fn reason(result: Result<Balance, UpstreamError>) -> &'static str {
    result.unwrap_err().reason().as_str()
}

#[test]
fn answers_are_classified_in_the_documented_order() {
    let generic = generic(tokovoucher());
    let ok = classify(
        &generic,
        200,
        r#"{"status":1,"rc":200,"data":{"saldo":"1.500.000"}}"#,
    );
    assert_eq!(ok.unwrap().amount, Decimal::from(1_500_000));
    let ok = classify(&generic, 200, r#"{"status":"1","data":{"saldo":19690000}}"#);
    assert_eq!(ok.unwrap().amount, Decimal::from(19_690_000));
    // auth first, whatever the status and the success conditions say.
    assert_eq!(
        reason(classify(&generic, 200, r#"{"status":0,"rc":401}"#)),
        "auth"
    );
    assert_eq!(
        reason(classify(&generic, 500, "IP tidak terdaftar")),
        "auth"
    );
    assert_eq!(reason(classify(&generic, 429, "slow down")), "rate_limited");
    // Not JSON where JSON is read: decode on a 2xx, the status's own reason otherwise.
    assert_eq!(
        reason(classify(&generic, 200, "<html>maintenance</html>")),
        "decode"
    );
    assert_eq!(
        reason(classify(&generic, 502, "<html>bad gateway</html>")),
        "http_status"
    );
    assert_eq!(
        reason(classify(&generic, 403, "<html>forbidden</html>")),
        "auth"
    );
    // success fails: rejected on a 2xx, the usual status reason otherwise.
    assert_eq!(
        reason(classify(&generic, 200, r#"{"status":0,"rc":500}"#)),
        "rejected"
    );
    assert_eq!(
        reason(classify(&generic, 400, r#"{"status":0,"rc":500}"#)),
        "http_status"
    );
    assert_eq!(reason(classify(&generic, 401, r#"{"status":0}"#)), "auth");
    // The balance cannot be read.
    assert_eq!(
        reason(classify(&generic, 200, r#"{"status":1,"data":{}}"#)),
        "decode"
    );
    assert_eq!(
        reason(classify(
            &generic,
            200,
            r#"{"status":1,"data":{"saldo":"banyak"}}"#
        )),
        "decode"
    );
    assert_eq!(
        reason(classify(
            &generic,
            200,
            r#"{"status":1,"data":{"saldo":[1]}}"#
        )),
        "decode"
    );
}

#[test]
fn a_text_answer_reads_its_capture_with_indonesian_separators() {
    let generic = generic(json!({
        "credentials": {"member_id": "AGT1", "pin": "1144", "password": "abcd"},
        "request": {
            "url": "http://127.0.0.1:1/trx/balance",
            "query": {"memberID": "{{ member_id }}", "pin": "{{ pin }}", "password": "{{ password }}"}
        },
        "balance": {"text": "(?i)saldo\\s*:?\\s*(?:Rp\\.?\\s*)?([0-9][0-9.,]*)"},
        "auth": [{"text": "(?i)pin salah|password salah|ip tidak sesuai"}]
    }));
    let balance = classify(
        &generic,
        200,
        "Informasi Akun\n Saldo : 14.324.472\n Bonus : 250.000",
    );
    assert_eq!(balance.unwrap().amount, Decimal::from(14_324_472));
    assert_eq!(
        classify(&generic, 200, "Saldo 284.939,50").unwrap().amount,
        "284939.5".parse().unwrap()
    );
    assert_eq!(reason(classify(&generic, 200, "Pin Salah")), "auth");
    assert_eq!(
        reason(classify(&generic, 200, "<html>down</html>")),
        "decode"
    );
    // The excerpt of a refusal never repeats a credential the supplier echoed.
    let err = classify(
        &generic,
        200,
        "IP tidak sesuai @1.2.3.4 untuk AGT1 pin 1144",
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("@1.2.3.4"), "{message}");
    assert!(
        !message.contains("AGT1") && !message.contains("1144"),
        "{message}"
    );
}

#[test]
fn currency_comes_from_the_answer_when_configured() {
    let mut spec = tokovoucher();
    merge(
        &mut spec,
        json!({"balance": {"currency": null, "currency_json": "/data/currency"}}),
    );
    let generic = generic(spec);
    let balance = classify(
        &generic,
        200,
        r#"{"status":1,"data":{"saldo":5,"currency":"usd"}}"#,
    );
    assert_eq!(balance.unwrap().currency, "USD");
    assert_eq!(
        reason(classify(
            &generic,
            200,
            r#"{"status":1,"data":{"saldo":5}}"#
        )),
        "decode"
    );
}

#[test]
fn numbers_match_listed_numbers_by_value_and_strings_only_when_listed() {
    assert!(same(&json!(1), &json!(1.0)));
    assert!(!same(&json!("1"), &json!(1)));
    assert!(same(&json!("00"), &json!("00")));
    assert!(!same(&json!(0), &json!("00")));
}

#[test]
fn the_debug_output_names_credentials_but_shows_no_value() {
    let generic = generic(tokovoucher());
    let debug = format!("{generic:?}");
    assert!(debug.contains("member_code"), "{debug}");
    assert!(
        !debug.contains("tv-secret-value") && !debug.contains("M230724TEST"),
        "{debug}"
    );
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Template text built from the language's own pieces and arbitrary text in between.
    fn template_text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("{{ ".to_owned()),
            Just(" }}".to_owned()),
            Just("{% ".to_owned()),
            Just(" %}".to_owned()),
            Just("secret".to_owned()),
            Just("id".to_owned()),
            Just(" | md5".to_owned()),
            Just(" | sha1(encoding='base64url')".to_owned()),
            Just(" | hmac_sha256(secret, encoding='nope')".to_owned()),
            Just(" | int".to_owned()),
            Just(" ~ ".to_owned()),
            Just("now('%Y%m%d', tz=secret)".to_owned()),
            Just("jwt_hs256({'id': id}, secret)".to_owned()),
            Just("jwt_hs256(secret, secret)".to_owned()),
            Just("random_digits(id | int)".to_owned()),
            Just("for x in secret".to_owned()),
            Just("endfor".to_owned()),
            Just("(".to_owned()),
            Just(")".to_owned()),
            any::<String>(),
        ];
        prop::collection::vec(piece, 0..10).prop_map(|pieces| pieces.concat())
    }

    fn spec(template: &str, secret: &str, id: &str) -> Value {
        json!({
            "credentials": {"id": id, "secret": secret},
            "vars": {"derived": template},
            "request": {
                "method": "POST",
                "url": "http://127.0.0.1:9/balance",
                "query": {"q": template},
                "headers": {"X-Sign": template},
                "json": {"sign": template, "nested": [template]}
            },
            "balance": {"json": "/balance"},
            "success": [{"json": "/ok", "exists": true}],
            "auth": [{"text": "^bad"}]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(256) })]

        #[test]
        fn arbitrary_templates_and_credentials_never_panic_or_leak_a_credential(
            template in template_text(),
            secret in "\\PC{8,24}",
            id in "[0-9]{1,3}|\\PC{8,16}",
        ) {
            let checked = |message: &str| {
                for credential in [&secret, &id] {
                    if credential.trim().chars().count() >= 8 {
                        prop_assert!(!message.contains(credential.as_str()), "{message}");
                    }
                }
                Ok(())
            };
            match parse(fields(spec(&template, &secret, &id))) {
                Err(err) => checked(&err.to_string())?,
                Ok(provider) => {
                    checked(&format!("{provider:?}"))?;
                    let generic: &Generic = (&*provider as &dyn std::any::Any)
                        .downcast_ref()
                        .unwrap();
                    // An answer that echoes the credentials is classified without quoting them.
                    // (auth quotes an excerpt, rejected too, decode does not.)
                    for body in [
                        format!("bad {secret} for {id}"),
                        format!("{{\"message\": \"{secret} for {id}\"}}"),
                    ] {
                        for status in [200, 401, 500] {
                            if let Err(err) = classify(generic, status, &body) {
                                checked(&err.to_string())?;
                            }
                        }
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn a_content_type_the_account_sets_replaces_the_bodys_own() {
    use hyper::Request;
    use hyper::body::Incoming;

    // Answers with how many Content-Type headers it got, as the balance.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(crate::server::accept_loop(
        listener,
        |request: Request<Incoming>| async move {
            let types: Vec<_> = request.headers().get_all(CONTENT_TYPE).iter().collect();
            let charset = types
                .iter()
                .any(|t| t.as_bytes().ends_with(b"charset=utf-8"));
            let answer = json!({"balance": types.len(), "charset": charset});
            crate::server::respond(StatusCode::OK, "application/json", answer.to_string())
        },
        std::future::pending(),
    ));
    let cx = CheckContext::new(reqwest::Client::new());
    for (headers, charset) in [
        (json!({}), false),
        (
            json!({"Content-Type": "application/json; charset=utf-8"}),
            true,
        ),
    ] {
        let generic = generic(json!({
            "request": {
                "method": "POST",
                "url": format!("{base_url}/balance"),
                "headers": headers,
                "json": {"a": 1}
            },
            "balance": {"json": "/balance"},
            "success": [{"json": "/charset", "equals": [charset]}]
        }));
        let balance = generic.check(&cx).await.unwrap();
        assert_eq!(balance.amount, Decimal::ONE, "one Content-Type header");
    }
}
