//! Digiflazz's server half: verifies the signed `POST /v1/cek-saldo` and answers errors the
//! way Digiflazz does, as HTTP 400 with `{"data": {"rc", "message"}}`.

use std::time::SystemTime;

use hyper::{Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::sign;
use crate::providers::simulator::{
    Credentials, HttpResponse, Refusal, Route, SimRequest, Supplier, json, json_amount,
};

pub struct Digiflazz;

impl Supplier for Digiflazz {
    /// The demo secret is the API key, so a rotated secret breaks the sign.
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

    /// POST /v1/cek-saldo, JSON `{"cmd": "deposit", "username", "sign"}` with
    /// `sign = md5(username + api_key + "depo")`.
    fn verify(
        &self,
        request: &SimRequest<'_>,
        credentials: &Credentials,
    ) -> Result<Route, Refusal> {
        let parts = request.parts;
        if parts.method != Method::POST || !parts.uri.path().ends_with("/v1/cek-saldo") {
            return Err((StatusCode::NOT_FOUND, "NOT_FOUND"));
        }
        request
            .require_json_content()
            .map_err(|_| (StatusCode::BAD_REQUEST, "INVALID_PAYLOAD"))?;
        let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(request.body) else {
            return Err((StatusCode::BAD_REQUEST, "INVALID_PAYLOAD"));
        };
        if fields.get("cmd").and_then(Value::as_str) != Some("deposit") {
            return Err((StatusCode::BAD_REQUEST, "INVALID_PAYLOAD"));
        }
        if fields.get("username").and_then(Value::as_str) != Some(credentials.id.as_str()) {
            return Err((StatusCode::BAD_REQUEST, "INVALID_USERNAME"));
        }
        let expected = sign(&credentials.id, &credentials.secret_key);
        if fields.get("sign").and_then(Value::as_str) != Some(expected.as_str()) {
            return Err((StatusCode::BAD_REQUEST, "INVALID_SIGNATURE"));
        }
        Ok(Route::Balance)
    }

    fn success(&self, balance: Decimal, _: &Credentials, _: SystemTime) -> HttpResponse {
        json(
            StatusCode::OK,
            &json!({"data": {"deposit": json_amount(balance)}}),
        )
    }

    /// Digiflazz's buyer codes. Its errors are never 2xx (400 observed), so a refusal asked
    /// for with 200 (a maintenance) goes out as 400 too.
    fn failure(&self, status: StatusCode, problem: &str) -> HttpResponse {
        let (rc, message) = match problem {
            "NOT_FOUND" => return json(status, &json!({"message": "Not Found"})),
            "INVALID_PAYLOAD" => ("40", "Payload Error"),
            "INVALID_SIGNATURE" => ("41", "Signature tidak valid"),
            "INVALID_USERNAME" => ("42", "Username tidak valid"),
            _ => ("99", "Sistem sedang gangguan"),
        };
        let status = if status.is_success() {
            StatusCode::BAD_REQUEST
        } else {
            status
        };
        json(status, &json!({"data": {"rc": rc, "message": message}}))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hyper::Request;
    use hyper::header::CONTENT_TYPE;

    use super::*;
    use crate::error::Reason;
    use crate::providers::simulator::Simulator;
    use crate::providers::{CheckContext, Provider, ProviderConfig};

    fn verify(content_type: &str, body: Value) -> Result<(), &'static str> {
        let credentials = Credentials::demo("digiflazz");
        let (parts, ()) = Request::post("/v1/cek-saldo")
            .header(CONTENT_TYPE, content_type)
            .body(())
            .unwrap()
            .into_parts();
        let body = body.to_string();
        let request = SimRequest {
            parts: &parts,
            body: body.as_bytes(),
            now: SystemTime::now(),
        };
        Digiflazz
            .verify(&request, &credentials)
            .map(|_| ())
            .map_err(|(_, problem)| problem)
    }

    #[test]
    fn only_the_documented_request_is_accepted() {
        let credentials = Credentials::demo("digiflazz");
        let good = sign(&credentials.id, &credentials.secret_key);
        let json = "application/json";
        let user = credentials.id.as_str();
        assert_eq!(
            verify(
                json,
                json!({"cmd": "deposit", "username": user, "sign": good})
            ),
            Ok(())
        );
        let cases = [
            (
                json,
                json!({"username": user, "sign": good}),
                "INVALID_PAYLOAD",
            ),
            (
                json,
                json!({"cmd": "deposit", "sign": good}),
                "INVALID_USERNAME",
            ),
            (
                json,
                json!({"cmd": "deposit", "username": user}),
                "INVALID_SIGNATURE",
            ),
            (
                json,
                json!({"cmd": "deposit", "username": user, "sign": sign(user, &credentials.api_key)}),
                "INVALID_SIGNATURE",
            ),
            (
                "text/plain",
                json!({"cmd": "deposit", "username": user, "sign": good}),
                "INVALID_PAYLOAD",
            ),
        ];
        for (content_type, body, problem) in cases {
            assert_eq!(verify(content_type, body.clone()), Err(problem), "{body}");
        }
    }

    #[tokio::test]
    async fn a_wrong_key_is_refused_with_rc_41_on_400_and_reads_as_auth() {
        let simulator = Simulator::start("digiflazz", Decimal::from(75_000))
            .await
            .unwrap();
        let fields = simulator
            .account_fields()
            .into_iter()
            .map(|(field, value)| (field.to_owned(), Value::String(value)))
            .collect();
        let provider = ProviderConfig::from_fields("digiflazz", fields)
            .unwrap()
            .unwrap();
        let provider: &Arc<dyn Provider> = provider.provider();
        let cx = CheckContext::new(reqwest::Client::new());
        assert_eq!(
            provider.fetch(&cx).await.unwrap().amount,
            Decimal::from(75_000)
        );
        simulator.rotate_secret("dev-rotated-key");
        let err = provider.fetch(&cx).await.unwrap_err();
        assert_eq!(err.reason(), Reason::Auth, "{err}");
        assert!(err.to_string().contains("rc 41"), "{err}");
        assert!(!err.to_string().contains("dev-rotated-key"));
        assert_eq!(simulator.rejected(), 1);
    }

    #[test]
    fn errors_go_out_as_400_with_the_rc_envelope() {
        let response = Digiflazz.failure(StatusCode::OK, "MAINTENANCE");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
}
