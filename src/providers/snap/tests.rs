use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::SystemTime;

use serde_json::json;

use super::simulator::Snap;
use super::*;
use crate::demo::{Fault, Simulator};
use crate::error::Reason;

const TEST_KEY: &str = include_str!("test_key.pem");

fn fields(extra: Value) -> Map<String, Value> {
    let mut fields = json!({
        "base_url": "https://sandbox.bank.example",
        "client_id": "client-1",
        "client_secret": "secret-1",
        "private_key": TEST_KEY,
        "channel_id": "95051",
    });
    for (key, value) in extra.as_object().unwrap() {
        match value {
            Value::Null => fields.as_object_mut().unwrap().remove(key),
            value => fields
                .as_object_mut()
                .unwrap()
                .insert(key.clone(), value.clone()),
        };
    }
    fields.as_object().unwrap().clone()
}

fn config(extra: Value) -> Config {
    serde_path_to_error::deserialize(Value::Object(fields(extra))).unwrap()
}

fn config_error(extra: Value) -> String {
    let err =
        serde_path_to_error::deserialize::<_, Config>(Value::Object(fields(extra))).unwrap_err();
    format!("{}: {}", err.path(), err.inner())
}

#[test]
fn the_standard_paths_apply_and_the_partner_id_defaults_to_the_client_id() {
    let config = config(json!({}));
    assert_eq!(config.token_path, "/v1.0/access-token/b2b");
    assert_eq!(config.balance_path, "/v1.0/balance-inquiry");
    assert_eq!(config.partner_id, "client-1");
    let config = super::tests::config(json!({"partner_id": "partner-9"}));
    assert_eq!(config.partner_id, "partner-9");
}

#[test]
fn a_preset_fills_the_paths_and_channel_and_explicit_fields_win() {
    let bca = config(json!({"preset": "bca", "channel_id": null}));
    assert_eq!(
        (
            bca.token_path.as_str(),
            bca.balance_path.as_str(),
            bca.channel_id.as_str()
        ),
        (
            "/openapi/v1.0/access-token/b2b",
            "/openapi/v1.0/balance-inquiry",
            "95051"
        )
    );
    let durianpay = config(json!({"preset": "durianpay", "channel_id": null}));
    assert_eq!(durianpay.channel_id, "95221");
    assert!(durianpay.additional_info);
    let doku = config(json!({"preset": "doku", "balance_path": "snap/v1.0/balance-inquiry"}));
    assert_eq!(doku.token_path, "/authorization/v1/access-token/b2b");
    assert_eq!(doku.balance_path, "/snap/v1.0/balance-inquiry");
    assert_eq!(doku.channel_id, "95051");
    let bri = config(json!({"preset": "bri", "channel_id": "12345"}));
    assert_eq!(bri.token_path, "/snap/v1.0/access-token/b2b");
}

#[test]
fn a_missing_channel_id_is_named_unless_a_preset_documents_it() {
    let err = config_error(json!({"channel_id": null}));
    assert!(err.contains("missing field `channel_id`"), "{err}");
    let err = config_error(json!({"channel_id": null, "preset": "bri"}));
    assert!(err.contains("missing field `channel_id`"), "{err}");
    let err = config_error(json!({"preset": "mandiri"}));
    assert!(err.starts_with("preset: unknown variant"), "{err}");
}

#[test]
fn a_bad_private_key_is_a_configuration_error_that_never_quotes_it() {
    let broken = TEST_KEY.replace("MII", "MIX");
    let err = config_error(json!({"private_key": broken}));
    assert!(err.starts_with("private_key: "), "{err}");
    assert!(!err.contains("MIX"), "{err}");
    let err = config_error(json!({"private_key": null}));
    assert!(err.contains("missing field `private_key`"), "{err}");
}

#[test]
fn balance_types_are_a_list_or_comma_separated_text() {
    let listed = config(json!({"balance_types": ["Cash", "Giro"]}));
    let text = config(json!({"balance_types": "Cash, Giro,"}));
    assert_eq!(listed.balance_types, ["Cash", "Giro"]);
    assert_eq!(text.balance_types, ["Cash", "Giro"]);
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let printed = format!("{:?}", config(json!({})));
    assert!(!printed.contains("secret-1"), "{printed}");
    assert!(!printed.contains("MII"), "{printed}");
}

