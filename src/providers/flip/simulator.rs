//! Flip's server half: `GET /v2/general/balance` and `GET /v2/general/maintenance`, both with
//! HTTP Basic (secret key, empty password) and the documented form content type.
//!
//! Maintenance: [`Fault::Refusal`](crate::providers::simulator::Fault::Refusal) (the framework's
//! "maintenance refusal") is answered as Flip answers during maintenance, HTTP 401 with its
//! `Unauthorized` envelope, and puts the simulator under maintenance until its next answer of
//! another kind, so the maintenance endpoint, asked right after, says `"maintenance": true`. A
//! plain `Fault::Status(401)` is a 401 outside maintenance.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::json;

use crate::providers::simulator::{
    Credentials, HttpResponse, Refusal, Route, SimRequest, Supplier, basic_credentials, json,
    json_amount, plain,
};

#[derive(Default)]
pub struct Flip {
    /// Whether the last balance answer was the maintenance 401.
    maintenance: AtomicBool,
}

impl Supplier for Flip {
    fn account_fields(
        &self,
        credentials: &Credentials,
        base_url: &str,
    ) -> Vec<(&'static str, String)> {
        // The secret key is Flip's only credential, so a rotated secret breaks the account.
        vec![
            ("secret_key", credentials.secret_key.clone()),
            ("base_url", base_url.to_owned()),
        ]
    }

