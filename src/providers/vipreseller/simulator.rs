//! VIP Reseller's server half: verifies the form `POST /api/profile` and answers with its
//! envelopes, HTTP 200 and `result` true or false with a `message`.

use std::time::SystemTime;

use hyper::header::CONTENT_TYPE;
use hyper::{Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::json;

use super::{FORM_CONTENT, sign};
use crate::providers::simulator::{
    Credentials, HttpResponse, Refusal, Route, SimRequest, Supplier, json, json_amount,
};

pub struct VipReseller;

impl Supplier for VipReseller {
    /// The demo secret is the API key, so a rotated secret is an unknown key.
    fn account_fields(
        &self,
        credentials: &Credentials,
        base_url: &str,
    ) -> Vec<(&'static str, String)> {
        vec![
            ("api_id", credentials.id.clone()),
            ("api_key", credentials.secret_key.clone()),
            ("base_url", base_url.to_owned()),
        ]
    }

    /// POST /api/profile, form `key=<api_key>&sign=md5(api_id + api_key)`. The key picks the
    /// user (unknown: "User not found."), then the sign must match ("API Signature not valid.").
    /// A body in another content type reads as an empty form, as in the PHP panels.
    fn verify(
        &self,
        request: &SimRequest<'_>,
        credentials: &Credentials,
    ) -> Result<Route, Refusal> {
        let parts = request.parts;
        if parts.method != Method::POST || !parts.uri.path().ends_with("/api/profile") {
            return Err((StatusCode::NOT_FOUND, "NOT_FOUND"));
        }
        let is_form = request
            .header(CONTENT_TYPE.as_str())
            .is_some_and(|value| value.starts_with(FORM_CONTENT));
        let form: Vec<(String, String)> = if is_form {
            url::form_urlencoded::parse(request.body)
                .into_owned()
                .collect()
        } else {
            Vec::new()
        };
        let field = |name: &str| {
            form.iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        if field("key") != Some(credentials.secret_key.as_str()) {
            return Err((StatusCode::OK, "USER_NOT_FOUND"));
        }
        let expected = sign(&credentials.id, &credentials.secret_key);
        if field("sign") != Some(expected.as_str()) {
            return Err((StatusCode::OK, "INVALID_SIGNATURE"));
        }
        Ok(Route::Balance)
    }

    fn success(&self, balance: Decimal, credentials: &Credentials, _: SystemTime) -> HttpResponse {
        json(
            StatusCode::OK,
            &json!({
                "result": true,
                "data": {
                    "full_name": "Toko Game Demo",
                    "username": credentials.id,
                    "balance": json_amount(balance),
                    "point": 0,
                    "level": "Basic",
                    "registered": "2023-08-17 10:00:00",
                },
                "message": "Successfully got your account details.",
            }),
        )
    }

    /// The known messages; a maintenance has no documented text, so this one is made up.
    fn failure(&self, status: StatusCode, problem: &str) -> HttpResponse {
        let message = match problem {
            "NOT_FOUND" => return json(status, &json!({"message": "Not Found"})),
            "USER_NOT_FOUND" => "User not found.",
            "INVALID_SIGNATURE" => "API Signature not valid.",
            _ => "Sedang dalam pemeliharaan server.",
        };
        json(
            status,
            &json!({"result": false, "data": null, "message": message}),
        )
    }
}

#[cfg(test)]
mod tests {
    use hyper::Request;
    use serde_json::Value;

    use super::*;
    use crate::error::Reason;
    use crate::providers::simulator::Simulator;
    use crate::providers::{CheckContext, ProviderConfig};

    fn verify(content_type: &str, body: &str) -> Result<(), &'static str> {
        let credentials = Credentials::demo("vipreseller");
        let (parts, ()) = Request::post("/api/profile")
            .header(CONTENT_TYPE, content_type)
            .body(())
            .unwrap()
            .into_parts();
        let request = SimRequest {
            parts: &parts,
            body: body.as_bytes(),
            now: SystemTime::now(),
        };
        VipReseller
            .verify(&request, &credentials)
            .map(|_| ())
            .map_err(|(_, problem)| problem)
    }

    #[test]
    fn only_the_documented_form_is_accepted() {
        let credentials = Credentials::demo("vipreseller");
        let key = credentials.secret_key.as_str();
        let good = sign(&credentials.id, key);
        let form = |pairs: &[(&str, &str)]| {
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish()
        };
        assert_eq!(
            verify(FORM_CONTENT, &form(&[("key", key), ("sign", &good)])),
            Ok(())
        );
        let cases = [
            (FORM_CONTENT, form(&[("sign", &good)]), "USER_NOT_FOUND"),
            (FORM_CONTENT, form(&[("key", key)]), "INVALID_SIGNATURE"),
            (
                FORM_CONTENT,
                form(&[("key", key), ("sign", &sign("someone-else", key))]),
                "INVALID_SIGNATURE",
            ),
            (
                "application/json",
                json!({"key": key, "sign": good}).to_string(),
                "USER_NOT_FOUND",
            ),
        ];
        for (content_type, body, problem) in cases {
            assert_eq!(verify(content_type, &body), Err(problem), "{body}");
        }
    }

    #[tokio::test]
    async fn a_rotated_key_is_an_unknown_user_and_reads_as_auth() {
        let simulator = Simulator::start("vipreseller", Decimal::from(7685))
            .await
            .unwrap();
        let fields = simulator
            .account_fields()
            .into_iter()
            .map(|(field, value)| (field.to_owned(), Value::String(value)))
            .collect();
        let provider = ProviderConfig::from_fields("vipreseller", fields)
            .unwrap()
            .unwrap();
        let cx = CheckContext::new(reqwest::Client::new());
        let balance = provider.provider().fetch(&cx).await.unwrap();
        assert_eq!(balance.amount, Decimal::from(7685));
        assert_eq!(balance.holder.as_deref(), Some("Toko Game Demo"));
        simulator.rotate_secret("rotated-on-pengaturan-api");
        let err = provider.provider().fetch(&cx).await.unwrap_err();
        assert_eq!(err.reason(), Reason::Auth, "{err}");
        assert!(err.to_string().contains("User not found."), "{err}");
        assert_eq!(simulator.rejected(), 1);
    }
}
