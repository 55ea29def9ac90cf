//! Configuration: `SALDO_*` environment variables first, plus an optional YAML file of accounts.
//!
//! Accounts from both sources go through one path: a map of fields (`*_file` fields replaced by
//! the file's contents), the fields every account shares, then the provider's own settings,
//! chosen by the provider registry. Every error is one line that names the setting, and never
//! contains a secret value.
//!
//! The environment is shared with everything else on the machine (a shell, `cargo run`, a
//! Kubernetes pod's service links such as `SALDO_EXPORTER_SERVICE_HOST`), so a `SALDO_*` name
//! that is no setting never stops the exporter: it is reported as a warning, with a "did you
//! mean" for near misses. Within a provider's variables an unknown field stays an error: there
//! the user clearly meant a setting.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::providers::{self, FieldError, ProviderConfig};
use crate::telemetry::LogFormat;
use crate::web::{WebConfig, WebConfigError};

const ENV_PREFIX: &str = "SALDO_";

/// The global settings, as envy names them (after the prefix, lower case).
const GLOBAL_SETTINGS: [&str; 9] = [
    "listen_address",
    "telemetry_path",
    "max_in_flight",
    "min_interval",
    "timeout",
    "config_file",
    "log_level",
    "log_format",
    "web_config_file",
];

/// The longest check timeout: far beyond any scrape timeout, and far from the overflow of
/// `Instant` arithmetic that an absurd duration (`300000000000y`) would cause.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// The longest min-interval, for the same reason; a month covers any sensible schedule.
const MAX_MIN_INTERVAL: Duration = Duration::from_secs(31 * 24 * 3600);
/// The most requests in flight to one supplier host that a setting may ask for: the global
/// cap on requests in flight.
pub const MAX_IN_FLIGHT: usize = crate::check::GLOBAL_IN_FLIGHT;
/// Account names are labels and page text: a sane length, no control characters.
const MAX_NAME_CHARS: usize = 128;

/// A configuration error: which setting, and what is wrong with it. Always one line, whatever
/// a path, a YAML key or a quoted value holds.
#[derive(Debug, thiserror::Error)]
#[error("{}: {}", one_line(.setting), one_line(.message))]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

impl ConfigError {
    fn new(setting: impl Into<String>, message: impl ToString) -> Self {
        Self {
            setting: setting.into(),
            message: message.to_string(),
        }
    }
}

/// The web module has its own error (it does not depend on this one); both are one line.
impl From<WebConfigError> for ConfigError {
    fn from(err: WebConfigError) -> Self {
        Self::new(err.setting, err.message)
    }
}

#[derive(Debug)]
pub struct Config {
    pub listen_address: SocketAddr,
    /// Where the metrics are served, `/metrics` unless `SALDO_TELEMETRY_PATH` says otherwise.
    pub telemetry_path: String,
    pub min_interval: Duration,
    pub timeout: Duration,
    /// `SALDO_MAX_IN_FLIGHT`: requests in flight per supplier host, unless an account's
    /// `max_in_flight` says otherwise; [`crate::check::DEFAULT_HOST_IN_FLIGHT`] when unset.
    pub max_in_flight: Option<usize>,
    /// A level (`info`) for this exporter's own logs, or a full `tracing` filter directive.
    pub log_level: String,
    pub log_format: LogFormat,
    /// `SALDO_WEB_CONFIG_FILE`. Read by the caller, not here: `--web.config.file` overrides
    /// it, and a broken web configuration must not block a reload of the accounts.
    pub web_config_file: Option<PathBuf>,
    /// TLS, basic auth and headers for the HTTP endpoints; plain and open by default. Filled by
    /// the caller from [`Config::web_config_file`] or the command line.
    pub web: WebConfig,
    pub accounts: Vec<AccountConfig>,
    /// Things worth fixing that are no reason to refuse the configuration (secret files that
    /// other users can read, `SALDO_*` names that are no setting), logged once logging is set
    /// up.
    pub warnings: Vec<String>,
    /// The `SALDO_*` names that were ignored, to explain a configuration without accounts.
    pub ignored: Vec<String>,
    /// Settings given on the command line, as (variable, flag, value): they win over the
    /// variable, and a reload applies them again.
    pub overrides: Vec<Override>,
}

/// A command-line flag that stands for a `SALDO_*` variable, node_exporter style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// The variable it overrides, e.g. `SALDO_LISTEN_ADDRESS`.
    pub variable: &'static str,
    /// The flag as the user wrote it, e.g. `--web.listen-address`, to name it in errors.
    pub flag: &'static str,
    pub value: String,
}

#[derive(Debug)]
pub struct AccountConfig {
    /// The `account` label.
    pub name: String,
    pub provider: ProviderConfig,
    pub min_interval: Option<Duration>,
    pub warning_threshold: Option<Decimal>,
    pub critical_threshold: Option<Decimal>,
    /// Requests in flight to this account's supplier host.
    pub max_in_flight: Option<usize>,
}

/// The global settings as envy reads them; every other `SALDO_*` variable is an account's.
#[derive(Deserialize)]
struct Environment {
    listen_address: Option<String>,
    telemetry_path: Option<String>,
    max_in_flight: Option<String>,
    min_interval: Option<String>,
    timeout: Option<String>,
    config_file: Option<PathBuf>,
    log_level: Option<String>,
    log_format: Option<String>,
    web_config_file: Option<PathBuf>,
    /// `isikuota_api_id` and the like, lower-cased by envy.
    #[serde(flatten)]
    accounts: BTreeMap<String, String>,
}

/// The fields every account has, whatever its provider.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Common {
    #[serde(default, deserialize_with = "optional_amount")]
    warning_threshold: Option<Decimal>,
    #[serde(default, deserialize_with = "optional_amount")]
    critical_threshold: Option<Decimal>,
    #[serde(default, deserialize_with = "optional_duration")]
    min_interval: Option<Duration>,
    #[serde(default, deserialize_with = "optional_in_flight")]
    max_in_flight: Option<usize>,
}

const COMMON_FIELDS: [&str; 4] = [
    "warning_threshold",
    "critical_threshold",
    "min_interval",
    "max_in_flight",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    accounts: Vec<Map<String, Value>>,
}

