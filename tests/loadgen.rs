//! The `loadgen` example, run as a real program for a fraction of a second
//! against servers started here: its counts must agree with what the
//! server saw, in keep-alive, close and pipelined modes, with either
//! engine, and with response framings h1serve itself never produces.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::mpsc;
use std::thread;

use common::*;
use h1serve::{Response, Running, Stats};

/// A finished loadgen run.
struct Run {
    out: Output,
    stdout: String,
    /// The fields of its `LOADGEN key=value ...` line.
    fields: HashMap<String, f64>,
}

impl Run {
    fn get(&self, key: &str) -> f64 {
        *self.fields.get(key).unwrap_or_else(|| panic!("no {key} in the LOADGEN line:\n{}", self.stdout))
    }

    fn count(&self, key: &str) -> u64 {
        let v = self.get(key);
        assert!(v >= 0.0 && v.fract() == 0.0, "{key}={v} is not a count");
        v as u64
    }

    /// Exit 0, some requests, and no error of any kind.
    fn assert_clean(&self) {
        assert!(self.out.status.success(), "loadgen failed: {:?}\n{}", self.out.status, self.stdout);
        assert!(self.get("rps") > 0.0 && self.count("requests") > 0, "no requests:\n{}", self.stdout);
        assert_eq!(self.count("errors"), 0, "errors:\n{}", self.stdout);
    }
}

/// Runs loadgen with `args` and waits for it (its run is bounded by its
/// own `-d`; PATIENCE turns a hang into a failure).
fn loadgen(args: &[&str]) -> Run {
    let child = start_example_process("loadgen", args);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || tx.send(child.wait_with_output()));
    let out = rx.recv_timeout(PATIENCE).expect("loadgen did not finish").expect("loadgen's output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let fields = stdout
        .lines()
        .find_map(|l| l.strip_prefix("LOADGEN "))
        .map(|l| {
            l.split_whitespace()
                .map(|kv| kv.split_once('=').unwrap_or_else(|| panic!("{kv:?} is not key=value")))
                .map(|(k, v)| (k.to_string(), v.parse().unwrap_or_else(|_| panic!("{k}={v} is not a number"))))
                .collect()
        })
        .unwrap_or_default();
    Run { out, stdout, fields }
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}/")
}

/// A server that never closes a busy connection on its own, so that every
/// connection it accepts is one loadgen opened on purpose.
fn hello_server() -> Running {
    start(default_builder().max_requests_per_connection(u64::MAX), |_| Response::text("hello"))
}

/// Waits until the server has counted at least what loadgen reported and
/// every connection is closed, then returns its stats. Checks that the
/// server answered no more than loadgen counted plus what was in flight
/// when the time ran out (`connections × depth`).
fn server_agrees(running: &Running, run: &Run, in_flight: u64) -> Stats {
    let (requests, conns) = (run.count("requests"), run.count("conns"));
    let caught_up =
        running.handle().wait_until(PATIENCE, |s| s.requests >= requests && s.accepted >= conns && s.open == 0);
    assert!(caught_up, "server {:?} never reached loadgen's counts:\n{}", running.stats(), run.stdout);
    let stats = running.stats();
    assert!(stats.requests <= requests + in_flight, "server answered {} requests:\n{}", stats.requests, run.stdout);
    stats
}

#[test]
fn keep_alive_uses_one_connection_each() {
    let server = hello_server();
    let run = loadgen(&[&url(server.local_addr()), "-c", "3", "-d", "1", "--timeout", "20"]);
    run.assert_clean();
    assert_eq!(run.count("conns"), 3, "{}", run.stdout);
    let stats = server_agrees(&server, &run, 3);
    assert_eq!(stats.accepted, 3);
    for p in ["p50_ms", "p99_ms", "p999_ms"] {
        assert!(run.get(p) > 0.0, "{p}:\n{}", run.stdout);
    }
    assert!(run.get("p50_ms") <= run.get("p99_ms") && run.get("p99_ms") <= run.get("p999_ms"));
}

#[test]
fn close_mode_opens_a_connection_per_request() {
    let server = hello_server();
    let run = loadgen(&[&url(server.local_addr()), "-c", "3", "-d", "1", "--close", "--timeout", "20"]);
    run.assert_clean();
    let (requests, conns) = (run.count("requests"), run.count("conns"));
    // One connection per request, plus at most one per slot whose request
    // was still unanswered when the time ran out.
    assert!(requests <= conns && conns <= requests + 3, "{}", run.stdout);
    let stats = server_agrees(&server, &run, 3);
    assert_eq!(stats.accepted, conns);
    assert!(stats.requests <= stats.accepted, "a connection carried two requests: {stats:?}");
}

#[test]
fn pipelined_batches_on_persistent_connections() {
    let server = hello_server();
    let run = loadgen(&[&url(server.local_addr()), "-c", "2", "--pipeline", "8", "-d", "1", "--timeout", "20"]);
    run.assert_clean();
    assert_eq!(run.count("conns"), 2, "{}", run.stdout);
    let stats = server_agrees(&server, &run, 2 * 8);
    assert_eq!(stats.accepted, 2);
}

