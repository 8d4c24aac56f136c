//! Unit tests of the URL and redirect rules, and of redirects over real TLS: a key server on
//! loopback that speaks HTTPS with a certificate from a test CA (checked in under
//! `src/testkeys/tls_*.der`, made once with `openssl`, valid until 2126) which only these
//! tests' client trusts, next to a plain-http one that counts what reaches it.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Mutex;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};

use super::*;
use crate::jwks::RemoteJwks;
use crate::{TokenIssuer, test_keys};

const TEST_CA: &[u8] = include_bytes!("../../testkeys/tls_ca.cert.der");
/// For `127.0.0.1` and `localhost`, signed by [`TEST_CA`].
const LOCALHOST_CERT: &[u8] = include_bytes!("../../testkeys/tls_localhost.cert.der");
const LOCALHOST_KEY: &[u8] = include_bytes!("../../testkeys/tls_localhost.key.der");

fn url(text: &str) -> Url {
    Url::parse(text).unwrap()
}

fn allowed(text: &str, allow_http: bool) -> bool {
    permitted(&url(text), allow_http).is_ok()
}

#[test]
fn https_is_allowed_and_plain_http_only_for_loopback_or_by_opt_in() {
    assert!(allowed("https://id.example.com/jwks.json", false));
    for loopback in [
        "http://127.0.0.1:8080/jwks",
        "http://127.8.9.10/jwks",
        "http://localhost:1/jwks",
        "http://LOCALHOST/jwks",
        "http://[::1]:99/jwks",
    ] {
        assert!(allowed(loopback, false), "{loopback}");
    }
    for remote in [
        "http://id.example.com/jwks",
        "http://10.0.0.1/jwks",
        "http://localhost.evil.com/",
    ] {
        assert!(!allowed(remote, false), "{remote}");
        assert!(allowed(remote, true), "{remote} with allow_http");
    }
}

#[test]
fn other_schemes_and_credentials_are_refused() {
    for text in [
        "ftp://id.example.com/jwks",
        "file:///etc/jwks.json",
        "https://user:secret@id.example.com/jwks",
        "https://user@id.example.com/jwks",
    ] {
        assert!(!allowed(text, true), "{text}");
    }
}

#[test]
fn a_chain_that_was_on_https_never_leaves_it_whatever_the_host_or_opt_in() {
    let from_https = [url("https://id.example.com/jwks")];
    let via_https = [url("http://127.0.0.1/a"), url("https://id.example.com/b")];
    for chain in [&from_https[..], &via_https[..]] {
        for downgrade in [
            "http://localhost/jwks",
            "http://127.0.0.1:9/jwks",
            "http://id.example.com/jwks",
        ] {
            for allow_http in [false, true] {
                assert_eq!(
                    redirect_verdict(chain, &url(downgrade), allow_http),
                    Err("a redirect from https must stay on https"),
                    "{chain:?} -> {downgrade}, allow_http {allow_http}"
                );
            }
        }
        assert_eq!(
            redirect_verdict(chain, &url("https://cdn.example.com/jwks"), false),
            Ok(())
        );
    }
}

#[test]
fn a_plain_http_origin_redirects_only_as_its_knob_allows() {
    let local = [url("http://127.0.0.1:8080/jwks")];
    assert_eq!(
        redirect_verdict(&local, &url("http://localhost:8081/jwks"), false),
        Ok(())
    );
    assert_eq!(
        redirect_verdict(&local, &url("https://id.example.com/jwks"), false),
        Ok(())
    );
    let remote = url("http://id.example.com/jwks");
    assert!(redirect_verdict(&local, &remote, false).is_err());
    assert_eq!(redirect_verdict(&local, &remote, true), Ok(()));
    let long: Vec<Url> = (0..MAX_REDIRECTS)
        .map(|i| url(&format!("https://id.example.com/{i}")))
        .collect();
    assert_eq!(
        redirect_verdict(&long, &url("https://id.example.com/next"), false),
        Err("too many redirects")
    );
}

#[test]
fn a_refused_location_is_logged_without_credentials_and_bounded() {
    assert_eq!(
        loggable(&url("http://user:secret@127.0.0.1:9/jwks")),
        "http://127.0.0.1:9/jwks"
    );
    let long = url(&format!("https://id.example.com/{}", "a".repeat(1000)));
    assert_eq!(loggable(&long).len(), 256);
}

/// What a [`Server`] answers to a GET of a path: status, `Location` (if any) and body.
type Route = fn(&str) -> (u16, Option<String>, String);

