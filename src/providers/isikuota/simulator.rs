//! isikuota's server half: verifies the signed `POST /v1/balance` as documented.

use std::time::{Duration, SystemTime};

use hyper::{Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::providers::simulator::{
    Credentials, HttpResponse, Refusal, Route, SimRequest, Supplier, json, json_amount,
};
use crate::providers::unix_seconds;
use crate::signing;

/// isikuota accepts timestamps this far from its own clock. The real limit is undocumented;
/// five minutes is the usual choice for signed APIs.
pub const CLOCK_SKEW: Duration = Duration::from_secs(300);

pub struct Isikuota;

impl Supplier for Isikuota {
    fn account_fields(
        &self,
        credentials: &Credentials,
        base_url: &str,
    ) -> Vec<(&'static str, String)> {
        vec![
            ("api_id", credentials.id.clone()),
            ("api_key", credentials.api_key.clone()),
            ("secret_key", credentials.secret_key.clone()),
            ("base_url", base_url.to_owned()),
        ]
    }

    /// POST /v1/balance, JSON `{api_id, timestamp, signature}` signed as documented.
    fn verify(
        &self,
        request: &SimRequest<'_>,
        credentials: &Credentials,
    ) -> Result<Route, Refusal> {
        let parts = request.parts;
        if parts.method != Method::POST || !parts.uri.path().ends_with("/v1/balance") {
            return Err((StatusCode::NOT_FOUND, "NOT_FOUND"));
        }
        request.require_json_content()?;
        let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(request.body) else {
            return Err((StatusCode::BAD_REQUEST, "INVALID_JSON"));
        };
        if fields.contains_key("api_key") || fields.contains_key("secret_key") {
            return Err((StatusCode::BAD_REQUEST, "KEY_MUST_NOT_BE_SENT"));
        }
        if fields.get("api_id").and_then(Value::as_str) != Some(credentials.id.as_str()) {
            return Err((StatusCode::UNAUTHORIZED, "INVALID_API_ID"));
        }
        let Some(timestamp) = fields.get("timestamp").and_then(Value::as_i64) else {
            return Err((StatusCode::BAD_REQUEST, "INVALID_TIMESTAMP"));
        };
        let skew = (unix_seconds(request.now) - timestamp).unsigned_abs();
        if skew > CLOCK_SKEW.as_secs() {
            return Err((StatusCode::UNAUTHORIZED, "TIMESTAMP_EXPIRED"));
        }
        let expected = signing::isikuota_signature(
            &credentials.id,
            &credentials.api_key,
            &credentials.secret_key,
            timestamp,
            &signing::isikuota_canonical_body(&fields),
        );
        if fields.get("signature").and_then(Value::as_str) != Some(expected.as_str()) {
            return Err((StatusCode::UNAUTHORIZED, "INVALID_SIGNATURE"));
        }
        Ok(Route::Balance)
    }

    fn success(&self, balance: Decimal, _: &Credentials, now: SystemTime) -> HttpResponse {
        json(
            StatusCode::OK,
            &json!({
                "success": true,
                "code": "SUCCESS",
                "message": "Saldo berhasil didapatkan",
                "data": {
                    "name": "Toko Pulsa Demo",
                    "balance": json_amount(balance),
                    "currency": "IDR",
                    "checked_at": jakarta_time(now),
                },
                "errors": null,
                "meta": null,
            }),
        )
    }

    fn failure(&self, status: StatusCode, problem: &str) -> HttpResponse {
        json(
            status,
            &json!({
                "success": false, "code": problem,
                "message": problem.replace('_', " ").to_lowercase(),
                "data": null, "errors": null, "meta": null,
            }),
        )
    }
}

/// `YYYY-MM-DD HH:MM:SS` in Jakarta time (UTC+7), like isikuota's `checked_at`.
fn jakarta_time(now: SystemTime) -> String {
    let seconds = unix_seconds(now) + 7 * 3600;
    let (days, time) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        time / 3600,
        time / 60 % 60,
        time % 60
    )
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use hyper::Request;
    use hyper::header::CONTENT_TYPE;

    use super::*;

    #[test]
    fn checked_at_is_jakarta_wall_time() {
        let at = UNIX_EPOCH + Duration::from_secs(1780222918);
        assert_eq!(jakarta_time(at), "2026-05-31 17:21:58");
        assert_eq!(jakarta_time(UNIX_EPOCH), "1970-01-01 07:00:00");
    }

    #[test]
    fn a_stale_timestamp_and_a_wrong_signature_are_refused() {
        let credentials = Credentials::demo("isikuota");
        let now = UNIX_EPOCH + Duration::from_secs(1780222918);
        let verify = |timestamp: i64, secret: &str| {
            let signature = signing::isikuota_signature(
                &credentials.id,
                &credentials.api_key,
                secret,
                timestamp,
                "",
            );
            let body =
                json!({"api_id": credentials.id, "timestamp": timestamp, "signature": signature});
            let (parts, ()) = Request::post("/v1/balance")
                .header(CONTENT_TYPE, "application/json")
                .body(())
                .unwrap()
                .into_parts();
            let body = body.to_string();
            let request = SimRequest {
                parts: &parts,
                body: body.as_bytes(),
                now,
            };
            Isikuota.verify(&request, &credentials).map(|_| ())
        };
        assert_eq!(verify(1780222918, &credentials.secret_key), Ok(()));
        assert_eq!(verify(1780222918 - 299, &credentials.secret_key), Ok(()));
        assert_eq!(
            verify(1780222918 - 301, &credentials.secret_key)
                .unwrap_err()
                .1,
            "TIMESTAMP_EXPIRED"
        );
        assert_eq!(
            verify(1780222918, "wrong").unwrap_err().1,
            "INVALID_SIGNATURE"
        );
    }
}
