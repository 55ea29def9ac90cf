//! iPaymu's server half: verifies `POST /api/v2/balance`, recomputing the signature from the
//! body bytes as they arrived.

use std::time::SystemTime;

use hyper::{Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::signature;
use crate::providers::simulator::{
    Credentials, HttpResponse, Refusal, Route, SimRequest, Supplier, json,
};

pub struct Ipaymu;

impl Supplier for Ipaymu {
    /// The demo secret is the API key, so rotating it breaks the signature.
    fn account_fields(
        &self,
        credentials: &Credentials,
        base_url: &str,
    ) -> Vec<(&'static str, String)> {
        vec![
            ("va", credentials.id.clone()),
            ("api_key", credentials.secret_key.clone()),
            ("base_url", base_url.to_owned()),
        ]
    }

    /// JSON content, the `va`, `timestamp` (`YmdHis`) and `signature` headers, the body
    /// `{"account": va}`, and the HMAC over exactly the bytes received. The allowed clock skew
    /// is undocumented, so only the timestamp's format is checked.
    fn verify(
        &self,
        request: &SimRequest<'_>,
        credentials: &Credentials,
    ) -> Result<Route, Refusal> {
        let parts = request.parts;
        if parts.method != Method::POST || !parts.uri.path().ends_with("/api/v2/balance") {
            return Err((StatusCode::NOT_FOUND, "NOT_FOUND"));
        }
        request.require_json_content()?;
        if request.header("va") != Some(credentials.id.as_str()) {
            return Err((StatusCode::UNAUTHORIZED, "INVALID_VA"));
        }
        let timestamp_ok = request
            .header("timestamp")
            .is_some_and(|t| t.len() == 14 && t.bytes().all(|b| b.is_ascii_digit()));
        if !timestamp_ok {
            return Err((StatusCode::BAD_REQUEST, "INVALID_TIMESTAMP"));
        }
        let expected = signature(&credentials.id, &credentials.secret_key, request.body);
        if request.header("signature") != Some(expected.as_str()) {
            return Err((StatusCode::UNAUTHORIZED, "INVALID_SIGNATURE"));
        }
        let body: Option<Value> = serde_json::from_slice(request.body).ok();
        if body != Some(json!({"account": credentials.id})) {
            return Err((StatusCode::BAD_REQUEST, "INVALID_BODY"));
        }
        Ok(Route::Balance)
    }

    /// `MerchantBalance` as a string, as documented.
    fn success(&self, balance: Decimal, credentials: &Credentials, _: SystemTime) -> HttpResponse {
        json(
            StatusCode::OK,
            &json!({
                "Status": 200,
                "Success": true,
                "Data": {
                    "Va": credentials.id,
                    "MerchantBalance": balance.normalize().to_string(),
                    "MemberBalance": "0",
                },
                "Message": "success",
            }),
        )
    }

    fn failure(&self, status: StatusCode, problem: &str) -> HttpResponse {
        let message = match problem {
            "INVALID_SIGNATURE" => "unauthorized signature",
            "INVALID_VA" => "unauthorized va",
            "INVALID_TIMESTAMP" => "invalid timestamp",
            "INVALID_CONTENT_TYPE" => "invalid content type",
            "MAINTENANCE" => "Service under maintenance",
            "NOT_FOUND" => "Not Found",
            _ => "Bad Request",
        };
        // A maintenance refusal comes with HTTP 200 but no success `Status`.
        let envelope_status = if status == StatusCode::OK {
            503
        } else {
            status.as_u16()
        };
        json(
            status,
            &json!({
                "Status": envelope_status,
                "Success": false,
                "Message": message,
                "Data": null,
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use hyper::Request;
    use hyper::header::CONTENT_TYPE;

    use super::*;

    fn verify(body: &[u8], signed: &[u8], secret: &str) -> Result<(), &'static str> {
        let credentials = Credentials::demo("ipaymu");
        let (parts, ()) = Request::post("/api/v2/balance")
            .header(CONTENT_TYPE, "application/json")
            .header("va", &credentials.id)
            .header("timestamp", "20260531172158")
            .header("signature", signature(&credentials.id, secret, signed))
            .body(())
            .unwrap()
            .into_parts();
        let request = SimRequest {
            parts: &parts,
            body,
            now: SystemTime::now(),
        };
        Ipaymu
            .verify(&request, &credentials)
            .map(|_| ())
            .map_err(|(_, problem)| problem)
    }

    #[test]
    fn the_signature_is_recomputed_from_the_bytes_received() {
        let credentials = Credentials::demo("ipaymu");
        let compact = super::super::body(&credentials.id);
        assert_eq!(verify(&compact, &compact, &credentials.secret_key), Ok(()));
        // The same JSON with a space is other bytes: a signature over the compact form fails.
        let spaced = format!(r#"{{"account": "{}"}}"#, credentials.id);
        assert_eq!(
            verify(spaced.as_bytes(), &compact, &credentials.secret_key),
            Err("INVALID_SIGNATURE")
        );
        assert_eq!(
            verify(
                spaced.as_bytes(),
                spaced.as_bytes(),
                &credentials.secret_key
            ),
            Ok(())
        );
        assert_eq!(
            verify(&compact, &compact, "rotated"),
            Err("INVALID_SIGNATURE")
        );
    }
}

#[cfg(test)]
mod round_trips {
    use rust_decimal::Decimal;

    use crate::error::Reason;
    use crate::providers::simulator::{Fault, Simulator};
    use crate::providers::{CheckContext, ProviderConfig};

    async fn check(simulator: &Simulator, change: &[(&str, &str)]) -> Result<Decimal, Reason> {
        let mut fields: serde_json::Map<_, _> = simulator
            .account_fields()
            .into_iter()
            .map(|(field, value)| (field.to_owned(), value.into()))
            .collect();
        for (field, value) in change {
            fields.insert((*field).to_owned(), (*value).into());
        }
        let provider = ProviderConfig::from_fields("ipaymu", fields)
            .unwrap()
            .unwrap();
        let cx = CheckContext::new(reqwest::Client::new());
        provider
            .provider()
            .fetch(&cx)
            .await
            .map(|balance| balance.amount)
            .map_err(|err| err.reason())
    }

    #[tokio::test]
    async fn the_simulator_accepts_the_client_and_classifies_its_refusals() {
        let simulator = Simulator::start("ipaymu", "1500000.25".parse().unwrap())
            .await
            .unwrap();
        assert_eq!(
            check(&simulator, &[]).await,
            Ok("1500000.25".parse().unwrap())
        );
        assert_eq!(
            check(&simulator, &[("va", "0000000000")]).await,
            Err(Reason::Auth)
        );
        assert_eq!(
            check(&simulator, &[("api_key", "wrong")]).await,
            Err(Reason::Auth)
        );
        simulator.set_fault(Some(Fault::RateLimited { retry_after: 30 }));
        assert_eq!(check(&simulator, &[]).await, Err(Reason::RateLimited));
        simulator.set_fault(Some(Fault::Refusal));
        assert_eq!(check(&simulator, &[]).await, Err(Reason::Rejected));
        assert_eq!(simulator.rejected(), 2);
    }
}