/// A blocking HTTP/1.1 server on its own thread, over TLS or not, one connection at a time:
/// enough for a client that keeps no connection open.
struct Server {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(tls: Option<Arc<ServerConfig>>, route: Route) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        // Detached: it lives as long as the test process, accepting nothing once unused.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                // A failed handshake or a client gone is that connection's end, not the server's.
                let _ = answer(stream, tls.clone(), route, &seen);
            }
        });
        Self { addr, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn answer(
    stream: TcpStream,
    tls: Option<Arc<ServerConfig>>,
    route: Route,
    seen: &Mutex<Vec<String>>,
) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    match tls {
        Some(config) => {
            let connection = ServerConnection::new(config).map_err(io::Error::other)?;
            let mut stream = StreamOwned::new(connection, stream);
            exchange(&mut stream, route, seen)?;
            stream.conn.send_close_notify();
            stream.flush()
        }
        None => exchange(&mut &stream, route, seen),
    }
}

/// Reads one request head and writes the route's answer.
fn exchange(
    io: &mut (impl Read + Write),
    route: Route,
    seen: &Mutex<Vec<String>>,
) -> io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        if io.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
    seen.lock().unwrap().push(path.clone());
    let (status, location, body) = route(&path);
    let location = location.map_or_else(String::new, |l| format!("Location: {l}\r\n"));
    write!(
        io,
        "HTTP/1.1 {status} X\r\n{location}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    io.flush()
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn localhost_tls() -> Arc<ServerConfig> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(LOCALHOST_KEY.to_vec()));
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(LOCALHOST_CERT.to_vec())], key)
        .unwrap();
    Arc::new(config)
}

/// A client configuration that trusts the test CA only.
fn trusting_test_ca() -> rustls::ClientConfig {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(TEST_CA.to_vec())).unwrap();
    rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

fn key_set_a() -> String {
    let mut set = test_keys::jwks().unwrap();
    set.keys
        .retain(|k| k.common.key_id.as_deref() == Some(test_keys::RSA_A_KID));
    serde_json::to_string(&set).unwrap()
}

/// The plain server's port, for the HTTPS server's routes (which are plain `fn`s).
static PLAIN_PORT: Mutex<u16> = Mutex::new(0);

fn https_routes(path: &str) -> (u16, Option<String>, String) {
    match path {
        "/jwks.json" => (200, None, key_set_a()),
        "/hop" => (302, Some("/jwks.json".into()), String::new()),
        "/loop" => (302, Some("/loop".into()), String::new()),
        "/downgrade" => {
            let port = *PLAIN_PORT.lock().unwrap();
            let target = format!("http://127.0.0.1:{port}/jwks.json");
            (307, Some(target), String::new())
        }
        _ => (404, None, String::new()),
    }
}

fn plain_routes(path: &str) -> (u16, Option<String>, String) {
    match path {
        "/jwks.json" => (200, None, key_set_a()),
        _ => (404, None, String::new()),
    }
}

async fn build(url: String) -> crate::Result<crate::JwtVerifier> {
    tokio::time::timeout(
        Duration::from_secs(60),
        RemoteJwks::url(url).build_over(trusting_test_ca()),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn https_redirects_are_followed_but_never_down_to_plain_http() {
    let plain = Server::start(None, plain_routes);
    *PLAIN_PORT.lock().unwrap() = plain.addr.port();
    let https = Server::start(Some(localhost_tls()), https_routes);
    let base = format!("https://127.0.0.1:{}", https.addr.port());
    let token = TokenIssuer::test_rs256()
        .kid(test_keys::RSA_A_KID)
        .issue("user-1", Duration::from_secs(60))
        .unwrap();

    // https → https: followed, and the keys work.
    let verifier = build(format!("{base}/hop")).await.unwrap();
    assert_eq!(verifier.verify(&token).unwrap().sub, "user-1");
    assert_eq!(https.requests(), ["/hop", "/jwks.json"]);

    // https → http on loopback (which a plain-http origin may use): refused, nothing fetched.
    let error = build(format!("{base}/downgrade")).await.unwrap_err();
    assert_eq!(
        error,
        TokenError::RedirectRefused {
            location: format!("http://127.0.0.1:{}/jwks.json", plain.addr.port()),
            reason: "a redirect from https must stay on https",
        }
    );
    assert!(error.is_configuration());
    assert!(error.to_string().contains("final https URL"), "{error}");
    assert!(plain.requests().is_empty(), "{:?}", plain.requests());

    // The plain server is usable on its own: the refusal was the downgrade, not the host.
    let direct = build(format!("http://127.0.0.1:{}/jwks.json", plain.addr.port()));
    assert!(direct.await.is_ok());

    let error = build(format!("{base}/loop")).await.unwrap_err();
    assert!(
        matches!(
            &error,
            TokenError::RedirectRefused { reason: "too many redirects", location }
                if location.ends_with("/loop")
        ),
        "{error}"
    );
}
