//! `generic`: a supplier described entirely by configuration. One account entry in the YAML
//! file says how to build the request (templated URL, query, headers and body, signed with the
//! filters in [`template`]), when an answer is a success, which failure envelopes mean a
//! credential or IP problem or a rate limit, and where the balance is. Everything else (the
//! min-interval, single flight, the per-host limit, classification into the seven reasons, the
//! last good balance) is the exporter's, exactly as for a built-in supplier.
//!
//! Credentials are secret: a template built from one (a signature, a Basic header) is marked
//! tainted when the account is loaded, and every tainted value is redacted wherever the request
//! is logged and scrubbed from error excerpts. Every template is rendered once with the real
//! credentials at load time, so a template that cannot work fails `--check-config` and start-up.

pub mod template;

use std::collections::{BTreeMap, HashSet};
use std::fmt::{self, Debug};
use std::sync::Arc;
use std::time::SystemTime;

use minijinja::value::Value as TemplateValue;
use regex::Regex;
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value};
use url::Url;

use super::{Balance, BoxFuture, CheckContext, FieldError, Provider, Separators, excerpt};
use crate::error::UpstreamError;
use template::TemplateError;

/// The `provider:` value, and the `provider` label of generic accounts.
pub const NAME: &str = "generic";

/// Rendered in place of a tainted value in logs.
const REDACTED: &str = "[redacted]";

/// The account's fields as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    #[serde(default)]
    credentials: Map<String, Value>,
    #[serde(default)]
    vars: Map<String, Value>,
    request: RequestSpec,
    balance: BalanceSpec,
    #[serde(default)]
    success: Vec<ConditionSpec>,
    #[serde(default)]
    auth: Vec<ConditionSpec>,
    #[serde(default)]
    rate_limited: Vec<ConditionSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestSpec {
    #[serde(default)]
    method: Option<String>,
    url: String,
    #[serde(default)]
    query: Map<String, Value>,
    #[serde(default)]
    headers: Map<String, Value>,
    #[serde(default)]
    json: Option<Value>,
    #[serde(default)]
    form: Option<Map<String, Value>>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    content_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BalanceSpec {
    #[serde(default)]
    json: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thousands_separator: Option<String>,
    #[serde(default)]
    decimal_separator: Option<String>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    currency_json: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionSpec {
    #[serde(default)]
    json: Option<String>,
    #[serde(default)]
    equals: Option<Vec<Value>>,
    #[serde(default)]
    exists: Option<bool>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    status: Option<Vec<u16>>,
}

/// One template and what it may reveal.
#[derive(Debug, Clone)]
struct Template {
    source: String,
    /// Built from a credential (directly or through a variable): redacted in logs.
    tainted: bool,
}

/// A `json:` body: literals sent as written, templates rendered.
#[derive(Debug, Clone)]
enum JsonTemplate {
    Literal(Value),
    Template(Template),
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
}

#[derive(Debug, Clone)]
enum Body {
    None,
    Json(JsonTemplate),
    Form(Vec<(String, Template)>),
    Raw {
        template: Template,
        content_type: Option<String>,
    },
}

#[derive(Debug, Clone)]
enum BalanceSource {
    Json(String),
    Text(Regex),
}

#[derive(Debug, Clone)]
enum Currency {
    Fixed(String),
    Json(String),
}

#[derive(Debug, Clone)]
enum Condition {
    Equals { pointer: String, values: Vec<Value> },
    Exists { pointer: String, exists: bool },
    Text(Regex),
    Status(Vec<u16>),
}

/// A generic account, ready to check.
pub struct Generic {
    credentials: Vec<(String, SecretString)>,
    vars: Vec<(String, Template)>,
    method: Method,
    url: Template,
    query: Vec<(String, Template)>,
    /// The header, the name as written (for errors) and its template.
    headers: Vec<(HeaderName, String, Template)>,
    body: Body,
    balance: BalanceSource,
    separators: Separators,
    currency: Currency,
    success: Vec<Condition>,
    auth: Vec<Condition>,
    rate_limited: Vec<Condition>,
    /// Scheme, host and port of the URL as first rendered: the per-host in-flight limit's key.
    base_url: Url,
}

impl Debug for Generic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Credential names only; the templates are configuration, not secrets.
        let names: Vec<&str> = self.credentials.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Generic")
            .field("credentials", &names)
            .field("method", &self.method)
            .field("url", &self.url.source)
            .finish_non_exhaustive()
    }
}