/// Where an account's fields came from, to name a setting the way the user wrote it.
enum Origin<'a> {
    Env { provider: &'a str },
    File { path: &'a Path, index: usize },
}

impl Origin<'_> {
    fn setting(&self, field: &str) -> String {
        match self {
            // An unknown provider is a prefix the user typed, not one variable.
            Origin::Env { provider } if field == "provider" => {
                format!("{ENV_PREFIX}{provider}_*").to_uppercase()
            }
            Origin::Env { provider } => {
                let field = match field {
                    "name" => "account",
                    "name_file" => "account_file",
                    other => other,
                };
                format!("{ENV_PREFIX}{}_{}", provider, field).to_uppercase()
            }
            Origin::File { path, index } => {
                format!("{}: accounts[{index}].{field}", path.display())
            }
        }
    }

    /// Relative `*_file` paths in the YAML file are relative to that file.
    fn resolve(&self, path: &str) -> PathBuf {
        match self {
            Origin::File { path: file, .. } => file.parent().unwrap_or(Path::new(".")).join(path),
            Origin::Env { .. } => PathBuf::from(path),
        }
    }
}

impl Config {
    /// Reads the process environment (and the file it names).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(&[])
    }

    /// Reads the process environment with `overrides` (command-line flags) winning over the
    /// variables they stand for. An error in an overridden setting names the flag.
    pub fn from_env_with(overrides: &[Override]) -> Result<Self, ConfigError> {
        let mut vars = Vec::new();
        for (key, value) in std::env::vars_os() {
            let Some(key) = key.to_str().filter(|k| k.starts_with(ENV_PREFIX)) else {
                continue;
            };
            let value = value
                .into_string()
                .map_err(|_| ConfigError::new(key, "not valid UTF-8"))?;
            if !overrides.iter().any(|o| o.variable == key) {
                vars.push((key.to_owned(), value));
            }
        }
        vars.extend(
            overrides
                .iter()
                .map(|o| (o.variable.to_owned(), o.value.clone())),
        );
        let mut config = Self::from_vars(vars).map_err(|mut err| {
            if let Some(o) = overrides.iter().find(|o| o.variable == err.setting) {
                err.setting = o.flag.to_owned();
            }
            err
        })?;
        config.overrides = overrides.to_vec();
        Ok(config)
    }

    /// Parses `SALDO_*` variables given as pairs (tests pass their own).
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        // An empty global setting is unset, as `${VAR:-}` in compose files leaves it.
        let vars = vars.into_iter().filter(|(key, value)| {
            let global = key
                .strip_prefix(ENV_PREFIX)
                .is_some_and(|name| GLOBAL_SETTINGS.contains(&name.to_lowercase().as_str()));
            !(global && value.trim().is_empty())
        });
        let env: Environment = envy::prefixed(ENV_PREFIX)
            .from_iter(vars)
            .map_err(|err| ConfigError::new("environment", err))?;

        let setting = |name: &str| format!("{ENV_PREFIX}{name}");
        let listen_address = match env.listen_address {
            Some(text) => text
                .parse()
                .map_err(|err| ConfigError::new(setting("LISTEN_ADDRESS"), err))?,
            None => SocketAddr::from(([0, 0, 0, 0], 9866)),
        };
        let duration = |name: &str, text: Option<String>, default: u64, max| match text {
            Some(text) => parse_duration_at_most(&text, max)
                .map_err(|err| ConfigError::new(setting(name), err)),
            None => Ok(Duration::from_secs(default)),
        };
        let telemetry_path = match env.telemetry_path {
            Some(path) => {
                check_telemetry_path(&path)
                    .map_err(|err| ConfigError::new(setting("TELEMETRY_PATH"), err))?;
                path
            }
            None => "/metrics".to_owned(),
        };
        let min_interval = duration("MIN_INTERVAL", env.min_interval, 30, MAX_MIN_INTERVAL)?;
        let timeout = duration("TIMEOUT", env.timeout, 10, MAX_TIMEOUT)?;
        if timeout.is_zero() {
            return Err(ConfigError::new(setting("TIMEOUT"), "must be more than 0s"));
        }
        let max_in_flight = env
            .max_in_flight
            .map(|text| {
                parse_in_flight(&text)
                    .map_err(|err| ConfigError::new(setting("MAX_IN_FLIGHT"), err))
            })
            .transpose()?;
        let log_level = env.log_level.unwrap_or_else(|| "info".into());
        crate::telemetry::filter(&log_level)
            .map_err(|err| ConfigError::new(setting("LOG_LEVEL"), err))?;
        let log_format = match env.log_format.as_deref() {
            None => LogFormat::Text,
            Some(text) => text
                .parse()
                .map_err(|err| ConfigError::new(setting("LOG_FORMAT"), err))?,
        };

        let mut warnings = Vec::new();
        let mut ignored = Vec::new();
        let mut accounts = accounts_from_env(env.accounts, &mut warnings, &mut ignored)?;
        if let Some(path) = &env.config_file {
            accounts.extend(accounts_from_file(path, &mut warnings)?);
        }
        reject_duplicate_names(&accounts)?;

        Ok(Config {
            listen_address,
            telemetry_path,
            min_interval,
            timeout,
            max_in_flight,
            log_level,
            log_format,
            web_config_file: env.web_config_file,
            web: WebConfig::default(),
            accounts,
            warnings,
            ignored,
            overrides: Vec::new(),
        })
    }

    /// The error for a configuration that would collect nothing.
    pub fn require_accounts(&self) -> Result<(), ConfigError> {
        if self.accounts.is_empty() {
            let examples: Vec<String> = providers::NAMES
                .iter()
                .map(|name| format!("{ENV_PREFIX}{}_*", name.to_uppercase()))
                .collect();
            let mut message = format!(
                "none configured: set {} or {ENV_PREFIX}CONFIG_FILE, or run with --demo",
                examples.join(", ")
            );
            if !self.ignored.is_empty() {
                message.push_str(&format!(
                    " (ignored, not settings: {})",
                    self.ignored.join(", ")
                ));
            }
            return Err(ConfigError::new("accounts", message));
        }
        Ok(())
    }
}

