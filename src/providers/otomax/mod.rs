//! OtomaX H2H, the protocol of the many small pulsa distributors running OtomaX:
//! `GET {base}/{path}?memberID=<id>&sign=<sign>` (path `balance` by default), answered in plain
//! text such as `Saldo : 14.324.472`.
//!
//! `sign` is `base64url_nopad(sha1_raw("OtomaX|CheckBalance|memberID|pin|password"))`; some
//! suppliers base64 the hex digest instead, and some take `pin` and `password` in the query
//! instead of a sign. Every supplier chooses its own reply texts, so the balance is read by a
//! configurable pattern. The text half (pattern, separators, refusal words) is shared with
//! OtomaX-style suppliers such as OkeConnect through [`TextReply`].
//!
//! The query carries credentials (the pin and password in `plain` mode, a credential-derived
//! `sign` otherwise), so the URL is never printed: no log line names it, and transport errors
//! lose it before they become an [`UpstreamError`] (`reqwest::Error::without_url`).

use std::fmt;
use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use regex::Regex;
use reqwest::{Client, RequestBuilder};
use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use sha1::{Digest, Sha1};
use url::Url;

use super::{Balance, Registration, Sample, Separators, SimpleProvider, endpoint, excerpt};
use crate::error::UpstreamError;

pub mod simulator;

/// The registry entry.
pub const PROVIDER: Registration = Registration {
    name: "otomax",
    parse: super::parse::<Config>,
    simulator: || Box::new(simulator::Otomax),
    demo: super::simulator::DemoAccount {
        balance: 14_324_472,
        sale_every: std::time::Duration::from_secs(2),
        low: 2_000_000,
        top_up: 10_000_000,
        warning: 5_000_000,
        critical: 3_000_000,
    },
    sample: Sample {
        answer: SAMPLE_ANSWER,
        balance: 14_324_472,
        // A text answer: the balance is where the pattern finds it, not at a JSON pointer.
        balance_at: "",
        success_when: &[],
        decode,
    },
};

/// A documented reply (the gigapulsa/maxsi style account summary).
pub const SAMPLE_ANSWER: &str = "Informasi Akun Anda\n Nama : John Doe\n ID Agen : AGT123456\n Saldo : 14.324.472\n Bonus : 250.000";

/// The default `balance_pattern`: the one in the protocol notes, with an optional minus so a
/// negative balance (an overdrawn credit account) is not read as a positive one.
pub const DEFAULT_PATTERN: &str = r"(?i)saldo\s*:?\s*(?:Rp\.?\s*)?(-?[0-9][0-9.,]*)";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub member_id: String,
    pub pin: SecretString,
    pub password: SecretString,
    /// No default: every supplier runs its own OtomaX centre.
    pub base_url: Url,
    #[serde(default)]
    pub sign: SignMode,
    #[serde(default = "default_path", deserialize_with = "balance_path")]
    pub path: String,
    #[serde(default)]
    pub balance_pattern: BalancePattern,
    #[serde(default)]
    pub thousands_separator: ThousandsSeparator,
}

fn default_path() -> String {
    "balance".into()
}

/// A path below `base_url`; the query is the client's.
fn balance_path<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let path = String::deserialize(deserializer)?;
    let path = path.trim().trim_start_matches('/');
    if path.is_empty() || path.contains(['?', '#', ' ']) {
        return Err(serde::de::Error::custom(
            "must be a path such as `balance` or `trx/balance`, without `?` or `#`",
        ));
    }
    Ok(path.to_owned())
}

/// How the credentials travel.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignMode {
    /// `sign = base64url_nopad(sha1_raw(str))`: the official OtomaX recipe.
    #[default]
    Sha1Base64url,
    /// `sign = base64(hex(sha1(str)))`, standard alphabet, padded (Qiospay and others).
    Sha1HexBase64,
    /// `pin=` and `password=` in the query instead of a sign.
    Plain,
}

/// The balance pattern: a regular expression with exactly one capture group, the amount.
#[derive(Debug, Clone)]
pub struct BalancePattern(Regex);

impl Default for BalancePattern {
    fn default() -> Self {
        Self(Regex::new(DEFAULT_PATTERN).expect("the default pattern compiles"))
    }
}

