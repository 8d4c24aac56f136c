//! nginx in front of the sidecar with `auth_request`, or in front of the upstream alone
//! (the benchmark's reference), configured as a production operator would: keep-alive
//! connections to both the auth endpoint and the upstream (`upstream` blocks with
//! `keepalive 64`, HTTP/1.1, `Connection` cleared), one worker, no access log.
//!
//! It runs in the foreground (`-g "daemon off;"`) with its prefix, pid file, logs and temp
//! paths in its own temp dir, so it runs as any user.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::launch::{Plan, Proxy, Stop};
use crate::process::find_program;

const INSTALL_HINT: &str = "install nginx: `apt-get install -y --no-install-recommends nginx` or run `cargo xtask services install`";

/// The config file's name in the server's temp dir.
const CONFIG_FILE: &str = "nginx.conf";

/// What nginx does in front of the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NginxMode {
    /// Every request is first asked of the auth endpoint at this address (`auth_request`):
    /// `/admin/…` as `GET /auth?role=admin`, anything else as `GET /auth`.
    AuthRequest(SocketAddr),
    /// Every request goes straight to the upstream: the cost of nginx alone.
    Direct,
}

/// The `nginx` binary (`AUTHCACHE_NGINX`, `/usr/sbin/nginx` or `$PATH`).
///
/// # Panics
/// When nginx is nowhere, with how to install it.
pub fn nginx_program() -> PathBuf {
    find_program(
        "nginx",
        "AUTHCACHE_NGINX",
        &[PathBuf::from("/usr/sbin/nginx")],
        INSTALL_HINT,
    )
}

/// One nginx (a master and one worker) on 127.0.0.1, killed with its worker on drop.
#[derive(Debug)]
pub struct NginxServer {
    proxy: Proxy,
}

impl NginxServer {
    /// Starts nginx with `auth_request` to `auth` in front of `upstream`, and waits until
    /// it answers.
    ///
    /// # Panics
    /// When nginx is missing or does not come up in time.
    pub fn start(auth: SocketAddr, upstream: SocketAddr) -> Self {
        Self::start_with(NginxMode::AuthRequest(auth), upstream)
    }

    /// Starts nginx proxying straight to `upstream`, without asking anyone.
    ///
    /// # Panics
    /// As [`NginxServer::start`].
    pub fn start_direct(upstream: SocketAddr) -> Self {
        Self::start_with(NginxMode::Direct, upstream)
    }

    /// Starts nginx in `mode` in front of `upstream` on a free port, retrying on another
    /// port when the chosen one was taken meanwhile.
    ///
    /// # Panics
    /// As [`NginxServer::start`].
    pub fn start_with(mode: NginxMode, upstream: SocketAddr) -> Self {
        let program = nginx_program();
        let proxy = Proxy::start("nginx", |port, dir| Plan {
            config: Self::render_config(mode, upstream, port),
            config_file: CONFIG_FILE,
            command: command(&program, dir),
            stop: Stop::Terminate,
        });
        Self { proxy }
    }

    /// Starts nginx on a config of the caller's — an example's, say: `render(port, dir)`
    /// returns the config for nginx listening on `port`, and may write the files it
    /// includes into `dir` (the prefix: relative paths resolve against it). The config
    /// must keep its pid file, logs and temp paths relative, as
    /// [`NginxServer::render_config`]'s do.
    ///
    /// # Panics
    /// As [`NginxServer::start`].
    pub fn start_config(render: impl Fn(u16, &Path) -> String) -> Self {
        let program = nginx_program();
        let proxy = Proxy::start("nginx", |port, dir| Plan {
            config: render(port, dir),
            config_file: CONFIG_FILE,
            command: command(&program, dir),
            stop: Stop::Terminate,
        });
        Self { proxy }
    }

