//! IAK's server half: verifies the signed `POST /api/check-balance` and answers with IAK's
//! envelopes, HTTP 200 and `data.rc` (`"00"`, or `"204"` WRONG AUTHENTICATION).

use std::time::SystemTime;

use hyper::{Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::sign;
use crate::providers::simulator::{
    Credentials, HttpResponse, Refusal, Route, SimRequest, Supplier, json, json_amount,
};

pub struct Iak;

impl Supplier for Iak {
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

    /// POST /api/check-balance, JSON `{"username", "sign"}` with
    /// `sign = md5(username + api_key + "bl")`. IAK also takes XML; the exporter sends JSON,
    /// so anything else is refused here.
    fn verify(
        &self,
        request: &SimRequest<'_>,
        credentials: &Credentials,
    ) -> Result<Route, Refusal> {
        let parts = request.parts;
        if parts.method != Method::POST || !parts.uri.path().ends_with("/api/check-balance") {
            return Err((StatusCode::NOT_FOUND, "NOT_FOUND"));
        }
        // Every refusal is IAK's own: HTTP 200 and rc 204.
        let refused = (StatusCode::OK, "WRONG_AUTHENTICATION");
        request.require_json_content().map_err(|_| refused)?;
        let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(request.body) else {
            return Err(refused);
        };
        let expected = sign(&credentials.id, &credentials.secret_key);
        let username = fields.get("username").and_then(Value::as_str);
        let signature = fields.get("sign").and_then(Value::as_str);
        if username != Some(credentials.id.as_str()) || signature != Some(expected.as_str()) {
            return Err(refused);
        }
        Ok(Route::Balance)
    }

    fn success(&self, balance: Decimal, _: &Credentials, _: SystemTime) -> HttpResponse {
        json(
            StatusCode::OK,
            &json!({"data": {"balance": json_amount(balance), "message": "SUCCESS", "rc": "00"}}),
        )
    }

    /// IAK's documented codes; a maintenance has none of its own, so it is the documented
    /// catch-all 201.
    fn failure(&self, status: StatusCode, problem: &str) -> HttpResponse {
        let (rc, message) = match problem {
            "NOT_FOUND" => return json(status, &json!({"message": "Not Found"})),
            "WRONG_AUTHENTICATION" => ("204", "WRONG AUTHENTICATION"),
            _ => ("201", "UNDEFINED RESPONSE CODE"),
        };
        json(status, &json!({"data": {"rc": rc, "message": message}}))
    }
}

#[cfg(test)]
mod tests {
    use hyper::Request;
    use hyper::header::CONTENT_TYPE;

    use super::*;
    use crate::error::Reason;
    use crate::providers::simulator::Simulator;
    use crate::providers::{CheckContext, ProviderConfig};

    fn verify(content_type: &str, body: Value) -> Result<(), Refusal> {
        let credentials = Credentials::demo("iak");
        let (parts, ()) = Request::post("/api/check-balance")
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
        Iak.verify(&request, &credentials).map(|_| ())
    }

    #[test]
    fn only_the_documented_request_is_accepted() {
        let credentials = Credentials::demo("iak");
        let good = sign(&credentials.id, &credentials.secret_key);
        let user = credentials.id.as_str();
        let json = "application/json";
        assert!(verify(json, json!({"username": user, "sign": good})).is_ok());
        let refused = Err((StatusCode::OK, "WRONG_AUTHENTICATION"));
        for (content_type, body) in [
            (json, json!({"username": user})),
            (json, json!({"sign": good})),
            (json, json!({"username": "081234567890", "sign": good})),
            (
                json,
                json!({"username": user, "sign": sign(user, &credentials.api_key)}),
            ),
            ("text/plain", json!({"username": user, "sign": good})),
        ] {
            assert_eq!(verify(content_type, body.clone()), refused, "{body}");
        }
    }

    #[tokio::test]
    async fn a_wrong_key_is_refused_with_rc_204_and_reads_as_auth() {
        let simulator = Simulator::start("iak", Decimal::from(42_500))
            .await
            .unwrap();
        let fields = simulator
            .account_fields()
            .into_iter()
            .map(|(field, value)| (field.to_owned(), Value::String(value)))
            .collect();
        let provider = ProviderConfig::from_fields("iak", fields).unwrap().unwrap();
        let cx = CheckContext::new(reqwest::Client::new());
        let balance = provider.provider().fetch(&cx).await.unwrap();
        assert_eq!(balance.amount, Decimal::from(42_500));
        simulator.rotate_secret("rotated-in-the-dashboard");
        let err = provider.provider().fetch(&cx).await.unwrap_err();
        assert_eq!(err.reason(), Reason::Auth, "{err}");
        assert!(err.to_string().contains("rc 204"), "{err}");
        assert_eq!(simulator.rejected(), 1);
    }
}
