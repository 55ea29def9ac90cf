//! OkeConnect's server half: `GET /trx/balance?memberID=&pin=&password=`, checked in the
//! documented order (user, pin, then the IP, which loopback always passes), answered in text.

use std::time::SystemTime;

use hyper::StatusCode;
use rust_decimal::Decimal;

use crate::providers::otomax::simulator::{indonesian, refusal_text, text, verify_query};
use crate::providers::simulator::{
    Credentials, HttpResponse, Refusal, Route, SimRequest, Supplier,
};
use crate::server::respond;

pub struct Okeconnect;

impl Supplier for Okeconnect {
    /// The demo secret is the password, so rotating it makes the password wrong.
    fn account_fields(
        &self,
        credentials: &Credentials,
        base_url: &str,
    ) -> Vec<(&'static str, String)> {
        vec![
            ("member_id", credentials.id.clone()),
            ("pin", credentials.api_key.clone()),
            ("password", credentials.secret_key.clone()),
            ("base_url", base_url.to_owned()),
        ]
    }

    /// No sign: OkeConnect takes only the plain pin and password.
    fn verify(
        &self,
        request: &SimRequest<'_>,
        credentials: &Credentials,
    ) -> Result<Route, Refusal> {
        verify_query(request, credentials, "/trx/balance", false)
    }

    fn success(&self, balance: Decimal, _: &Credentials, _: SystemTime) -> HttpResponse {
        text(format!("Saldo {}", indonesian(balance)))
    }

    fn failure(&self, status: StatusCode, problem: &str) -> HttpResponse {
        respond(status, "text/plain", refusal_text(problem).into())
    }
}

#[cfg(test)]
mod tests {
    use crate::error::Reason;
    use crate::providers::otomax::simulator::tests::check;
    use crate::providers::simulator::{Fault, Simulator};

    #[tokio::test]
    async fn the_client_passes_and_wrong_credentials_are_auth_in_the_documented_order() {
        let simulator = Simulator::start("okeconnect", "284939".parse().unwrap())
            .await
            .unwrap();
        assert_eq!(
            check(&simulator, &[]).await.ok(),
            Some("284939".parse().unwrap())
        );
        for (change, text) in [
            (
                &[("member_id", "OK000000"), ("pin", "0000")][..],
                "Pengguna tidak ditemukan",
            ),
            (&[("pin", "0000"), ("password", "nope")][..], "Pin Salah"),
            (&[("password", "nope")][..], "Password Salah"),
        ] {
            let err = check(&simulator, change).await.unwrap_err();
            assert_eq!(err.reason(), Reason::Auth, "{err}");
            assert!(err.to_string().contains(text), "{err}");
        }
        simulator.set_fault(Some(Fault::Refusal));
        assert_eq!(
            check(&simulator, &[]).await.unwrap_err().reason(),
            Reason::Rejected
        );
        simulator.set_fault(Some(Fault::RateLimited { retry_after: 5 }));
        assert_eq!(
            check(&simulator, &[]).await.unwrap_err().reason(),
            Reason::RateLimited
        );
    }

    #[tokio::test]
    async fn a_refused_connection_names_neither_the_pin_nor_the_password() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let fields = serde_json::json!({
            "member_id": "OK123456",
            "pin": "pin7Qx2Lm9Rt",
            "password": "pwKk3Jd8Wq1Z",
            "base_url": format!("http://{closed}"),
        });
        let provider = crate::providers::ProviderConfig::from_fields(
            "okeconnect",
            fields.as_object().unwrap().clone(),
        )
        .unwrap()
        .unwrap();
        let cx = crate::providers::CheckContext::new(reqwest::Client::new());
        let err = provider.provider().fetch(&cx).await.unwrap_err();
        assert_eq!(err.reason(), Reason::Connect, "{err}");
        let printed = format!("{err} {err:?} {provider:?}");
        for secret in ["pin7Qx2Lm9Rt", "pwKk3Jd8Wq1Z", "password="] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
    }
}