/// A configuration error at a dotted path below the account.
fn error(path: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        path: path.into(),
        message: message.into(),
    }
}

/// Builds a generic account from its fields, rendering every template once.
pub fn parse(fields: Map<String, Value>) -> Result<Arc<dyn Provider>, FieldError> {
    let spec: Spec = serde_path_to_error::deserialize(Value::Object(fields))?;
    Ok(Arc::new(Generic::new(spec)?))
}

impl Generic {
    fn new(spec: Spec) -> Result<Self, FieldError> {
        let mut credentials = Vec::new();
        for (name, value) in spec.credentials {
            let path = format!("credentials.{name}");
            check_identifier(&name).map_err(|message| error(&path, message))?;
            let value = match value {
                Value::String(text) => text,
                // As elsewhere in the file: an unquoted `member_code: 1234` is the text 1234.
                Value::Number(_) | Value::Bool(_) => value.to_string(),
                _ => return Err(error(path, "must be a string")),
            };
            if value.trim().is_empty() {
                return Err(error(path, "must not be empty"));
            }
            credentials.push((name, SecretString::from(value)));
        }
        let mut scope = Scope {
            known: credentials.iter().map(|(name, _)| name.clone()).collect(),
            secret: credentials.iter().map(|(name, _)| name.clone()).collect(),
            globals: template::globals(),
        };

        let mut vars = Vec::new();
        for (name, value) in spec.vars {
            let path = format!("vars.{name}");
            check_identifier(&name).map_err(|message| error(&path, message))?;
            if scope.known.contains(&name) {
                return Err(error(path, "already a credential or an earlier variable"));
            }
            let template = scope.template(&path, &value, &[])?;
            if template.tainted {
                scope.secret.insert(name.clone());
            }
            scope.known.insert(name.clone());
            vars.push((name, template));
        }

        let request = spec.request;
        let method = match request.method.as_deref().map(str::to_ascii_uppercase) {
            None => Method::GET,
            Some(method) if method == "GET" => Method::GET,
            Some(method) if method == "POST" => Method::POST,
            Some(_) => return Err(error("request.method", "must be GET or POST")),
        };
        let url = scope.template("request.url", &Value::String(request.url), &[])?;
        let query = request
            .query
            .into_iter()
            .map(|(name, value)| {
                let template = scope.template(&format!("request.query.{name}"), &value, &[])?;
                Ok((name, template))
            })
            .collect::<Result<Vec<_>, FieldError>>()?;
        let bodies = [
            request.json.is_some(),
            request.form.is_some(),
            request.body.is_some(),
        ];
        if bodies.iter().filter(|given| **given).count() > 1 {
            return Err(error("request", "give one of json, form and body"));
        }
        if request.content_type.is_some() && request.body.is_none() {
            return Err(error(
                "request.content_type",
                "only for a raw body (json and form set their own)",
            ));
        }
        let body = if let Some(json) = request.json {
            Body::Json(scope.json("request.json", json)?)
        } else if let Some(form) = request.form {
            Body::Form(
                form.into_iter()
                    .map(|(name, value)| {
                        let path = format!("request.form.{name}");
                        Ok((name, scope.template(&path, &value, &[])?))
                    })
                    .collect::<Result<_, FieldError>>()?,
            )
        } else if let Some(raw) = request.body {
            Body::Raw {
                template: scope.template("request.body", &Value::String(raw), &[])?,
                content_type: request.content_type,
            }
        } else {
            Body::None
        };
        if method == Method::GET && !matches!(body, Body::None) {
            return Err(error(
                "request.method",
                "a request with a body must be POST",
            ));
        }
        // Headers may sign the exact bytes sent, which reveal what the body's templates do.
        if body.tainted() {
            scope.secret.insert("body".into());
        }
        let mut headers = Vec::new();
        for (name, value) in request.headers {
            let path = format!("request.headers.{name}");
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| error(&path, "not a valid header name"))?;
            let template = scope.template(&path, &value, &["body"])?;
            headers.push((header, name, template));
        }

