//! The `authcache-server` binary as an operator runs it: `--demo` prints tokens that work
//! (the valid one allowed, the revoked one refused, through real HTTP), and SIGTERM stops it
//! cleanly with exit status 0.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The value after `NAME=` on the line that has it.
fn value<'a>(lines: &'a [String], name: &str) -> &'a str {
    lines
        .iter()
        .find_map(|line| line.split_once(&format!("{name}=")).map(|(_, v)| v.trim()))
        .unwrap_or_else(|| panic!("no {name}= in {lines:#?}"))
}

async fn status(url: &str, token: &str) -> u16 {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let request = http::Request::get(url)
        .header("authorization", format!("Bearer {token}"))
        .body(Empty::new())
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(30), client.request(request))
        .await
        .expect("answered within 30 s")
        .unwrap();
    let status = response.status().as_u16();
    response.into_body().collect().await.unwrap();
    status
}

#[tokio::test]
async fn the_demo_prints_tokens_that_work_and_sigterm_stops_it_cleanly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_authcache-server"))
        .args([
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its log, for the failure message: read to the end (the child's exit) on a thread of
    // its own, so the child never blocks on a full pipe.
    let stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let stdout = child.stdout.take().unwrap();
    // The introduction ends with the admin curl lines; read until the last one.
    let lines = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let last = line.contains("/admin/logout-all/");
            lines.push(line);
            if last {
                break;
            }
        }
        lines
    })
    .await
    .unwrap();
    let address = lines
        .iter()
        .find_map(|line| {
            line.split_once("/auth on http://")
                .map(|(_, a)| a.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no address in {lines:#?}"));
    let auth = format!("http://{address}/auth");
    assert_eq!(status(&auth, value(&lines, "ADA")).await, 200);
    assert_eq!(
        status(&format!("{auth}?role=admin"), value(&lines, "BOB")).await,
        403
    );
    assert_eq!(status(&auth, value(&lines, "REVOKED")).await, 401);

    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    let log = log.join().unwrap();
    assert!(
        exit.success(),
        "SIGTERM is a clean stop: {exit:?}; its log:\n{log}"
    );
}
