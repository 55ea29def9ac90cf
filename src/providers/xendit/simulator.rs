//! Xendit's server half: `GET /balance` with HTTP Basic (secret key, empty password) and the
//! documented query.

use std::time::SystemTime;

use hyper::header::AUTHORIZATION;
use hyper::{Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::json;

use crate::providers::simulator::{
    Credentials, HttpResponse, Refusal, Route, SimRequest, Supplier, basic_credentials, json,
    json_amount,
};

pub struct Xendit;

impl Supplier for Xendit {
    fn account_fields(
        &self,
        credentials: &Credentials,
        base_url: &str,
    ) -> Vec<(&'static str, String)> {
        // The secret key is Xendit's only credential, so a rotated secret breaks the account.
        vec![
            ("secret_key", credentials.secret_key.clone()),
            ("base_url", base_url.to_owned()),
        ]
    }

    /// GET /balance, `Authorization: Basic base64(secret_key + ":")`, and only the documented
    /// query parameters with documented values.
    fn verify(
        &self,
        request: &SimRequest<'_>,
        credentials: &Credentials,
    ) -> Result<Route, Refusal> {
        let parts = request.parts;
        if parts.method != Method::GET || !parts.uri.path().ends_with("/balance") {
            return Err((StatusCode::NOT_FOUND, "NOT_FOUND"));
        }
        let expected = format!("{}:", credentials.secret_key);
        if basic_credentials(request.header(AUTHORIZATION.as_str())).as_deref()
            != Some(expected.as_str())
        {
            return Err((StatusCode::UNAUTHORIZED, "INVALID_API_KEY"));
        }
        let query = parts.uri.query().unwrap_or_default();
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let valid = match &*name {
                "account_type" => ["CASH", "HOLDING", "TAX"].contains(&&*value),
                "currency" => value.len() == 3 && value.bytes().all(|b| b.is_ascii_uppercase()),
                "at_timestamp" => !value.is_empty(),
                _ => false,
            };
            if !valid {
                return Err((StatusCode::BAD_REQUEST, "API_VALIDATION_ERROR"));
            }
        }
        if request.header("for-user-id") == Some("") {
            return Err((StatusCode::BAD_REQUEST, "API_VALIDATION_ERROR"));
        }
        Ok(Route::Balance)
    }

    fn success(&self, balance: Decimal, _: &Credentials, _: SystemTime) -> HttpResponse {
        // Xendit names no currency in its answer: the requested one, or the account's own.
        json(StatusCode::OK, &json!({"balance": json_amount(balance)}))
    }

    fn failure(&self, status: StatusCode, problem: &str) -> HttpResponse {
        let (code, message) = match problem {
            "INVALID_API_KEY" => (
                problem,
                "API key is not authorized for this API service".to_owned(),
            ),
            // Xendit documents no maintenance code; its generic server error stands in.
            "MAINTENANCE" => ("SERVER_ERROR", "Service is under maintenance".to_owned()),
            other => (other, other.replace('_', " ").to_lowercase()),
        };
        json(status, &json!({"error_code": code, "message": message}))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{Map, Value};

    use super::*;
    use crate::error::Reason;
    use crate::providers::simulator::{Fault, Simulator};
    use crate::providers::{CheckContext, ProviderConfig};

    fn provider(simulator: &Simulator, extra: &[(&str, &str)]) -> ProviderConfig {
        let mut fields: Map<String, Value> = simulator
            .account_fields()
            .into_iter()
            .map(|(field, value)| (field.to_owned(), Value::String(value)))
            .collect();
        for (field, value) in extra {
            fields.insert((*field).to_owned(), Value::String((*value).to_owned()));
        }
        ProviderConfig::from_fields("xendit", fields)
            .unwrap()
            .unwrap()
    }

    fn context() -> CheckContext {
        CheckContext::new(crate::check::http_client(Duration::from_secs(5)).unwrap())
    }

    #[tokio::test]
    async fn a_sub_account_in_another_currency_passes_and_reads_in_that_currency() {
        let simulator = Simulator::start("xendit", "99.25".parse().unwrap())
            .await
            .unwrap();
        let provider = provider(
            &simulator,
            &[
                ("account_type", "HOLDING"),
                ("currency", "USD"),
                ("for_user_id", "5dbf20d7c8eb0c0896f811b6"),
            ],
        );
        let balance = provider.provider().fetch(&context()).await.unwrap();
        assert_eq!(balance.amount, "99.25".parse::<Decimal>().unwrap());
        assert_eq!(balance.currency, "USD");
        assert_eq!(simulator.rejected(), 0);
    }

    #[tokio::test]
    async fn a_wrong_key_a_403_and_a_429_are_auth_auth_and_rate_limited() {
        let simulator = Simulator::start("xendit", Decimal::ONE).await.unwrap();
        let provider = provider(&simulator, &[]);
        let cx = context();
        simulator.rotate_secret("xnd_production_rotated");
        let err = provider.provider().fetch(&cx).await.unwrap_err();
        assert_eq!(err.reason(), Reason::Auth);
        assert!(err.to_string().contains("INVALID_API_KEY"), "{err}");
        assert!(!err.to_string().contains("demo-xendit-secret"), "{err}");
        simulator.rotate_secret(&Credentials::demo("xendit").secret_key);
        simulator.set_fault(Some(Fault::Status(403)));
        let err = provider.provider().fetch(&cx).await.unwrap_err();
        assert_eq!(err.reason(), Reason::Auth, "{err}");
        simulator.set_fault(Some(Fault::RateLimited { retry_after: 60 }));
        let err = provider.provider().fetch(&cx).await.unwrap_err();
        assert_eq!(err.reason(), Reason::RateLimited, "{err}");
    }
}