        let balance = spec.balance;
        let source = match (balance.json, balance.text) {
            (Some(pointer), None) => BalanceSource::Json(pointer_at("balance.json", pointer)?),
            (None, Some(pattern)) => {
                let regex = Regex::new(&pattern)
                    .map_err(|_| error("balance.text", "not a valid regular expression"))?;
                if regex.captures_len() != 2 {
                    return Err(error("balance.text", "needs exactly one capture group"));
                }
                BalanceSource::Text(regex)
            }
            _ => {
                return Err(error(
                    "balance",
                    "give one of json (a pointer) and text (a regex)",
                ));
            }
        };
        let separators = separators(
            &source,
            balance.thousands_separator.as_deref(),
            balance.decimal_separator.as_deref(),
        )?;
        let currency = match (balance.currency, balance.currency_json) {
            (Some(_), Some(_)) => {
                return Err(error("balance", "give one of currency and currency_json"));
            }
            (Some(code), None) => {
                let valid = code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase());
                if !valid {
                    return Err(error("balance.currency", "an ISO 4217 code such as IDR"));
                }
                Currency::Fixed(code)
            }
            (None, Some(pointer)) => Currency::Json(pointer_at("balance.currency_json", pointer)?),
            (None, None) => Currency::Fixed("IDR".into()),
        };

        let conditions = |name: &str, specs: Vec<ConditionSpec>| {
            specs
                .into_iter()
                .enumerate()
                .map(|(i, spec)| condition(&format!("{name}[{i}]"), spec))
                .collect::<Result<Vec<_>, _>>()
        };
        let mut generic = Self {
            credentials,
            vars,
            method,
            url,
            query,
            headers,
            body,
            balance: source,
            separators,
            currency,
            success: conditions("success", spec.success)?,
            auth: conditions("auth", spec.auth)?,
            rate_limited: conditions("rate_limited", spec.rate_limited)?,
            base_url: Url::parse("http://unset.invalid").expect("a valid URL"),
        };
        // Rendered once with the real credentials, so a template that cannot work fails
        // start-up (and `--check-config`) rather than every check. Nothing rendered is printed.
        let rendered = generic
            .render(SystemTime::now())
            .map_err(|(path, err)| error(path, err.0))?;
        generic.base_url = base_of(&rendered.url);
        Ok(generic)
    }

    /// Every template rendered for one check at `now`; an error names the field.
    fn render(&self, now: SystemTime) -> Result<Rendered, (String, TemplateError)> {
        let mut context: BTreeMap<String, TemplateValue> = self
            .credentials
            .iter()
            .map(|(name, value)| {
                (
                    name.clone(),
                    TemplateValue::from(value.expose_secret().to_owned()),
                )
            })
            .collect();
        context.insert(template::INSTANT.into(), template::instant_value(now));
        let mut secrets: Vec<String> = self
            .credentials
            .iter()
            .map(|(_, value)| value.expose_secret().to_owned())
            .collect();
        for (name, var) in &self.vars {
            let value = template::evaluate(&var.source, &context)
                .map_err(|err| (format!("vars.{name}"), err))?;
            if var.tainted {
                secrets.push(value.to_string());
            }
            context.insert(name.clone(), value);
        }
        let text = |path: &str, template: &Template, context: &BTreeMap<_, _>| {
            template::render(&template.source, context).map_err(|err| (path.to_owned(), err))
        };

        let url_text = text("request.url", &self.url, &context)?;
        let mut url = Url::parse(&url_text)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
            .ok_or_else(|| {
                (
                    "request.url".to_owned(),
                    TemplateError("does not render to an http(s) URL".into()),
                )
            })?;
        let mut log_url = if self.url.tainted {
            let mut base = base_of(&url);
            base.set_path(REDACTED);
            base
        } else {
            // A password written into the URL itself is no credential, but no less secret.
            let mut shown = url.clone();
            let _ = shown.set_password(None);
            shown
        };
        for (name, template) in &self.query {
            let value = text(&format!("request.query.{name}"), template, &context)?;
            url.query_pairs_mut().append_pair(name, &value);
            let shown = if template.tainted { REDACTED } else { &value };
            log_url.query_pairs_mut().append_pair(name, shown);
            if template.tainted {
                secrets.push(value);
            }
        }

        let (body, content_type, log_body) = match &self.body {
            Body::None => (None, None, String::new()),
            Body::Json(json) => {
                let value = render_json(json, &context, "request.json")?;
                let bytes = serde_json::to_vec(&value).expect("JSON values always serialise");
                let shown = serde_json::to_string(&redact_json(json, &value)).unwrap_or_default();
                collect_secrets(json, &value, &mut secrets);
                (Some(bytes), Some("application/json".to_owned()), shown)
            }
            Body::Form(fields) => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                let mut shown = url::form_urlencoded::Serializer::new(String::new());
                for (name, template) in fields {
                    let value = text(&format!("request.form.{name}"), template, &context)?;
                    form.append_pair(name, &value);
                    shown.append_pair(name, if template.tainted { REDACTED } else { &value });
                    if template.tainted {
                        secrets.push(value);
                    }
                }
                (
                    Some(form.finish().into_bytes()),
                    Some("application/x-www-form-urlencoded".to_owned()),
                    shown.finish(),
                )
            }
            Body::Raw {
                template,
                content_type,
            } => {
                let value = text("request.body", template, &context)?;
                let shown = if template.tainted {
                    secrets.push(value.clone());
                    REDACTED.to_owned()
                } else {
                    value.clone()
                };
                (Some(value.into_bytes()), content_type.clone(), shown)
            }
        };
        context.insert(
            "body".into(),
            TemplateValue::from(
                String::from_utf8_lossy(body.as_deref().unwrap_or_default()).into_owned(),
            ),
        );

        let mut headers = Vec::new();
        let mut log_headers = Vec::new();
        for (name, written, template) in &self.headers {
            let path = format!("request.headers.{written}");
            let value = text(&path, template, &context)?;
            let mut header = HeaderValue::from_str(&value).map_err(|_| {
                (
                    path.clone(),
                    TemplateError("does not render to a valid header value".into()),
                )
            })?;
            header.set_sensitive(template.tainted);
            let shown = if template.tainted { REDACTED } else { &value };
            log_headers.push(format!("{name}: {shown}"));
            if template.tainted {
                secrets.push(value);
            }
            headers.push((name.clone(), header));
        }
        // Longest first, so a secret containing another is scrubbed whole.
        secrets.retain(|secret| !secret.is_empty());
        secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        Ok(Rendered {
            url,
            headers,
            body,
            content_type,
            secrets,
            log_url: log_url.to_string(),
            log_headers: log_headers.join(", "),
            log_body,
        })
    }

    /// Classifies an answer in the documented order and reads the balance.
    fn classify(
        &self,
        status: StatusCode,
        retry_after: Option<std::time::Duration>,
        body: &[u8],
        secrets: &[String],
    ) -> Result<Balance, UpstreamError> {
        let text = String::from_utf8_lossy(body);
        let json: Option<Value> = std::str::from_utf8(body)
            .ok()
            .and_then(|text| serde_json::from_str(text).ok());
        let answer = Answer {
            status,
            text: &text,
            json: json.as_ref(),
        };
        let summary = |rule: &str| {
            // Scrubbed before it is shortened, so no cut leaves part of a secret behind.
            let mut shown = text.trim().to_owned();
            for secret in secrets {
                shown = shown.replace(secret.as_str(), "***");
            }
            format!(
                "{rule}; the answer was HTTP {}: {}",
                status.as_u16(),
                excerpt(&shown)
            )
        };
        if let Some(i) = self.auth.iter().position(|c| c.holds(&answer)) {
            return Err(UpstreamError::Auth(summary(&format!("matched auth[{i}]"))));
        }
        if self.rate_limited.iter().any(|c| c.holds(&answer))
            || status == StatusCode::TOO_MANY_REQUESTS
        {
            return Err(UpstreamError::RateLimited { retry_after });
        }
        let usual = || super::status_error(status);
        let reads_json = matches!(self.balance, BalanceSource::Json(_))
            || matches!(self.currency, Currency::Json(_));
        if reads_json && json.is_none() {
            // A non-JSON error page with an error status is that status, not a decoding bug.
            return Err(if status.is_success() {
                UpstreamError::Decode("the answer is not JSON".into())
            } else {
                usual()
            });
        }
        if !status.is_success() {
            return Err(usual());
        }
        if let Some(i) = self.success.iter().position(|c| !c.holds(&answer)) {
            return Err(UpstreamError::Rejected(summary(&format!(
                "success[{i}] does not hold"
            ))));
        }
        let amount = match &self.balance {
            BalanceSource::Json(pointer) => {
                let value = json
                    .as_ref()
                    .and_then(|json| json.pointer(pointer))
                    .ok_or_else(|| UpstreamError::Decode(format!("no balance at {pointer}")))?;
                self.separators
                    .parse_value(value)
                    .map_err(|_| UpstreamError::Decode(format!("{pointer}: not an amount")))?
            }
            BalanceSource::Text(regex) => {
                let found = regex
                    .captures(&text)
                    .and_then(|captures| captures.get(1))
                    .ok_or_else(|| {
                        UpstreamError::Decode("the balance pattern does not match".into())
                    })?;
                self.separators.parse(found.as_str()).map_err(|_| {
                    UpstreamError::Decode("the balance pattern captured no amount".into())
                })?
            }
        };
        let currency = match &self.currency {
            Currency::Fixed(code) => code.clone(),
            Currency::Json(pointer) => json
                .as_ref()
                .and_then(|json| json.pointer(pointer))
                .and_then(Value::as_str)
                .filter(|code| code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic()))
                .map(str::to_ascii_uppercase)
                .ok_or_else(|| UpstreamError::Decode(format!("no currency code at {pointer}")))?,
        };
        Ok(Balance {
            amount: amount.normalize(),
            currency,
            holder: None,
        })
    }

    async fn check(&self, cx: &CheckContext) -> Result<Balance, UpstreamError> {
        let rendered = self.render(cx.now()).map_err(|(path, err)| {
            // Rendered fine at load time with the same credentials: a clock or zone problem.
            UpstreamError::Rejected(format!("{path} did not render: {}", err.0))
        })?;
        tracing::debug!(
            method = %self.method,
            url = %rendered.log_url,
            headers = %rendered.log_headers,
            body = %rendered.log_body,
            "sending the generic balance request"
        );
        let mut request = cx.client.request(self.method.clone(), rendered.url);
        // A Content-Type the account sets itself wins over the body's own.
        let own_type = rendered
            .headers
            .iter()
            .any(|(name, _)| name == CONTENT_TYPE);
        if let Some(content_type) = rendered.content_type.as_ref().filter(|_| !own_type) {
            request = request.header(CONTENT_TYPE, content_type);
        }
        for (name, value) in rendered.headers {
            request = request.header(name, value);
        }
        if let Some(body) = rendered.body {
            request = request.body(body);
        }
        let mut response = request.send().await?;
        let status = response.status();
        let retry_after = super::retry_after(response.headers(), cx.now());
        let body = super::read_capped(&mut response).await?;
        self.classify(status, retry_after, &body, &rendered.secrets)
    }
}