#[test]
fn polling_engine_agrees_with_the_server() {
    let server = hello_server();
    let run = loadgen(&[&url(server.local_addr()), "-c", "4", "--threads", "2", "-d", "0.5", "--timeout", "20"]);
    run.assert_clean();
    assert!(run.stdout.contains("2 threads, polling"), "{}", run.stdout);
    assert_eq!(run.count("conns"), 4, "{}", run.stdout);
    let stats = server_agrees(&server, &run, 4);
    assert_eq!(stats.accepted, 4);
}

/// The server ends each connection after 5 responses, in the middle of a
/// batch of 3: `Connection: close` on the 5th response is a clean end, the
/// 6th request is never answered, and loadgen reconnects without errors.
#[test]
fn server_closing_mid_batch_is_not_an_error() {
    for engine in [&[][..], &["--threads", "1"][..]] {
        let server = start(default_builder().max_requests_per_connection(5), |_| Response::text("hello"));
        let addr = url(server.local_addr());
        let run =
            loadgen(&[&[&addr[..], "-c", "2", "--pipeline", "3", "-d", "0.3", "--timeout", "20"][..], engine].concat());
        run.assert_clean();
        assert!(run.count("conns") > 2, "{}", run.stdout);
        let stats = server_agrees(&server, &run, 2 * 3);
        assert_eq!(stats.accepted, run.count("conns"));
    }
}

#[test]
fn non_2xx_chunked_responses_are_status_errors() {
    let server = start(default_builder().max_requests_per_connection(u64::MAX), |_| {
        Response::stream(|w| {
            w.write_all(b"first chunk\n")?;
            w.flush()?;
            w.write_all(b"second chunk\n")
        })
        .with_status(503)
    });
    let run = loadgen(&[&url(server.local_addr()), "-c", "2", "-d", "0.3", "--timeout", "20"]);
    assert!(run.out.status.success(), "{}", run.stdout);
    let requests = run.count("requests");
    assert!(requests > 0, "{}", run.stdout);
    assert_eq!((run.count("err_status"), run.count("errors")), (requests, requests), "{}", run.stdout);
    // Chunked framing lets each connection carry on.
    assert_eq!(run.count("conns"), 2, "{}", run.stdout);
    server_agrees(&server, &run, 2);
}

/// A hand-written server: for every request head it reads, it counts and
/// writes `response`, then closes the connection if `close`.
fn raw_server(response: &'static str, close: bool) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicU64::new(0));
    let counter = served.clone();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let counter = counter.clone();
            thread::spawn(move || serve_raw(stream, response, close, &counter));
        }
    });
    (addr, served)
}

fn serve_raw(stream: TcpStream, response: &str, close: bool, served: &AtomicU64) {
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut line = String::new();
    loop {
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" => break,
                Ok(_) => {}
            }
        }
        // Counted before writing, so loadgen can never have seen more.
        served.fetch_add(1, SeqCst);
        if writer.write_all(response.as_bytes()).is_err() || close {
            return;
        }
    }
}

#[test]
fn framings_h1serve_never_sends() {
    // (response, server closes after it, connection reusable)
    let cases = [
        // RFC 9110 §15.2: a client must parse 1xx responses it did not ask
        // for; an HTTP/1.0 response persists with keep-alive (RFC 9112 §9.3).
        (
            "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n\
             HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
            false,
            true,
        ),
        // Chunk extensions and trailer fields (RFC 9112 §7.1.1, §7.1.2).
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
             5;name=value\r\nhello\r\n1\r\n!\r\n0\r\nX-Checksum: 1\r\n\r\n",
            false,
            true,
        ),
        // No Content-Length, no Transfer-Encoding: the body ends with the
        // connection (RFC 9112 §6.3, item 8).
        ("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nthe body runs until the close", true, false),
    ];
    for (response, close, reusable) in cases {
        let (addr, served) = raw_server(response, close);
        let run = loadgen(&[&url(addr), "-c", "1", "-d", "0.2", "--timeout", "20"]);
        run.assert_clean();
        let (requests, conns) = (run.count("requests"), run.count("conns"));
        assert!(requests <= served.load(SeqCst), "{}", run.stdout);
        if reusable {
            assert_eq!(conns, 1, "{response:?}:\n{}", run.stdout);
        } else {
            assert!(requests <= conns && conns <= requests + 1, "{response:?}:\n{}", run.stdout);
        }
    }
}

