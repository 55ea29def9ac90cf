//! Ayopop's server half: verifies the headers and the JWT of `partner/balance`.

use std::time::SystemTime;

use hyper::header::ACCEPT;
use hyper::{Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::providers::simulator::{
    Credentials, HttpResponse, Refusal, Route, SimRequest, Supplier, json, json_amount,
};

pub struct Ayopop;

impl Supplier for Ayopop {
    fn account_fields(
        &self,
        credentials: &Credentials,
        base_url: &str,
    ) -> Vec<(&'static str, String)> {
        vec![
            ("partner_id", credentials.id.clone()),
            ("api_key", credentials.api_key.clone()),
            ("secret_key", credentials.secret_key.clone()),
            ("base_url", base_url.to_owned()),
        ]
    }

    /// POST /api/v{1,2}/partner/balance with `KEY`, `VERSION: 1.0`, JSON content and accept
    /// headers, and a `TOKEN` that is an HS256 JWT of `{"partnerId"}` under the secret.
    fn verify(
        &self,
        request: &SimRequest<'_>,
        credentials: &Credentials,
    ) -> Result<Route, Refusal> {
        let parts = request.parts;
        let path = parts.uri.path();
        if parts.method != Method::POST
            || !(path.ends_with("/api/v1/partner/balance")
                || path.ends_with("/api/v2/partner/balance"))
        {
            return Err((StatusCode::NOT_FOUND, "NOT_FOUND"));
        }
        request.require_json_content()?;
        if request.header(ACCEPT.as_str()) != Some("application/json") {
            return Err((StatusCode::BAD_REQUEST, "INVALID_ACCEPT"));
        }
        if request.header("VERSION") != Some("1.0") {
            return Err((StatusCode::BAD_REQUEST, "INVALID_VERSION"));
        }
        if request.header("KEY") != Some(credentials.api_key.as_str()) {
            return Err((StatusCode::UNAUTHORIZED, "INVALID_KEY"));
        }
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        // The documented token has no `exp`.
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        let claims = request.header("TOKEN").and_then(|token| {
            jsonwebtoken::decode::<Value>(
                token,
                &jsonwebtoken::DecodingKey::from_secret(credentials.secret_key.as_bytes()),
                &validation,
            )
            .ok()
        });
        let expected = json!({"partnerId": credentials.id});
        if claims.map(|data| data.claims) != Some(expected.clone()) {
            return Err((StatusCode::UNAUTHORIZED, "INVALID_TOKEN"));
        }
        // The official samples send no body; the seed sends the payload. Either is fine,
        // another partner's id is not.
        if !request.body.is_empty()
            && serde_json::from_slice::<Value>(request.body).ok() != Some(expected)
        {
            return Err((StatusCode::BAD_REQUEST, "INVALID_BODY"));
        }
        Ok(Route::Balance)
    }

    fn success(&self, balance: Decimal, credentials: &Credentials, _: SystemTime) -> HttpResponse {
        json(
            StatusCode::OK,
            &json!({
                "responseCode": 0,
                "success": true,
                "message": {"ID": "sukses", "EN": "success"},
                "data": {"balance": json_amount(balance), "currency": "IDR", "partnerId": credentials.id},
            }),
        )
    }

    fn failure(&self, status: StatusCode, problem: &str) -> HttpResponse {
        json(
            status,
            &json!({
                "responseCode": if problem == "MAINTENANCE" { 27 } else { 14 },
                "success": false,
                "message": {"ID": problem, "EN": problem.replace('_', " ").to_lowercase()},
                "data": null,
            }),
        )
    }
}
