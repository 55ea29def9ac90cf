//! Midtrans Iris' server half: `GET /api/v1/balance` with HTTP Basic (API key, empty password)
//! and JSON `Accept` and `Content-Type` headers.

use std::time::SystemTime;

use hyper::header::{ACCEPT, AUTHORIZATION};
use hyper::{Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::json;

use crate::providers::simulator::{
    Credentials, HttpResponse, Refusal, Route, SimRequest, Supplier, basic_credentials, json, plain,
};

pub struct Iris;

impl Supplier for Iris {
    fn account_fields(
        &self,
        credentials: &Credentials,
        base_url: &str,
    ) -> Vec<(&'static str, String)> {
        // The creator key is the account's key, so a rotated secret breaks the account.
        vec![
            ("api_key", credentials.secret_key.clone()),
            ("base_url", base_url.to_owned()),
        ]
    }

    /// GET /api/v1/balance with `Authorization: Basic base64(key + ":")`, where the key is the
    /// creator's (the demo `secret_key`) or the approver's (the demo `api_key`): both may read
    /// the balance.
    fn verify(
        &self,
        request: &SimRequest<'_>,
        credentials: &Credentials,
    ) -> Result<Route, Refusal> {
        let parts = request.parts;
        if parts.method != Method::GET || !parts.uri.path().ends_with("/api/v1/balance") {
            return Err((StatusCode::NOT_FOUND, "NOT_FOUND"));
        }
        let user = basic_credentials(request.header(AUTHORIZATION.as_str()))
            .and_then(|decoded| decoded.strip_suffix(':').map(str::to_owned));
        let known = [&credentials.secret_key, &credentials.api_key];
        if !user.is_some_and(|key| known.contains(&&key)) {
            return Err((StatusCode::UNAUTHORIZED, "ACCESS_DENIED"));
        }
        request.require_json_content()?;
        if request.header(ACCEPT.as_str()) != Some("application/json") {
            return Err((StatusCode::NOT_ACCEPTABLE, "INVALID_ACCEPT"));
        }
        if !request.body.is_empty() {
            return Err((StatusCode::BAD_REQUEST, "UNEXPECTED_BODY"));
        }
        Ok(Route::Balance)
    }

    fn success(&self, balance: Decimal, _: &Credentials, _: SystemTime) -> HttpResponse {
        // A decimal string with two places, as documented: `"25000.00"`.
        json(
            StatusCode::OK,
            &json!({"balance": format!("{:.2}", balance.round_dp(2))}),
        )
    }

    fn failure(&self, status: StatusCode, problem: &str) -> HttpResponse {
        if status == StatusCode::UNAUTHORIZED {
            // Not JSON: Iris answers a refused key as Rails' Basic authentication does.
            return plain(status, "HTTP Basic: Access denied.\n");
        }
        let message = match problem {
            "MAINTENANCE" => "Service is under maintenance".to_owned(),
            other => other.replace('_', " ").to_lowercase(),
        };
        json(
            status,
            &json!({"error_message": message, "errors": [problem]}),
        )
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

    fn provider(api_key: &str, base_url: String) -> ProviderConfig {
        let fields: Map<String, Value> = [("api_key", api_key.to_owned()), ("base_url", base_url)]
            .into_iter()
            .map(|(field, value)| (field.to_owned(), Value::String(value)))
            .collect();
        ProviderConfig::from_fields("iris", fields)
            .unwrap()
            .unwrap()
    }

    fn context() -> CheckContext {
        CheckContext::new(crate::check::http_client(Duration::from_secs(5)).unwrap())
    }

    #[tokio::test]
    async fn the_creator_and_the_approver_key_both_read_the_balance_to_the_cent() {
        let simulator = Simulator::start("iris", "25000.05".parse().unwrap())
            .await
            .unwrap();
        let credentials = simulator.credentials();
        for key in [&credentials.secret_key, &credentials.api_key] {
            let balance = provider(key, simulator.base_url())
                .provider()
                .fetch(&context())
                .await
                .unwrap();
            assert_eq!(balance.amount, "25000.05".parse::<Decimal>().unwrap());
        }
        assert_eq!(simulator.rejected(), 0);
    }

    #[tokio::test]
    async fn an_unknown_key_is_auth_and_a_429_rate_limited() {
        let simulator = Simulator::start("iris", Decimal::ONE).await.unwrap();
        let cx = context();
        let err = provider("IRIS-not-a-key", simulator.base_url())
            .provider()
            .fetch(&cx)
            .await
            .unwrap_err();
        assert_eq!(err.reason(), Reason::Auth, "{err}");
        assert!(!err.to_string().contains("IRIS-not-a-key"), "{err}");
        simulator.set_fault(Some(Fault::RateLimited { retry_after: 10 }));
        let key = simulator.credentials().secret_key;
        let err = provider(&key, simulator.base_url())
            .provider()
            .fetch(&cx)
            .await
            .unwrap_err();
        assert_eq!(err.reason(), Reason::RateLimited, "{err}");
    }

    #[tokio::test]
    async fn the_balance_is_written_as_a_string_with_two_decimals() {
        use http_body_util::BodyExt;
        let answer = Iris.success(
            "1234567.5".parse().unwrap(),
            &Credentials::demo("iris"),
            SystemTime::now(),
        );
        let body = answer.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], br#"{"balance":"1234567.50"}"#);
    }
}
