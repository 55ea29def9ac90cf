//! Duitku's server half: verifies the signed `POST /webapi/api/disbursement/checkbalance`,
//! recomputing the signature from the timestamp in the body it received.

use std::time::{Duration, SystemTime};

use hyper::{Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::{signature, unix_millis};
use crate::providers::simulator::{
    Credentials, HttpResponse, Refusal, Route, SimRequest, Supplier, json,
};

/// Duitku refuses timestamps further than this from its clock (`-960`).
pub const CLOCK_SKEW: Duration = Duration::from_secs(300);

pub struct Duitku;

/// The demo account's `userId`: Duitku's is an integer, the demo identity is text, so text that
/// is no number is mapped onto a stable one.
pub fn user_id(credentials: &Credentials) -> u64 {
    credentials.id.parse().unwrap_or_else(|_| {
        // FNV-1a, folded into six digits like real user ids.
        let hash = credentials
            .id
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        100_000 + hash % 900_000
    })
}

impl Supplier for Duitku {
    /// The secret key is the demo's secret, so that rotating the secret breaks the signature.
    fn account_fields(
        &self,
        credentials: &Credentials,
        base_url: &str,
    ) -> Vec<(&'static str, String)> {
        vec![
            ("user_id", user_id(credentials).to_string()),
            ("email", credentials.api_key.clone()),
            ("secret_key", credentials.secret_key.clone()),
            ("base_url", base_url.to_owned()),
        ]
    }

    /// POST, JSON `{userId (integer), email, timestamp (integer ms within ±5 min), signature}`
    /// with `signature = sha256hex(email + timestamp + secretKey)` over the body's own values.
    fn verify(
        &self,
        request: &SimRequest<'_>,
        credentials: &Credentials,
    ) -> Result<Route, Refusal> {
        let parts = request.parts;
        if parts.method != Method::POST
            || !parts
                .uri
                .path()
                .ends_with("/webapi/api/disbursement/checkbalance")
        {
            return Err((StatusCode::NOT_FOUND, "NOT_FOUND"));
        }
        request
            .require_json_content()
            .map_err(|_| (StatusCode::BAD_REQUEST, "INVALID_PARAMETER"))?;
        let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(request.body) else {
            return Err((StatusCode::BAD_REQUEST, "INVALID_PARAMETER"));
        };
        if fields.contains_key("secretKey") || fields.contains_key("secret_key") {
            return Err((StatusCode::BAD_REQUEST, "INVALID_PARAMETER"));
        }
        // Refusals at 400: Duitku documents no status, and 400 makes the client find `auth` in
        // the envelope of a non-2xx answer.
        if fields.get("userId").and_then(Value::as_u64) != Some(user_id(credentials)) {
            return Err((StatusCode::BAD_REQUEST, "USER_NOT_FOUND"));
        }
        let Some(email) = fields.get("email").and_then(Value::as_str) else {
            return Err((StatusCode::BAD_REQUEST, "USER_NOT_FOUND"));
        };
        if email != credentials.api_key {
            return Err((StatusCode::BAD_REQUEST, "USER_NOT_FOUND"));
        }
        let Some(timestamp) = fields.get("timestamp").and_then(Value::as_i64) else {
            return Err((StatusCode::BAD_REQUEST, "TIMESTAMP_EXPIRED"));
        };
        let skew = (unix_millis(request.now) - timestamp).unsigned_abs();
        if u128::from(skew) > CLOCK_SKEW.as_millis() {
            return Err((StatusCode::BAD_REQUEST, "TIMESTAMP_EXPIRED"));
        }
        let expected = signature(email, timestamp, &credentials.secret_key);
        if fields.get("signature").and_then(Value::as_str) != Some(expected.as_str()) {
            return Err((StatusCode::BAD_REQUEST, "INVALID_SIGNATURE"));
        }
        Ok(Route::Balance)
    }

    /// Both amounts as strings, the shape Duitku's test data shows (the documentation's sample,
    /// the property tests' seed, has numbers).
    fn success(&self, balance: Decimal, credentials: &Credentials, _: SystemTime) -> HttpResponse {
        let amount = balance.normalize().to_string();
        json(
            StatusCode::OK,
            &json!({
                "userId": user_id(credentials),
                "email": credentials.api_key,
                "balance": amount,
                "effectiveBalance": amount,
                "responseCode": "00",
                "responseDesc": "Success",
            }),
        )
    }

    fn failure(&self, status: StatusCode, problem: &str) -> HttpResponse {
        let (code, description) = match problem {
            "INVALID_SIGNATURE" => ("-191", "Wrong signature"),
            "USER_NOT_FOUND" => ("-120", "User not found"),
            "USER_BLOCKED" => ("-123", "User blocked"),
            "IP_NOT_WHITELISTED" => ("-930", "IP not whitelisted"),
            "TIMESTAMP_EXPIRED" => ("-960", "Timestamp expired"),
            "INVALID_PARAMETER" => ("-952", "Invalid parameter"),
            "MAINTENANCE" => ("EE", "General error"),
            _ => ("-100", "Other error"),
        };
        json(
            status,
            &json!({"responseCode": code, "responseDesc": description}),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use hyper::Request;
    use hyper::header::CONTENT_TYPE;

    use super::*;

    fn verify(body: &Value, now_ms: u64) -> Result<(), &'static str> {
        let (parts, ()) = Request::post("/webapi/api/disbursement/checkbalance")
            .header(CONTENT_TYPE, "application/json")
            .body(())
            .unwrap()
            .into_parts();
        let body = body.to_string();
        let request = SimRequest {
            parts: &parts,
            body: body.as_bytes(),
            now: UNIX_EPOCH + Duration::from_millis(now_ms),
        };
        Duitku
            .verify(&request, &Credentials::demo("duitku"))
            .map(|_| ())
            .map_err(|(_, problem)| problem)
    }

    fn signed(timestamp: i64, secret: &str) -> Value {
        let credentials = Credentials::demo("duitku");
        json!({
            "userId": user_id(&credentials),
            "email": credentials.api_key,
            "timestamp": timestamp,
            "signature": signature(&credentials.api_key, timestamp, secret),
        })
    }

    #[test]
    fn the_signature_is_recomputed_from_the_timestamp_received_within_five_minutes() {
        let secret = Credentials::demo("duitku").secret_key;
        let now = 1_780_222_918_437u64;
        let at = now as i64;
        assert_eq!(verify(&signed(at, &secret), now), Ok(()));
        assert_eq!(verify(&signed(at - 299_999, &secret), now), Ok(()));
        assert_eq!(verify(&signed(at + 300_000, &secret), now), Ok(()));
        assert_eq!(
            verify(&signed(at - 300_001, &secret), now),
            Err("TIMESTAMP_EXPIRED")
        );
        // Seconds instead of milliseconds read as 1970: far outside the window.
        assert_eq!(
            verify(&signed(at / 1000, &secret), now),
            Err("TIMESTAMP_EXPIRED")
        );
        assert_eq!(verify(&signed(at, "wrong"), now), Err("INVALID_SIGNATURE"));
        // Signed over one timestamp, another sent.
        let mut moved = signed(at, &secret);
        moved["timestamp"] = json!(at + 1);
        assert_eq!(verify(&moved, now), Err("INVALID_SIGNATURE"));
    }

    #[test]
    fn a_missing_or_mistyped_field_is_an_auth_failure_envelope() {
        let secret = Credentials::demo("duitku").secret_key;
        let now = 1_780_222_918_437u64;
        let good = signed(now as i64, &secret);
        for (field, problem) in [
            ("userId", "USER_NOT_FOUND"),
            ("email", "USER_NOT_FOUND"),
            ("timestamp", "TIMESTAMP_EXPIRED"),
            ("signature", "INVALID_SIGNATURE"),
        ] {
            let mut body = good.clone();
            body.as_object_mut().unwrap().remove(field);
            assert_eq!(verify(&body, now), Err(problem), "{field}");
        }
        let mut text_id = good.clone();
        text_id["userId"] = json!(user_id(&Credentials::demo("duitku")).to_string());
        assert_eq!(verify(&text_id, now), Err("USER_NOT_FOUND"));
    }

    #[test]
    fn the_demo_user_id_is_a_stable_whole_number() {
        let demo = Credentials::demo("duitku");
        assert_eq!(user_id(&demo), user_id(&demo));
        assert!((100_000..1_000_000).contains(&user_id(&demo)));
        let numeric = Credentials {
            id: "3551".into(),
            ..demo
        };
        assert_eq!(user_id(&numeric), 3551);
    }
}