/// Groups `isikuota_api_id`-style keys by provider; each provider found is one account. Keys
/// that name no provider are warned about (or, when shaped like a Kubernetes service link,
/// skipped without a word) and otherwise ignored.
fn accounts_from_env(
    vars: BTreeMap<String, String>,
    warnings: &mut Vec<String>,
    ignored: &mut Vec<String>,
) -> Result<Vec<AccountConfig>, ConfigError> {
    let mut by_provider: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for (key, value) in vars {
        // Even under a provider's prefix (a Service named `saldo-isikuota`): no provider field
        // has such a name.
        if is_service_link(&key) {
            continue;
        }
        if key
            .split_once('_')
            .is_some_and(|(p, _)| p == providers::generic::NAME)
        {
            return Err(ConfigError::new(
                format!("{ENV_PREFIX}{key}").to_uppercase(),
                format!(
                    "the generic provider is configured in the accounts file only \
                     ({ENV_PREFIX}CONFIG_FILE); see the README, \"Any other supplier\""
                ),
            ));
        }
        let provider_field = key
            .split_once('_')
            .filter(|(provider, _)| providers::NAMES.contains(provider));
        let Some((provider, field)) = provider_field else {
            let name = format!("{ENV_PREFIX}{}", key.to_uppercase());
            warnings.push(match did_you_mean(&key) {
                Some(setting) => format!(
                    "{name}: not a setting of saldo_exporter, ignored; did you mean {setting}?"
                ),
                None => format!("{name}: not a setting of saldo_exporter, ignored"),
            });
            ignored.push(name);
            continue;
        };
        let fields = by_provider.entry(provider.to_owned()).or_default();
        // The env has one account per provider, labelled `SALDO_<PROVIDER>_ACCOUNT`.
        let field = match field {
            "account" => "name",
            "account_file" => "name_file",
            other => other,
        };
        fields.insert(field.to_owned(), Value::String(value));
    }
    by_provider
        .into_iter()
        .map(|(provider, mut fields)| {
            fields.insert("provider".into(), Value::String(provider.clone()));
            if !fields.contains_key("name_file") {
                fields
                    .entry("name")
                    .or_insert_with(|| Value::String(provider.clone()));
            }
            parse_account(
                fields,
                &Origin::Env {
                    provider: &provider,
                },
                warnings,
            )
        })
        .collect()
}

fn accounts_from_file(
    path: &Path,
    warnings: &mut Vec<String>,
) -> Result<Vec<AccountConfig>, ConfigError> {
    let setting = format!("{ENV_PREFIX}CONFIG_FILE");
    let text = std::fs::read_to_string(path).map_err(|err| {
        ConfigError::new(&setting, format!("cannot read {}: {err}", path.display()))
    })?;
    // Strict: a key given twice is refused (the second `api_key:` must not silently win), and no
    // error quotes a value.
    accounts_from_yaml(&text, path, &setting, warnings)
}

/// The accounts of an accounts file's `text`; errors name `setting` and `path`.
pub fn accounts_from_yaml(
    text: &str,
    path: &Path,
    setting: &str,
    warnings: &mut Vec<String>,
) -> Result<Vec<AccountConfig>, ConfigError> {
    let file: File = crate::yaml::from_str(text)
        .map_err(|err| ConfigError::new(setting, format!("{}: {err}", path.display())))?;
    file.accounts
        .into_iter()
        .enumerate()
        .map(|(index, fields)| parse_account(fields, &Origin::File { path, index }, warnings))
        .collect()
}

fn parse_account(
    fields: Map<String, Value>,
    origin: &Origin,
    warnings: &mut Vec<String>,
) -> Result<AccountConfig, ConfigError> {
    let mut from_files = Vec::new();
    parse_account_fields(fields, origin, warnings, &mut from_files).map_err(|mut err| {
        // A file given for the wrong setting (a secret file as `base_url_file`) must not be
        // quoted by whatever parser refused its contents.
        for value in from_files.iter().filter(|v| v.trim().len() >= 3) {
            err.message = err
                .message
                .replace(value.as_str(), "(the file's contents)")
                .replace(value.trim(), "(the file's contents)");
        }
        err
    })
}

fn parse_account_fields(
    mut fields: Map<String, Value>,
    origin: &Origin,
    warnings: &mut Vec<String>,
    from_files: &mut Vec<String>,
) -> Result<AccountConfig, ConfigError> {
    read_secret_files(&mut fields, "", origin, warnings, from_files)?;
    // The generic provider keeps its credentials in one mapping, each also as `<name>_file`.
    if let Some(Value::Object(credentials)) = fields.get_mut("credentials") {
        read_secret_files(credentials, "credentials.", origin, warnings, from_files)?;
    }
    // As in Go's YAML: an unquoted `api_id: 1234` is the string "1234" where a string is
    // expected. Thresholds read numbers from strings too.
    for value in fields.values_mut() {
        if let Value::Number(_) | Value::Bool(_) = value {
            *value = Value::String(value.to_string());
        }
    }
    let mut take_string = |field: &str| match fields.remove(field) {
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(text),
        Some(_) => Err(ConfigError::new(
            origin.setting(field),
            "must be a non-empty string",
        )),
        None => Err(ConfigError::new(origin.setting(field), "missing")),
    };
    let provider_name = take_string("provider")?;
    let name = take_string("name")?;
    check_name(&name).map_err(|message| ConfigError::new(origin.setting("name"), message))?;

    let common_fields: Map<String, Value> = COMMON_FIELDS
        .iter()
        .filter_map(|&key| fields.remove(key).map(|value| (key.to_owned(), value)))
        .collect();
    let common: Common = serde_path_to_error::deserialize(Value::Object(common_fields))
        .map_err(|err| field_error(err, origin))?;
    for (field, threshold) in [
        ("warning_threshold", common.warning_threshold),
        ("critical_threshold", common.critical_threshold),
    ] {
        if threshold.is_some_and(|t| t.is_sign_negative() && !t.is_zero()) {
            return Err(ConfigError::new(
                origin.setting(field),
                "must not be negative",
            ));
        }
    }
    if let (Some(warning), Some(critical)) = (common.warning_threshold, common.critical_threshold)
        && critical > warning
    {
        return Err(ConfigError::new(
            origin.setting("critical_threshold"),
            format!("{critical} is above the warning threshold {warning}"),
        ));
    }

    // Checked here for every provider alike: an empty credential would only fail at the
    // supplier, as an `auth` error on every check.
    for (field, value) in &fields {
        match value {
            Value::String(text) if text.trim().is_empty() => {
                return Err(ConfigError::new(origin.setting(field), "must not be empty"));
            }
            Value::Null => {
                return Err(ConfigError::new(origin.setting(field), "must not be empty"));
            }
            _ => {}
        }
    }
    if let Some(Value::String(base_url)) = fields.get("base_url") {
        check_base_url(base_url)
            .map_err(|message| ConfigError::new(origin.setting("base_url"), message))?;
    }

    let provider = match ProviderConfig::from_fields(&provider_name, fields) {
        Some(result) => result.map_err(|err| field_error(err, origin))?,
        None => {
            return Err(ConfigError::new(
                origin.setting("provider"),
                format!(
                    "unknown provider {provider_name:?}, expected one of {}",
                    providers::ALL_NAMES.join(", ")
                ),
            ));
        }
    };
    let min_interval = common
        .min_interval
        .map(|interval| {
            at_most(interval, MAX_MIN_INTERVAL)
                .map_err(|message| ConfigError::new(origin.setting("min_interval"), message))
        })
        .transpose()?;
    Ok(AccountConfig {
        name,
        provider,
        min_interval,
        warning_threshold: common.warning_threshold,
        critical_threshold: common.critical_threshold,
        max_in_flight: common.max_in_flight,
    })
}

