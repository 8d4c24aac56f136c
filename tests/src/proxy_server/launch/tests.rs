//! The "only listener on the port" check against real sockets: none yet, ours alone, and
//! one held by another process (what a second Caddy on the same port, bound with
//! `SO_REUSEPORT`, looks like to the first).

use std::net::TcpListener;
use std::process::Command;

use super::sole_listener;

fn bind() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

#[test]
fn a_port_nobody_listens_on_is_not_ready_yet() {
    let (listener, port) = bind();
    drop(listener);
    assert_eq!(sole_listener(port, std::process::id()), Ok(false));
}

#[test]
fn a_listener_the_process_holds_alone_is_its_own() {
    let (_listener, port) = bind();
    assert_eq!(sole_listener(port, std::process::id()), Ok(true));
}

#[test]
fn a_listener_another_process_holds_is_refused() {
    let (_listener, port) = bind();
    let mut other = Command::new("sleep").arg("60").spawn().unwrap();
    let verdict = sole_listener(port, other.id());
    let _ = other.kill();
    let _ = other.wait();
    assert!(verdict.is_err(), "{verdict:?}");
}
