//! How one balance check runs: the shared HTTP client, the upstream runtime, the limits on
//! requests in flight, and the abort when the collector stops waiting.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::collector::CheckFuture;
use crate::error::UpstreamError;
use crate::providers::{Balance, CheckContext, Provider};

/// The one HTTP client for every upstream: connection reuse, no redirects (credentials must not
/// follow a redirect to another host), and only the connect phase limited here, since the
/// collector bounds each whole check.
pub fn http_client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("saldo_exporter/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout)
        .build()
}

/// At most this many balance requests run at once, across all accounts: a scrape of many
/// accounts at one supplier then neither opens a connection per account nor arrives at the
/// supplier as a flood. Enough for 100 accounts in one round.
static CHECK_PERMITS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(128);

/// Starts one check of `provider` on the upstream runtime.
pub fn start(provider: Arc<dyn Provider>, cx: CheckContext) -> CheckFuture {
    let request = upstream_runtime().spawn(async move {
        let _permit = CHECK_PERMITS.acquire().await.expect("never closed");
        provider.fetch(&cx).await
    });
    Box::pin(AbortOnDrop(request))
}

/// Upstream requests run on a runtime of their own. A supplier that floods the connection (endless
/// `100 Continue` answers) keeps hyper parsing for seconds within one poll, and on the serving
/// runtime that would hold up its timers: the scrape deadline and the check timeout.
fn upstream_runtime() -> &'static tokio::runtime::Handle {
    static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
        tokio::runtime::Builder::new_multi_thread()
            // Supplier requests are I/O: two threads carry thousands of them.
            .worker_threads(2)
            .thread_name("saldo-upstream")
            .enable_all()
            .build()
            .expect("the upstream runtime starts")
    });
    RUNTIME.handle()
}

/// A check running on the upstream runtime, aborted when the collector stops waiting for it
/// (at the check timeout), so that its request stops too.
struct AbortOnDrop(JoinHandle<Result<Balance, UpstreamError>>);

impl Future for AbortOnDrop {
    type Output = Result<Balance, UpstreamError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|joined| match joined {
            Ok(result) => result,
            // Only a panic ends the task early; the collector handles it as before.
            Err(err) => std::panic::resume_unwind(err.into_panic()),
        })
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