impl BalancePattern {
    pub fn new(pattern: &str) -> Result<Self, String> {
        let regex =
            Regex::new(pattern).map_err(|err| format!("not a regular expression: {err}"))?;
        // `captures_len` counts the whole match as group 0.
        match regex.captures_len() - 1 {
            1 => Ok(Self(regex)),
            groups => Err(format!(
                "must have exactly one capture group (the amount), has {groups}"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for BalancePattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BalancePattern::new(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// `.` (the default), `,`, or `none`; the decimal separator is then the other mark (`.` for
/// `none`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThousandsSeparator(pub Separators);

impl Default for ThousandsSeparator {
    fn default() -> Self {
        Self(Separators::INDONESIAN)
    }
}

impl<'de> Deserialize<'de> for ThousandsSeparator {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match String::deserialize(deserializer)?.trim() {
            "." => Ok(Self(Separators::INDONESIAN)),
            "," => Ok(Self(Separators::ENGLISH)),
            "none" => Ok(Self(Separators::PLAIN)),
            _ => Err(serde::de::Error::custom("must be \".\", \",\" or \"none\"")),
        }
    }
}

/// `"OtomaX|CheckBalance|" + memberID + "|" + pin + "|" + password`.
pub fn balance_string(member_id: &str, pin: &str, password: &str) -> String {
    format!("OtomaX|CheckBalance|{member_id}|{pin}|{password}")
}

/// The `sign` of `text` in `mode` (`None` in `plain` mode, which sends no sign).
pub fn sign(mode: SignMode, text: &str) -> Option<String> {
    let digest = Sha1::digest(text.as_bytes());
    match mode {
        SignMode::Sha1Base64url => Some(URL_SAFE_NO_PAD.encode(digest)),
        SignMode::Sha1HexBase64 => Some(STANDARD.encode(crate::signing::hex(&digest))),
        SignMode::Plain => None,
    }
}

/// `GET {base}/{path}` with the member ID and either a sign or the pin and password.
pub fn balance_request(
    client: &Client,
    base_url: &Url,
    path: &str,
    member_id: &str,
    pin: &SecretString,
    password: &SecretString,
    mode: SignMode,
) -> RequestBuilder {
    let mut url = endpoint(base_url, path);
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("memberID", member_id);
        let (pin, password) = (pin.expose_secret(), password.expose_secret());
        match sign(mode, &balance_string(member_id, pin, password)) {
            Some(sign) => query.append_pair("sign", &sign),
            None => query
                .append_pair("pin", pin)
                .append_pair("password", password),
        };
    }
    client.get(url)
}

impl SimpleProvider for Config {
    fn base_url(&self) -> &Url {
        &self.base_url
    }

    fn request(&self, client: &Client, _now: SystemTime) -> RequestBuilder {
        balance_request(
            client,
            &self.base_url,
            &self.path,
            &self.member_id,
            &self.pin,
            &self.password,
            self.sign,
        )
    }

    fn decode(&self, body: &[u8]) -> Result<Balance, UpstreamError> {
        TextReply {
            pattern: &self.balance_pattern,
            separators: self.thousands_separator.0,
        }
        .decode(body)
    }
}

/// The sample decoder: the default pattern and separators.
pub fn decode(body: &[u8]) -> Result<Balance, UpstreamError> {
    TextReply {
        pattern: &BalancePattern::default(),
        separators: Separators::INDONESIAN,
    }
    .decode(body)
}

/// How an OtomaX-style supplier's plain-text reply is read.
pub struct TextReply<'a> {
    pub pattern: &'a BalancePattern,
    pub separators: Separators,
}

impl fmt::Debug for TextReply<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TextReply")
            .field("pattern", &self.pattern.0.as_str())
            .finish()
    }
}

impl TextReply<'_> {
    /// A balance where the pattern finds one; otherwise the text is a credential refusal
    /// (`auth`), another refusal (`rejected`), or no answer of this protocol (`decode`).
    ///
    /// The balance is looked for first: success templates often carry advice such as "jangan
    /// berikan PIN anda", which must not read as a refusal.
    pub fn decode(&self, body: &[u8]) -> Result<Balance, UpstreamError> {
        let text = String::from_utf8_lossy(body);
        let trimmed = text.trim_start();
        // An HTML page (a proxy's error, a maintenance page) may mention "saldo" anywhere.
        if trimmed.starts_with('<') {
            return Err(UpstreamError::Decode(
                "an HTML page, not an OtomaX text reply".into(),
            ));
        }
        if let Some(amount) = self.amount_text(&text) {
            let amount = self.parse(amount?)?;
            return Ok(Balance {
                amount,
                // OtomaX suppliers deal in rupiah and their replies name no currency.
                currency: "IDR".into(),
                holder: None,
            });
        }
        Err(classify_refusal(&text))
    }

