//! The one place where upstream failures are classified.
//!
//! Every failed balance check ends as exactly one [`UpstreamError`], and every error maps to one
//! [`Reason`], the `reason` label of `saldo_upstream_errors_total`. The set is small and fixed so
//! that alerts and dashboards can rely on it.

use std::time::Duration;

use reqwest::StatusCode;

/// Why a balance check failed; the values of the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Timeout,
    Connect,
    HttpStatus,
    Auth,
    RateLimited,
    Decode,
    Rejected,
}

impl Reason {
    /// Every reason, so counters can be initialised to 0 before the first failure.
    pub const ALL: [Reason; 7] = [
        Reason::Timeout,
        Reason::Connect,
        Reason::HttpStatus,
        Reason::Auth,
        Reason::RateLimited,
        Reason::Decode,
        Reason::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Timeout => "timeout",
            Reason::Connect => "connect",
            Reason::HttpStatus => "http_status",
            Reason::Auth => "auth",
            Reason::RateLimited => "rate_limited",
            Reason::Decode => "decode",
            Reason::Rejected => "rejected",
        }
    }
}

/// A failed balance check. Messages never contain credentials: requests carry secrets only in
/// headers and signatures, and reqwest errors are stripped of their URL.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
    #[error("transport failure: {0}")]
    Connect(String),
    #[error("unexpected HTTP status {0}")]
    HttpStatus(StatusCode),
    #[error("credentials refused: {0}")]
    Auth(String),
    #[error("rate limited (HTTP 429){}", retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },
    #[error("undecodable answer: {0}")]
    Decode(String),
    #[error("check refused by the provider: {0}")]
    Rejected(String),
}

impl UpstreamError {
    pub fn reason(&self) -> Reason {
        match self {
            UpstreamError::Timeout(_) => Reason::Timeout,
            UpstreamError::Connect(_) => Reason::Connect,
            UpstreamError::HttpStatus(_) => Reason::HttpStatus,
            UpstreamError::Auth(_) => Reason::Auth,
            UpstreamError::RateLimited { .. } => Reason::RateLimited,
            UpstreamError::Decode(_) => Reason::Decode,
            UpstreamError::Rejected(_) => Reason::Rejected,
        }
    }
}

impl From<reqwest::Error> for UpstreamError {
    fn from(err: reqwest::Error) -> Self {
        let err = err.without_url();
        if err.is_timeout() {
            // reqwest only times out the connect phase here; the whole check is bounded by the
            // collector, which reports the configured limit.
            return UpstreamError::Timeout(Duration::ZERO);
        }
        // The top-level message ("error sending request") says little; the chain says why.
        let mut message = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        UpstreamError::Connect(message)
    }
}

impl From<serde_json::Error> for UpstreamError {
    fn from(err: serde_json::Error) -> Self {
        UpstreamError::Decode(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_a_distinct_label() {
        let mut labels: Vec<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), Reason::ALL.len());
    }

    #[test]
    fn a_rate_limit_names_its_retry_after() {
        let err = UpstreamError::RateLimited {
            retry_after: Some(Duration::from_secs(30)),
        };
        assert_eq!(err.to_string(), "rate limited (HTTP 429), retry after 30s");
        assert_eq!(err.reason(), Reason::RateLimited);
    }
}
