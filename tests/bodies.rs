//! Request bodies: Content-Length and chunked framing, limits, unread
//! bodies, and `Expect: 100-continue`.

mod common;

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use h1serve::{CloseReason, Request, Response, Server};

/// Echoes the body, with the trailers of a chunked body in a header.
fn echo(req: &mut Request) -> Response {
    match req.read_body() {
        Ok(body) => {
            let trailers = req.body().trailers().map(|t| format!("{t:?}")).unwrap_or_default();
            Response::bytes(body).with_header("X-Trailers", trailers)
        }
        Err(e) => Response::text(format!("handler saw: {e}")).with_status(422),
    }
}

fn ignore_body(_: &mut Request) -> Response {
    Response::text("ignored")
}

#[test]
fn content_length_bodies_arrive_exactly_with_ureq_too() {
    let running = start(default_builder(), echo);
    let url = format!("http://{}/", running.local_addr());
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut resp = ureq::post(&url).send(&payload[..]).expect("post");
    assert_eq!(resp.body_mut().with_config().limit(1 << 20).read_to_vec().unwrap(), payload);
    let mut c = Client::new(running.local_addr());
    c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world");
    assert_eq!(c.read_response().text(), "hello world");
}

#[test]
fn chunked_bodies_with_extensions_and_trailers() {
    let running = start(default_builder(), echo);
    let mut c = Client::new(running.local_addr());
    c.send(
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
         4;ext=1\r\nWiki\r\n5;a=\"q\"\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Sum: 42\r\n\r\n",
    );
    let r = c.read_response();
    assert_eq!(r.text(), "Wikipedia in\r\n\r\nchunks.");
    assert_eq!(r.header("x-trailers"), Some(r#"[("X-Sum", "42")]"#));
    // Framing ended exactly where it should: the connection goes on.
    c.send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    assert_eq!(c.read_response().text(), "");
}

#[test]
fn broken_chunk_framing_gets_400_whatever_the_handler_answers() {
    let running = start(default_builder(), echo);
    for body in [
        "5\r\nhelloX\r\n0\r\n\r\n",
        "5\nhello\r\n0\r\n\r\n",
        "fffffffffffffffff\r\n",
        "0x5\r\nhello\r\n0\r\n\r\n",
        "5\r\nhello\r\n0\r\nBad Trailer: x\r\n\r\n",
    ] {
        let out = exchange_until_close(
            running.local_addr(),
            format!("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{body}").as_bytes(),
        );
        assert_eq!(status_of(&out), 400, "{body:?}: {}", String::from_utf8_lossy(&out));
        assert!(String::from_utf8_lossy(&out).contains("Connection: close"));
    }
}

#[test]
fn bodies_over_the_limit_get_413() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let running = start(Server::builder().max_body_bytes(100), move |req| {
        counter.fetch_add(1, Ordering::SeqCst);
        echo(req)
    });
    // Declared: refused before the handler runs and before a byte is read.
    let out = exchange_until_close(running.local_addr(), b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n");
    assert_eq!(status_of(&out), 413);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // Exactly at the limit is fine.
    let mut c = Client::new(running.local_addr());
    c.send(format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{}", "a".repeat(100)));
    assert_eq!(c.read_response().body.len(), 100);
    drop(c);
    // Chunked: found out while the handler reads.
    let chunked = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n{0}\r\n40\r\n{0}\r\n0\r\n\r\n",
        "b".repeat(64)
    );
    let out = exchange_until_close(running.local_addr(), chunked.as_bytes());
    assert_eq!(status_of(&out), 413, "{}", String::from_utf8_lossy(&out));
}

#[test]
fn a_client_still_uploading_past_the_limit_receives_the_whole_413() {
    let running = start(Server::builder().max_body_bytes(1000), echo);
    let mut c = Client::new(running.local_addr());
    let mut writer = c.stream().try_clone().unwrap();
    let uploader = std::thread::spawn(move || {
        let _ = writer.write_all(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n");
        let block = vec![b'u'; 64 * 1024];
        // Keeps sending until the server stops reading; errors end it.
        for _ in 0..(50_000_000 / block.len()) {
            if writer.write_all(&block).is_err() {
                break;
            }
        }
    });
    let r = c.read_response();
    assert_eq!(r.status, 413);
    assert!(r.closes());
    assert!(r.text().contains("Content Too Large"), "{}", r.text());
    drop(c);
    uploader.join().unwrap();
}

#[test]
fn small_unread_bodies_are_skipped_and_the_connection_goes_on() {
    let running = start(default_builder(), ignore_body);
    let mut c = Client::new(running.local_addr());
    let body = "x".repeat(10_000);
    c.send(format!(
        "POST /1 HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n{body}\
         POST /2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2710\r\n{body}\r\n0\r\n\r\n\
         GET /3 HTTP/1.1\r\nHost: x\r\n\r\n"
    ));
    for _ in 0..3 {
        let r = c.read_response();
        assert_eq!((r.status, r.closes()), (200, false));
    }
    assert_eq!(running.stats().accepted, 1);
    assert_eq!(running.stats().requests, 3);
}

#[test]
fn large_unread_bodies_close_the_connection() {
    let running = start(Server::builder().max_drain_bytes(1000), ignore_body);
    let mut c = Client::new(running.local_addr());
    c.send(format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{}", "y".repeat(5000)));
    let r = c.read_response();
    assert_eq!(r.text(), "ignored");
    assert!(r.closes());
    assert!(c.at_eof());
    drop(c);
    // Chunked, unknown length: drained up to the bound, then closed.
    let mut c = Client::new(running.local_addr());
    c.send(format!(
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1388\r\n{}\r\n0\r\n\r\n",
        "z".repeat(5000)
    ));
    assert!(c.read_response().closes());
    drop(c);
    // One byte over the bound is over it, however the reads fall.
    let mut c = Client::new(running.local_addr());
    c.send(format!(
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n{}\r\n0\r\n\r\n",
        "z".repeat(1001)
    ));
    assert!(c.read_response().closes());
    drop(c);
    assert_all_closed(&running);
    assert_eq!(running.stats().closes(CloseReason::UnreadBody), 3);
}

/// Reads exactly `expected.len()` bytes and compares.
fn expect_bytes(c: &mut Client, expected: &[u8]) {
    let mut got = vec![0; expected.len()];
    c.reader.read_exact(&mut got).unwrap();
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(expected));
}

#[test]
fn continue_is_sent_when_the_handler_reads_the_body() {
    let running = start(default_builder(), echo);
    let mut c = Client::new(running.local_addr());
    c.send("PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    // The client waits for the interim response before sending the body.
    expect_bytes(&mut c, b"HTTP/1.1 100 Continue\r\n\r\n");
    c.send("hello");
    let r = c.read_response();
    assert_eq!((r.status, r.text().as_str(), r.closes()), (200, "hello", false));
    // The same for a chunked body, on the same connection.
    c.send("PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nTransfer-Encoding: chunked\r\n\r\n");
    expect_bytes(&mut c, b"HTTP/1.1 100 Continue\r\n\r\n");
    c.send("3\r\nabc\r\n0\r\n\r\n");
    assert_eq!(c.read_response().text(), "abc");
}

#[test]
fn no_continue_when_the_handler_answers_without_reading() {
    let running = start(default_builder(), ignore_body);
    let mut c = Client::new(running.local_addr());
    c.send("PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    let r = c.read_one("PUT").unwrap();
    assert_eq!(r.status, 200, "the final response comes first, no 100");
    // The client may or may not send the body now: the connection closes.
    assert!(r.closes());
    assert!(c.at_eof());
    drop(c);
    assert_all_closed(&running);
    assert_eq!(running.stats().closes(CloseReason::UnreadBody), 1);
}

#[test]
fn no_continue_when_the_body_is_already_here_or_for_http10() {
    let running = start(default_builder(), echo);
    let mut c = Client::new(running.local_addr());
    // The client did not wait: the body is already buffered.
    c.send("PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi");
    let r = c.read_one("PUT").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "hi"));
    // ... and if the handler ignores such a body, it is skipped safely.
    let running2 = start(default_builder(), ignore_body);
    let mut c2 = Client::new(running2.local_addr());
    c2.send("PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhiGET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(!c2.read_one("PUT").unwrap().closes());
    assert_eq!(c2.read_one("GET").unwrap().status, 200);
    // HTTP/1.0: the Expect is ignored (RFC 9110 §10.1.1) and no 1xx is sent
    // (§15.2), even when the handler reads a body that has not arrived yet.
    let (entered, handler_entered) = std::sync::mpsc::channel();
    let entered = std::sync::Mutex::new(entered);
    let running3 = start(default_builder(), move |req| {
        entered.lock().unwrap().send(()).unwrap();
        echo(req)
    });
    let mut c3 = Client::new(running3.local_addr());
    c3.send("PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
    handler_entered.recv_timeout(PATIENCE).unwrap();
    c3.send("abc");
    let r = c3.read_one("PUT").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "abc"));
}

#[test]
fn declared_length_over_the_limit_gets_413_and_no_continue() {
    let running = start(Server::builder().max_body_bytes(10), echo);
    let mut c = Client::new(running.local_addr());
    c.send("PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n");
    let r = c.read_one("PUT").unwrap();
    assert_eq!(r.status, 413);
    assert!(r.closes());
}

#[test]
fn unknown_expectations_get_417() {
    let running = start(default_builder(), echo);
    let out = exchange_until_close(
        running.local_addr(),
        b"PUT / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(status_of(&out), 417);
}

#[test]
fn an_early_answer_reaches_a_client_that_sends_its_whole_body_first() {
    // The handler refuses without reading (a 401 before an upload). A
    // client without `Expect: 100-continue` sends the whole body before it
    // reads; the lingering close must take all of it, or the close resets
    // the connection under the client's writes and the 401 is lost. By
    // default it takes as much as the body limit allows.
    let running = start(default_builder(), |_| Response::text("log in first\n").with_status(401));
    let mut c = Client::new(running.local_addr());
    let len = 12 * 1024 * 1024;
    c.send(format!("PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n"));
    let chunk = vec![b'u'; 64 * 1024];
    for sent in (0..len).step_by(chunk.len()) {
        if let Err(e) = c.stream().write_all(&chunk) {
            panic!("the upload failed after {sent} of {len} bytes: {e}");
        }
    }
    let r = c.read_response();
    assert_eq!((r.status, r.closes()), (401, true));
    assert!(c.at_eof());
}

#[test]
fn a_handler_can_lower_the_body_limit_for_its_route() {
    let running = start(default_builder(), |req| {
        req.body().set_limit(10);
        if req.path() == "/early" {
            return Response::text("log in first").with_status(401);
        }
        match req.read_body() {
            Ok(body) => Response::bytes(body),
            Err(_) => Response::status(500), // the server answers 413 itself
        }
    });
    let mut c = Client::new(running.local_addr());
    c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789");
    assert_eq!(c.read_response().text(), "0123456789");
    c.send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n0\r\n\r\n");
    assert_eq!(c.read_response().text(), "0123456789");
    // An early answer leaves the body unread: the server skips it as it
    // skips any (the limit was on the handler's reads), and goes on.
    c.send("POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n01234567890123456789");
    let r = c.read_response();
    assert_eq!((r.status, r.closes()), (401, false));
    // A chunked body fails the read that passes the limit.
    c.send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n5\r\n6789A\r\n0\r\n\r\n");
    let r = c.read_response();
    assert_eq!((r.status, r.closes()), (413, true));
    drop(c);
    // A declared length over it is refused before anything is read, and
    // before a `100 Continue` could invite the body.
    let raw = exchange_until_close(
        running.local_addr(),
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n",
    );
    assert!(raw.starts_with(b"HTTP/1.1 413 "), "{}", String::from_utf8_lossy(&raw));
    assert_all_closed(&running);
    assert_eq!(running.stats().closes(CloseReason::BadRequest), 2);
}
