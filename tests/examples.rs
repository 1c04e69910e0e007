//! The `hello` and `echo` examples are contracts that benchmarks and
//! conformance tools run against: their command lines, first output line
//! and routes are checked here, on the real programs.

mod common;

use std::process::Command;

use common::*;

#[test]
fn hello_prints_its_real_address_and_says_hello() {
    let hello = spawn_example("hello", &["127.0.0.1:0"]);
    assert_ne!(hello.addr.port(), 0);
    let mut c = Client::new(hello.addr);
    for path in ["/", "/anything?at=all"] {
        c.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
        let r = c.read_response();
        assert_eq!((r.status, r.text().as_str()), (200, "Hello, world!\n"));
        assert_eq!(r.header("content-length"), Some("14"));
    }
}

#[test]
fn echo_routes() {
    let echo = spawn_example("echo", &["127.0.0.1:0"]);
    let mut c = Client::new(echo.addr);
    let line = |r: &Resp| r.header("x-request-line").map(str::to_string);

    c.send("PATCH /any/path?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nbody\r\n\0\u{1}x");
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"body\r\n\0\x01x");
    assert_eq!(line(&r).as_deref(), Some("PATCH /any/path?q=1 HTTP/1.1"));

    c.send("GET /headers HTTP/1.1\r\nHost: h\r\nX-B: 2\r\nx-a: 1\r\nX-B: 3\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.text(), "Host: h\nX-B: 2\nx-a: 1\nX-B: 3\n");
    assert!(line(&r).is_some());

    c.send("GET /stream/5 HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.framing, "chunked");
    assert_eq!(r.text(), "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n");
    assert!(line(&r).is_some());

    c.send("GET /bytes/100000 HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.header("content-length"), Some("100000"));
    assert!(r.body.iter().enumerate().all(|(i, &b)| b == b'a' + (i % 26) as u8));

    c.send("POST /delay/10 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
    assert_eq!(c.read_response().text(), "abc");

    for code in [201, 204, 404, 503] {
        c.send(format!("GET /status/{code} HTTP/1.1\r\nHost: x\r\n\r\n"));
        let r = c.read_response();
        assert_eq!(r.status, code);
        assert!(r.body.is_empty() && line(&r).is_some());
    }

    c.send("GET /panic HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 500);
    assert!(r.closes());
    assert!(line(&r).is_none(), "a panicking handler makes no response of its own");
}

#[test]
fn echo_flags_set_limits_and_timeouts() {
    let echo = spawn_example(
        "echo",
        &[
            "127.0.0.1:0",
            "--max-body-bytes",
            "4",
            "--idle-timeout-ms",
            "100",
            "--header-timeout-ms",
            "5000",
            "--max-connections",
            "8",
        ],
    );
    let out = exchange_until_close(echo.addr, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(status_of(&out), 413);
    let mut c = Client::new(echo.addr);
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response().status, 200);
    assert!(c.at_eof(), "closed by the 100 ms idle timeout");
}

#[test]
fn echo_refuses_bad_flags_with_usage_and_exit_code_2() {
    for args in [&["--idle-timeout-ms"][..], &["--idle-timeout-ms", "soon"], &["--bogus"], &["a:1", "b:2"]] {
        let out = Command::new(example_path("echo")).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage: echo"), "{args:?}");
    }
}
