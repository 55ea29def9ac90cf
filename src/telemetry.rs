//! Logging setup: `tracing` to stderr, as text or JSON lines.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// The filter for `SALDO_LOG_LEVEL`. A bare level applies to the exporter's own logs, with its
/// libraries (HTTP, TLS) kept at `warn`: their debug output is noise to an operator. A full
/// directive such as `info,hyper=debug` is taken as written.
pub fn filter(level: &str) -> Result<EnvFilter, String> {
    let level = level.trim();
    let directive = if LEVELS.contains(&level.to_lowercase().as_str()) {
        format!("warn,saldo_exporter={level}")
    } else {
        level.to_owned()
    };
    EnvFilter::builder()
        .parse(&directive)
        .map_err(|err| format!("{level:?} is not a log level or filter ({err})"))
}

/// Installs the global subscriber. `level` was validated with [`filter`] when the configuration
/// loaded.
pub fn init(level: &str, format: LogFormat) {
    let filter = filter(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for people; log shippers get plain text.
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_level_covers_the_exporter_and_quiets_libraries() {
        assert_eq!(
            filter("debug").unwrap().to_string(),
            "saldo_exporter=debug,warn"
        );
        assert_eq!(
            filter("info,hyper=debug").unwrap().to_string(),
            "hyper=debug,info"
        );
        assert!(filter("loud=[").is_err());
    }
}
