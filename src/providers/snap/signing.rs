//! SNAP BI signatures, pure functions of their inputs (the time is passed in).
//!
//! - The B2B token request: `base64(SHA256withRSA(private_key, client_id + "|" + X-TIMESTAMP))`,
//!   RSASSA-PKCS1-v1_5 with the partner's RSA key (aws-lc, the library rustls already links).
//! - The balance inquiry: `base64(HMAC-SHA512(client_secret, stringToSign))` over
//!   `METHOD:path:token:sha256hex(minified body):X-TIMESTAMP`.
//!
//! Both are standard base64 with padding, not the base64url of JWTs.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use aws_lc_rs::rsa::KeyPair;
use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha512;

use crate::providers::unix_seconds;
use crate::signing::sha256_hex;

/// Jakarta is UTC+7 all year (no daylight saving), so a fixed offset is exact.
const JAKARTA_OFFSET_SECONDS: i64 = 7 * 3600;

/// `X-TIMESTAMP`: ISO-8601 in Jakarta time with its offset, `2020-12-18T15:06:00+07:00`.
pub fn timestamp(now: SystemTime) -> String {
    let (date, seconds) = jakarta_civil(now);
    format!(
        "{date}T{:02}:{:02}:{:02}+07:00",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// The Jakarta calendar day of `now` (`2020-12-18`): the span in which an `X-EXTERNAL-ID` must
/// be unique.
pub fn jakarta_day(now: SystemTime) -> String {
    jakarta_civil(now).0
}

/// The Jakarta date (`YYYY-MM-DD`) and the seconds since its midnight.
fn jakarta_civil(now: SystemTime) -> (String, i64) {
    let seconds = unix_seconds(now) + JAKARTA_OFFSET_SECONDS;
    let (days, time) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (format!("{year:04}-{month:02}-{day:02}"), time)
}

/// Reads an `X-TIMESTAMP` back (`YYYY-MM-DDTHH:MM:SS[.fff]±HH:MM`, or `Z`), for the
/// simulator's clock check. `None` for anything else.
pub fn parse_timestamp(text: &str) -> Option<SystemTime> {
    let bytes = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || bytes[10] != b'T' {
        return None;
    }
    if bytes[13] != b':' || bytes[16] != b':' {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 59 {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            let hours = number(text.len() - 5..text.len() - 3)?;
            let minutes = number(text.len() - 2..text.len())?;
            sign * (hours * 3600 + minutes * 60)
        }
    };
    // Days since the epoch from the civil date (the inverse of Hinnant's algorithm).
    let y = year - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    let seconds = u64::try_from(seconds).ok()?;
    Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(seconds))
}

/// What the token request's RSA signature covers: `client_id|X-TIMESTAMP`.
pub fn token_string_to_sign(client_id: &str, timestamp: &str) -> String {
    format!("{client_id}|{timestamp}")
}

/// What the inquiry's HMAC covers: `METHOD:path:token:sha256hex(minified body):X-TIMESTAMP`.
/// `body` must already be minified (the client sends exactly the bytes it signs).
pub fn string_to_sign(
    method: &str,
    path: &str,
    token: &str,
    body: &[u8],
    timestamp: &str,
) -> String {
    format!(
        "{method}:{path}:{token}:{}:{timestamp}",
        sha256_hex(body).to_lowercase()
    )
}

/// `base64(HMAC-SHA512(client_secret, string_to_sign))`.
pub fn symmetric_signature(client_secret: &str, string_to_sign: &str) -> String {
    let mut mac = Hmac::<Sha512>::new_from_slice(client_secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(string_to_sign.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The partner's RSA private key. Never printed.
#[derive(Clone)]
pub struct PrivateKey(Arc<KeyPair>);

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey([REDACTED])")
    }
}

impl PrivateKey {
    /// Reads a PEM key: PKCS#8 (`BEGIN PRIVATE KEY`, what `openssl genpkey` writes) or PKCS#1
    /// (`BEGIN RSA PRIVATE KEY`, older `openssl genrsa`). A key pasted into one environment
    /// variable with literal `\n`s is read too. Errors never quote the key.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let pem = pem.replace("\\n", "\n");
        let mut lines = pem.lines().map(str::trim);
        let begin = lines
            .by_ref()
            .find(|line| line.starts_with("-----BEGIN "))
            .ok_or("not a PEM key: no -----BEGIN line")?;
        if begin.contains("ENCRYPTED") {
            return Err(
                "an encrypted key; decrypt it (openssl pkey -in key.pem -out plain.pem)".into(),
            );
        }
        let pkcs1 = begin.contains("RSA PRIVATE KEY");
        if !pkcs1 && !begin.contains("BEGIN PRIVATE KEY") {
            return Err(
                "not an RSA private key (expected BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY)"
                    .into(),
            );
        }
        let body: String = lines
            .take_while(|line| !line.starts_with("-----END "))
            .collect();
        let der = STANDARD
            .decode(body.as_bytes())
            .map_err(|_| "the PEM body is not valid base64")?;
        let key = if pkcs1 {
            KeyPair::from_der(&der)
        } else {
            KeyPair::from_pkcs8(&der)
        }
        .map_err(|err| format!("not a usable RSA private key ({err})"))?;
        Ok(Self(Arc::new(key)))
    }

    pub fn from_key_pair(key: KeyPair) -> Self {
        Self(Arc::new(key))
    }

    /// `base64(SHA256withRSA(key, message))`. PKCS#1 v1.5 is deterministic: one key and one
    /// message give one signature.
    pub fn sign(&self, message: &str) -> String {
        let mut signature = vec![0; self.0.public_modulus_len()];
        self.0
            .sign(
                &RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                message.as_bytes(),
                &mut signature,
            )
            .expect("signing with a parsed RSA key into a buffer of its modulus length");
        STANDARD.encode(signature)
    }

    /// The public key, DER `RSAPublicKey` (PKCS#1), as the bank holds it.
    pub fn public_key(&self) -> Vec<u8> {
        use aws_lc_rs::signature::KeyPair as _;
        self.0.public_key().as_ref().to_vec()
    }
}

/// Whether `signature` (standard base64) is `SHA256withRSA` of `message` under `public_key`
/// (DER `RSAPublicKey`, or `SubjectPublicKeyInfo` as `openssl pkey -pubout` writes).
pub fn verify_rsa(public_key: &[u8], message: &str, signature: &str) -> bool {
    let Ok(signature) = STANDARD.decode(signature) else {
        return false;
    };
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public_key)
        .verify(message.as_bytes(), &signature)
        .is_ok()
}

