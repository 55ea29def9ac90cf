//! Access tokens for suppliers that want one before the balance call (SNAP BI's B2B token,
//! valid ~15 minutes): fetched once and shared by every check of the account, refreshed
//! shortly before expiry, and on a token-expired answer dropped and fetched again for exactly
//! one retry.
//!
//! Expiry is reckoned on the check's signing clock ([`super::CheckContext::now`]), so a test
//! moves it without sleeping. A wrong wall clock costs at worst an early refresh, or one
//! token-expired answer and its retry.

use std::future::Future;
use std::time::{Duration, SystemTime};

use secrecy::{ExposeSecret, SecretString};

use crate::error::UpstreamError;

/// A token as the supplier issued it.
pub struct Token {
    pub value: SecretString,
    /// The lifetime the supplier gave (`expiresIn`).
    pub expires_in: Duration,
}

/// Why one call with a token failed: the supplier said the token is no longer valid (retry
/// with a fresh one), or anything else (no retry).
#[derive(Debug)]
pub enum CallError {
    TokenExpired(UpstreamError),
    Failed(UpstreamError),
}

impl From<UpstreamError> for CallError {
    fn from(err: UpstreamError) -> Self {
        CallError::Failed(err)
    }
}

/// Refresh this long before expiry: a tenth of the lifetime, at most a minute, so a token is
/// never sent in its last seconds and a short-lived one is still reused.
pub fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 10).min(Duration::from_secs(60))
}

/// One account's token. The lock is held while a token is fetched, so concurrent checks wait
/// for that one fetch instead of each fetching their own (single flight).
#[derive(Debug, Default)]
pub struct TokenCache {
    cached: tokio::sync::Mutex<Option<Cached>>,
}

#[derive(Debug)]
struct Cached {
    value: SecretString,
    /// When to fetch a new one: expiry less the refresh margin.
    refresh_at: SystemTime,
}