    /// A bodiless GET of the balance or the maintenance status, with
    /// `Content-Type: application/x-www-form-urlencoded` and
    /// `Authorization: Basic base64(secret_key + ":")`.
    fn verify(
        &self,
        request: &SimRequest<'_>,
        credentials: &Credentials,
    ) -> Result<Route, Refusal> {
        let parts = request.parts;
        let path = parts.uri.path();
        let maintenance = path.ends_with("/v2/general/maintenance");
        if parts.method != Method::GET || !(maintenance || path.ends_with("/v2/general/balance")) {
            return Err((StatusCode::NOT_FOUND, "NOT_FOUND"));
        }
        let expected = format!("{}:", credentials.secret_key);
        if basic_credentials(request.header(AUTHORIZATION.as_str())).as_deref()
            != Some(expected.as_str())
        {
            return Err((StatusCode::UNAUTHORIZED, "INVALID_CREDENTIAL"));
        }
        if request.header(CONTENT_TYPE.as_str()) != Some("application/x-www-form-urlencoded") {
            return Err((StatusCode::UNPROCESSABLE_ENTITY, "INVALID_CONTENT_TYPE"));
        }
        if !request.body.is_empty() || parts.uri.query().is_some() {
            // Neither endpoint has a parameter.
            return Err((StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR"));
        }
        if maintenance {
            let under = self.maintenance.load(Ordering::SeqCst);
            return Ok(Route::Answer(json(
                StatusCode::OK,
                &json!({"maintenance": under}),
            )));
        }
        Ok(Route::Balance)
    }

    fn success(&self, balance: Decimal, _: &Credentials, _: SystemTime) -> HttpResponse {
        self.maintenance.store(false, Ordering::SeqCst);
        json(StatusCode::OK, &json!({"balance": json_amount(balance)}))
    }

    fn failure(&self, status: StatusCode, problem: &str) -> HttpResponse {
        let maintenance = problem == "MAINTENANCE";
        self.maintenance.store(maintenance, Ordering::SeqCst);
        if maintenance || status == StatusCode::UNAUTHORIZED {
            // During maintenance Flip sends its ordinary 401, whatever the request.
            return json(
                StatusCode::UNAUTHORIZED,
                &json!({
                    "name": "Unauthorized",
                    "message": "You are requesting with an invalid credential.",
                    "status": 401,
                }),
            );
        }
        if status == StatusCode::NOT_FOUND {
            return plain(status, "Page not found");
        }
        json(
            status,
            &json!({
                "code": "VALIDATION_ERROR",
                "errors": [{
                    "attribute": if problem == "INVALID_CONTENT_TYPE" { "Content-Type" } else { "request" },
                    "code": 1099,
                    "message": problem.replace('_', " ").to_lowercase(),
                }],
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use base64::Engine;
    use base64::prelude::BASE64_STANDARD;
    use serde_json::{Map, Value};

    use super::*;
    use crate::error::Reason;
    use crate::providers::simulator::{Fault, Simulator};
    use crate::providers::{CheckContext, ProviderConfig};

    fn provider(simulator: &Simulator) -> ProviderConfig {
        let fields: Map<String, Value> = simulator
            .account_fields()
            .into_iter()
            .map(|(field, value)| (field.to_owned(), Value::String(value)))
            .collect();
        ProviderConfig::from_fields("flip", fields)
            .unwrap()
            .unwrap()
    }

    fn context() -> CheckContext {
        CheckContext::new(crate::check::http_client(Duration::from_secs(5)).unwrap())
    }

    #[tokio::test]
    async fn maintenance_is_rejected_and_reads_as_maintenance_not_as_a_bad_key() {
        let simulator = Simulator::start("flip", Decimal::from(1000)).await.unwrap();
        let provider = provider(&simulator);
        let cx = context();
        simulator.set_fault(Some(Fault::Refusal));
        let err = provider.provider().fetch(&cx).await.unwrap_err();
        assert_eq!(err.reason(), Reason::Rejected, "{err}");
        assert!(err.to_string().contains("maintenance"), "{err}");
        // The balance and then the maintenance endpoint were asked.
        assert_eq!(simulator.requests(), 2);
        simulator.set_fault(None);
        let balance = provider.provider().fetch(&cx).await.unwrap();
        assert_eq!(balance.amount, Decimal::from(1000));
    }

    #[tokio::test]
    async fn a_401_outside_maintenance_and_a_rotated_key_are_auth() {
        let simulator = Simulator::start("flip", Decimal::ONE).await.unwrap();
        let provider = provider(&simulator);
        let cx = context();
        simulator.set_fault(Some(Fault::Status(401)));
        let err = provider.provider().fetch(&cx).await.unwrap_err();
        assert_eq!(err.reason(), Reason::Auth, "{err}");
        assert!(err.to_string().contains("not under maintenance"), "{err}");
        simulator.set_fault(None);
        simulator.rotate_secret("rotated-on-the-dashboard");
        let err = provider.provider().fetch(&cx).await.unwrap_err();
        assert_eq!(err.reason(), Reason::Auth, "{err}");
        assert!(err.to_string().contains("invalid credential"), "{err}");
        assert!(!err.to_string().contains("demo-flip-secret"), "{err}");
    }

    #[tokio::test]
    async fn a_429_is_rate_limited() {
        let simulator = Simulator::start("flip", Decimal::ONE).await.unwrap();
        simulator.set_fault(Some(Fault::RateLimited { retry_after: 30 }));
        let err = provider(&simulator)
            .provider()
            .fetch(&context())
            .await
            .unwrap_err();
        assert_eq!(err.reason(), Reason::RateLimited, "{err}");
    }

    #[test]
    fn a_request_without_the_form_content_type_is_refused() {
        let credentials = Credentials::demo("flip");
        let authorization = format!(
            "Basic {}",
            BASE64_STANDARD.encode(format!("{}:", credentials.secret_key))
        );
        let verify = |content_type: Option<&str>| {
            let mut builder = hyper::Request::get("/v2/general/balance")
                .header(AUTHORIZATION, authorization.as_str());
            if let Some(content_type) = content_type {
                builder = builder.header(CONTENT_TYPE, content_type);
            }
            let (parts, ()) = builder.body(()).unwrap().into_parts();
            let request = SimRequest {
                parts: &parts,
                body: b"",
                now: SystemTime::now(),
            };
            Flip::default().verify(&request, &credentials).map(|_| ())
        };
        assert_eq!(verify(Some("application/x-www-form-urlencoded")), Ok(()));
        assert_eq!(
            verify(Some("application/json")).unwrap_err(),
            (StatusCode::UNPROCESSABLE_ENTITY, "INVALID_CONTENT_TYPE")
        );
        assert!(verify(None).is_err());
    }
}
