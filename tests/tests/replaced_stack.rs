//! The README's replaced stack, run as shipped: `crates/server/examples/replaced-stack/`'s
//! Flask-style `app.py` behind nginx with that folder's `nginx.conf` and `identity.conf`,
//! asking a real authcache-server. The app reads who is calling from the identity headers
//! alone, a client cannot forge them, and the two layers of authorization (nginx's role gate,
//! the app's permission check) each refuse what they should.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod auth_support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use auth_support::bearer;
use authcache::CacheConfig;
use authcache_server::{Listeners, Server, ServerConfig};
use authcache_tests::process::{find_program, workspace_root};
use authcache_tests::proxy_server::{NginxServer, ProxyReply, get};

/// The example's folder.
fn example() -> PathBuf {
    workspace_root().join("crates/server/examples/replaced-stack")
}

/// `python3 app.py --port 0`, killed on drop; its address is the line it prints.
struct App {
    child: Child,
    address: SocketAddr,
}

impl App {
    fn start() -> Self {
        let python = find_program(
            "python3",
            "AUTHCACHE_PYTHON",
            &[PathBuf::from("/usr/bin/python3")],
            "install Python 3: `apt-get install python3`",
        );
        let mut child = Command::new(python)
            .arg(example().join("app.py"))
            .args(["--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("app.py printed {line:?}"))
            .parse()
            .unwrap();
        Self { child, address }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The example's nginx.conf with the test's addresses, and the relative pid, log and temp
/// paths the kit runs every nginx with.
fn nginx(auth: SocketAddr, app: SocketAddr) -> NginxServer {
    let config = std::fs::read_to_string(example().join("nginx.conf")).unwrap();
    let identity = std::fs::read_to_string(example().join("identity.conf")).unwrap();
    NginxServer::start_config(move |port, dir| {
        std::fs::write(dir.join("identity.conf"), &identity).unwrap();
        let shipped = ["127.0.0.1:9180", "127.0.0.1:3000", "listen 127.0.0.1:8080"];
        for address in shipped {
            assert!(
                config.contains(address),
                "the example no longer says {address}"
            );
        }
        let paths = "pid nginx.pid;\nerror_log error.log warn;\n";
        let temp = "http {\n    client_body_temp_path client_body_temp;\n    proxy_temp_path proxy_temp;\n    fastcgi_temp_path fastcgi_temp;\n    uwsgi_temp_path uwsgi_temp;\n    scgi_temp_path scgi_temp;\n";
        format!(
            "{paths}{}",
            config
                .replacen("http {\n", temp, 1)
                .replace("127.0.0.1:9180", &auth.to_string())
                .replace("127.0.0.1:3000", &app.to_string())
                .replace("listen 127.0.0.1:8080", &format!("listen 127.0.0.1:{port}"))
        )
    })
}

fn json(reply: &ProxyReply) -> serde_json::Value {
    serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{e}: {reply:?}"))
}

#[tokio::test]
async fn the_flask_style_app_behind_nginx_reads_the_identity_and_never_a_forged_one() {
    let auth = auth_support::service(
        CacheConfig::memory(),
        auth_support::memory_repository().await,
    )
    .await;
    let sidecar = Server::new(auth, ServerConfig::default())
        .await
        .unwrap()
        .start(Listeners::ephemeral().await.unwrap());
    let app = App::start();
    let nginx = nginx(sidecar.public_addr(), app.address);
    let (ada, bob) = (bearer("ada"), bearer("bob"));

    let me = get(&nginx.url("/me"), &[("authorization", &ada)]).await;
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(
        json(&me),
        serde_json::json!({"id": "ada", "email": "ada@example.com", "roles": ["admin"]})
    );

    // A client's own identity headers are overwritten by what the sidecar answered.
    let forged = [
        ("authorization", bob.as_str()),
        ("x-auth-request-user", "ada"),
        ("x-auth-request-permissions", "users:read,users:write"),
    ];
    let reply = get(&nginx.url("/users/export"), &forged).await;
    assert_eq!(reply.status, 403, "the app's own check: {reply:?}");
    assert_eq!(json(&reply)["missing"], "users:write");
    let reply = get(&nginx.url("/users"), &forged).await;
    assert_eq!(reply.status, 200);
    assert_eq!(json(&reply)["asked_by"], "bob");

    let reply = get(&nginx.url("/users/export"), &[("authorization", &ada)]).await;
    assert_eq!(json(&reply)["by"], "ada");

    // nginx's own gate, before the app is asked.
    let reply = get(&nginx.url("/admin/x"), &[("authorization", &bob)]).await;
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.header("www-authenticate"),
        Some(r#"Bearer error="insufficient_scope""#)
    );
    let reply = get(&nginx.url("/me"), &[]).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    sidecar.shutdown().await;
}