    /// The amount text: the pattern's capture, or, when the reply shows a subtraction
    /// (`Saldo 71,900 - 10,775 = 61,125`), the result after the last `=` on that line. The
    /// number must end where it is read: in `14.-324.472` the capture `14.` is no balance.
    fn amount_text<'t>(&self, text: &'t str) -> Option<Result<&'t str, UpstreamError>> {
        let captures = self.pattern.0.captures(text)?;
        let amount = captures.get(1)?;
        let line_rest = &text[captures.get(0)?.end()..];
        let line = line_rest.split(['\n', '\r']).next().unwrap_or_default();
        static RESULT: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
            Regex::new(r"^(?:\s*[-+]\s*[0-9][0-9.,]*)+\s*=\s*(-?[0-9][0-9.,]*)")
                .expect("a valid pattern")
        });
        let (amount, after) = match RESULT.captures(line).and_then(|c| c.get(1)) {
            Some(result) => (result.as_str(), &line[result.end()..]),
            None => (amount.as_str(), &text[amount.end()..]),
        };
        // Digits or separators right after it mean the number goes on; only the `,-` of
        // `10.000,-` (no cents) may follow.
        let run: String = after
            .chars()
            .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | ',' | '-'))
            .collect();
        let continues = !(run.is_empty() || run == "-");
        if continues {
            return Some(Err(UpstreamError::Decode(format!(
                "the balance {:?} is cut from a longer number",
                excerpt(amount)
            ))));
        }
        Some(Ok(amount))
    }

    /// An amount, trailing sentence punctuation (`Saldo 284.939.`) aside. A fraction of more
    /// than two digits is no rupiah amount: it means the thousands separator is configured
    /// wrong (`61,125` read with `.`), and is refused rather than read as 61.125.
    fn parse(&self, text: &str) -> Result<Decimal, UpstreamError> {
        let text = text.trim().trim_end_matches(['.', ',']);
        let wrong_separator = || {
            UpstreamError::Decode(format!(
                "balance {:?} does not read with the configured thousands_separator",
                excerpt(text)
            ))
        };
        let amount = self.separators.parse(text).map_err(|_| wrong_separator())?;
        if amount.scale() > 2 {
            return Err(wrong_separator());
        }
        Ok(amount)
    }
}