/// The metrics path must not hide the landing page or the health endpoints.
fn check_telemetry_path(path: &str) -> Result<(), String> {
    let reserved = path == "/" || path.starts_with("/-/");
    if !path.starts_with('/') || reserved || path.chars().any(|c| c.is_whitespace() || c == '?') {
        return Err(format!(
            "{path:?} is not a path such as /metrics (not /, nor under /-/)"
        ));
    }
    Ok(())
}

/// An account name becomes a label value and landing page text.
fn check_name(name: &str) -> Result<(), String> {
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("longer than {MAX_NAME_CHARS} characters"));
    }
    Ok(())
}

/// Only `http` and `https`: the value names where credentials are sent. The value itself is not
/// quoted (it may come from a file).
fn check_base_url(text: &str) -> Result<(), String> {
    match url::Url::parse(text.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(()),
        Ok(url) => Err(format!(
            "must be an http:// or https:// URL, not {}:",
            url.scheme()
        )),
        Err(err) => Err(format!("not a URL ({err})")),
    }
}

/// Kubernetes gives every pod `<SERVICE>_SERVICE_HOST`, `<SERVICE>_PORT_9866_TCP` and the like
/// for each Service in its namespace; a Service named `saldo-exporter` yields `SALDO_EXPORTER_*`
/// names. They are never settings, and not worth a warning each.
fn is_service_link(key: &str) -> bool {
    let parts: Vec<&str> = key.split('_').collect();
    let has = |word: &str| parts.contains(&word);
    if has("service") && (key.ends_with("service_host") || key.contains("service_port")) {
        return true;
    }
    if parts.last() == Some(&"port") {
        return true;
    }
    // `<SERVICE>_PORT_<number>_<PROTOCOL>`, optionally followed by `_PROTO`, `_PORT`, `_ADDR`.
    parts.windows(3).any(|w| {
        w[0] == "port"
            && !w[1].is_empty()
            && w[1].bytes().all(|b| b.is_ascii_digit())
            && matches!(w[2], "tcp" | "udp" | "sctp")
    })
}

/// The setting a near miss probably meant: a global setting, or a provider's prefix.
fn did_you_mean(key: &str) -> Option<String> {
    let close = |a: &str, b: &str| {
        let distance = strsim::levenshtein(a, b);
        distance > 0 && distance <= 2 && distance * 3 <= b.len()
    };
    if let Some(global) = GLOBAL_SETTINGS.iter().find(|g| close(key, g)) {
        return Some(format!("{ENV_PREFIX}{}", global.to_uppercase()));
    }
    let (prefix, rest) = key.split_once('_').unwrap_or((key, ""));
    let provider = providers::NAMES
        .iter()
        .find(|name| close(prefix, name) || (prefix == **name && rest.is_empty()))?;
    let rest = if rest.is_empty() { "*" } else { rest };
    Some(format!("{ENV_PREFIX}{provider}_{rest}").to_uppercase())
}

/// Replaces every `<field>_file` by `<field>` holding the file's contents (the usual way to
/// hand secrets to containers and systemd credentials).
fn read_secret_files(
    fields: &mut Map<String, Value>,
    prefix: &str,
    origin: &Origin,
    warnings: &mut Vec<String>,
    from_files: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let file_keys: Vec<String> = fields
        .keys()
        .filter(|key| key.ends_with("_file"))
        .cloned()
        .collect();
    for key in file_keys {
        let field = key.trim_end_matches("_file").to_owned();
        if fields.contains_key(&field) {
            return Err(ConfigError::new(
                origin.setting(&format!("{prefix}{key}")),
                format!(
                    "set either {} or this, not both",
                    origin.setting(&format!("{prefix}{field}"))
                ),
            ));
        }
        let Some(Value::String(path)) = fields.remove(&key) else {
            return Err(ConfigError::new(
                origin.setting(&format!("{prefix}{key}")),
                "must be a file path",
            ));
        };
        let path = origin.resolve(&path);
        let contents = std::fs::read_to_string(&path).map_err(|err| {
            ConfigError::new(
                origin.setting(&format!("{prefix}{key}")),
                format!("cannot read {}: {err}", path.display()),
            )
        })?;
        if readable_by_others(&path) {
            warnings.push(format!(
                "{}: {} is readable by every user of this machine; restrict it (chmod o-r)",
                origin.setting(&format!("{prefix}{key}")),
                path.display()
            ));
        }
        // Files written by `echo` or editors end in a newline that is no part of the secret.
        let secret = contents.trim_end_matches(['\r', '\n']).to_owned();
        from_files.push(secret.clone());
        fields.insert(field, Value::String(secret));
    }
    Ok(())
}