#[test]
fn the_documented_answer_decodes_to_its_available_balance_and_holder() {
    let balance = decode(SAMPLE_ANSWER.as_bytes()).unwrap();
    assert_eq!(balance.amount, "200000.00".parse().unwrap());
    assert_eq!(balance.currency, "IDR");
    assert_eq!(balance.holder.as_deref(), Some("Budi"));
}

#[test]
fn the_documented_variations_decode_too() {
    // DOKU: a numeric code, an object, and the `avaliableBalance` spelling.
    let doku = br#"{"responseCode":2001100,"responseMessage":"Successful","accountInfos":{"avaliableBalance":{"value":"823781442.13","currency":"IDR"}}}"#;
    assert_eq!(
        decode(doku).unwrap().amount,
        "823781442.13".parse().unwrap()
    );
    let singular = br#"{"responseCode":"2001100","accountInfo":{"availableBalance":{"value":"5.00","currency":"usd"}}}"#;
    let balance = decode(singular).unwrap();
    assert_eq!(
        (balance.amount, balance.currency.as_str()),
        ("5.00".parse().unwrap(), "USD")
    );
    // Without an available balance, the amount.
    let amount = br#"{"responseCode":"2001100","accountInfos":[{"amount":{"value":"7.50","currency":"IDR"},"availableBalance":null}]}"#;
    assert_eq!(decode(amount).unwrap().amount, "7.50".parse().unwrap());
    let pakailink = br#"{"responseCode":"2001100","accountInfos":[{"activeBalance":{"value":"9","currency":"IDR"}}]}"#;
    assert_eq!(decode(pakailink).unwrap().amount, 9.into());
}

#[test]
fn of_several_balances_the_first_is_exported_unless_a_type_is_chosen() {
    let body = br#"{"responseCode":"2001100","accountInfos":[
        {"balanceType":"Cash","availableBalance":{"value":"100.00","currency":"IDR"}},
        {"balanceType":"Coupon","availableBalance":{"value":"25.00","currency":"IDR"}}]}"#;
    let pick = |wanted: Option<&str>| decode_inquiry(StatusCode::OK, body, wanted);
    assert_eq!(pick(None).unwrap().amount, 100.into());
    assert_eq!(pick(Some("coupon")).unwrap().amount, 25.into());
    let Err(CallError::Failed(err)) = pick(Some("Giro")) else {
        panic!("a missing balance type is a failure");
    };
    assert_eq!(err.reason(), Reason::Decode);
    assert!(err.to_string().contains("Cash, Coupon"), "{err}");
}

#[test]
fn malformed_success_answers_are_decode_failures() {
    for body in [
        &b"<html>maintenance</html>"[..],
        br#"{"responseCode":"2001100"}"#,
        br#"{"responseCode":"2001100","accountInfos":[]}"#,
        br#"{"responseCode":"2001100","accountInfos":"200000"}"#,
        br#"{"responseCode":"2001100","accountInfos":[{"availableBalance":{"value":"abc","currency":"IDR"}}]}"#,
        br#"{"responseCode":"2001100","accountInfos":[{"availableBalance":"200000.00"}]}"#,
        br#"{"responseCode":"2001100","accountInfos":[{"availableBalance":{"value":"1","currency":7}}]}"#,
        br#"{"responseCode":"2001100","accountInfo":[{"availableBalance":{"value":"1","currency":"IDR"}}]}"#,
        br#"{"responseCode":true,"accountInfos":[{"availableBalance":{"value":"1","currency":"IDR"}}]}"#,
        br#"[{"responseCode":"2001100"}]"#,
    ] {
        let err = decode(body).unwrap_err();
        assert_eq!(err.reason(), Reason::Decode, "{}: {err}", String::from_utf8_lossy(body));
    }
}

