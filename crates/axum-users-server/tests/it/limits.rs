//! Time and connection limits, over raw TCP: clients that send half a request, or too many
//! connections, cannot keep the server's connections busy.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::*;

fn connect(s: &Server) -> TcpStream {
    let address = s.base.trim_start_matches("http://");
    let tcp = TcpStream::connect(address).unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp
}

/// Reads until the server closes the connection and returns what it sent; fails when it is
/// still open after `within`.
fn read_until_closed(tcp: &mut TcpStream, within: Duration) -> String {
    tcp.set_read_timeout(Some(within)).unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "the connection is still open after {within:?} ({e}); received {:?}",
                String::from_utf8_lossy(&received)
            ),
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

/// Reads one `/health` answer on a kept-alive connection; `None` when nothing comes in `within`.
fn read_health(tcp: &mut TcpStream, within: Duration) -> Option<String> {
    tcp.set_read_timeout(Some(within)).unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&received).contains(r#"{"status":"ok"}"#) {
        match tcp.read(&mut buf) {
            Ok(0) => panic!("closed: {:?}", String::from_utf8_lossy(&received)),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                assert!(received.is_empty(), "half an answer");
                return None;
            }
            Err(e) => panic!("{e}"),
        }
    }
    Some(String::from_utf8_lossy(&received).into_owned())
}

const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n";

#[test]
fn a_half_sent_header_is_cut_off() {
    let s = Server::start_with(&[("AXUM_USERS_SERVER_HEADER_TIMEOUT_SECONDS", "1")]);
    let mut tcp = connect(&s);
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: local")
        .unwrap();
    let reply = read_until_closed(&mut tcp, Duration::from_secs(10));
    assert!(!reply.contains("200 OK"), "{reply}");

    // A connection that sends nothing at all is closed too.
    let mut idle = connect(&s);
    read_until_closed(&mut idle, Duration::from_secs(10));

    // A whole request on a fresh connection is served.
    let mut tcp = connect(&s);
    tcp.write_all(HEALTH).unwrap();
    let reply = read_health(&mut tcp, Duration::from_secs(10)).expect("an answer");
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
}

#[test]
fn a_body_that_stops_arriving_is_cut_off() {
    let s = Server::start_with(&[("AXUM_USERS_SERVER_BODY_TIMEOUT_SECONDS", "1")]);
    let mut tcp = connect(&s);
    tcp.write_all(
        b"POST /auth/register HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"email\":",
    )
    .unwrap();
    let reply = read_until_closed(&mut tcp, Duration::from_secs(10));
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 408"),
        "closed or 408: {reply}"
    );
    assert!(
        reply.is_empty() || reply.contains(r#"{"detail":"REQUEST_TIMEOUT"}"#),
        "{reply}"
    );
}

#[test]
fn connections_beyond_the_limit_wait_until_one_closes() {
    let s = Server::start_with(&[
        ("AXUM_USERS_SERVER_MAX_CONNECTIONS", "2"),
        ("AXUM_USERS_SERVER_HEADER_TIMEOUT_SECONDS", "60"),
    ]);
    // Two kept-alive connections, each served once: the limit is reached.
    let mut first = connect(&s);
    let mut second = connect(&s);
    for tcp in [&mut first, &mut second] {
        tcp.write_all(HEALTH).unwrap();
        assert!(read_health(tcp, Duration::from_secs(10)).is_some());
    }
    // The third is not served while they stay open...
    let mut third = connect(&s);
    third.write_all(HEALTH).unwrap();
    assert_eq!(
        read_health(&mut third, Duration::from_millis(1500)),
        None,
        "served beyond the limit"
    );
    // ...and is as soon as one closes.
    drop(first);
    let reply = read_health(&mut third, Duration::from_secs(10)).expect("served after a close");
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    // The one still open keeps working.
    second.write_all(HEALTH).unwrap();
    assert!(read_health(&mut second, Duration::from_secs(10)).is_some());
}
