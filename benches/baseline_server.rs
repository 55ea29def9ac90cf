//! The baseline for the HTTP figures: the least a hyper server can do to answer a scrape.
//!
//! `baseline_server --listen ADDR --body FILE` serves the bytes of FILE from memory at every
//! path, with the exporter's content type, over HTTP/1.1 keep-alive on the same tokio and hyper
//! as the exporter. `/metrics` throughput and start-up are reported as ratios to this server.
//! Under `cargo bench` (no `--listen`) it does nothing.

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
    };
    let Some(listen) = value("--listen") else {
        eprintln!("usage: baseline_server --listen ADDR [--body FILE]  (run by bench/run.sh)");
        return;
    };
    let body = match value("--body") {
        Some(path) => Bytes::from(std::fs::read(path).expect("the body file is readable")),
        None => Bytes::from_static(b"Ready\n"),
    };
    // The same runtime the exporter's `main` builds.
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(serve(listen, body));
}

async fn serve(listen: &str, body: Bytes) {
    let listener = TcpListener::bind(listen)
        .await
        .expect("the address is free");
    let content_type = HeaderValue::from_static(saldo_exporter::metrics::CONTENT_TYPE);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let body = body.clone();
        let content_type = content_type.clone();
        let service = service_fn(move |_: Request<hyper::body::Incoming>| {
            let mut response = Response::new(Full::new(body.clone()));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, content_type.clone());
            async move { Ok::<_, Infallible>(response) }
        });
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