/// RFC 9112 §9.6: a client that sends `Connection: close` sends nothing
/// more on that connection, even if the server keeps it open.
#[test]
fn close_mode_closes_even_if_the_server_does_not() {
    for engine in [&[][..], &["--threads", "1"][..]] {
        let (addr, served) = raw_server("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false);
        let url = url(addr);
        let args = [&[&url[..], "--close", "-c", "2", "-d", "0.2", "--timeout", "20"][..], engine].concat();
        let run = loadgen(&args);
        run.assert_clean();
        let (requests, conns) = (run.count("requests"), run.count("conns"));
        assert!(requests <= served.load(SeqCst), "{}", run.stdout);
        assert!(requests <= conns && conns <= requests + 2, "{args:?}:\n{}", run.stdout);
    }
}

/// A server that reads requests and never answers: each connection times
/// out in turn and is replaced.
#[test]
fn unanswered_requests_time_out() {
    for engine in [&[][..], &["--threads", "1"][..]] {
        let (addr, _) = raw_server("", false);
        let url = url(addr);
        let args = [&[&url[..], "-c", "1", "-d", "0.6", "--timeout", "0.05"][..], engine].concat();
        let run = loadgen(&args);
        assert!(run.out.status.success(), "{}", run.stdout);
        let (timeouts, conns) = (run.count("err_timeout"), run.count("conns"));
        assert_eq!(run.count("requests"), 0, "{}", run.stdout);
        assert!(timeouts >= 1 && run.count("errors") == timeouts, "{args:?}:\n{}", run.stdout);
        assert!(conns == timeouts || conns == timeouts + 1, "{args:?}:\n{}", run.stdout);
    }
}

/// `-H` fields reach the server on every request, in keep-alive, close and
/// pipelined runs: a handler that refuses requests without them would
/// show status errors.
#[test]
fn extra_header_fields_are_sent_with_every_request() {
    let running = start(default_builder().max_requests_per_connection(u64::MAX), |req| {
        let h = req.headers();
        let both = h.get("x-one") == Some("1") && h.get("accept-language") == Some("en-US,en;q=0.5");
        Response::text("ok").with_status(if both { 200 } else { 400 })
    });
    for mode in [&[][..], &["--close"], &["--pipeline", "4"]] {
        let addr = url(running.local_addr());
        let mut args = vec![
            addr.as_str(),
            "-c",
            "2",
            "-d",
            "0.5",
            "--timeout",
            "20",
            "-H",
            "X-One: 1",
            "-H",
            "Accept-Language: en-US,en;q=0.5",
        ];
        args.extend_from_slice(mode);
        loadgen(&args).assert_clean();
    }
    // Without the fields the same server refuses: the check above can fail.
    let run = loadgen(&[&url(running.local_addr()), "-c", "1", "-d", "0.5", "--timeout", "20"]);
    assert!(run.count("err_status") > 0, "{}", run.stdout);
}

#[test]
fn malformed_responses_are_read_errors() {
    // RFC 9112 §6.3, item 5: differing Content-Length values are an
    // unrecoverable framing error.
    let (addr, _) = raw_server("HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok", false);
    let run = loadgen(&[&url(addr), "-c", "1", "-d", "0.2", "--timeout", "20"]);
    assert!(run.out.status.success(), "{}", run.stdout);
    assert_eq!(run.count("requests"), 0, "{}", run.stdout);
    assert!(run.count("err_read") > 0 && run.count("err_read") == run.count("errors"), "{}", run.stdout);
    assert!(run.stdout.contains("conflicting content-length"), "{}", run.stdout);
}

#[test]
fn bad_command_lines_exit_2_with_usage() {
    let bad: &[&[&str]] = &[
        &[],
        &["--bogus", "http://127.0.0.1:1/"],
        &["http://127.0.0.1:1/", "-c"],
        &["http://127.0.0.1:1/", "-c", "0"],
        &["http://127.0.0.1:1/", "-c", "many"],
        &["http://127.0.0.1:1/", "-d", "-1"],
        // Shorter than a millisecond: it would round to no run at all, or
        // to a socket timeout std refuses.
        &["http://127.0.0.1:1/", "-d", "1e-10"],
        &["http://127.0.0.1:1/", "--timeout", "0.0001"],
        &["http://127.0.0.1:1/", "-d", "NaN"],
        &["http://127.0.0.1:1/", "--pipeline", "0"],
        &["http://127.0.0.1:1/", "--threads", "0"],
        &["http://127.0.0.1:1/", "--close", "--pipeline", "2"],
        &["https://127.0.0.1:1/"],
        &["http://127.0.0.1:99999/"],
        &["http://127.0.0.1:1/", "http://127.0.0.1:2/"],
        &["http://127.0.0.1:1/", "-H"],
        &["http://127.0.0.1:1/", "-H", "no colon"],
        &["http://127.0.0.1:1/", "-H", "Bad Name: 1"],
        &["http://127.0.0.1:1/", "-H", "Host: elsewhere"],
        &["http://127.0.0.1:1/", "-H", "X: a\r\nInjected: 1"],
    ];
    for args in bad {
        let run = loadgen(args);
        let stderr = String::from_utf8_lossy(&run.out.stderr);
        assert_eq!(run.out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("usage: loadgen URL"), "{args:?}: {stderr}");
        assert!(run.out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn unreachable_server_exits_1() {
    let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    // The listener is gone: connecting is refused.
    let run = loadgen(&[&url(addr), "-d", "1"]);
    let stderr = String::from_utf8_lossy(&run.out.stderr);
    assert_eq!(run.out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot connect"), "{stderr}");
}
