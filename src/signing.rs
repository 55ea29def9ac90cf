//! Pure request-signing functions, one per documented scheme.
//!
//! They take every input, the time included, as arguments so that tests can check them against
//! vectors worked out by hand from the providers' documentation (see the tests below, computed
//! independently with Python's `hmac` and `openssl dgst`).

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Body fields that isikuota excludes from the canonical body.
const ISIKUOTA_ENVELOPE_FIELDS: [&str; 3] = ["api_id", "timestamp", "signature"];

/// Lower-case hex, as every provider documents its digests.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex MD5 of the parts joined with nothing between them: the PPOB suppliers' usual
/// `md5(username + key + "suffix")` signature.
pub fn md5_hex(parts: &[&str]) -> String {
    let mut digest = md5::Md5::new();
    for part in parts {
        digest.update(part.as_bytes());
    }
    hex(&digest.finalize())
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

pub fn hmac_sha256_hex(key: &[u8], data: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    hex(&mac.finalize().into_bytes())
}

/// isikuota's `canonicalBody`: the business parameters (every field but `api_id`, `timestamp`
/// and `signature`) sorted by key, as compact JSON with raw `/` and raw UTF-8 (PHP's
/// `JSON_UNESCAPED_UNICODE|JSON_UNESCAPED_SLASHES`), or `""` when there are none.
pub fn isikuota_canonical_body(body: &Map<String, Value>) -> String {
    // Sorted explicitly: serde_json's map keeps insertion order when a dependency turns on
    // `preserve_order`, and the documentation sorts the top level only.
    let params: BTreeMap<&str, &Value> = body
        .iter()
        .filter(|(key, _)| !ISIKUOTA_ENVELOPE_FIELDS.contains(&key.as_str()))
        .map(|(key, value)| (key.as_str(), value))
        .collect();
    if params.is_empty() {
        return String::new();
    }
    // serde_json writes neither `\/` nor `\uXXXX` for non-ASCII text, which is what PHP's flags
    // ask for. (PHP still escapes U+2028/U+2029; no balance parameter can contain them.)
    serde_json::to_string(&params).expect("JSON values always serialise")
}

/// isikuota's signature: hex HMAC-SHA256 keyed with the secret key over
/// `api_id|api_key|timestamp|hex(sha256(canonicalBody))`.
///
/// The balance call has no business parameters, so it signs the empty body:
///
/// ```
/// use saldo_exporter::signing::isikuota_signature;
///
/// // The documentation's placeholder credentials at 2026-05-31T10:21:58Z.
/// let signature =
///     isikuota_signature("your_api_id", "your_api_key", "your_secret_key", 1780222918, "");
/// assert_eq!(signature, "af4c1cd8c999e21dfba3416ddd738dd0ba2ce99e8794a7cbf92d6ddbd1254d8b");
/// ```
pub fn isikuota_signature(
    api_id: &str,
    api_key: &str,
    secret_key: &str,
    timestamp: i64,
    canonical_body: &str,
) -> String {
    let body_hash = sha256_hex(canonical_body.as_bytes());
    let string_to_sign = format!("{api_id}|{api_key}|{timestamp}|{body_hash}");
    hmac_sha256_hex(secret_key.as_bytes(), string_to_sign.as_bytes())
}

/// Ayopop's `TOKEN` header: an HS256 JWT whose claims are the request payload, signed with the
/// partner's secret. The documentation has no `exp` or `iat`, so the token is deterministic.
///
/// ```
/// use saldo_exporter::signing::ayopop_token;
///
/// let token = ayopop_token(&serde_json::json!({"partnerId": "ayopop"}), "ayopop-api-secret");
/// // The payload segment is the one in the documentation's sample token.
/// assert_eq!(token.split('.').nth(1), Some("eyJwYXJ0bmVySWQiOiJheW9wb3AifQ"));
/// assert_eq!(token, ayopop_token(&serde_json::json!({"partnerId": "ayopop"}), "ayopop-api-secret"));
/// ```
pub fn ayopop_token(claims: &impl Serialize, secret: &str) -> String {
    jwt_hs256(claims, secret.as_bytes())
}

/// A compact HS256 JWT (header `{"typ":"JWT","alg":"HS256"}`) of `claims`, keyed with `key`.
pub fn jwt_hs256(claims: &impl Serialize, key: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(key),
    )
    .expect("HS256 signing of a JSON object cannot fail")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_hash_of_the_empty_balance_body_is_the_documented_constant() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn the_isikuota_balance_call_has_an_empty_canonical_body() {
        let body = json!({"api_id": "your_api_id", "timestamp": 1780222918, "signature": "x"});
        assert_eq!(isikuota_canonical_body(body.as_object().unwrap()), "");
    }

    #[test]
    fn the_isikuota_balance_signature_matches_the_worked_example() {
        // The seed's placeholder credentials at 2026-05-31T10:21:58Z; expected value from
        // `echo -n 'your_api_id|your_api_key|1780222918|e3b0…b855' | openssl dgst -sha256 -hmac your_secret_key`.
        let signature = isikuota_signature(
            "your_api_id",
            "your_api_key",
            "your_secret_key",
            1780222918,
            "",
        );
        assert_eq!(
            signature,
            "af4c1cd8c999e21dfba3416ddd738dd0ba2ce99e8794a7cbf92d6ddbd1254d8b"
        );
    }

    #[test]
    fn business_params_are_sorted_compact_with_raw_slashes_and_unicode() {
        let body = json!({
            "api_id": "your_api_id",
            "timestamp": 1780222918,
            "ref_id": "INV/2026/05/0001",
            "product_code": "TSEL10",
            "phone": "081234567890",
            "note": "Pulsa untuk Ibu — terima kasih ✓",
        });
        let canonical = isikuota_canonical_body(body.as_object().unwrap());
        assert_eq!(
            canonical,
            r#"{"note":"Pulsa untuk Ibu — terima kasih ✓","phone":"081234567890","product_code":"TSEL10","ref_id":"INV/2026/05/0001"}"#
        );
        // Python: json.dumps(sorted params, separators=(',', ':'), ensure_ascii=False), then
        // hmac over the documented string to sign.
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "be8ca5abb7eb136ca976719923c2afd7f984a7ad3bd88089d56fe0179f52eb89"
        );
        assert_eq!(
            isikuota_signature(
                "your_api_id",
                "your_api_key",
                "your_secret_key",
                1780222918,
                &canonical
            ),
            "b5b61ee461acccef03961a0aef1dcc3f539acfc7e9af8da54454aa78a2d9b246"
        );
    }

    #[test]
    fn the_ayopop_token_has_the_seed_header_and_claims_and_a_hand_computed_signature() {
        let token = ayopop_token(&json!({"partnerId": "ayopop"}), "ayopop-api-secret");
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::HS256);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        let parts: Vec<&str> = token.split('.').collect();
        // The seed's sample token for partnerId "ayopop" carries exactly this payload segment.
        assert_eq!(parts[1], "eyJwYXJ0bmVySWQiOiJheW9wb3AifQ");
        // Python: base64url(hmac_sha256(secret, header "." payload)) over these exact bytes. The
        // seed writes `alg` before `typ`; JSON gives the order no meaning, so either is accepted.
        let expected = match parts[0] {
            "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9" => "PATkehgaADLgx0PLssVwQ3mSkWRnQkuz-J_ygXiOfqY",
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9" => "3_zdGRs3ZkVsyyeusk_QeGG5eV1yG9S2MT2I0RAYL5Y",
            other => panic!("unexpected JWT header {other}"),
        };
        assert_eq!(parts[2], expected);
    }
}
