//! Tripay PPOB's server half: `GET /v2/ceksaldo` with the API key as a Bearer token.

use std::time::SystemTime;

use hyper::header::{ACCEPT, AUTHORIZATION};
use hyper::{Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::json;

use crate::providers::simulator::{
    Credentials, HttpResponse, Refusal, Route, SimRequest, Supplier, json, json_amount,
};

pub struct Tripay;

impl Supplier for Tripay {
    /// Tripay's only credential is the API key; it is the demo's secret, so that rotating the
    /// secret breaks authentication.
    fn account_fields(
        &self,
        credentials: &Credentials,
        base_url: &str,
    ) -> Vec<(&'static str, String)> {
        vec![
            ("api_key", credentials.secret_key.clone()),
            ("base_url", base_url.to_owned()),
        ]
    }

    /// GET /v2/ceksaldo, no body, `Accept: application/json`, `Authorization: Bearer <key>`.
    fn verify(
        &self,
        request: &SimRequest<'_>,
        credentials: &Credentials,
    ) -> Result<Route, Refusal> {
        let parts = request.parts;
        if parts.method != Method::GET || !parts.uri.path().ends_with("/v2/ceksaldo") {
            return Err((StatusCode::NOT_FOUND, "NOT_FOUND"));
        }
        if !request.body.is_empty() {
            return Err((StatusCode::BAD_REQUEST, "UNEXPECTED_BODY"));
        }
        if request.header(ACCEPT.as_str()) != Some("application/json") {
            return Err((StatusCode::BAD_REQUEST, "INVALID_ACCEPT"));
        }
        let expected = format!("Bearer {}", credentials.secret_key);
        if request.header(AUTHORIZATION.as_str()) != Some(expected.as_str()) {
            // Undocumented status: the envelope at 200 makes the client classify by message.
            return Err((StatusCode::OK, "INVALID_API_KEY"));
        }
        Ok(Route::Balance)
    }

    fn success(&self, balance: Decimal, _: &Credentials, _: SystemTime) -> HttpResponse {
        json(
            StatusCode::OK,
            &json!({
                "success": true,
                "message": format!("Saldo anda Rp. {}", rupiah(balance)),
                "data": json_amount(balance),
            }),
        )
    }

    fn failure(&self, status: StatusCode, problem: &str) -> HttpResponse {
        let message = match problem {
            "INVALID_API_KEY" => "Invalid API Key".to_owned(),
            "MAINTENANCE" => "Server sedang dalam pemeliharaan".to_owned(),
            other => other.replace('_', " ").to_lowercase(),
        };
        json(status, &json!({"success": false, "message": message}))
    }
}

/// `1.000.000.000`: whole rupiah grouped by dots, as in the documented message.
fn rupiah(balance: Decimal) -> String {
    let digits = balance.trunc().abs().to_string();
    let mut text = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            text.push('.');
        }
        text.push(digit);
    }
    if balance.is_sign_negative() && !balance.trunc().is_zero() {
        text.insert(0, '-');
    }
    text
}

#[cfg(test)]
mod tests {
    use hyper::Request;

    use super::*;

    fn verify(request: Request<()>) -> Result<(), &'static str> {
        let (parts, ()) = request.into_parts();
        let request = SimRequest {
            parts: &parts,
            body: b"",
            now: SystemTime::now(),
        };
        Tripay
            .verify(&request, &Credentials::demo("tripay"))
            .map(|_| ())
            .map_err(|(_, problem)| problem)
    }

    #[test]
    fn only_the_secret_as_bearer_token_with_json_accept_passes() {
        let secret = Credentials::demo("tripay").secret_key;
        let good = || {
            Request::get("/api/v2/ceksaldo")
                .header(ACCEPT, "application/json")
                .header(AUTHORIZATION, format!("Bearer {secret}"))
        };
        assert_eq!(verify(good().body(()).unwrap()), Ok(()));
        let api_key = Credentials::demo("tripay").api_key;
        let wrong = Request::get("/api/v2/ceksaldo")
            .header(ACCEPT, "application/json")
            .header(AUTHORIZATION, format!("Bearer {api_key}"));
        assert_eq!(verify(wrong.body(()).unwrap()), Err("INVALID_API_KEY"));
        let bare = Request::get("/api/v2/ceksaldo")
            .header(ACCEPT, "application/json")
            .header(AUTHORIZATION, secret.as_str());
        assert_eq!(verify(bare.body(()).unwrap()), Err("INVALID_API_KEY"));
        let no_accept =
            Request::get("/api/v2/ceksaldo").header(AUTHORIZATION, format!("Bearer {secret}"));
        assert_eq!(verify(no_accept.body(()).unwrap()), Err("INVALID_ACCEPT"));
        let post = Request::post("/api/v2/ceksaldo")
            .header(ACCEPT, "application/json")
            .header(AUTHORIZATION, format!("Bearer {secret}"));
        assert_eq!(verify(post.body(()).unwrap()), Err("NOT_FOUND"));
    }

    #[test]
    fn the_message_writes_the_balance_the_indonesian_way() {
        assert_eq!(rupiah(Decimal::from(1_000_000_000)), "1.000.000.000");
        assert_eq!(rupiah("1234567.5".parse().unwrap()), "1.234.567");
        assert_eq!(rupiah(Decimal::from(999)), "999");
    }
}
