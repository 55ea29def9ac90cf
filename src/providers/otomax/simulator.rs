//! An OtomaX H2H centre's server half: `GET /balance?memberID=&sign=` (or `&pin=&password=`),
//! answered in plain text with HTTP 200, refusals included, as OtomaX centres do.

use std::collections::HashMap;
use std::time::SystemTime;

use hyper::{Method, StatusCode};
use rust_decimal::Decimal;

use super::{SignMode, balance_string, sign};
use crate::providers::simulator::{
    Credentials, HttpResponse, Refusal, Route, SimRequest, Supplier,
};
use crate::server::respond;

pub struct Otomax;

impl Supplier for Otomax {
    /// The demo secret is the password, so rotating it changes the expected sign.
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

    fn verify(
        &self,
        request: &SimRequest<'_>,
        credentials: &Credentials,
    ) -> Result<Route, Refusal> {
        verify_query(request, credentials, "/balance", true)
    }

    fn success(&self, balance: Decimal, credentials: &Credentials, _: SystemTime) -> HttpResponse {
        text(format!(
            "Informasi Akun Anda\n Nama : Toko Pulsa Demo\n ID Agen : {}\n Saldo : {}\n Bonus : 0",
            credentials.id,
            indonesian(balance)
        ))
    }

    fn failure(&self, status: StatusCode, problem: &str) -> HttpResponse {
        respond(status, "text/plain", refusal_text(problem).into())
    }
}

/// Verifies an OtomaX-style balance query: `GET`, the path, the member ID, then either a
/// `sign` (the official recipe) or, where `plain` is allowed, the pin and password. The gates
/// run in the order OkeConnect documents: user, then pin, then password.
pub fn verify_query(
    request: &SimRequest<'_>,
    credentials: &Credentials,
    path: &str,
    sign_allowed: bool,
) -> Result<Route, Refusal> {
    let parts = request.parts;
    if parts.method != Method::GET || !parts.uri.path().ends_with(path) {
        return Err((StatusCode::NOT_FOUND, "NOT_FOUND"));
    }
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let field = |name: &str| query.get(name).map(String::as_str);
    // Refusals come with HTTP 200: the text says what went wrong.
    if field("memberID") != Some(credentials.id.as_str()) {
        return Err((StatusCode::OK, "UNKNOWN_MEMBER"));
    }
    match (field("sign"), field("pin"), field("password")) {
        (Some(sent), None, None) if sign_allowed => {
            let text = balance_string(
                &credentials.id,
                &credentials.api_key,
                &credentials.secret_key,
            );
            let expected = sign(SignMode::Sha1Base64url, &text).expect("a signing mode");
            if sent == expected {
                Ok(Route::Balance)
            } else {
                Err((StatusCode::OK, "INVALID_SIGNATURE"))
            }
        }
        (None, Some(pin), Some(password)) => {
            if pin != credentials.api_key {
                Err((StatusCode::OK, "WRONG_PIN"))
            } else if password != credentials.secret_key {
                Err((StatusCode::OK, "WRONG_PASSWORD"))
            } else {
                Ok(Route::Balance)
            }
        }
        _ => Err((StatusCode::OK, "MISSING_CREDENTIALS")),
    }
}

/// The OtomaX family's refusal texts for the simulators' problem codes.
pub fn refusal_text(problem: &str) -> &'static str {
    match problem {
        "UNKNOWN_MEMBER" => "Pengguna tidak ditemukan",
        "WRONG_PIN" => "Pin Salah",
        "WRONG_PASSWORD" => "Password Salah",
        "INVALID_SIGNATURE" => "Sign tidak valid",
        "MISSING_CREDENTIALS" => "Parameter tidak lengkap",
        "MAINTENANCE" => "Maaf, sistem sedang maintenance. Silakan coba beberapa saat lagi",
        "NOT_FOUND" => "Not Found",
        _ => "Gagal, permintaan tidak dapat diproses",
    }
}

/// A plain-text answer with HTTP 200.
pub fn text(body: String) -> HttpResponse {
    respond(StatusCode::OK, "text/plain", body)
}