/// Each documented code of providers.md §2.19 item 5, on the status the bank sends it with.
#[test]
fn failure_codes_are_classified_as_documented() {
    let read = |status: u16, code: &str, message: &str| {
        let body = json!({"responseCode": code, "responseMessage": message}).to_string();
        decode_inquiry(StatusCode::from_u16(status).unwrap(), body.as_bytes(), None).unwrap_err()
    };
    let reason = |err: CallError| match err {
        CallError::TokenExpired(err) => (true, err.reason()),
        CallError::Failed(err) => (false, err.reason()),
    };
    assert_eq!(
        reason(read(401, "4011101", "Invalid Token (B2B)")),
        (true, Reason::Auth)
    );
    assert_eq!(
        reason(read(401, "4017301", "Invalid Token")),
        (true, Reason::Auth)
    );
    assert_eq!(
        reason(read(401, "4011100", "Unauthorized. Signature")),
        (false, Reason::Auth)
    );
    assert_eq!(
        reason(read(401, "4017300", "Unauthorized. Signature")),
        (false, Reason::Auth)
    );
    assert_eq!(
        reason(read(200, "4011100", "Unauthorized")),
        (false, Reason::Auth)
    );
    assert_eq!(
        reason(read(429, "4291100", "Too Many Requests")),
        (false, Reason::RateLimited)
    );
    assert_eq!(
        reason(read(200, "4291100", "Too Many Requests")),
        (false, Reason::RateLimited)
    );
    assert_eq!(
        reason(read(403, "4031118", "Inactive Account")),
        (false, Reason::Rejected)
    );
    assert_eq!(
        reason(read(200, "5001100", "General Error")),
        (false, Reason::Rejected)
    );
    assert_eq!(
        reason(read(500, "5001100", "General Error")),
        (false, Reason::HttpStatus)
    );
    assert_eq!(
        reason(read(504, "5041100", "Timeout")),
        (false, Reason::HttpStatus)
    );
    assert_eq!(
        reason(read(400, "4001102", "Invalid Mandatory Field {accountNo}")),
        (false, Reason::HttpStatus)
    );
    assert_eq!(
        reason(read(404, "4041111", "Invalid Account")),
        (false, Reason::HttpStatus)
    );
    // An unlisted IP is `auth` whatever code a bank picks for it.
    assert_eq!(
        reason(read(403, "4031100", "IP address not whitelisted")),
        (false, Reason::Auth)
    );
    let CallError::Failed(err) = read(403, "4031118", "Inactive Account") else {
        unreachable!()
    };
    assert!(err.to_string().contains("account_blocked"), "{err}");
}

