//! A real HTTP/1.1 client for driving the proxies (hyper-util over TCP), with headers of
//! the test's choosing — including the ones a hostile client would forge.

use std::time::Duration;

use axum::http::{HeaderMap, Method, Request};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::upstream::Echoed;

/// Bound on one request through a proxy: far above what loopback needs, so a hang fails
/// the test instead of stalling it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the proxy answered.
#[derive(Debug)]
pub struct ProxyReply {
    /// The status code.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body, as text.
    pub body: String,
}

impl ProxyReply {
    /// The one value of response header `name`.
    ///
    /// # Panics
    /// When the response carries `name` more than once.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut values = self.headers.get_all(name).iter();
        let first = values.next()?;
        let rest: Vec<_> = values.collect();
        assert!(
            rest.is_empty(),
            "response header {name} appears {} times: {:?}",
            rest.len() + 1,
            self.headers.get_all(name).iter().collect::<Vec<_>>()
        );
        Some(first.to_str().expect("a visible-ASCII header value"))
    }

    /// What reached the upstream, from its echo.
    ///
    /// # Panics
    /// When the body is not an [`EchoUpstream`](super::EchoUpstream) answer.
    pub fn echoed(&self) -> Echoed {
        Echoed::parse(&self.body)
    }
}

/// `GET url` with `headers`.
///
/// # Panics
/// As [`request`].
pub async fn get(url: &str, headers: &[(&str, &str)]) -> ProxyReply {
    request(Method::GET, url, headers).await
}

/// `method url` with `headers` and an empty body, on a fresh connection.
///
/// # Panics
/// When the request cannot be built, sent or answered within 30 s.
pub async fn request(method: Method, url: &str, headers: &[(&str, &str)]) -> ProxyReply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut builder = Request::builder().method(method.clone()).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder
        .body(Empty::new())
        .unwrap_or_else(|e| panic!("build {method} {url}: {e}"));
    let exchange = async {
        let response = client
            .request(request)
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: read the body: {e}"))
            .to_bytes();
        ProxyReply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {url}: no answer within {REQUEST_TIMEOUT:?}"))
}