/// `14.324.472`, `1.234.567,5`, `-1.500`: rupiah as OtomaX centres write them.
pub fn indonesian(amount: Decimal) -> String {
    let plain = amount.normalize().to_string();
    let (sign, digits) = match plain.strip_prefix('-') {
        Some(digits) => ("-", digits),
        None => ("", plain.as_str()),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push('.');
        }
        grouped.push(digit);
    }
    if fraction.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped},{fraction}")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::error::Reason;
    use crate::providers::simulator::{Fault, Simulator};
    use crate::providers::{CheckContext, ProviderConfig};

    #[test]
    fn amounts_are_written_the_indonesian_way() {
        for (amount, written) in [
            ("14324472", "14.324.472"),
            ("1234567.50", "1.234.567,5"),
            ("999", "999"),
            ("1000", "1.000"),
            ("-1500", "-1.500"),
            ("0", "0"),
        ] {
            assert_eq!(indonesian(amount.parse().unwrap()), written);
        }
    }

    pub(crate) async fn check(
        simulator: &Simulator,
        change: &[(&str, &str)],
    ) -> Result<Decimal, crate::error::UpstreamError> {
        let mut fields: serde_json::Map<_, _> = simulator
            .account_fields()
            .into_iter()
            .map(|(field, value)| (field.to_owned(), value.into()))
            .collect();
        for (field, value) in change {
            fields.insert((*field).to_owned(), (*value).into());
        }
        let provider = ProviderConfig::from_fields(simulator.provider(), fields)
            .unwrap()
            .unwrap();
        let cx = CheckContext::new(reqwest::Client::new());
        provider.provider().fetch(&cx).await.map(|b| b.amount)
    }

    #[tokio::test]
    async fn signed_and_plain_requests_pass_and_wrong_credentials_are_auth() {
        let simulator = Simulator::start("otomax", "14324472.5".parse().unwrap())
            .await
            .unwrap();
        let balance: Option<Decimal> = Some("14324472.5".parse().unwrap());
        assert_eq!(check(&simulator, &[]).await.ok(), balance);
        assert_eq!(check(&simulator, &[("sign", "plain")]).await.ok(), balance);
        for (change, class) in [
            (("pin", "0000"), "Sign tidak valid"),
            (("member_id", "SOMEONE"), "Pengguna tidak ditemukan"),
            (("sign", "sha1_hex_base64"), "Sign tidak valid"),
        ] {
            let err = check(&simulator, &[change]).await.unwrap_err();
            assert_eq!(err.reason(), Reason::Auth, "{err}");
            assert!(err.to_string().contains(class), "{err}");
        }
        let err = check(&simulator, &[("sign", "plain"), ("password", "nope")])
            .await
            .unwrap_err();
        assert_eq!(err.reason(), Reason::Auth);
        assert!(err.to_string().contains("Password Salah"), "{err}");
        assert!(!err.to_string().contains("nope"), "{err}");
        simulator.set_fault(Some(Fault::Refusal));
        assert_eq!(
            check(&simulator, &[]).await.unwrap_err().reason(),
            Reason::Rejected
        );
        simulator.set_fault(Some(Fault::RateLimited { retry_after: 60 }));
        assert_eq!(
            check(&simulator, &[]).await.unwrap_err().reason(),
            Reason::RateLimited
        );
        simulator.set_fault(Some(Fault::Html));
        assert_eq!(
            check(&simulator, &[]).await.unwrap_err().reason(),
            Reason::Decode
        );
    }

    /// reqwest's errors print the URL, and in `plain` mode the URL holds the pin and password
    /// (in the default mode, the credential-derived sign).
    #[tokio::test]
    async fn transport_errors_carry_no_pin_password_or_sign() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let hanging = Simulator::start("otomax", Decimal::ONE).await.unwrap();
        hanging.set_fault(Some(Fault::Hang));
        // The simulator's own credentials, so the hanging request gets past verification.
        let credentials = hanging.credentials();
        let (pin, password) = (&credentials.api_key, &credentials.secret_key);
        let signed = sign(
            SignMode::Sha1Base64url,
            &balance_string(&credentials.id, pin, password),
        )
        .unwrap();
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_millis(300))
            .build()
            .unwrap();
        let cx = CheckContext::new(client);
        for (base_url, reason) in [
            (format!("http://{closed}"), Reason::Connect),
            (hanging.base_url(), Reason::Timeout),
        ] {
            for mode in ["plain", "sha1_base64url"] {
                let fields = serde_json::json!({
                    "member_id": credentials.id, "pin": pin, "password": password,
                    "base_url": base_url, "sign": mode,
                });
                let provider =
                    ProviderConfig::from_fields("otomax", fields.as_object().unwrap().clone())
                        .unwrap()
                        .unwrap();
                let err = provider.provider().fetch(&cx).await.unwrap_err();
                assert_eq!(err.reason(), reason, "{err}");
                let printed = format!("{err} {err:?} {provider:?}");
                for secret in [pin, password, &signed, "memberID"] {
                    assert!(!printed.contains(secret), "{secret} in {printed}");
                }
            }
        }
    }
}