#[test]
fn token_answers_give_the_token_and_its_lifetime_or_a_classified_failure() {
    let token = decode_token(
        StatusCode::OK,
        br#"{"responseCode":"2007300","responseMessage":"Successful","accessToken":"abc","tokenType":"Bearer","expiresIn":"900"}"#,
    )
    .unwrap();
    assert_eq!(
        (token.value.expose_secret(), token.expires_in),
        ("abc", Duration::from_secs(900))
    );
    let numeric = decode_token(
        StatusCode::OK,
        br#"{"responseCode":"2007300","accessToken":"t","expiresIn":60}"#,
    );
    assert_eq!(numeric.unwrap().expires_in, Duration::from_secs(60));
    let unauthorized = br#"{"responseCode":"4017300","responseMessage":"Unauthorized. Signature"}"#;
    assert_eq!(
        decode_token(StatusCode::UNAUTHORIZED, unauthorized)
            .err()
            .unwrap()
            .reason(),
        Reason::Auth
    );
    for body in [
        &br#"{"responseCode":"2007300","expiresIn":"900"}"#[..],
        br#"{"responseCode":"2007300","accessToken":"","expiresIn":"900"}"#,
        br#"{"responseCode":"2007300","accessToken":"t","expiresIn":"soon"}"#,
        br#"{"responseCode":"2007300","accessToken":"t","expiresIn":"0"}"#,
    ] {
        let err = decode_token(StatusCode::OK, body).err().unwrap();
        assert_eq!(
            err.reason(),
            Reason::Decode,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    assert_eq!(
        decode_token(StatusCode::FORBIDDEN, b"denied")
            .err()
            .unwrap()
            .reason(),
        Reason::Auth
    );
    assert_eq!(
        decode_token(StatusCode::BAD_GATEWAY, b"<html/>")
            .err()
            .unwrap()
            .reason(),
        Reason::HttpStatus
    );
}

// Against the simulator.

async fn bank() -> Simulator {
    Simulator::start("snap", "1234567.5".parse().unwrap())
        .await
        .unwrap()
}

fn snap(simulator: &Simulator) -> &Snap {
    simulator.supplier::<Snap>().unwrap()
}

fn account(simulator: &Simulator) -> Config {
    let fields = simulator
        .account_fields()
        .into_iter()
        .map(|(field, value)| (field.to_owned(), Value::String(value)))
        .collect();
    serde_path_to_error::deserialize(Value::Object(fields)).unwrap()
}

/// A context whose signing clock is the real time plus `offset` seconds.
fn context(offset: &Arc<AtomicU64>) -> CheckContext {
    let offset = Arc::clone(offset);
    CheckContext::with_clock(
        reqwest::Client::new(),
        Arc::new(move || SystemTime::now() + Duration::from_secs(offset.load(Ordering::SeqCst))),
    )
}

#[tokio::test]
async fn one_token_serves_many_checks_and_each_inquiry_has_a_fresh_external_id() {
    let simulator = bank().await;
    let account = account(&simulator);
    let cx = CheckContext::new(reqwest::Client::new());
    for _ in 0..20 {
        let balance = account.fetch(&cx).await.unwrap();
        assert_eq!(balance.amount, "1234567.5".parse().unwrap());
        assert_eq!(balance.holder.as_deref(), Some("PT Demo Fintech"));
    }
    assert_eq!(snap(&simulator).token_requests(), 1);
    assert_eq!((simulator.requests(), simulator.rejected()), (21, 0));
}

#[tokio::test]
async fn a_token_is_refreshed_ahead_of_its_expiry() {
    let simulator = bank().await;
    snap(&simulator).set_token_lifetime(Duration::from_secs(120));
    let account = account(&simulator);
    let offset = Arc::new(AtomicU64::new(0));
    let cx = context(&offset);
    account.fetch(&cx).await.unwrap();
    // 120 s tokens are refreshed 12 s early; the bank's clock does not move, so the old token
    // would still pass: only the exporter's own reckoning fetches the new one.
    offset.store(100, Ordering::SeqCst);
    account.fetch(&cx).await.unwrap();
    assert_eq!(snap(&simulator).token_requests(), 1);
    offset.store(110, Ordering::SeqCst);
    account.fetch(&cx).await.unwrap();
    assert_eq!(snap(&simulator).token_requests(), 2);
    assert_eq!(simulator.rejected(), 0);
}

#[tokio::test]
async fn an_invalid_token_answer_is_followed_by_one_new_token_and_one_retry() {
    let simulator = bank().await;
    let account = account(&simulator);
    let cx = CheckContext::new(reqwest::Client::new());
    account.fetch(&cx).await.unwrap();
    snap(&simulator).expire_tokens();
    account.fetch(&cx).await.unwrap();
    assert_eq!(snap(&simulator).token_requests(), 2);
    // The refused inquiry, then the retry.
    assert_eq!((simulator.requests(), simulator.rejected()), (5, 1));
}

#[tokio::test]
async fn a_wrong_private_key_is_auth_at_the_token_step() {
    let simulator = bank().await;
    let mut account = account(&simulator);
    account.private_key = PrivateKey::from_pem(TEST_KEY).unwrap();
    let err = account
        .fetch(&CheckContext::new(reqwest::Client::new()))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Reason::Auth, "{err}");
    assert!(err.to_string().contains("4017300"), "{err}");
    assert_eq!(simulator.requests(), 1);
}

#[tokio::test]
async fn a_rotated_client_secret_is_auth_without_a_token_retry() {
    let simulator = bank().await;
    let account = account(&simulator);
    simulator.rotate_secret("rotated");
    let err = account
        .fetch(&CheckContext::new(reqwest::Client::new()))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Reason::Auth, "{err}");
    assert!(err.to_string().contains("4011100"), "{err}");
    assert_eq!(
        (snap(&simulator).token_requests(), simulator.requests()),
        (1, 2)
    );
}