/// Names the offending field of a deserialisation error. serde reports a missing or unknown
/// field at the enclosing object, naming the field only in the message.
fn field_error(err: impl Into<FieldError>, origin: &Origin) -> ConfigError {
    let FieldError { path, message } = err.into();
    let message = without_value(&message);
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix)?.split('`').next());
    let field = match named {
        Some(field) if path == "." => field.to_owned(),
        _ => path,
    };
    ConfigError::new(origin.setting(&field), message)
}

fn one_line(text: &str) -> String {
    text.replace('\r', "\\r").replace('\n', "\\n")
}

/// serde quotes the offending value in a type error (``invalid type: integer `8472619305`,
/// expected a string``), and that value may be a secret: written unquoted in YAML, or the
/// contents of a secret file named as the accounts file. Only its type is kept.
fn without_value(message: &str) -> String {
    const MARK: &str = "invalid type: ";
    let (Some(start), Some(end)) = (message.find(MARK), message.rfind(", expected ")) else {
        return message.to_owned();
    };
    let start = start + MARK.len();
    if end < start {
        return message.to_owned();
    }
    let kind = message[start..end]
        .split(['`', '"'])
        .next()
        .unwrap_or_default()
        .trim_end();
    format!("{}{kind}{}", &message[..start], &message[end..])
}

#[cfg(unix)]
fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|meta| meta.permissions().mode() & 0o004 != 0)
}

#[cfg(not(unix))]
fn readable_by_others(_: &Path) -> bool {
    false
}

fn reject_duplicate_names(accounts: &[AccountConfig]) -> Result<(), ConfigError> {
    let mut seen = std::collections::HashSet::new();
    for account in accounts {
        if !seen.insert(account.name.as_str()) {
            return Err(ConfigError::new(
                "accounts",
                format!("the account name {:?} is used twice", account.name),
            ));
        }
    }
    Ok(())
}

/// Durations as `30s`, `2m`, `1h30m` or `500ms`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|err| format!("{text:?} is not a duration like 30s or 2m ({err})"))
}

/// [`parse_duration`], refusing more than `max`.
fn parse_duration_at_most(text: &str, max: Duration) -> Result<Duration, String> {
    at_most(parse_duration(text)?, max)
}

fn at_most(duration: Duration, max: Duration) -> Result<Duration, String> {
    if duration > max {
        return Err(format!(
            "{} is longer than the most allowed, {}",
            humantime::format_duration(duration),
            humantime::format_duration(max)
        ));
    }
    Ok(duration)
}

fn optional_amount<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    providers::amount(d).map(Some)
}

/// A limit on requests in flight: at least 1, at most [`MAX_IN_FLIGHT`].
fn parse_in_flight(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_IN_FLIGHT).contains(&n) => Ok(n),
        _ => Err(format!(
            "{text:?} is not a number of requests from 1 to {MAX_IN_FLIGHT}"
        )),
    }
}

