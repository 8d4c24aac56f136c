//! Caddy (2.6, Debian's) in front of the sidecar with `forward_auth`, from a generated
//! Caddyfile: no admin endpoint, no automatic HTTPS, bound to 127.0.0.1 only.
//!
//! `HOME`, `XDG_DATA_HOME` and `XDG_CONFIG_HOME` point into its temp dir: Caddy saves its
//! config (`autosave.json`) and would keep certificates there, never in the user's home.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::launch::{Plan, Proxy, Stop};
use crate::process::find_program;

const INSTALL_HINT: &str = "install caddy: `apt-get install -y --no-install-recommends caddy` or run `cargo xtask services install`";

/// The config file's name in the server's temp dir.
const CONFIG_FILE: &str = "Caddyfile";

/// The `caddy` binary (`AUTHCACHE_CADDY`, `/usr/bin/caddy` or `$PATH`).
///
/// # Panics
/// When Caddy is nowhere, with how to install it.
pub fn caddy_program() -> PathBuf {
    find_program(
        "caddy",
        "AUTHCACHE_CADDY",
        &[PathBuf::from("/usr/bin/caddy")],
        INSTALL_HINT,
    )
}

/// One `caddy run` on 127.0.0.1, killed on drop.
#[derive(Debug)]
pub struct CaddyServer {
    proxy: Proxy,
}

impl CaddyServer {
    /// Starts Caddy with `forward_auth` to `auth` in front of `upstream` on a free port
    /// (retrying on another port when the chosen one was taken meanwhile), and waits until
    /// it answers.
    ///
    /// # Panics
    /// When Caddy is missing or does not come up in time.
    pub fn start(auth: SocketAddr, upstream: SocketAddr) -> Self {
        let program = caddy_program();
        let proxy = Proxy::start("caddy", |port, dir| Plan {
            config: Self::render_config(auth, upstream, port),
            config_file: CONFIG_FILE,
            command: command(&program, dir),
            stop: Stop::Kill,
        });
        Self { proxy }
    }

    /// The Caddyfile [`CaddyServer::start`] writes for Caddy listening on `port`.
    pub fn render_config(auth: SocketAddr, upstream: SocketAddr, port: u16) -> String {
        CONFIG
            .replace("@AUTH@", &auth.to_string())
            .replace("@UPSTREAM@", &upstream.to_string())
            .replace("@PORT@", &port.to_string())
    }
}

impl std::ops::Deref for CaddyServer {
    type Target = Proxy;

    fn deref(&self) -> &Proxy {
        &self.proxy
    }
}

/// `caddy run --config DIR/Caddyfile --adapter caddyfile`, its home inside DIR.
fn command(program: &Path, dir: &Path) -> Command {
    let mut command = Command::new(program);
    command
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(dir.join(CONFIG_FILE))
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .current_dir(dir);
    command
}

const CONFIG: &str = "{
\tadmin off
\tauto_https off
}

http://127.0.0.1:@PORT@ {
\tbind 127.0.0.1

\t# nginx ignores header names with `_` by default; without this, a client's
\t# X_Auth_Request_User would reach the upstream, which a CGI-style framework
\t# reads as X-Auth-Request-User.
\trequest_header -*_*

\thandle /admin/* {
\t\tforward_auth @AUTH@ {
\t\t\turi /auth?role=admin
\t\t\tcopy_headers X-Auth-Request-User X-Auth-Request-Email X-Auth-Request-Groups X-Auth-Request-Permissions
\t\t}
\t\treverse_proxy @UPSTREAM@
\t}

\thandle {
\t\tforward_auth @AUTH@ {
\t\t\t# `?` clears the query: a bare `/auth` would hand the client's query
\t\t\t# string to the auth endpoint (nginx's subrequest carries none).
\t\t\turi /auth?
\t\t\tcopy_headers X-Auth-Request-User X-Auth-Request-Email X-Auth-Request-Groups X-Auth-Request-Permissions
\t\t}
\t\treverse_proxy @UPSTREAM@
\t}
}
";
