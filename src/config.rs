//! Configuration: `SALDO_*` environment variables first, plus an optional YAML file of accounts.
//!
//! Accounts from both sources go through one path: a map of fields (`*_file` fields replaced by
//! the file's contents), the fields every account shares, then the provider's own settings,
//! chosen by the provider registry. Every error is one line that names the setting, and never
//! contains a secret value.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::providers::{self, ProviderConfig};
use crate::web::{WebConfig, WebConfigError};

const ENV_PREFIX: &str = "SALDO_";

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug)]
pub struct Config {
    pub listen_address: SocketAddr,
    pub min_interval: Duration,
    pub timeout: Duration,
    /// A level (`info`) for this exporter's own logs, or a full `tracing` filter directive.
    pub log_level: String,
    pub log_format: LogFormat,
    /// TLS, basic auth and headers for the HTTP endpoints; plain and open by default.
    pub web: WebConfig,
    pub accounts: Vec<AccountConfig>,
    /// Things worth fixing that are no reason to refuse the configuration (secret files that
    /// other users can read), logged once logging is set up.
    pub warnings: Vec<String>,
}

#[derive(Debug)]
pub struct AccountConfig {
    /// The `account` label.
    pub name: String,
    pub provider: ProviderConfig,
    pub min_interval: Option<Duration>,
    pub warning_threshold: Option<Decimal>,
    pub critical_threshold: Option<Decimal>,
}

/// The global settings as envy reads them; every other `SALDO_*` variable is an account's.
#[derive(Deserialize)]
struct Environment {
    listen_address: Option<String>,
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
}