#[tokio::test]
async fn a_rate_limit_and_a_maintenance_refusal_are_classified() {
    let simulator = bank().await;
    let account = account(&simulator);
    let cx = CheckContext::new(reqwest::Client::new());
    simulator.set_fault(Some(Fault::RateLimited { retry_after: 30 }));
    let err = account.fetch(&cx).await.unwrap_err();
    assert_eq!(err.reason(), Reason::RateLimited);
    simulator.set_fault(Some(Fault::Refusal));
    assert_eq!(
        account.fetch(&cx).await.unwrap_err().reason(),
        Reason::Rejected
    );
    assert_eq!(snap(&simulator).token_requests(), 1);
}

#[tokio::test]
async fn a_clock_far_from_the_banks_is_auth() {
    let simulator = bank().await;
    let account = account(&simulator);
    let offset = Arc::new(AtomicU64::new(600));
    let err = account.fetch(&context(&offset)).await.unwrap_err();
    assert_eq!(err.reason(), Reason::Auth, "{err}");
}

#[tokio::test]
async fn the_bank_refuses_a_replayed_external_id_and_a_missing_channel() {
    let simulator = bank().await;
    let account = account(&simulator);
    let cx = CheckContext::new(reqwest::Client::new());
    let token = account.token(&cx).await.unwrap().value;
    let send = |external_id: &'static str, channel: Option<&'static str>| {
        let timestamp = signing::timestamp(SystemTime::now());
        let body = br#"{"partnerReferenceNo":"1","accountNo":"1234567890"}"#;
        let url = endpoint(&account.base_url, "v1.0/balance-inquiry");
        let signature = signing::symmetric_signature(
            "demo-snap-secret-9a7e",
            &signing::string_to_sign("POST", url.path(), token.expose_secret(), body, &timestamp),
        );
        let mut request = cx
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .bearer_auth(token.expose_secret())
            .header("X-TIMESTAMP", timestamp)
            .header("X-SIGNATURE", signature)
            .header("X-PARTNER-ID", "demo-snap-id")
            .header("X-EXTERNAL-ID", external_id)
            .body(&body[..]);
        if let Some(channel) = channel {
            request = request.header("CHANNEL-ID", channel);
        }
        async move {
            let answer = request.send().await.unwrap();
            let status = answer.status().as_u16();
            let body: Value = answer.json().await.unwrap();
            (status, body["responseCode"].as_str().unwrap().to_owned())
        }
    };
    assert_eq!(
        send("20201029000001", Some("95051")).await,
        (200, "2001100".into())
    );
    assert_eq!(
        send("20201029000001", Some("95051")).await,
        (409, "4091100".into())
    );
    assert_eq!(send("20201029000002", None).await, (400, "4001102".into()));
    assert_eq!(
        send("2020-10-29", Some("95051")).await,
        (400, "4001101".into())
    );
}

#[test]
fn the_inquiry_is_signed_over_the_exact_body_and_path_sent() {
    let account = config(json!({"account_no": "1234567890", "balance_types": "Cash",
        "base_url": "https://gw.example/bank/"}));
    let url = endpoint(
        &account.base_url,
        account.balance_path.trim_start_matches('/'),
    );
    assert_eq!(relative_path(&url), "/bank/v1.0/balance-inquiry");
    let body = serde_json::to_string(&InquiryBody {
        partner_reference_no: "1",
        account_no: account.account_no.as_deref(),
        balance_types: &account.balance_types,
        additional_info: None,
    })
    .unwrap();
    assert_eq!(
        body,
        r#"{"partnerReferenceNo":"1","accountNo":"1234567890","balanceTypes":["Cash"]}"#
    );
    assert_eq!(signing::minify(body.as_bytes()), body.as_bytes());
}