/// JSON with the whitespace between tokens removed, strings untouched: the "minified body"
/// SNAP hashes. The input is not validated.
pub fn minify(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let (mut in_string, mut escaped) = (false, false);
    for &byte in body {
        if in_string {
            out.push(byte);
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if !matches!(byte, b' ' | b'\t' | b'\n' | b'\r') {
            out.push(byte);
            in_string = byte == b'"';
        }
    }
    out
}

/// A fresh `X-EXTERNAL-ID`: numeric, at most 36 digits, unique per partner per day. The
/// milliseconds since the epoch, a per-process counter and random digits: unique within a
/// process by the counter, and across restarts and replicas sharing a client id by the time
/// and the randomness.
pub fn external_id(now: SystemTime, counter: u64, random: u64) -> String {
    let millis = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!(
        "{millis:013}{:04}{:010}",
        counter % 10_000,
        random % 10_000_000_000
    )
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    const TEST_KEY: &str = include_str!("test_key.pem");
    const TEST_KEY_PKCS1: &str = include_str!("test_key_pkcs1.pem");
    const TEST_PUBLIC_KEY: &str = include_str!("test_key.pub.pem");

    /// `2020-12-18T15:06:00+07:00`, the timestamp of the providers.md vectors.
    fn vector_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_608_278_760)
    }

    #[test]
    fn the_timestamp_is_jakarta_wall_time_with_its_offset() {
        assert_eq!(timestamp(vector_time()), "2020-12-18T15:06:00+07:00");
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T07:00:00+07:00");
        // 17:00 UTC is already the next day in Jakarta.
        let evening = UNIX_EPOCH + Duration::from_secs(1_780_246_800);
        assert_eq!(timestamp(evening), "2026-06-01T00:00:00+07:00");
        assert_eq!(jakarta_day(evening), "2026-06-01");
    }

    #[test]
    fn timestamps_read_back_with_any_offset_and_fraction() {
        let at = vector_time();
        assert_eq!(parse_timestamp(&timestamp(at)), Some(at));
        assert_eq!(parse_timestamp("2020-12-18T08:06:00Z"), Some(at));
        assert_eq!(parse_timestamp("2020-12-18T15:06:00.000+07:00"), Some(at));
        assert_eq!(parse_timestamp("2020-12-18T09:06:00+01:00"), Some(at));
        for bad in [
            "",
            "2020-12-18 15:06:00+07:00",
            "2020-12-18T15:06:00",
            "2020-13-18T15:06:00+07:00",
            "2020-12-18T15:06:00+0700",
            "2020-12-18T15:06:00.+07:00",
            "2020-12-18T15:06:00+07:0x",
            "yyyy-12-18T15:06:00+07:00",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    /// providers.md §2.19, item 7: the HMAC-SHA512 step, computed from the stated inputs.
    #[test]
    fn the_inquiry_signature_matches_the_worked_vector() {
        let body = br#"{"partnerReferenceNo":"2020102900000000000001","accountNo":"1234567890"}"#;
        assert_eq!(
            sha256_hex(body),
            "31fb254e344e51e89c57673f8e1969fcce0d29b360049f6fd98edb5287ec19fa"
        );
        let string = string_to_sign(
            "POST",
            "/openapi/v1.0/balance-inquiry",
            "ACCESS_TOKEN_EXAMPLE",
            body,
            "2020-12-18T15:06:00+07:00",
        );
        assert_eq!(
            string,
            "POST:/openapi/v1.0/balance-inquiry:ACCESS_TOKEN_EXAMPLE:\
             31fb254e344e51e89c57673f8e1969fcce0d29b360049f6fd98edb5287ec19fa:\
             2020-12-18T15:06:00+07:00"
        );
        assert_eq!(
            symmetric_signature("CLIENT_SECRET_EXAMPLE", &string),
            "xVHOX3MVnf8BGPkbMapgrIrBNk6bSsKdM1Ny7qDs7xeldzahZ7IyNTlQu26F724vuy6y1k6pH+FLed37kTRvpQ=="
        );
    }

    #[test]
    fn an_empty_body_hashes_to_the_empty_sha256() {
        let string = string_to_sign("POST", "/p", "t", b"", "ts");
        assert!(
            string.contains(":e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855:")
        );
    }

    /// The expected value was made by OpenSSL, independently of this code:
    /// `printf '%s' 'CLIENT_ID_EXAMPLE|2020-12-18T15:06:00+07:00' |
    ///  openssl dgst -sha256 -sign test_key.pem | base64 -w0`.
    const TOKEN_SIGNATURE: &str = "MhPlhu/a7A0NtrGCboBQQE8IppWcq5unLAIETXHhHsxm9Uc0JDPFPKE/dMF8BrXX6peceY5S050CsIA5iSyDVQq+NGI1Rm5t+ELSvZxO7cjXK7KzP3Rf9Y5NYGHRLtYhWHJQz3uEVd7kKfMI1Qf3AjbvDG9KHIOZeEz8YeqWO/Ov2GsxHLZMJ9SmAasDNPnqGMw88QjTc+w2O1AgZ2d7s6wKujzlwd81RYkJC7AtsDseR7SPQMQikAF0doqc6h4zrTBJ0EweipTP6i1LlgyldGAM+8nQfF5zSewvjPa5HPWyIPLHPw3EKls0rY1jXrGOHuGsLUAKuIRDMj2A+0Nd8A==";

    #[test]
    fn the_token_signature_matches_openssl_and_verifies_with_the_public_key() {
        let message = token_string_to_sign("CLIENT_ID_EXAMPLE", &timestamp(vector_time()));
        assert_eq!(message, "CLIENT_ID_EXAMPLE|2020-12-18T15:06:00+07:00");
        for pem in [TEST_KEY, TEST_KEY_PKCS1] {
            let key = PrivateKey::from_pem(pem).unwrap();
            assert_eq!(key.sign(&message), TOKEN_SIGNATURE);
            assert!(verify_rsa(&key.public_key(), &message, TOKEN_SIGNATURE));
        }
        // The public key as `openssl pkey -pubout` writes it, as a bank would hold it.
        let spki: String = TEST_PUBLIC_KEY
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect();
        let spki = STANDARD.decode(spki).unwrap();
        assert!(verify_rsa(&spki, &message, TOKEN_SIGNATURE));
        assert!(!verify_rsa(
            &spki,
            "CLIENT_ID_EXAMPLE|2020-12-18T15:06:01+07:00",
            TOKEN_SIGNATURE
        ));
        assert!(!verify_rsa(&spki, &message, "not base64"));
    }

    #[test]
    fn a_key_pasted_with_literal_newlines_is_read() {
        let one_line = TEST_KEY.replace('\n', "\\n");
        assert!(PrivateKey::from_pem(&one_line).is_ok());
    }

    #[test]
    fn unusable_keys_are_refused_without_quoting_them() {
        for (pem, expected) in [
            ("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "no -----BEGIN line"),
            (
                "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----",
                "not an RSA private key",
            ),
            (
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----",
                "encrypted",
            ),
            (
                "-----BEGIN PRIVATE KEY-----\nMIIB%%%\n-----END PRIVATE KEY-----",
                "not valid base64",
            ),
            (
                "-----BEGIN PRIVATE KEY-----\nMIIBAA==\n-----END PRIVATE KEY-----",
                "not a usable RSA private key",
            ),
        ] {
            let err = PrivateKey::from_pem(pem).unwrap_err();
            assert!(err.contains(expected), "{err}");
            assert!(!err.contains("MIIB"), "{err}");
        }
        assert_eq!(
            format!("{:?}", PrivateKey::from_pem(TEST_KEY).unwrap()),
            "PrivateKey([REDACTED])"
        );
    }

    #[test]
    fn minifying_removes_whitespace_outside_strings_only() {
        assert_eq!(
            minify(b"{ \"a\" : \"x y\\\" z\" ,\n \"b\": [1, 2] }"),
            b"{\"a\":\"x y\\\" z\",\"b\":[1,2]}"
        );
    }

    #[test]
    fn external_ids_are_numeric_and_at_most_36_digits() {
        let id = external_id(vector_time(), 12_345, u64::MAX);
        assert!(
            id.len() <= 36 && id.bytes().all(|b| b.is_ascii_digit()),
            "{id}"
        );
        assert_eq!(&id[..17], "16082787600002345");
        assert_ne!(id, external_id(vector_time(), 12_346, u64::MAX));
    }
}