fn optional_in_flight<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    let text = String::deserialize(d)?;
    parse_in_flight(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use secrecy::ExposeSecret;

    use super::*;
    use crate::providers::{ayopop, isikuota};

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn error(pairs: &[(&str, &str)]) -> String {
        Config::from_vars(vars(pairs)).unwrap_err().to_string()
    }

    const ISIKUOTA: [(&str, &str); 3] = [
        ("SALDO_ISIKUOTA_API_ID", "id-1"),
        ("SALDO_ISIKUOTA_API_KEY", "key-1"),
        ("SALDO_ISIKUOTA_SECRET_KEY", "secret-1"),
    ];

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = Config::from_vars(vars(&[])).unwrap();
        assert_eq!(config.listen_address, "0.0.0.0:9866".parse().unwrap());
        assert_eq!(config.min_interval, Duration::from_secs(30));
        assert_eq!(config.timeout, Duration::from_secs(10));
        assert_eq!(config.log_format, LogFormat::Text);
        assert!(config.accounts.is_empty());
        assert!(
            config
                .require_accounts()
                .unwrap_err()
                .to_string()
                .contains("SALDO_ISIKUOTA_*")
        );
    }

    #[test]
    fn an_env_account_gets_its_provider_as_name_unless_labelled() {
        let config = Config::from_vars(vars(&ISIKUOTA)).unwrap();
        assert_eq!(config.accounts[0].name, "isikuota");
        assert_eq!(config.accounts[0].provider.name(), "isikuota");

        let mut labelled = ISIKUOTA.to_vec();
        labelled.push(("SALDO_ISIKUOTA_ACCOUNT", "toko-pusat"));
        labelled.push(("SALDO_ISIKUOTA_WARNING_THRESHOLD", "500000"));
        labelled.push(("SALDO_ISIKUOTA_MIN_INTERVAL", "2m"));
        let config = Config::from_vars(vars(&labelled)).unwrap();
        let account = &config.accounts[0];
        assert_eq!(account.name, "toko-pusat");
        assert_eq!(account.warning_threshold, Some(Decimal::from(500_000)));
        assert_eq!(account.min_interval, Some(Duration::from_secs(120)));
    }

    #[test]
    fn durations_read_like_prometheus_ones() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn each_bad_setting_is_named_in_one_line() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("SALDO_MIN_INTERVAL", "soon")], "SALDO_MIN_INTERVAL: "),
            (&[("SALDO_TIMEOUT", "0s")], "SALDO_TIMEOUT: "),
            (
                &[("SALDO_LISTEN_ADDRESS", "nowhere")],
                "SALDO_LISTEN_ADDRESS: ",
            ),
            (&[("SALDO_LOG_FORMAT", "xml")], "SALDO_LOG_FORMAT: "),
            (&[("SALDO_LOG_LEVEL", "loud=[")], "SALDO_LOG_LEVEL: "),
            (
                &[("SALDO_CONFIG_FILE", "/nonexistent/saldo.yml")],
                "SALDO_CONFIG_FILE: cannot read",
            ),
            (&[("SALDO_TIMEOUT", "300000000000y")], "SALDO_TIMEOUT: "),
            (&[("SALDO_TIMEOUT", "2h")], "SALDO_TIMEOUT: 2h is longer"),
            (
                &[("SALDO_MIN_INTERVAL", "300000000000y")],
                "SALDO_MIN_INTERVAL: ",
            ),
            (&[("SALDO_MIN_INTERVAL", "400days")], "SALDO_MIN_INTERVAL: "),
            (&[("SALDO_LOG_LEVEL", "verbose")], "SALDO_LOG_LEVEL: "),
            (
                &ISIKUOTA[..2],
                "SALDO_ISIKUOTA_SECRET_KEY: missing field `secret_key`",
            ),
            (
                &[
                    ISIKUOTA[0],
                    ISIKUOTA[1],
                    ISIKUOTA[2],
                    ("SALDO_ISIKUOTA_WARNING_THRESHOLD", "banyak"),
                ],
                "SALDO_ISIKUOTA_WARNING_THRESHOLD: not a number",
            ),
            (
                &[
                    ISIKUOTA[0],
                    ISIKUOTA[1],
                    ISIKUOTA[2],
                    ("SALDO_ISIKUOTA_BASE_URL", "not a url"),
                ],
                "SALDO_ISIKUOTA_BASE_URL: ",
            ),
            (
                &[
                    ISIKUOTA[0],
                    ISIKUOTA[1],
                    ISIKUOTA[2],
                    ("SALDO_ISIKUOTA_API_KY", "x"),
                ],
                "SALDO_ISIKUOTA_API_KY: unknown field `api_ky`",
            ),
            (
                &[
                    ISIKUOTA[0],
                    ISIKUOTA[1],
                    ISIKUOTA[2],
                    ("SALDO_ISIKUOTA_WARNING_THRESHOLD", "100"),
                    ("SALDO_ISIKUOTA_CRITICAL_THRESHOLD", "200"),
                ],
                "SALDO_ISIKUOTA_CRITICAL_THRESHOLD: 200 is above",
            ),
        ];
        for (pairs, expected) in cases {
            let message = error(pairs);
            assert!(
                message.starts_with(expected),
                "{message:?} should start with {expected:?}"
            );
            assert!(!message.contains('\n'), "{message:?} is more than one line");
        }
    }

    fn with_isikuota(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut pairs = ISIKUOTA.to_vec();
        pairs.extend_from_slice(extra);
        pairs
    }

    #[test]
    fn names_that_are_no_setting_are_warned_about_and_ignored() {
        let config = Config::from_vars(vars(&with_isikuota(&[
            // What `cargo run` and a shell may carry.
            ("SALDO_REVISION", "abc123"),
            ("SALDO_FOO", "x"),
            // A near miss of a real setting.
            ("SALDO_TIMEOT", "5s"),
            ("SALDO_ISIKOUTA_API_ID", "x"),
        ])))
        .unwrap();
        assert_eq!(config.accounts.len(), 1);
        assert_eq!(config.timeout, Duration::from_secs(10));
        let warnings = config.warnings.join("\n");
        for name in ["SALDO_REVISION", "SALDO_FOO", "SALDO_TIMEOT"] {
            assert!(
                warnings.contains(&format!("{name}: not a setting")),
                "{warnings}"
            );
        }
        assert!(
            warnings.contains("did you mean SALDO_TIMEOUT?"),
            "{warnings}"
        );
        assert!(
            warnings.contains("SALDO_ISIKOUTA_API_ID: not a setting of saldo_exporter, ignored; did you mean SALDO_ISIKUOTA_API_ID?"),
            "{warnings}"
        );
        assert!(
            !warnings.contains("SALDO_REVISION: not a setting of saldo_exporter, ignored; did")
        );
    }

    #[test]
    fn kubernetes_service_links_are_skipped_silently() {
        let links = [
            ("SALDO_EXPORTER_SERVICE_HOST", "10.0.0.7"),
            ("SALDO_EXPORTER_SERVICE_PORT", "9866"),
            ("SALDO_EXPORTER_SERVICE_PORT_METRICS", "9866"),
            ("SALDO_EXPORTER_PORT", "tcp://10.0.0.7:9866"),
            ("SALDO_EXPORTER_PORT_9866_TCP", "tcp://10.0.0.7:9866"),
            ("SALDO_EXPORTER_PORT_9866_TCP_PROTO", "tcp"),
            ("SALDO_EXPORTER_PORT_9866_TCP_PORT", "9866"),
            ("SALDO_EXPORTER_PORT_9866_TCP_ADDR", "10.0.0.7"),
            ("SALDO_PORT", "tcp://10.0.0.8:80"),
            ("SALDO_SERVICE_HOST", "10.0.0.8"),
        ];
        let config = Config::from_vars(vars(&with_isikuota(&links))).unwrap();
        assert_eq!(config.accounts.len(), 1);
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        // Not even a Service named after a provider (`saldo-ayopop`) stops it.
        let config = Config::from_vars(vars(&with_isikuota(&[
            ("SALDO_AYOPOP_SERVICE_HOST", "10.0.0.9"),
            ("SALDO_AYOPOP_PORT_80_TCP_ADDR", "10.0.0.9"),
        ])))
        .unwrap();
        assert_eq!(config.accounts.len(), 1);
    }

    #[test]
    fn without_accounts_the_error_names_what_was_ignored() {
        let config = Config::from_vars(vars(&[("SALDO_DIGIFLAZ_USERNAME", "u")])).unwrap();
        let message = config.require_accounts().unwrap_err().to_string();
        assert!(
            message.starts_with("accounts: none configured")
                && message.ends_with("(ignored, not settings: SALDO_DIGIFLAZ_USERNAME)"),
            "{message}"
        );
    }

    #[test]
    fn empty_global_settings_are_unset() {
        let config = Config::from_vars(vars(&[
            ("SALDO_LOG_LEVEL", ""),
            ("SALDO_TIMEOUT", " "),
            ("SALDO_CONFIG_FILE", ""),
        ]))
        .unwrap();
        assert_eq!(config.timeout, Duration::from_secs(10));
        assert_eq!(config.log_level, "info");
    }

    #[test]
    fn account_values_that_cannot_work_are_refused_by_name() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("SALDO_ISIKUOTA_API_KEY", "  ")],
                "SALDO_ISIKUOTA_API_KEY: ",
            ),
            (
                &[("SALDO_ISIKUOTA_WARNING_THRESHOLD", "-5")],
                "SALDO_ISIKUOTA_WARNING_THRESHOLD: must not be negative",
            ),
            (
                &[("SALDO_ISIKUOTA_CRITICAL_THRESHOLD", "-0.5")],
                "SALDO_ISIKUOTA_CRITICAL_THRESHOLD: must not be negative",
            ),
            (
                &[("SALDO_ISIKUOTA_BASE_URL", "ftp://example.com/")],
                "SALDO_ISIKUOTA_BASE_URL: must be an http:// or https:// URL, not ftp:",
            ),
            (
                &[("SALDO_ISIKUOTA_BASE_URL", "file:///etc/passwd")],
                "SALDO_ISIKUOTA_BASE_URL: must be an http:// or https:// URL",
            ),
            (
                &[("SALDO_ISIKUOTA_ACCOUNT", "toko\u{1b}[31m")],
                "SALDO_ISIKUOTA_ACCOUNT: must not contain control characters",
            ),
            (
                &[("SALDO_ISIKUOTA_ACCOUNT", " ")],
                "SALDO_ISIKUOTA_ACCOUNT: must be a non-empty string",
            ),
            (
                &[("SALDO_ISIKUOTA_MIN_INTERVAL", "300000000000y")],
                "SALDO_ISIKUOTA_MIN_INTERVAL: ",
            ),
            (
                &[("SALDO_ISIKUOTA_MIN_INTERVAL", "90days")],
                "SALDO_ISIKUOTA_MIN_INTERVAL: ",
            ),
        ];
        for (extra, expected) in cases {
            let mut pairs: Vec<_> = ISIKUOTA
                .iter()
                .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
                .copied()
                .collect();
            pairs.extend_from_slice(extra);
            let message = error(&pairs);
            assert!(
                message.starts_with(expected),
                "{message:?} should start with {expected:?}"
            );
            assert!(!message.contains('\n'));
        }
        let long = "a".repeat(129);
        let mut pairs = ISIKUOTA.to_vec();
        pairs.push(("SALDO_ISIKUOTA_ACCOUNT", &long));
        assert!(error(&pairs).starts_with("SALDO_ISIKUOTA_ACCOUNT: longer than 128"));
    }

    #[test]
    fn a_secret_file_given_for_the_wrong_setting_is_never_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "sk-live-7d1e0c9f\n").unwrap();
        let path = secret.to_str().unwrap();
        for setting in [
            "SALDO_ISIKUOTA_BASE_URL_FILE",
            "SALDO_ISIKUOTA_WARNING_THRESHOLD_FILE",
            "SALDO_ISIKUOTA_MIN_INTERVAL_FILE",
            "SALDO_ISIKUOTA_ACCOUNT_FILE",
        ] {
            let mut pairs = ISIKUOTA.to_vec();
            pairs.push((setting, path));
            let message = match Config::from_vars(vars(&pairs)) {
                Ok(_) if setting == "SALDO_ISIKUOTA_ACCOUNT_FILE" => continue,
                Ok(_) => panic!("{setting}: accepted"),
                Err(err) => err.to_string(),
            };
            assert!(
                message.starts_with(&setting[..setting.len() - 5]),
                "{message}"
            );
            assert!(
                !message.contains("sk-live"),
                "{setting} quoted the secret: {message}"
            );
        }

        let yaml = dir.path().join("accounts.yml");
        std::fs::write(
            &yaml,
            "accounts:\n  - {name: a, provider: isikuota, api_id: i, api_key: k, secret_key: s, base_url_file: secret}\n",
        )
        .unwrap();
        let message = error(&[("SALDO_CONFIG_FILE", yaml.to_str().unwrap())]);
        assert!(message.contains("accounts[0].base_url"), "{message}");
        assert!(!message.contains("sk-live"), "{message}");

        // The accounts file itself pointed at a secret.
        let message = error(&[("SALDO_CONFIG_FILE", path)]);
        assert!(message.starts_with("SALDO_CONFIG_FILE: "), "{message}");
        assert!(!message.contains("sk-live"), "{message}");
    }

    #[test]
    fn the_account_label_can_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let label = dir.path().join("label");
        std::fs::write(&label, "toko-pusat\n").unwrap();
        let mut pairs = ISIKUOTA.to_vec();
        pairs.push(("SALDO_ISIKUOTA_ACCOUNT_FILE", label.to_str().unwrap()));
        let config = Config::from_vars(vars(&pairs)).unwrap();
        assert_eq!(config.accounts[0].name, "toko-pusat");
        pairs.push(("SALDO_ISIKUOTA_ACCOUNT", "x"));
        assert!(
            error(&pairs)
                .starts_with("SALDO_ISIKUOTA_ACCOUNT_FILE: set either SALDO_ISIKUOTA_ACCOUNT")
        );
    }

    #[test]
    fn unquoted_yaml_numbers_are_read_as_strings_where_strings_are_expected() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("accounts.yml");
        std::fs::write(
            &yaml,
            "accounts:\n  - {name: 1234, provider: isikuota, api_id: 1234, api_key: 5678, secret_key: true, warning_threshold: 1000}\n",
        )
        .unwrap();
        let config =
            Config::from_vars(vars(&[("SALDO_CONFIG_FILE", yaml.to_str().unwrap())])).unwrap();
        let account = &config.accounts[0];
        assert_eq!(account.name, "1234");
        assert_eq!(account.warning_threshold, Some(Decimal::from(1000)));
        let isikuota = account.provider.settings::<isikuota::Config>().unwrap();
        assert_eq!(isikuota.api_id, "1234");
    }

    #[test]
    fn secret_values_never_appear_in_errors_or_debug_output() {
        let mut pairs = ISIKUOTA.to_vec();
        pairs.push(("SALDO_ISIKUOTA_WARNING_THRESHOLD", "key-1"));
        let message = error(&pairs);
        assert!(message.contains("WARNING_THRESHOLD"));
        let config = Config::from_vars(vars(&ISIKUOTA)).unwrap();
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("key-1") && !debug.contains("secret-1"),
            "{debug}"
        );
    }

    #[test]
    fn secrets_can_come_from_files_named_by_file_variables() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let key_path = dir.join("api_key");
        std::fs::write(&key_path, "key-from-file\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let pairs = [
            ("SALDO_ISIKUOTA_API_ID", "id-1"),
            ("SALDO_ISIKUOTA_API_KEY_FILE", key_path.to_str().unwrap()),
            ("SALDO_ISIKUOTA_SECRET_KEY", "secret-1"),
        ];
        let config = Config::from_vars(vars(&pairs)).unwrap();
        let isikuota = config.accounts[0]
            .provider
            .settings::<isikuota::Config>()
            .unwrap();
        assert_eq!(isikuota.api_key.expose_secret(), "key-from-file");

        assert!(config.warnings.is_empty(), "{:?}", config.warnings);

        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let config = Config::from_vars(vars(&pairs)).unwrap();
        assert_eq!(config.warnings.len(), 1);
        assert!(config.warnings[0].starts_with("SALDO_ISIKUOTA_API_KEY_FILE: "));
        assert!(!config.warnings[0].contains("key-from-file"));

        let both = [
            pairs[0],
            pairs[1],
            pairs[2],
            ("SALDO_ISIKUOTA_API_KEY", "x"),
        ];
        assert!(error(&both).starts_with("SALDO_ISIKUOTA_API_KEY_FILE: set either"));
        let missing = [
            pairs[0],
            ("SALDO_ISIKUOTA_API_KEY_FILE", "/nonexistent/key"),
            pairs[2],
        ];
        assert!(
            error(&missing)
                .starts_with("SALDO_ISIKUOTA_API_KEY_FILE: cannot read /nonexistent/key")
        );
    }

    #[test]
    fn a_yaml_file_adds_accounts_and_its_errors_name_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        std::fs::write(dir.join("ayopop.secret"), "s3cret\n").unwrap();
        let path = dir.join("saldo.yml");
        let mut file = std::fs::File::create(&path).unwrap();
        writeln!(
            file,
            r#"accounts:
  - name: ayopop-utama
    provider: ayopop
    partner_id: partner-1
    api_key: key-2
    secret_key_file: ayopop.secret
    api_version: v2
    base_url: http://127.0.0.1:9/gateway
    warning_threshold: 1000000
    critical_threshold: "250000.50"
    min_interval: 1m
  - name: isikuota-cabang
    provider: isikuota
    api_id: id-3
    api_key: key-3
    secret_key: secret-3"#
        )
        .unwrap();
        let mut pairs = ISIKUOTA.to_vec();
        pairs.push(("SALDO_CONFIG_FILE", path.to_str().unwrap()));
        let config = Config::from_vars(vars(&pairs)).unwrap();
        let names: Vec<_> = config.accounts.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["isikuota", "ayopop-utama", "isikuota-cabang"]);
        let ayopop = &config.accounts[1];
        assert_eq!(
            ayopop.critical_threshold,
            Some("250000.50".parse().unwrap())
        );
        let settings = ayopop.provider.settings::<ayopop::Config>().unwrap();
        assert_eq!(settings.secret_key.expose_secret(), "s3cret");
        assert_eq!(settings.base_url.as_str(), "http://127.0.0.1:9/gateway");

        std::fs::write(
            &path,
            "accounts:\n  - name: x\n    provider: ayopop\n    partner_id: p\n",
        )
        .unwrap();
        let message = error(&[("SALDO_CONFIG_FILE", path.to_str().unwrap())]);
        assert!(
            message.ends_with("accounts[0].api_key: missing field `api_key`"),
            "{message}"
        );

        std::fs::write(&path, "accounts: [\n").unwrap();
        let message = error(&[("SALDO_CONFIG_FILE", path.to_str().unwrap())]);
        assert!(message.starts_with("SALDO_CONFIG_FILE: "), "{message}");
    }

    #[test]
    fn a_key_given_twice_in_the_accounts_file_is_refused_by_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dup.yml");
        std::fs::write(
            &path,
            "accounts:\n  - name: a\n    provider: isikuota\n    api_id: i\n    api_key: k1\n    secret_key: s\n    api_key: k2\n",
        )
        .unwrap();
        let message = error(&[("SALDO_CONFIG_FILE", path.to_str().unwrap())]);
        assert!(message.starts_with("SALDO_CONFIG_FILE: "), "{message}");
        assert!(
            message.contains("accounts.0.api_key") || message.contains("accounts[0].api_key"),
            "{message}"
        );
        assert!(
            !message.contains("k1") && !message.contains("k2"),
            "{message}"
        );

        std::fs::write(&path, "accounts: []\naccounts: []\n").unwrap();
        let message = error(&[("SALDO_CONFIG_FILE", path.to_str().unwrap())]);
        assert!(message.contains("accounts"), "{message}");
    }

    #[test]
    fn the_in_flight_limit_comes_from_the_environment_and_from_each_account() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("saldo.yml");
        std::fs::write(
            &path,
            "accounts:\n  - {name: a, provider: isikuota, api_id: a, api_key: b, secret_key: c, max_in_flight: 2}\n",
        )
        .unwrap();
        let config = Config::from_vars(vars(&[
            ("SALDO_MAX_IN_FLIGHT", "4"),
            ("SALDO_CONFIG_FILE", path.to_str().unwrap()),
        ]))
        .unwrap();
        assert_eq!(config.max_in_flight, Some(4));
        assert_eq!(config.accounts[0].max_in_flight, Some(2));
        for bad in ["0", "257", "many", "-1"] {
            let message = error(&[("SALDO_MAX_IN_FLIGHT", bad)]);
            assert!(message.starts_with("SALDO_MAX_IN_FLIGHT: "), "{message}");
        }
        let message = error(&with_isikuota(&[("SALDO_ISIKUOTA_MAX_IN_FLIGHT", "0")]));
        assert!(
            message.starts_with("SALDO_ISIKUOTA_MAX_IN_FLIGHT: "),
            "{message}"
        );
    }

    #[test]
    fn a_name_used_twice_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let path = dir.join("dup.yml");
        std::fs::write(
            &path,
            "accounts:\n  - {name: isikuota, provider: isikuota, api_id: a, api_key: b, secret_key: c}\n",
        )
        .unwrap();
        let mut pairs = ISIKUOTA.to_vec();
        pairs.push(("SALDO_CONFIG_FILE", path.to_str().unwrap()));
        assert!(error(&pairs).contains("\"isikuota\" is used twice"));
    }
}