    /// The config [`NginxServer::start_with`] writes for nginx listening on `port`; its
    /// relative paths (pid file, logs, temp paths) resolve against the prefix (`-p`).
    pub fn render_config(mode: NginxMode, upstream: SocketAddr, port: u16) -> String {
        let (auth_http, locations) = match mode {
            NginxMode::AuthRequest(auth) => (
                AUTH_HTTP.replace("@AUTH@", &auth.to_string()),
                auth_locations(),
            ),
            NginxMode::Direct => (String::new(), DIRECT_LOCATIONS.to_owned()),
        };
        CONFIG
            .replace("@AUTH_HTTP@", &auth_http)
            .replace("@UPSTREAM@", &upstream.to_string())
            .replace("@PORT@", &port.to_string())
            .replace("@LOCATIONS@", locations.trim_end())
    }
}

impl std::ops::Deref for NginxServer {
    type Target = Proxy;

    fn deref(&self) -> &Proxy {
        &self.proxy
    }
}

/// `nginx -p DIR/ -c DIR/nginx.conf -e DIR/error.log -g "daemon off;"`: `-e` catches the
/// errors logged before the config's `error_log` is read.
fn command(program: &Path, dir: &Path) -> Command {
    let mut command = Command::new(program);
    command
        .arg("-p")
        .arg(format!("{}/", dir.display()))
        .arg("-c")
        .arg(dir.join(CONFIG_FILE))
        .arg("-e")
        .arg(dir.join("error.log"))
        .args(["-g", "daemon off;"])
        .current_dir(dir);
    command
}

const CONFIG: &str = r#"worker_processes 1;
pid nginx.pid;
error_log error.log warn;

events {
    worker_connections 1024;
}

http {
    access_log off;
    client_body_temp_path client_body_temp;
    proxy_temp_path proxy_temp;
    fastcgi_temp_path fastcgi_temp;
    uwsgi_temp_path uwsgi_temp;
    scgi_temp_path scgi_temp;
@AUTH_HTTP@
    upstream app {
        server @UPSTREAM@;
        keepalive 64;
    }

    server {
        listen 127.0.0.1:@PORT@;

@LOCATIONS@
    }
}
"#;

const AUTH_HTTP: &str = r#"
    upstream authcache {
        server @AUTH@;
        keepalive 64;
    }

    # auth_request passes the auth answer's WWW-Authenticate on with a 401 by itself;
    # a 403's challenge (insufficient_scope) is added from this.
    map $status $authcache_challenge {
        403 $auth_challenge;
        default "";
    }
"#;

const DIRECT_LOCATIONS: &str = r#"        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }
"#;

/// The internal location that asks the auth endpoint: `@NAME@` with `/auth@QUERY@`.
const SUBREQUEST: &str = r#"        location = @NAME@ {
            internal;
            proxy_pass http://authcache/auth@QUERY@;
            proxy_pass_request_body off;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Original-Host $host;
        }
"#;

/// A location `@PATH@` let through by the subrequest `@NAME@`, with the identity it answers.
const PROTECTED: &str = r#"        location @PATH@ {
            auth_request @NAME@;
            auth_request_set $user $upstream_http_x_auth_request_user;
            auth_request_set $email $upstream_http_x_auth_request_email;
            auth_request_set $groups $upstream_http_x_auth_request_groups;
            auth_request_set $permissions $upstream_http_x_auth_request_permissions;
            auth_request_set $auth_challenge $upstream_http_www_authenticate;
            add_header WWW-Authenticate $authcache_challenge always;

            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Auth-Request-User $user;
            proxy_set_header X-Auth-Request-Email $email;
            proxy_set_header X-Auth-Request-Groups $groups;
            proxy_set_header X-Auth-Request-Permissions $permissions;
        }
"#;

/// The auth mode's locations: every path asks `/auth`, `/admin/…` asks `/auth?role=admin`.
fn auth_locations() -> String {
    let subrequest =
        |name: &str, query: &str| SUBREQUEST.replace("@NAME@", name).replace("@QUERY@", query);
    let protected =
        |path: &str, name: &str| PROTECTED.replace("@PATH@", path).replace("@NAME@", name);
    [
        subrequest("/authcache", ""),
        subrequest("/authcache-admin", "?role=admin"),
        protected("/", "/authcache"),
        protected("/admin/", "/authcache-admin"),
    ]
    .join("\n")
}
