//! What differs between SNAP BI providers that follow the standard: the paths under their
//! host and the `CHANNEL-ID` they assigned (providers.md §2.17–2.19). A preset fills these;
//! any field set explicitly wins.

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    Bca,
    Bri,
    Durianpay,
    Doku,
}

/// One provider's documented differences.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    pub token_path: &'static str,
    pub balance_path: &'static str,
    /// `None` where no public document gives it: the account must set `channel_id`.
    pub channel_id: Option<&'static str>,
    /// Whether the documented body carries `"additionalInfo":{}`.
    pub additional_info: bool,
}

/// The standard's own paths, for a provider without a preset.
pub const STANDARD: Defaults = Defaults {
    token_path: "/v1.0/access-token/b2b",
    balance_path: "/v1.0/balance-inquiry",
    channel_id: None,
    additional_info: false,
};

impl Preset {
    pub fn defaults(self) -> Defaults {
        match self {
            // developer.bca.co.id: both paths under `/openapi`, channel 95051.
            Preset::Bca => Defaults {
                token_path: "/openapi/v1.0/access-token/b2b",
                balance_path: "/openapi/v1.0/balance-inquiry",
                channel_id: Some("95051"),
                additional_info: false,
            },
            // BRI's SNAP samples: both paths under `/snap`. BRI's channel id is not public.
            Preset::Bri => Defaults {
                token_path: "/snap/v1.0/access-token/b2b",
                balance_path: "/snap/v1.0/balance-inquiry",
                channel_id: None,
                additional_info: false,
            },
            // docs.durianpay.id: channel 95221 and an `additionalInfo` object in the body. The
            // token path is not shown there; the standard one is assumed (unconfirmed).
            Preset::Durianpay => Defaults {
                token_path: "/v1.0/access-token/b2b",
                balance_path: "/v1.0/balance-inquiry",
                channel_id: Some("95221"),
                additional_info: true,
            },
            // DOKU's "Kirim DOKU" SNAP balance is v1.1. The token path is from DOKU's docs as
            // remembered, not re-verified (unconfirmed); DOKU's channel id is not public.
            Preset::Doku => Defaults {
                token_path: "/authorization/v1/access-token/b2b",
                balance_path: "/snap/v1.1/balance-inquiry",
                channel_id: None,
                additional_info: false,
            },
        }
    }
}
