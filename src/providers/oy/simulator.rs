//! OY!'s server half: verifies the headers of `GET /api/balance` and answers OY!'s envelopes.

use std::time::SystemTime;

use hyper::header::ACCEPT;
use hyper::{Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::json;

use crate::providers::simulator::{
    Credentials, HttpResponse, Refusal, Route, SimRequest, Supplier, json, json_amount,
};
use crate::providers::unix_seconds;

/// Money on its way out, shown as `pendingBalance`: `balance` is available plus pending, so a
/// client reading `balance` instead of `availableBalance` fails the round trip.
const PENDING: i64 = 1_500_000;

pub struct Oy;

impl Supplier for Oy {
    /// The API key is the demo's secret, so that rotating the secret breaks authentication.
    fn account_fields(
        &self,
        credentials: &Credentials,
        base_url: &str,
    ) -> Vec<(&'static str, String)> {
        vec![
            ("username", credentials.id.clone()),
            ("api_key", credentials.secret_key.clone()),
            ("base_url", base_url.to_owned()),
        ]
    }

    /// GET /api/balance, no body, JSON content type and accept, `X-OY-Username` and
    /// `X-Api-Key`. The IP whitelist is not simulated: every caller is on loopback.
    fn verify(
        &self,
        request: &SimRequest<'_>,
        credentials: &Credentials,
    ) -> Result<Route, Refusal> {
        let parts = request.parts;
        if parts.method != Method::GET || !parts.uri.path().ends_with("/api/balance") {
            return Err((StatusCode::NOT_FOUND, "NOT_FOUND"));
        }
        if !request.body.is_empty() {
            return Err((StatusCode::OK, "INVALID_FORMAT"));
        }
        request
            .require_json_content()
            .map_err(|_| (StatusCode::OK, "INVALID_FORMAT"))?;
        if request.header(ACCEPT.as_str()) != Some("application/json") {
            return Err((StatusCode::OK, "INVALID_FORMAT"));
        }
        // OY! documents no HTTP status for refusals; the envelope at 200 makes the client rely
        // on `status.code`, as the documentation says to.
        if request.header("X-OY-Username") != Some(credentials.id.as_str()) {
            return Err((StatusCode::OK, "USER_NOT_FOUND"));
        }
        if request.header("X-Api-Key") != Some(credentials.secret_key.as_str()) {
            return Err((StatusCode::OK, "INVALID_API_KEY"));
        }
        Ok(Route::Balance)
    }

    fn success(&self, balance: Decimal, _: &Credentials, now: SystemTime) -> HttpResponse {
        let pending = Decimal::from(PENDING);
        json(
            StatusCode::OK,
            &json!({
                "status": {"code": "000", "message": "Success"},
                "balance": json_amount(balance + pending),
                "overdraftBalance": 0,
                "overbookingBalance": 0,
                "pendingBalance": json_amount(pending),
                "availableBalance": json_amount(balance),
                "timestamp": utc_timestamp(now),
            }),
        )
    }

    fn failure(&self, status: StatusCode, problem: &str) -> HttpResponse {
        let (code, message) = match problem {
            "USER_NOT_FOUND" => ("201", "Request is Rejected (User ID is not Found)"),
            "USER_NOT_ACTIVE" => ("202", "Request is Rejected (User ID is not Active)"),
            "IP_NOT_WHITELISTED" => (
                "207",
                "Request is Rejected (Request IP Address is not Registered)",
            ),
            "INVALID_API_KEY" => ("208", "Request is Rejected (API Key is not Valid)"),
            "TOO_MANY_REQUESTS" => ("429", "Too Many Requests"),
            "MAINTENANCE" => ("999", "Internal Server Error"),
            _ => ("900", "Invalid Format"),
        };
        json(
            status,
            &json!({
                "status": {"code": code, "message": message},
                "timestamp": utc_timestamp(SystemTime::now()),
            }),
        )
    }
}

/// `dd-MM-yyyy HH:mm:ss` in UTC, OY!'s `timestamp`.
fn utc_timestamp(now: SystemTime) -> String {
    let seconds = unix_seconds(now);
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
        "{day:02}-{month:02}-{year:04} {:02}:{:02}:{:02}",
        time / 3600,
        time / 60 % 60,
        time % 60
    )
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use hyper::Request;
    use hyper::header::CONTENT_TYPE;

    use super::*;

    fn verify(request: hyper::http::request::Builder) -> Result<(), &'static str> {
        let (parts, ()) = request.body(()).unwrap().into_parts();
        let request = SimRequest {
            parts: &parts,
            body: b"",
            now: SystemTime::now(),
        };
        Oy.verify(&request, &Credentials::demo("oy"))
            .map(|_| ())
            .map_err(|(_, problem)| problem)
    }

    #[test]
    fn only_the_demo_username_and_secret_with_json_headers_pass() {
        let credentials = Credentials::demo("oy");
        let with = |username: &str, key: &str| {
            Request::get("/api/balance")
                .header(CONTENT_TYPE, "application/json")
                .header(ACCEPT, "application/json")
                .header("X-OY-Username", username)
                .header("X-Api-Key", key)
        };
        let (id, secret) = (&credentials.id, &credentials.secret_key);
        assert_eq!(verify(with(id, secret)), Ok(()));
        assert_eq!(
            verify(with(id, &credentials.api_key)),
            Err("INVALID_API_KEY")
        );
        assert_eq!(verify(with("other", secret)), Err("USER_NOT_FOUND"));
        let no_accept = Request::get("/api/balance")
            .header(CONTENT_TYPE, "application/json")
            .header("X-OY-Username", id)
            .header("X-Api-Key", secret);
        assert_eq!(verify(no_accept), Err("INVALID_FORMAT"));
        let no_key = Request::get("/api/balance")
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .header("X-OY-Username", id);
        assert_eq!(verify(no_key), Err("INVALID_API_KEY"));
    }

    #[test]
    fn the_timestamp_is_day_first_utc() {
        let at = UNIX_EPOCH + Duration::from_secs(1_575_980_137);
        assert_eq!(utc_timestamp(at), "10-12-2019 12:15:37");
    }
}
