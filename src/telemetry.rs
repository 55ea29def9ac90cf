//! Logging setup: `tracing` to stderr, as text or JSON lines.

use std::io::IsTerminal;

use serde::Deserialize;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("{other:?} is neither \"text\" nor \"json\"")),
        }
    }
}

/// A level name as users write it: `warning` is what syslog and Python call `warn`.
fn level(word: &str) -> Option<&'static str> {
    let word = word.to_ascii_lowercase();
    let word = if word == "warning" { "warn" } else { &word };
    LEVELS.iter().find(|level| **level == word).copied()
}

/// The filter for `SALDO_LOG_LEVEL`. A bare level applies to the exporter's own logs, with its
/// libraries (HTTP, TLS) kept at `warn`: their debug output is noise to an operator. A full
/// directive such as `info,hyper=debug` is taken as written.
///
/// `tracing` reads a bare word as a target at `trace` level, so `verbose` would silently turn
/// every log off; a directive whose parts are neither levels nor `target=level` is refused.
pub fn filter(text: &str) -> Result<EnvFilter, String> {
    let text = text.trim();
    let invalid = || {
        format!(
            "{text:?} is not a log level ({}) or a filter such as info,hyper=debug",
            LEVELS.join(", ")
        )
    };
    let directive = if let Some(level) = level(text) {
        format!("warn,saldo_exporter={level}")
    } else {
        let parts: Vec<String> = text
            .split(',')
            .map(
                |part| match (level(part.trim()), part.contains(['=', '['])) {
                    (Some(level), _) => Ok(level.to_owned()),
                    (None, true) => Ok(part.trim().replace("=warning", "=warn")),
                    (None, false) => Err(invalid()),
                },
            )
            .collect::<Result<_, _>>()?;
        parts.join(",")
    };
    EnvFilter::builder()
        .parse(&directive)
        .map_err(|err| format!("{} ({err})", invalid()))
}

/// Installs the global subscriber, writing to stderr, and a panic hook that logs through it.
/// `level` was validated with [`filter`] when the configuration loaded.
pub fn init(level: &str, format: LogFormat) {
    init_with_writer(
        level,
        format,
        std::io::stderr,
        std::io::stderr().is_terminal(),
    );
}

/// [`init`] with another destination (tests capture the log). A panic, which should never
/// happen, is logged as one event like any other, so JSON logs stay one JSON object per line.
pub fn init_with_writer<W>(level: &str, format: LogFormat, writer: W, ansi: bool)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = filter(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        // Colour only for people; log shippers get plain text.
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(panic = %message, location, "panic");
    }));
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

    #[test]
    fn warning_is_read_as_warn_in_any_case() {
        assert_eq!(
            filter("warning").unwrap().to_string(),
            "saldo_exporter=warn,warn"
        );
        assert_eq!(
            filter("WARNING").unwrap().to_string(),
            "saldo_exporter=warn,warn"
        );
        assert_eq!(
            filter("info,hyper=warning").unwrap().to_string(),
            "hyper=warn,info"
        );
    }

    #[test]
    fn a_word_that_is_no_level_is_refused_rather_than_silencing_every_log() {
        for text in ["verbose", "loud", "info,verbose", ""] {
            let err = filter(text).unwrap_err();
            assert!(err.contains("is not a log level"), "{text:?}: {err}");
        }
    }
}