/// A reply without a balance. Refusal texts are the supplier's own; these are the phrases the
/// OtomaX family uses (`IP tidak sesuai @1.2.3.4`, `Pin Salah`, `Password Salah`,
/// `Sign tidak valid`, `Pengguna tidak ditemukan`) and their usual relatives.
pub fn classify_refusal(text: &str) -> UpstreamError {
    static IP: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
        Regex::new(r"(?i)\bip\b.{0,24}\b(tidak|belum|bukan|not)\b|\bwhitelist").expect("valid")
    });
    static CREDENTIAL: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
        Regex::new(
            r"(?i)\b(pin|password|pass|sign|signature|memberid|member|pengguna|user|reseller|kode agen)\b\s+(anda\s+)?(salah|tidak|belum|invalid|wrong|not)\b|\b(salah|invalid|wrong)\s+(pin|password|sign|signature)\b|\bunauthori[sz]ed\b",
        )
        .expect("valid")
    });
    static BLOCKED: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
        Regex::new(r"(?i)\b(diblokir|blokir|suspend|suspended|nonaktif|tidak aktif|blocked)\b")
            .expect("valid")
    });
    static REFUSAL: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
        Regex::new(
            r"(?i)\b(gagal|salah|tidak|maaf|ditolak|error|invalid|gangguan|maintenance|pemeliharaan|failed|denied|refused)\b",
        )
        .expect("valid")
    });
    let summary = excerpt(text.trim());
    if IP.is_match(text) {
        // The supplier echoes the IP it saw: the one to whitelist.
        UpstreamError::Auth(format!("ip_not_whitelisted: {summary}"))
    } else if CREDENTIAL.is_match(text) {
        UpstreamError::Auth(format!("auth: {summary}"))
    } else if BLOCKED.is_match(text) {
        UpstreamError::Rejected(format!("account_blocked: {summary}"))
    } else if REFUSAL.is_match(text) {
        UpstreamError::Rejected(summary)
    } else {
        UpstreamError::Decode(format!("no balance in the reply: {summary:?}"))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use super::*;
    use crate::error::Reason;

    fn settings(extra: Value) -> Result<Config, String> {
        let mut fields = json!({
            "member_id": "YUSUF",
            "pin": "1144",
            "password": "abcd",
            "base_url": "http://10.1.2.3:6969",
        });
        fields
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap_or_default());
        serde_path_to_error::deserialize(fields).map_err(|err| {
            let path = err.path().to_string();
            format!("{path}: {}", err.into_inner())
        })
    }

    #[test]
    fn the_worked_balance_vector_is_sha1_base64url_without_padding() {
        let text = balance_string("YUSUF", "1144", "abcd");
        assert_eq!(text, "OtomaX|CheckBalance|YUSUF|1144|abcd");
        assert_eq!(
            sign(SignMode::Sha1Base64url, &text).unwrap(),
            "YFuaekLx4HR_wei0nLRzxjqll0Q"
        );
        // The verified transaction vector, through the same encoding.
        assert_eq!(
            sign(
                SignMode::Sha1Base64url,
                "OtomaX|YUSUF|X10|08123456789|2140669|1144|abcd"
            )
            .unwrap(),
            "Cp9NLVuKWBt5Sey_uMlYsvnKvJI"
        );
    }

    #[test]
    fn the_hex_variant_is_base64_of_the_hex_digest_padded() {
        let text = balance_string("YUSUF", "1144", "abcd");
        assert_eq!(
            sign(SignMode::Sha1HexBase64, &text).unwrap(),
            "NjA1YjlhN2E0MmYxZTA3NDdmYzFlOGI0OWNiNDczYzYzYWE1OTc0NA=="
        );
        assert_eq!(sign(SignMode::Plain, &text), None);
    }

    #[test]
    fn the_request_is_a_get_with_the_member_id_and_the_sign() {
        let config = settings(json!({})).unwrap();
        let request = config
            .request(&Client::new(), SystemTime::now())
            .build()
            .unwrap();
        assert_eq!(request.method(), "GET");
        assert_eq!(
            request.url().as_str(),
            "http://10.1.2.3:6969/balance?memberID=YUSUF&sign=YFuaekLx4HR_wei0nLRzxjqll0Q"
        );
        let hex = settings(json!({"sign": "sha1_hex_base64", "path": "/api/balance"})).unwrap();
        let request = hex
            .request(&Client::new(), SystemTime::now())
            .build()
            .unwrap();
        assert_eq!(
            request.url().as_str(),
            "http://10.1.2.3:6969/api/balance?memberID=YUSUF&sign=NjA1YjlhN2E0MmYxZTA3NDdmYzFlOGI0OWNiNDczYzYzYWE1OTc0NA%3D%3D"
        );
        let plain = settings(json!({"sign": "plain"})).unwrap();
        let request = plain
            .request(&Client::new(), SystemTime::now())
            .build()
            .unwrap();
        assert_eq!(
            request.url().as_str(),
            "http://10.1.2.3:6969/balance?memberID=YUSUF&pin=1144&password=abcd"
        );
    }

    #[test]
    fn base_url_is_required_and_named_when_missing() {
        let mut fields: Map<String, Value> =
            json!({"member_id": "YUSUF", "pin": "1144", "password": "abcd"})
                .as_object()
                .cloned()
                .unwrap();
        let err = super::super::parse::<Config>(fields.clone()).unwrap_err();
        assert!(err.to_string().contains("base_url"), "{err}");
        fields.insert("base_url".into(), "http://10.1.2.3:6969".into());
        assert!(super::super::parse::<Config>(fields).is_ok());
    }

    #[test]
    fn a_balance_pattern_needs_exactly_one_capture_group() {
        for bad in [r"saldo \d+", r"(saldo) (\d+)", r"saldo ([0-9]+"] {
            let err = settings(json!({"balance_pattern": bad})).unwrap_err();
            assert!(err.starts_with("balance_pattern:"), "{err}");
        }
        let custom =
            settings(json!({"balance_pattern": r"(?i)deposit anda rp ([0-9.]+)"})).unwrap();
        let balance = custom
            .decode(b"Deposit anda Rp 1.250.000 per hari ini")
            .unwrap();
        assert_eq!(balance.amount, 1_250_000.into());
        let err = settings(json!({"thousands_separator": "'"})).unwrap_err();
        assert!(err.starts_with("thousands_separator:"), "{err}");
        let err = settings(json!({"sign": "md5"})).unwrap_err();
        assert!(err.starts_with("sign:"), "{err}");
    }

    #[test]
    fn the_common_reply_texts_are_read_by_the_default_pattern() {
        let config = settings(json!({})).unwrap();
        for (reply, amount) in [
            (SAMPLE_ANSWER, "14324472"),
            ("Saldo 284.939", "284939"),
            ("Saldo : 14.324.472", "14324472"),
            ("SALDO: Rp.10.000", "10000"),
            ("Saldo Rp 10.000,50.", "10000.50"),
            ("Saldo : -1.500", "-1500"),
            ("Saldo Rp 14.324.472,- per 31/05", "14324472"),
            (
                "R#1 Saldo 284.939. Jangan berikan PIN anda, kami tidak pernah memintanya",
                "284939",
            ),
        ] {
            let balance = config
                .decode(reply.as_bytes())
                .unwrap_or_else(|err| panic!("{reply}: {err}"));
            assert_eq!(balance.amount, amount.parse().unwrap(), "{reply}");
            assert_eq!(balance.currency, "IDR");
        }
    }

    #[test]
    fn a_subtraction_is_read_as_its_result_with_the_configured_separator() {
        let english = settings(json!({"thousands_separator": ","})).unwrap();
        let balance = english
            .decode(b"Trx sukses. Saldo 71,900 - 10,775 = 61,125")
            .unwrap();
        assert_eq!(balance.amount, 61_125.into());
        // With the default `.`, `61,125` would be 61.125 rupiah: refused, not misread.
        let err = settings(json!({}))
            .unwrap()
            .decode(b"Saldo 71,900 - 10,775 = 61,125")
            .unwrap_err();
        assert_eq!(err.reason(), Reason::Decode);
        assert!(err.to_string().contains("thousands_separator"), "{err}");
        let err = settings(json!({}))
            .unwrap()
            .decode(b"Saldo : 14.-324.472")
            .unwrap_err();
        assert!(err.to_string().contains("longer number"), "{err}");
        let none = settings(json!({"thousands_separator": "none"})).unwrap();
        assert_eq!(
            none.decode(b"Saldo 10000.50").unwrap().amount,
            "10000.50".parse().unwrap()
        );
    }

    #[test]
    fn refusal_texts_are_auth_or_rejected_and_other_texts_decode_failures() {
        let config = settings(json!({})).unwrap();
        for (reply, reason, class) in [
            (
                "IP tidak sesuai @1.2.3.4",
                Reason::Auth,
                "ip_not_whitelisted",
            ),
            ("Pin Salah", Reason::Auth, "auth"),
            ("Password Salah", Reason::Auth, "auth"),
            ("Sign tidak valid", Reason::Auth, "auth"),
            ("Pengguna tidak ditemukan", Reason::Auth, "auth"),
            ("Akun anda diblokir", Reason::Rejected, "account_blocked"),
            (
                "Maaf, sistem sedang maintenance",
                Reason::Rejected,
                "maintenance",
            ),
            ("Gagal, silakan ulangi", Reason::Rejected, "Gagal"),
            ("Saldo tidak dapat ditampilkan", Reason::Rejected, "Saldo"),
            ("OK", Reason::Decode, "no balance"),
            (
                "Informasi Akun Anda\n Nama : John Doe",
                Reason::Decode,
                "no balance",
            ),
            (
                "<html><body>Saldo 5.000</body></html>",
                Reason::Decode,
                "HTML",
            ),
            ("", Reason::Decode, "no balance"),
        ] {
            let err = config.decode(reply.as_bytes()).unwrap_err();
            assert_eq!(err.reason(), reason, "{reply}: {err}");
            assert!(err.to_string().contains(class), "{reply}: {err}");
        }
    }
}
