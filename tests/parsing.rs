//! Strict parsing on the wire: each malformed request gets its precise
//! status, then `Connection: close` and a clean close, and the handler
//! never sees it.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use h1serve::{CloseReason, Response, Server};

/// (request bytes, expected status)
const MALFORMED: &[(&str, u16)] = &[
    // Request line (RFC 9112 §3).
    ("GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400),
    ("GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("GET / HTTP/1.1x\r\nHost: x\r\n\r\n", 400),
    ("GET / HTTP/11\r\nHost: x\r\n\r\n", 400),
    ("G\u{0}T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("GET /\u{7}bell HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505),
    ("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ("GET relative HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501),
    // Line endings (RFC 9112 §2.2): CRLF only.
    ("GET / HTTP/1.1\nHost: x\r\n\r\n", 400),
    ("GET / HTTP/1.1\r\nHost: x\n\n", 400),
    ("GET / HTTP/1.1\r\nHost: x\r\r\n\r\n", 400),
    ("GET / HTTP/1.1\r\nHost: x\r\nA: b\rc\r\n\r\n", 400),
    // Field lines (RFC 9112 §5).
    ("GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    ("GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  continued\r\n\r\n", 400),
    ("GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400),
    ("GET / HTTP/1.1\r\nHost: x\r\nX\u{1}: y\r\n\r\n", 400),
    ("GET / HTTP/1.1\r\nHost: x\r\nX: a\u{0}b\r\n\r\n", 400),
    ("GET / HTTP/1.1\r\nHost: x\r\nX: a\u{1f}b\r\n\r\n", 400),
    ("GET / HTTP/1.1\r\nHost: x\r\n[x]: y\r\n\r\n", 400),
    // Host (RFC 9112 §3.2).
    ("GET / HTTP/1.1\r\n\r\n", 400),
    ("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400),
    ("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    ("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
    ("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    // Framing (RFC 9112 §6).
    ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\nx", 400),
    ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy", 400),
    ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\nx", 400),
    ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", 400),
    ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400),
    ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: x-custom\r\n\r\n", 400),
];

#[test]
fn malformed_requests_get_their_status_and_a_graceful_close() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let running = start(default_builder(), move |req| {
        log.lock().unwrap().push(req.target().to_string());
        Response::text("handled")
    });
    for (request, status) in MALFORMED {
        // Each request is followed by a valid one: it must never be served.
        let bytes = format!("{request}GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
        let out = exchange_until_close(running.local_addr(), bytes.as_bytes());
        let text = String::from_utf8_lossy(&out);
        assert_eq!(status_of(&out), *status, "{request:?} got {text:?}");
        assert!(text.contains("\r\nConnection: close\r\n"), "{request:?}: {text:?}");
        assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "one response only: {text:?}");
    }
    assert!(seen.lock().unwrap().is_empty(), "the handler saw {:?}", seen.lock().unwrap());
    assert_all_closed(&running);
    // Refusals count as the closes they end in, not as requests answered.
    let stats = running.stats();
    assert_eq!((stats.requests, stats.closes(CloseReason::BadRequest)), (0, MALFORMED.len() as u64), "{stats:?}");
}

#[test]
fn refusals_of_head_requests_carry_no_body() {
    let running = start(Server::builder().max_body_bytes(10), |_| Response::text("handled"));
    for request in ["HEAD / HTTP/1.1\r\n\r\n", "HEAD / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n"] {
        let mut c = Client::new(running.local_addr());
        c.send(request);
        let r = c.read_response_to("HEAD").unwrap();
        assert!(r.status >= 400 && r.closes(), "{r:?}");
        assert!(r.header("content-length").is_some_and(|n| n != "0"), "the length a GET would get");
        assert_eq!(c.rest().unwrap(), b"", "no body after the head of a refused HEAD");
    }
    // A request line broken before its method is known is answered as GET.
    let out = exchange_until_close(running.local_addr(), b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n\x16\x03");
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("HTTP/1.1 200 OK") && text.ends_with("Bad Request: invalid method character\n"), "{text}");
}

#[test]
fn header_names_match_ascii_case_insensitively() {
    let running = start(default_builder(), |req| {
        Response::text(format!("{:?} {:?}", req.header("x-token"), req.header("X-TOKEN")))
    });
    let mut c = Client::new(running.local_addr());
    c.send("GET / HTTP/1.1\r\nhOsT: x\r\nX-ToKeN: v\r\n\r\n");
    assert_eq!(c.read_response().text(), "Some(\"v\") Some(\"v\")");
}

#[test]
fn a_tls_handshake_is_refused_at_once_not_after_a_timeout() {
    // With a 60 s header timeout, only an immediate refusal arrives within
    // the client's patience.
    let running = start(Server::builder().header_timeout(Duration::from_secs(60)), |_| Response::text("no"));
    let mut c = Client::new(running.local_addr());
    c.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
    let r = c.read_response();
    assert_eq!(r.status, 400);
    assert!(c.at_eof());
}

#[test]
fn an_incomplete_request_is_never_answered() {
    let running = start(default_builder(), |_| Response::text("too early"));
    let mut c = Client::new(running.local_addr());
    c.send("GET / HTTP/1.1\r\nHost: x\r\n");
    c.assert_silent_for(Duration::from_millis(300), "an incomplete request was answered");
    c.send("\r\n");
    assert_eq!(c.read_response().text(), "too early");
}

#[test]
fn limits_have_their_own_statuses() {
    let running =
        start(Server::builder().max_request_line(100).max_head_bytes(1000).max_headers(5), |_| Response::text("ok"));
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100));
    let big_head = format!("GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n", "b".repeat(1000));
    let many = format!("GET / HTTP/1.1\r\nHost: x\r\n{}\r\n", "A: 1\r\n".repeat(5));
    let fits = format!("GET /{} HTTP/1.1\r\nHost: x\r\n{}\r\n", "a".repeat(80), "A: 1\r\n".repeat(3));
    for (request, status) in [(long_target, 414), (big_head, 431), (many, 431), (fits, 200)] {
        let out = exchange_until_close(
            running.local_addr(),
            request.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(status_of(&out), status, "{}", String::from_utf8_lossy(&out[..out.len().min(200)]));
    }
}

#[test]
fn the_default_limits_are_8k_line_64k_head_100_fields() {
    let running = start(default_builder(), |_| Response::text("ok"));
    let cases = [
        (format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(8 * 1024)), 414),
        (format!("GET / HTTP/1.1\r\nHost: x\r\n{}\r\n", format!("X: {}\r\n", "b".repeat(1000)).repeat(66)), 431),
        (format!("GET / HTTP/1.1\r\nHost: x\r\n{}\r\n", "A: 1\r\n".repeat(100)), 431),
        (format!("GET / HTTP/1.1\r\nHost: x\r\n{}Connection: close\r\n\r\n", "A: 1\r\n".repeat(98)), 200),
    ];
    for (request, status) in cases {
        let out = exchange_until_close(running.local_addr(), request.as_bytes());
        assert_eq!(status_of(&out), status);
    }
}

#[test]
fn the_handler_gets_the_query_decoded_as_forms_encode_it() {
    let running = start(default_builder(), |req| {
        let pairs: Vec<String> = req.query_pairs().map(|(n, v)| format!("{n}={v}")).collect();
        let code = req.query_param("code").unwrap_or_default().into_owned();
        Response::text(format!("{} code={code} [{}]", req.path(), pairs.join("|")))
    });
    let mut c = Client::new(running.local_addr());
    c.send("GET /callback?code=4%2F0Ad+x&state=a%26b&code=second HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response().text(), "/callback code=4/0Ad x [code=4/0Ad x|state=a&b|code=second]");
    c.send("GET http://x/p?flag HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response().text(), "/p code= [flag=]");
}

#[test]
fn an_absolute_form_target_names_the_host_instead_of_the_host_field() {
    let running =
        start(default_builder(), |req| Response::text(format!("{} {}", req.host().unwrap_or("-"), req.path())));
    let mut c = Client::new(running.local_addr());
    // RFC 9112 §3.2.2: the target's authority, not Host.
    c.send("GET http://a.example:81/p?q HTTP/1.1\r\nHost: other\r\n\r\n");
    assert_eq!(c.read_response().text(), "a.example:81 /p");
    c.send("GET /o HTTP/1.1\r\nHost: b.example\r\n\r\n");
    assert_eq!(c.read_response().text(), "b.example /o");
    c.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(c.read_response().text(), "- /");
    // An http URI without a host is invalid (RFC 9110 §4.2.1).
    c.send("GET http:///a HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 400);
    assert!(r.closes());
}

#[test]
fn a_501_says_what_is_not_implemented() {
    let running = start(default_builder(), |_| Response::text("handled"));
    for (request, says) in [
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "transfer codings other than chunked",
        ),
        ("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", "CONNECT"),
        (&format!("{} / HTTP/1.1\r\nHost: x\r\n\r\n", "M".repeat(9000)), "method longer than any implemented"),
    ] {
        let out = String::from_utf8(exchange_until_close(running.local_addr(), request.as_bytes())).unwrap();
        assert!(out.starts_with("HTTP/1.1 501 Not Implemented\r\n") && out.contains(says), "{out}");
    }
}
