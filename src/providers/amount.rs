//! Money amounts as decimals, from whatever shape a supplier writes them in: a JSON number,
//! a numeric string, a bare number as the whole `data`, or Indonesian-formatted text
//! (`Rp 14.324.472`, `71,900`, `Rp.10.000,50`) with separators chosen per supplier.
//!
//! Never through `f64`: a balance of `12.34` must stay exactly 12.34.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A money amount from a JSON number or a numeric string (`25490`, `5523560.0`, `"25000.00"`).
/// A bare `data: 25490` is the same call on `data`.
pub fn parse_amount(value: &Value) -> Result<Decimal, String> {
    let text = match value {
        // serde_json prints the shortest text that reads back as the same number, so a JSON
        // `12.34` stays exactly 12.34 here rather than the nearest binary fraction.
        Value::Number(number) => number.to_string(),
        Value::String(text) => text.trim().to_owned(),
        other => return Err(format!("expected a number or numeric string, got {other}")),
    };
    Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .map_err(|_| format!("not a number: {text:?}"))
}

/// `#[serde(deserialize_with = "amount")]` for balances and thresholds.
pub fn amount<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
    parse_amount(&Value::deserialize(deserializer)?).map_err(D::Error::custom)
}

/// How a supplier writes amounts as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Separators {
    /// Between groups of three digits, if the supplier groups them.
    pub thousands: Option<char>,
    pub decimal: char,
}

impl Separators {
    /// `14.324.472`, `10.000,50`: the Indonesian convention.
    pub const INDONESIAN: Separators = Separators {
        thousands: Some('.'),
        decimal: ',',
    };
    /// `71,900`, `10,000.50`.
    pub const ENGLISH: Separators = Separators {
        thousands: Some(','),
        decimal: '.',
    };
    /// `10000.50`: no grouping.
    pub const PLAIN: Separators = Separators {
        thousands: None,
        decimal: '.',
    };

    /// An amount written as text: an optional `Rp`/`Rp.`/`IDR` prefix, an optional sign, digits
    /// grouped by threes with the thousands separator (or not grouped at all), and an optional
    /// fraction. Anything else, including a misplaced separator, is refused rather than guessed.
    pub fn parse(self, text: &str) -> Result<Decimal, String> {
        let refuse = || format!("not an amount: {:?}", super::excerpt(text));
        let mut rest = text.trim();
        for prefix in ["Rp.", "Rp", "RP.", "RP", "IDR"] {
            if let Some(stripped) = rest.strip_prefix(prefix) {
                rest = stripped.trim_start();
                break;
            }
        }
        let (negative, rest) = match rest.strip_prefix('-') {
            Some(rest) => (true, rest.trim_start()),
            None => (false, rest),
        };
        let (whole, fraction) = match rest.split_once(self.decimal) {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (rest, None),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let whole = match self.thousands.filter(|sep| whole.contains(*sep)) {
            Some(sep) => {
                let groups: Vec<&str> = whole.split(sep).collect();
                let first_ok = digits(groups[0]) && groups[0].len() <= 3;
                if !first_ok || !groups[1..].iter().all(|g| g.len() == 3 && digits(g)) {
                    return Err(refuse());
                }
                groups.concat()
            }
            None if digits(whole) => whole.to_owned(),
            None => return Err(refuse()),
        };
        let mut plain = String::with_capacity(whole.len() + 8);
        if negative {
            plain.push('-');
        }
        plain.push_str(&whole);
        if let Some(fraction) = fraction {
            if !digits(fraction) {
                return Err(refuse());
            }
            plain.push('.');
            plain.push_str(fraction);
        }
        Decimal::from_str(&plain).map_err(|_| refuse())
    }

    /// A JSON number as it is, a string as text written with these separators.
    pub fn parse_value(self, value: &Value) -> Result<Decimal, String> {
        match value {
            Value::Number(_) => parse_amount(value),
            Value::String(text) => self.parse(text),
            other => Err(format!(
                "expected a number or an amount as text, got {other}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn d(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    #[test]
    fn amounts_come_from_numbers_and_numeric_strings() {
        assert_eq!(parse_amount(&json!(25490)), Ok(Decimal::from(25490)));
        assert_eq!(parse_amount(&json!(5523560.0)), Ok(Decimal::from(5523560)));
        assert_eq!(
            parse_amount(&json!("25000.00")).unwrap().to_string(),
            "25000.00"
        );
        assert_eq!(parse_amount(&json!(12.34)).unwrap().to_string(), "12.34");
        assert_eq!(parse_amount(&json!(1e6)), Ok(Decimal::from(1_000_000)));
        assert_eq!(parse_amount(&json!(-1500)), Ok(Decimal::from(-1500)));
    }

    #[test]
    fn null_text_and_objects_are_not_amounts() {
        for bad in [json!(null), json!("abc"), json!(""), json!({}), json!(true)] {
            assert!(parse_amount(&bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn a_bare_number_as_data_is_an_amount() {
        let answer = json!({"success": true, "data": 71900});
        assert_eq!(parse_amount(&answer["data"]), Ok(Decimal::from(71_900)));
    }

    #[test]
    fn indonesian_text_reads_dots_as_thousands_and_the_comma_as_decimal_point() {
        let id = Separators::INDONESIAN;
        assert_eq!(id.parse("Rp 14.324.472"), Ok(d("14324472")));
        assert_eq!(id.parse("Rp.10.000"), Ok(d("10000")));
        assert_eq!(id.parse("Rp10000"), Ok(d("10000")));
        assert_eq!(id.parse("10.000,50"), Ok(d("10000.50")));
        assert_eq!(id.parse("-1.500"), Ok(d("-1500")));
        assert_eq!(id.parse(" 999 "), Ok(d("999")));
    }

    #[test]
    fn english_text_reads_commas_as_thousands() {
        let en = Separators::ENGLISH;
        assert_eq!(en.parse("71,900"), Ok(d("71900")));
        assert_eq!(en.parse("IDR 1,234,567.89"), Ok(d("1234567.89")));
        assert_eq!(Separators::PLAIN.parse("25000.00"), Ok(d("25000.00")));
    }

    #[test]
    fn misplaced_separators_and_words_are_refused_not_guessed() {
        let id = Separators::INDONESIAN;
        for bad in [
            "",
            "Rp",
            "14.32.472",
            "1.0000",
            ".500",
            "1..000",
            "10,5,0",
            "sepuluh ribu",
            "1 000",
            "1.000.",
            "--5",
            "0x10",
            "1e5",
        ] {
            assert!(id.parse(bad).is_err(), "{bad:?} parsed");
        }
        // The same text means different amounts with different separators, never both.
        assert_eq!(Separators::ENGLISH.parse("1.500"), Ok(d("1.500")));
        assert_eq!(id.parse("1.500"), Ok(d("1500")));
    }

    #[test]
    fn values_keep_numbers_as_numbers_and_read_strings_with_the_separators() {
        let id = Separators::INDONESIAN;
        assert_eq!(id.parse_value(&json!(12.34)), Ok(d("12.34")));
        assert_eq!(id.parse_value(&json!("Rp 2.500")), Ok(d("2500")));
        assert!(id.parse_value(&json!(null)).is_err());
    }
}
