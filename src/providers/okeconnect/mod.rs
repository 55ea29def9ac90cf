//! OkeConnect / Orderkuota H2H: `GET {base}/trx/balance?memberID=&pin=&password=`, answered in
//! plain text such as `Saldo 284.939`.
//!
//! An OtomaX-style supplier with its own host and path that takes the pin and password in the
//! query (no sign), so it is the OtomaX client in `plain` mode with the default reply pattern.
//! The URL holds the pin and password: it is never printed, and transport errors lose it
//! before they become an [`UpstreamError`] (`reqwest::Error::without_url`).

use std::time::SystemTime;

use reqwest::{Client, RequestBuilder};
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use super::otomax::{BalancePattern, SignMode, TextReply, balance_request};
use super::{Balance, Registration, Sample, Separators, SimpleProvider};
use crate::error::UpstreamError;

pub mod simulator;

/// The registry entry.
pub const PROVIDER: Registration = Registration {
    name: "okeconnect",
    parse: super::parse::<Config>,
    simulator: || Box::new(simulator::Okeconnect),
    demo: super::simulator::DemoAccount {
        balance: 2_849_390,
        sale_every: std::time::Duration::from_secs(3),
        low: 500_000,
        top_up: 2_500_000,
        warning: 1_000_000,
        critical: 600_000,
    },
    sample: Sample {
        answer: SAMPLE_ANSWER,
        balance: 284_939,
        // A text answer: the balance is where the pattern finds it, not at a JSON pointer.
        balance_at: "",
        success_when: &[],
        decode,
    },
};

/// The reply the public clients parse (`/Saldo\s+[0-9.]+/`, dots stripped).
pub const SAMPLE_ANSWER: &str = "Saldo 284.939";

pub const DEFAULT_BASE_URL: &str = "https://h2h.okeconnect.com";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub member_id: String,
    pub pin: SecretString,
    pub password: SecretString,
    #[serde(default = "default_base_url")]
    pub base_url: Url,
}

fn default_base_url() -> Url {
    Url::parse(DEFAULT_BASE_URL).expect("the default base URL is valid")
}

impl SimpleProvider for Config {
    fn base_url(&self) -> &Url {
        &self.base_url
    }

    fn request(&self, client: &Client, _now: SystemTime) -> RequestBuilder {
        balance_request(
            client,
            &self.base_url,
            "trx/balance",
            &self.member_id,
            &self.pin,
            &self.password,
            SignMode::Plain,
        )
    }

    fn decode(&self, body: &[u8]) -> Result<Balance, UpstreamError> {
        decode(body)
    }
}

/// The default OtomaX reading: `Saldo 284.939`, dots for thousands; refusal texts
/// (`IP tidak sesuai @<ip>`, `Pin Salah`, `Password Salah`, `Pengguna tidak ditemukan`) as
/// OtomaX classifies them.
pub fn decode(body: &[u8]) -> Result<Balance, UpstreamError> {
    TextReply {
        pattern: &BalancePattern::default(),
        separators: Separators::INDONESIAN,
    }
    .decode(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Reason;

    fn config() -> Config {
        Config {
            member_id: "OK123456".into(),
            pin: SecretString::from("1234"),
            password: SecretString::from("rahasia"),
            base_url: default_base_url(),
        }
    }

    #[test]
    fn the_request_is_the_documented_get_with_pin_and_password() {
        let request = config()
            .request(&Client::new(), SystemTime::now())
            .build()
            .unwrap();
        assert_eq!(request.method(), "GET");
        assert_eq!(
            request.url().as_str(),
            "https://h2h.okeconnect.com/trx/balance?memberID=OK123456&pin=1234&password=rahasia"
        );
    }

    #[test]
    fn the_documented_reply_reads_as_rupiah() {
        let balance = config().decode(b"Saldo 284.939").unwrap();
        assert_eq!(balance.amount, 284_939.into());
        assert_eq!(balance.currency, "IDR");
    }

    #[test]
    fn the_documented_refusals_are_auth() {
        for (reply, class) in [
            (
                "IP tidak sesuai @203.0.113.7",
                "ip_not_whitelisted: IP tidak sesuai @203.0.113.7",
            ),
            ("Pin Salah", "auth: Pin Salah"),
            ("Password Salah", "auth: Password Salah"),
            ("Pengguna tidak ditemukan", "auth: Pengguna tidak ditemukan"),
        ] {
            let err = config().decode(reply.as_bytes()).unwrap_err();
            assert_eq!(err.reason(), Reason::Auth, "{reply}");
            assert!(err.to_string().contains(class), "{err}");
        }
        let err = config()
            .decode(b"Maaf, server sedang gangguan")
            .unwrap_err();
        assert_eq!(err.reason(), Reason::Rejected);
        let err = config().decode(b"{\"saldo\": null}").unwrap_err();
        assert_eq!(err.reason(), Reason::Decode);
    }
}