impl Provider for Generic {
    fn base_url(&self) -> &Url {
        &self.base_url
    }

    fn fetch<'a>(&'a self, cx: &'a CheckContext) -> BoxFuture<'a, Result<Balance, UpstreamError>> {
        Box::pin(self.check(cx))
    }
}

/// A request ready to send, and what of it may be logged.
struct Rendered {
    url: Url,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Option<Vec<u8>>,
    content_type: Option<String>,
    /// Credentials and tainted rendered values, scrubbed from error excerpts.
    secrets: Vec<String>,
    log_url: String,
    log_headers: String,
    log_body: String,
}

/// What the names in templates may refer to while an account is loaded.
struct Scope {
    known: HashSet<String>,
    /// Credentials and the variables built from them.
    secret: HashSet<String>,
    globals: HashSet<String>,
}

impl Scope {
    /// A template field: checked for syntax and for names it cannot know.
    fn template(&self, path: &str, value: &Value, extra: &[&str]) -> Result<Template, FieldError> {
        let source = match value {
            Value::String(text) => text.clone(),
            Value::Number(_) | Value::Bool(_) => value.to_string(),
            _ => return Err(error(path, "must be a template (a string)")),
        };
        let names = template::variables(&source).map_err(|err| error(path, err.0))?;
        let mut unknown: Vec<&String> = names
            .iter()
            .filter(|name| {
                !self.known.contains(*name)
                    && !self.globals.contains(*name)
                    && !extra.contains(&name.as_str())
            })
            .collect();
        unknown.sort();
        if let Some(name) = unknown.first() {
            let mut known: Vec<&str> = self.known.iter().map(String::as_str).collect();
            known.extend(extra);
            known.sort_unstable();
            return Err(error(
                path,
                format!(
                    "unknown variable {name:?} (known here: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
        Ok(Template {
            tainted: names.iter().any(|name| self.secret.contains(name)),
            source,
        })
    }

    /// A `json:` body: strings are templates, other scalars literals.
    fn json(&self, path: &str, value: Value) -> Result<JsonTemplate, FieldError> {
        Ok(match value {
            Value::String(_) => JsonTemplate::Template(self.template(path, &value, &[])?),
            Value::Array(items) => JsonTemplate::Array(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| self.json(&format!("{path}[{i}]"), item))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(fields) => JsonTemplate::Object(
                fields
                    .into_iter()
                    .map(|(name, item)| {
                        let value = self.json(&format!("{path}.{name}"), item)?;
                        Ok((name, value))
                    })
                    .collect::<Result<_, FieldError>>()?,
            ),
            literal => JsonTemplate::Literal(literal),
        })
    }
}

impl Body {
    fn tainted(&self) -> bool {
        match self {
            Body::None => false,
            Body::Json(json) => json.tainted(),
            Body::Form(fields) => fields.iter().any(|(_, t)| t.tainted),
            Body::Raw { template, .. } => template.tainted,
        }
    }
}

impl JsonTemplate {
    fn tainted(&self) -> bool {
        match self {
            JsonTemplate::Literal(_) => false,
            JsonTemplate::Template(template) => template.tainted,
            JsonTemplate::Array(items) => items.iter().any(JsonTemplate::tainted),
            JsonTemplate::Object(fields) => fields.iter().any(|(_, v)| v.tainted()),
        }
    }
}

fn render_json(
    json: &JsonTemplate,
    context: &BTreeMap<String, TemplateValue>,
    path: &str,
) -> Result<Value, (String, TemplateError)> {
    Ok(match json {
        JsonTemplate::Literal(value) => value.clone(),
        JsonTemplate::Template(template) => {
            let value = template::evaluate(&template.source, context)
                .map_err(|err| (path.to_owned(), err))?;
            serde_json::to_value(&value).map_err(|_| {
                (
                    path.to_owned(),
                    TemplateError("does not render to a JSON value".into()),
                )
            })?
        }
        JsonTemplate::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| render_json(item, context, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        JsonTemplate::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(name, item)| {
                    let value = render_json(item, context, &format!("{path}.{name}"))?;
                    Ok((name.clone(), value))
                })
                .collect::<Result<_, (String, TemplateError)>>()?,
        ),
    })
}

/// The rendered body with every tainted leaf replaced, for the log.
fn redact_json(json: &JsonTemplate, value: &Value) -> Value {
    match (json, value) {
        (JsonTemplate::Template(template), _) if template.tainted => Value::from(REDACTED),
        (JsonTemplate::Array(items), Value::Array(values)) => Value::Array(
            items
                .iter()
                .zip(values)
                .map(|(item, value)| redact_json(item, value))
                .collect(),
        ),
        (JsonTemplate::Object(fields), Value::Object(values)) => Value::Object(
            fields
                .iter()
                .zip(values)
                .map(|((name, item), (_, value))| (name.clone(), redact_json(item, value)))
                .collect(),
        ),
        _ => value.clone(),
    }
}

fn collect_secrets(json: &JsonTemplate, value: &Value, secrets: &mut Vec<String>) {
    match (json, value) {
        (JsonTemplate::Template(template), _) if template.tainted => secrets.push(match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        }),
        (JsonTemplate::Array(items), Value::Array(values)) => {
            for (item, value) in items.iter().zip(values) {
                collect_secrets(item, value, secrets);
            }
        }
        (JsonTemplate::Object(fields), Value::Object(values)) => {
            for ((_, item), (_, value)) in fields.iter().zip(values) {
                collect_secrets(item, value, secrets);
            }
        }
        _ => {}
    }
}

/// An answer as the conditions see it.
struct Answer<'a> {
    status: StatusCode,
    text: &'a str,
    json: Option<&'a Value>,
}

impl Condition {
    fn holds(&self, answer: &Answer<'_>) -> bool {
        match self {
            // A JSON condition holds only on a JSON answer.
            Condition::Equals { pointer, values } => answer
                .json
                .and_then(|json| json.pointer(pointer))
                .is_some_and(|found| values.iter().any(|value| same(found, value))),
            Condition::Exists { pointer, exists } => answer
                .json
                .is_some_and(|json| json.pointer(pointer).is_some() == *exists),
            Condition::Text(regex) => regex.is_match(answer.text),
            Condition::Status(statuses) => statuses.contains(&answer.status.as_u16()),
        }
    }
}

/// JSON equality, with numbers compared by value (`1` equals `1.0`).
fn same(found: &Value, listed: &Value) -> bool {
    match (found, listed) {
        (Value::Number(a), Value::Number(b)) => {
            let decimal = |n: &serde_json::Number| n.to_string().parse::<Decimal>().ok();
            match (decimal(a), decimal(b)) {
                (Some(a), Some(b)) => a == b,
                _ => a == b,
            }
        }
        _ => found == listed,
    }
}

fn condition(path: &str, spec: ConditionSpec) -> Result<Condition, FieldError> {
    let kinds = [
        spec.json.is_some(),
        spec.text.is_some(),
        spec.status.is_some(),
    ];
    if kinds.iter().filter(|given| **given).count() != 1 {
        return Err(error(path, "give one of json, text and status"));
    }
    if spec.json.is_none() && (spec.equals.is_some() || spec.exists.is_some()) {
        return Err(error(path, "equals and exists go with json"));
    }
    if let Some(pointer) = spec.json {
        let pointer = pointer_at(&format!("{path}.json"), pointer)?;
        return match (spec.equals, spec.exists) {
            (Some(values), None) if !values.is_empty() => Ok(Condition::Equals { pointer, values }),
            (None, Some(exists)) => Ok(Condition::Exists { pointer, exists }),
            _ => Err(error(path, "json needs one of equals (a list) and exists")),
        };
    }
    if let Some(pattern) = spec.text {
        let regex = Regex::new(&pattern)
            .map_err(|_| error(format!("{path}.text"), "not a valid regular expression"))?;
        return Ok(Condition::Text(regex));
    }
    let statuses = spec.status.unwrap_or_default();
    if statuses.is_empty() || statuses.iter().any(|s| !(100..=599).contains(s)) {
        return Err(error(format!("{path}.status"), "a list of HTTP statuses"));
    }
    Ok(Condition::Status(statuses))
}

fn pointer_at(path: &str, pointer: String) -> Result<String, FieldError> {
    if pointer.is_empty() || pointer.starts_with('/') {
        Ok(pointer)
    } else {
        Err(error(
            path,
            "a JSON pointer (RFC 6901) such as /data/balance",
        ))
    }
}

fn separators(
    source: &BalanceSource,
    thousands: Option<&str>,
    decimal: Option<&str>,
) -> Result<Separators, FieldError> {
    let one = |path: &str, text: &str| -> Result<Option<char>, FieldError> {
        match text {
            "" => Ok(None),
            "." | "," | " " | "'" => Ok(text.chars().next()),
            _ => Err(error(path, "one of \".\", \",\", \" \", \"'\" or \"\"")),
        }
    };
    // Text answers are Indonesian (`Saldo 14.324.472`); JSON strings usually `"25000.00"`.
    let default = match source {
        BalanceSource::Text(_) => Separators::INDONESIAN,
        BalanceSource::Json(_) => Separators::PLAIN,
    };
    let thousands = match thousands {
        Some(text) => one("balance.thousands_separator", text)?,
        None => default.thousands,
    };
    let decimal = match decimal {
        Some(text) => one("balance.decimal_separator", text)?
            .filter(|c| matches!(c, '.' | ','))
            .ok_or_else(|| error("balance.decimal_separator", "\".\" or \",\""))?,
        // With only the thousands separator given, the decimal one is the other of `.` and `,`.
        None if thousands == Some('.') => ',',
        None if thousands == Some(',') => '.',
        None => default.decimal,
    };
    if thousands == Some(decimal) {
        return Err(error(
            "balance.decimal_separator",
            "must differ from the thousands separator",
        ));
    }
    Ok(Separators { thousands, decimal })
}

/// Names that templates can use as variables.
fn check_identifier(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err("a name of letters, digits and _ (usable in templates)".into());
    }
    // Names the template language reads as something else (literals, operators, loop state).
    const KEYWORDS: [&str; 18] = [
        "true", "false", "none", "True", "False", "None", "and", "or", "not", "in", "is", "if",
        "else", "for", "loop", "self", "super", "caller",
    ];
    let reserved = name == "body" || name.starts_with("__") || KEYWORDS.contains(&name);
    if reserved || template::globals().contains(name) {
        return Err(format!("{name:?} is reserved"));
    }
    Ok(())
}

fn base_of(url: &Url) -> Url {
    let mut base = url.clone();
    base.set_path("/");
    base.set_query(None);
    base.set_fragment(None);
    let _ = base.set_username("");
    let _ = base.set_password(None);
    base
}

#[cfg(test)]
mod tests;
