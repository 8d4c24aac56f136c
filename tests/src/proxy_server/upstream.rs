//! The application behind the proxies: [`EchoUpstream`] answers every request with 200 and
//! a JSON account of what reached it (method, path, query, every header), so a test can
//! assert which identity headers the proxy forwarded and which client headers it let
//! through. [`Echoed`] reads that account back.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// An HTTP/1.1 server on a free 127.0.0.1 port, in a task of the current tokio runtime,
/// stopped on drop.
#[derive(Debug)]
pub struct EchoUpstream {
    address: SocketAddr,
    hits: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl EchoUpstream {
    /// Binds 127.0.0.1:0 and serves. The socket is bound before this returns, so requests
    /// queue from then on and need no readiness poll.
    ///
    /// # Panics
    /// When the loopback interface cannot bind.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0 for the echo upstream");
        let address = listener.local_addr().expect("local address");
        let hits = Arc::new(AtomicU64::new(0));
        let app = Router::new().fallback(echo).with_state(Arc::clone(&hits));
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("serve the echo upstream");
        });
        Self {
            address,
            hits,
            task,
        }
    }

    /// Where it listens: the proxies' upstream.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Requests it has answered: a refused request never adds one.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn echo(
    State(hits): State<Arc<AtomicU64>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> impl IntoResponse {
    hits.fetch_add(1, Ordering::SeqCst);
    let mut echoed: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, value) in &headers {
        echoed
            .entry(name.as_str())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let body = json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query(),
        "headers": echoed,
    });
    ([(CONTENT_TYPE, "application/json")], body.to_string())
}

/// What reached the [`EchoUpstream`], read back from its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Echoed {
    /// The request method.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string, without `?`.
    pub query: Option<String>,
    /// Every header by lowercase name, each value in the order received.
    pub headers: BTreeMap<String, Vec<String>>,
}

impl Echoed {
    /// Parses an [`EchoUpstream`] answer body.
    ///
    /// # Panics
    /// When `body` is not one (the request did not reach the upstream).
    pub fn parse(body: &str) -> Self {
        let value: Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("not an echo upstream answer ({e}): {body:?}"));
        let text = |field: &str| value[field].as_str().map(str::to_owned);
        let headers = value["headers"]
            .as_object()
            .unwrap_or_else(|| panic!("no headers in the echo: {body:?}"))
            .iter()
            .map(|(name, values)| {
                let values = values
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect();
                (name.clone(), values)
            })
            .collect();
        Self {
            method: text("method").unwrap_or_else(|| panic!("no method in {body:?}")),
            path: text("path").unwrap_or_else(|| panic!("no path in {body:?}")),
            query: text("query"),
            headers,
        }
    }

    /// Every value of header `name` (any case) that reached the upstream.
    pub fn values(&self, name: &str) -> &[String] {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map_or(&[], Vec::as_slice)
    }

    /// The one value of header `name`; `None` when it did not reach the upstream.
    ///
    /// # Panics
    /// When it reached the upstream more than once.
    pub fn header(&self, name: &str) -> Option<&str> {
        match self.values(name) {
            [] => None,
            [one] => Some(one),
            many => panic!("{name} reached the upstream {} times: {many:?}", many.len()),
        }
    }

    /// Header names that reached the upstream and read as `name` when case is ignored and
    /// `_` is taken for `-`, as CGI-style frameworks (PHP, WSGI, Rack) merge them
    /// (`X_Auth_Request_User` and `X-Auth-Request-User` both become
    /// `HTTP_X_AUTH_REQUEST_USER`).
    pub fn spellings_of(&self, name: &str) -> Vec<&str> {
        let canonical = |n: &str| n.to_ascii_lowercase().replace('_', "-");
        let wanted = canonical(name);
        self.headers
            .keys()
            .filter(|n| canonical(n) == wanted)
            .map(String::as_str)
            .collect()
    }
}