const COMMON_FIELDS: [&str; 3] = ["warning_threshold", "critical_threshold", "min_interval"];

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
                let field = if field == "name" { "account" } else { field };
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
        let mut vars = Vec::new();
        for (key, value) in std::env::vars_os() {
            let Some(key) = key.to_str().filter(|k| k.starts_with(ENV_PREFIX)) else {
                continue;
            };
            let value = value
                .into_string()
                .map_err(|_| ConfigError::new(key, "not valid UTF-8"))?;
            vars.push((key.to_owned(), value));
        }
        Self::from_vars(vars)
    }

    /// Parses `SALDO_*` variables given as pairs (tests pass their own).
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
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
        let duration = |name: &str, text: Option<String>, default: u64| match text {
            Some(text) => parse_duration(&text).map_err(|err| ConfigError::new(setting(name), err)),
            None => Ok(Duration::from_secs(default)),
        };
        let min_interval = duration("MIN_INTERVAL", env.min_interval, 30)?;
        let timeout = duration("TIMEOUT", env.timeout, 10)?;
        if timeout.is_zero() {
            return Err(ConfigError::new(setting("TIMEOUT"), "must be more than 0s"));
        }
        let log_level = env.log_level.unwrap_or_else(|| "info".into());
        crate::telemetry::filter(&log_level)
            .map_err(|err| ConfigError::new(setting("LOG_LEVEL"), err))?;
        let log_format = match env.log_format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::new(
                    setting("LOG_FORMAT"),
                    format!("{other:?} is neither \"text\" nor \"json\""),
                ));
            }
        };

        let web = match &env.web_config_file {
            Some(path) => WebConfig::load(path, &setting("WEB_CONFIG_FILE"))?,
            None => WebConfig::default(),
        };
        let mut warnings = Vec::new();
        let mut accounts = accounts_from_env(env.accounts, &mut warnings)?;
        if let Some(path) = &env.config_file {
            accounts.extend(accounts_from_file(path, &mut warnings)?);
        }
        reject_duplicate_names(&accounts)?;

        Ok(Config {
            listen_address,
            min_interval,
            timeout,
            log_level,
            log_format,
            web,
            accounts,
            warnings,
        })
    }

    /// The error for a configuration that would collect nothing.
    pub fn require_accounts(&self) -> Result<(), ConfigError> {
        if self.accounts.is_empty() {
            let examples: Vec<String> = providers::NAMES
                .iter()
                .map(|name| format!("{ENV_PREFIX}{}_*", name.to_uppercase()))
                .collect();
            return Err(ConfigError::new(
                "accounts",
                format!(
                    "none configured: set {} or {ENV_PREFIX}CONFIG_FILE, or run with --demo",
                    examples.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

/// Groups `isikuota_api_id`-style keys by provider; each provider found is one account.
fn accounts_from_env(
    vars: BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<Vec<AccountConfig>, ConfigError> {
    let mut by_provider: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for (key, value) in vars {
        let Some((provider, field)) = key.split_once('_') else {
            return Err(ConfigError::new(
                format!("{ENV_PREFIX}{}", key.to_uppercase()),
                "unknown setting",
            ));
        };
        let fields = by_provider.entry(provider.to_owned()).or_default();
        // The env has one account per provider, labelled `SALDO_<PROVIDER>_ACCOUNT`.
        let field = if field == "account" { "name" } else { field };
        fields.insert(field.to_owned(), Value::String(value));
    }
    by_provider
        .into_iter()
        .map(|(provider, mut fields)| {
            fields.insert("provider".into(), Value::String(provider.clone()));
            fields
                .entry("name")
                .or_insert_with(|| Value::String(provider.clone()));
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
    let file: File = yaml_serde::from_str(&text).map_err(|err| {
        let message = without_value(&err.to_string());
        ConfigError::new(&setting, format!("{}: {message}", path.display()))
    })?;
    file.accounts
        .into_iter()
        .enumerate()
        .map(|(index, fields)| parse_account(fields, &Origin::File { path, index }, warnings))
        .collect()
}

fn parse_account(
    mut fields: Map<String, Value>,
    origin: &Origin,
    warnings: &mut Vec<String>,
) -> Result<AccountConfig, ConfigError> {
    read_secret_files(&mut fields, origin, warnings)?;
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

    let common_fields: Map<String, Value> = COMMON_FIELDS
        .iter()
        .filter_map(|&key| fields.remove(key).map(|value| (key.to_owned(), value)))
        .collect();
    let common: Common = serde_path_to_error::deserialize(Value::Object(common_fields))
        .map_err(|err| field_error(err, origin))?;
    if let (Some(warning), Some(critical)) = (common.warning_threshold, common.critical_threshold)
        && critical > warning
    {
        return Err(ConfigError::new(
            origin.setting("critical_threshold"),
            format!("{critical} is above the warning threshold {warning}"),
        ));
    }

    let provider = match ProviderConfig::from_fields(&provider_name, fields) {
        Some(result) => result.map_err(|err| field_error(err, origin))?,
        None => {
            return Err(ConfigError::new(
                origin.setting("provider"),
                format!(
                    "unknown provider {provider_name:?}, expected one of {}",
                    providers::NAMES.join(", ")
                ),
            ));
        }
    };
    Ok(AccountConfig {
        name,
        provider,
        min_interval: common.min_interval,
        warning_threshold: common.warning_threshold,
        critical_threshold: common.critical_threshold,
    })
}

/// Replaces every `<field>_file` by `<field>` holding the file's contents (the usual way to
/// hand secrets to containers and systemd credentials).
fn read_secret_files(
    fields: &mut Map<String, Value>,
    origin: &Origin,
    warnings: &mut Vec<String>,
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
                origin.setting(&key),
                format!("set either {} or this, not both", origin.setting(&field)),
            ));
        }
        let Some(Value::String(path)) = fields.remove(&key) else {
            return Err(ConfigError::new(
                origin.setting(&key),
                "must be a file path",
            ));
        };
        let path = origin.resolve(&path);
        let contents = std::fs::read_to_string(&path).map_err(|err| {
            ConfigError::new(
                origin.setting(&key),
                format!("cannot read {}: {err}", path.display()),
            )
        })?;
        if readable_by_others(&path) {
            warnings.push(format!(
                "{}: {} is readable by every user of this machine; restrict it (chmod o-r)",
                origin.setting(&key),
                path.display()
            ));
        }
        // Files written by `echo` or editors end in a newline that is no part of the secret.
        let secret = contents.trim_end_matches(['\r', '\n']).to_owned();
        fields.insert(field, Value::String(secret));
    }
    Ok(())
}

/// Names the offending field of a deserialisation error. serde reports a missing or unknown
/// field at the enclosing object, naming the field only in the message.
fn field_error(err: serde_path_to_error::Error<serde_json::Error>, origin: &Origin) -> ConfigError {
    let path = err.path().to_string();
    let message = without_value(&err.into_inner().to_string());
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

fn optional_amount<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    providers::amount(d).map(Some)
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
            (
                &[("SALDO_ISIKOUTA_API_ID", "x")],
                "SALDO_ISIKOUTA_*: unknown provider \"isikouta\"",
            ),
            (&[("SALDO_FOO", "x")], "SALDO_FOO: unknown setting"),
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
        let ProviderConfig::Isikuota(isikuota) = &config.accounts[0].provider else {
            panic!("not isikuota");
        };
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
        let ProviderConfig::Ayopop(settings) = &ayopop.provider else {
            panic!()
        };
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