impl TokenCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The cached token, or a new one from `fetch` if there is none or it is due for refresh.
    pub async fn get<F, Fut>(
        &self,
        now: SystemTime,
        fetch: F,
    ) -> Result<SecretString, UpstreamError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Token, UpstreamError>>,
    {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref().filter(|token| now < token.refresh_at) {
            return Ok(token.value.clone());
        }
        let token = fetch().await?;
        let lifetime = token.expires_in;
        *cached = Some(Cached {
            value: token.value.clone(),
            refresh_at: now + lifetime - refresh_margin(lifetime),
        });
        Ok(token.value)
    }

    /// Forgets `token`, unless another check has already replaced it.
    pub async fn invalidate(&self, token: &SecretString) {
        let mut cached = self.cached.lock().await;
        if cached
            .as_ref()
            .is_some_and(|c| c.value.expose_secret() == token.expose_secret())
        {
            *cached = None;
        }
    }

    /// Runs `call` with a token. If the supplier answers that the token expired, the token is
    /// dropped, a new one fetched and `call` made once more; a second expired answer is the
    /// check's failure, classified as the supplier's error says.
    pub async fn with_token<T, F, FFut, C, CFut>(
        &self,
        now: SystemTime,
        fetch: F,
        call: C,
    ) -> Result<T, UpstreamError>
    where
        F: Fn() -> FFut,
        FFut: Future<Output = Result<Token, UpstreamError>>,
        C: Fn(SecretString) -> CFut,
        CFut: Future<Output = Result<T, CallError>>,
    {
        let token = self.get(now, &fetch).await?;
        match call(token.clone()).await {
            Ok(value) => Ok(value),
            Err(CallError::Failed(err)) => Err(err),
            Err(CallError::TokenExpired(_)) => {
                self.invalidate(&token).await;
                let token = self.get(now, &fetch).await?;
                match call(token).await {
                    Ok(value) => Ok(value),
                    Err(CallError::Failed(err) | CallError::TokenExpired(err)) => Err(err),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! A token-based provider written the way a SNAP BI one will be, against a loopback
    //! supplier that issues tokens and refuses expired ones with `4011101`.

    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::UNIX_EPOCH;

    use http_body_util::BodyExt;
    use hyper::StatusCode;
    use serde_json::{Value, json};
    use url::Url;

    use super::*;
    use crate::providers::{Balance, BoxFuture, CheckContext, Provider, decode_json, endpoint};
    use crate::server::{accept_loop, respond};

    const LIFETIME: u64 = 900;

    #[derive(Default)]
    struct Supplier {
        token_requests: AtomicU64,
        balance_requests: AtomicU64,
        state: Mutex<SupplierState>,
    }

    #[derive(Default)]
    struct SupplierState {
        issued: u64,
        /// The one token the supplier accepts now.
        valid: Option<String>,
        /// Every token refused, as if the supplier's clock ran ahead.
        refuse_all: bool,
    }

    impl Supplier {
        async fn start() -> (Arc<Supplier>, Url) {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
            let supplier = Arc::new(Supplier::default());
            let handler = Arc::clone(&supplier);
            tokio::spawn(accept_loop(
                listener,
                move |request: hyper::Request<hyper::body::Incoming>| {
                    let supplier = Arc::clone(&handler);
                    async move {
                        let path = request.uri().path().to_owned();
                        let bearer = request
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .map(|v| v.trim_start_matches("Bearer ").to_owned());
                        let _ = request.into_body().collect().await;
                        let (status, body) = supplier.answer(&path, bearer);
                        respond(status, "application/json", body.to_string())
                    }
                },
                std::future::pending(),
            ));
            (supplier, url)
        }

        fn answer(&self, path: &str, bearer: Option<String>) -> (StatusCode, Value) {
            let mut state = self.state.lock().unwrap();
            if path == "/v1.0/access-token/b2b" {
                self.token_requests.fetch_add(1, Ordering::SeqCst);
                state.issued += 1;
                let token = format!("token-{}", state.issued);
                state.valid = Some(token.clone());
                return (
                    StatusCode::OK,
                    json!({"responseCode": "2007300", "accessToken": token,
                           "tokenType": "Bearer", "expiresIn": LIFETIME.to_string()}),
                );
            }
            self.balance_requests.fetch_add(1, Ordering::SeqCst);
            if state.refuse_all || bearer.is_none() || bearer != state.valid {
                return (
                    StatusCode::UNAUTHORIZED,
                    json!({"responseCode": "4011101", "responseMessage": "Invalid Token (B2B)"}),
                );
            }
            (
                StatusCode::OK,
                json!({"responseCode": "2001100", "accountInfos": [
                    {"availableBalance": {"value": "200000.00", "currency": "IDR"}}]}),
            )
        }

        fn tokens(&self) -> u64 {
            self.token_requests.load(Ordering::SeqCst)
        }

        fn balances(&self) -> u64 {
            self.balance_requests.load(Ordering::SeqCst)
        }

        /// The supplier forgets the token it issued (revoked, or its clock ran ahead).
        fn revoke(&self) {
            self.state.lock().unwrap().valid = None;
        }
    }

    #[derive(Debug)]
    struct TokenProvider {
        base_url: Url,
        tokens: TokenCache,
    }

    impl TokenProvider {
        async fn token(&self, cx: &CheckContext) -> Result<Token, UpstreamError> {
            let request = cx
                .client
                .post(endpoint(&self.base_url, "v1.0/access-token/b2b"))
                .json(&json!({"grantType": "client_credentials"}));
            let answer = cx.exchange(request).await?;
            let body: Value = answer.decode_with(decode_json)?;
            let seconds = body["expiresIn"].as_str().and_then(|s| s.parse().ok());
            match (body["accessToken"].as_str(), seconds) {
                (Some(token), Some(seconds)) => Ok(Token {
                    value: token.to_owned().into(),
                    expires_in: Duration::from_secs(seconds),
                }),
                _ => Err(UpstreamError::Decode("no token".into())),
            }
        }

        async fn balance(
            &self,
            cx: &CheckContext,
            token: SecretString,
        ) -> Result<Balance, CallError> {
            let request = cx
                .client
                .post(endpoint(&self.base_url, "v1.0/balance-inquiry"))
                .bearer_auth(token.expose_secret());
            let answer = cx.exchange(request).await?;
            let body: Value = decode_json(&answer.body)?;
            match body["responseCode"].as_str() {
                Some("2001100") => Ok(Balance {
                    amount: body["accountInfos"][0]["availableBalance"]["value"]
                        .as_str()
                        .unwrap()
                        .parse()
                        .unwrap(),
                    currency: "IDR".into(),
                    holder: None,
                }),
                Some("4011101") => Err(CallError::TokenExpired(UpstreamError::Auth(
                    "4011101 Invalid Token (B2B)".into(),
                ))),
                _ => Err(CallError::Failed(UpstreamError::Rejected(body.to_string()))),
            }
        }
    }

    impl Provider for TokenProvider {
        fn base_url(&self) -> &Url {
            &self.base_url
        }

        fn fetch<'a>(
            &'a self,
            cx: &'a CheckContext,
        ) -> BoxFuture<'a, Result<Balance, UpstreamError>> {
            Box::pin(self.tokens.with_token(
                cx.now(),
                || self.token(cx),
                |token| self.balance(cx, token),
            ))
        }
    }

    /// A context whose signing clock reads `seconds` since the epoch.
    fn context(seconds: &Arc<AtomicU64>) -> CheckContext {
        let seconds = Arc::clone(seconds);
        CheckContext::with_clock(
            reqwest::Client::new(),
            Arc::new(move || UNIX_EPOCH + Duration::from_secs(seconds.load(Ordering::SeqCst))),
        )
    }

    async fn setup() -> (Arc<Supplier>, TokenProvider, Arc<AtomicU64>) {
        let (supplier, base_url) = Supplier::start().await;
        let provider = TokenProvider {
            base_url,
            tokens: TokenCache::new(),
        };
        (supplier, provider, Arc::new(AtomicU64::new(1_780_000_000)))
    }

    #[tokio::test]
    async fn a_token_is_fetched_once_and_reused_until_it_nears_expiry() {
        let (supplier, provider, clock) = setup().await;
        let cx = context(&clock);
        for _ in 0..3 {
            assert_eq!(
                provider.fetch(&cx).await.unwrap().amount,
                "200000.00".parse().unwrap()
            );
        }
        assert_eq!((supplier.tokens(), supplier.balances()), (1, 3));
        // 100 s left of 900: more than the minute's margin, still reused.
        clock.fetch_add(LIFETIME - 100, Ordering::SeqCst);
        provider.fetch(&cx).await.unwrap();
        assert_eq!((supplier.tokens(), supplier.balances()), (1, 4));
        // 50 s left: refreshed ahead of expiry, without a refused call first.
        clock.fetch_add(50, Ordering::SeqCst);
        provider.fetch(&cx).await.unwrap();
        assert_eq!((supplier.tokens(), supplier.balances()), (2, 5));
    }

    #[tokio::test]
    async fn an_expired_token_answer_triggers_exactly_one_refresh_and_retry() {
        let (supplier, provider, clock) = setup().await;
        let cx = context(&clock);
        provider.fetch(&cx).await.unwrap();
        supplier.revoke();
        provider.fetch(&cx).await.unwrap();
        // One refused call, one new token, one successful retry.
        assert_eq!((supplier.tokens(), supplier.balances()), (2, 3));
    }

    #[tokio::test]
    async fn a_token_refused_again_after_the_refresh_fails_the_check_without_more_retries() {
        let (supplier, provider, clock) = setup().await;
        let cx = context(&clock);
        supplier.state.lock().unwrap().refuse_all = true;
        let err = provider.fetch(&cx).await.unwrap_err();
        assert_eq!(err.reason(), crate::error::Reason::Auth);
        assert_eq!((supplier.tokens(), supplier.balances()), (2, 2));
    }

    #[tokio::test]
    async fn concurrent_checks_share_one_token_fetch() {
        let (supplier, provider, clock) = setup().await;
        let cx = context(&clock);
        let checks = (0..10).map(|_| provider.fetch(&cx));
        for result in futures_join_all(checks).await {
            result.unwrap();
        }
        assert_eq!((supplier.tokens(), supplier.balances()), (1, 10));
    }

    /// Polls every future to completion concurrently (no `futures` dependency here).
    async fn futures_join_all<T>(futures: impl Iterator<Item = BoxFuture<'_, T>>) -> Vec<T> {
        let mut set = Vec::new();
        for future in futures {
            set.push(Some(future));
        }
        let mut results: Vec<Option<T>> = set.iter().map(|_| None).collect();
        std::future::poll_fn(|cx| {
            let mut pending = false;
            for (slot, result) in set.iter_mut().zip(results.iter_mut()) {
                if let Some(future) = slot {
                    match future.as_mut().poll(cx) {
                        std::task::Poll::Ready(value) => {
                            *result = Some(value);
                            *slot = None;
                        }
                        std::task::Poll::Pending => pending = true,
                    }
                }
            }
            if pending {
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(())
            }
        })
        .await;
        results.into_iter().map(Option::unwrap).collect()
    }

    #[test]
    fn the_refresh_margin_is_a_tenth_of_the_lifetime_at_most_a_minute() {
        assert_eq!(
            refresh_margin(Duration::from_secs(900)),
            Duration::from_secs(60)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(300)),
            Duration::from_secs(30)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(30)),
            Duration::from_secs(3)
        );
    }
}
