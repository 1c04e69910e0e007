//! Persistent connections, `Connection` tokens, HTTP/1.0 keep-alive,
//! pipelining and response framing, checked on the wire.

mod common;

use std::io::{ErrorKind, Read};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use h1serve::{CloseReason, Response, Server};

#[test]
fn ureq_reuses_one_connection_for_several_requests() {
    let running = start_echo_line(default_builder());
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    for i in 0..5 {
        let url = format!("http://{}/n/{i}", running.local_addr());
        let mut resp = agent.get(&url).call().expect("request");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.body_mut().read_to_string().unwrap(), format!("GET /n/{i}"));
    }
    let stats = running.stats();
    assert_eq!(stats.accepted, 1, "one connection for five requests: {stats:?}");
    assert_eq!(stats.requests, 5);
}

#[test]
fn the_response_count_covers_open_and_closed_connections() {
    let running = start_echo_line(default_builder());
    let addr = running.local_addr();
    let mut closing = Client::new(addr);
    closing.send("GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut open = Client::new(addr);
    open.send("GET /3 HTTP/1.1\r\nHost: x\r\n\r\n".repeat(3));
    for _ in 0..2 {
        assert_eq!(closing.read_response().status, 200);
    }
    for _ in 0..3 {
        assert_eq!(open.read_response().status, 200);
    }
    assert!(running.handle().wait_until(PATIENCE, |s| s.open == 1), "{:?}", running.stats());
    assert_eq!(running.stats().requests, 5, "two on the closed connection, three on the open one");
    drop(open);
    assert_all_closed(&running);
    assert_eq!(running.stats().requests, 5);
}

#[test]
fn http11_persists_by_default_and_sends_no_connection_field() {
    let running = start_echo_line(default_builder());
    let mut c = Client::new(running.local_addr());
    for i in 0..3 {
        c.send(format!("GET /{i} HTTP/1.1\r\nHost: x\r\n\r\n"));
        let r = c.read_response();
        assert_eq!((r.status, r.text()), (200, format!("GET /{i}")));
        assert_eq!(r.header("connection"), None);
    }
    assert_eq!(running.stats().accepted, 1);
}

#[test]
fn connection_close_ends_the_connection_and_nothing_after_it_is_processed() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let running = start(default_builder(), move |req| {
        log.lock().unwrap().push(req.target().to_string());
        Response::text("ok")
    });
    let mut c = Client::new(running.local_addr());
    c.send("GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert!(r.closes(), "the response must say Connection: close");
    assert!(c.at_eof(), "the server must close after the response");
    assert_eq!(*seen.lock().unwrap(), ["/a"]);
    drop(c);
    assert_all_closed(&running);
    assert_eq!(running.stats().closes(CloseReason::ClientRequestedClose), 1);
}

#[test]
fn connection_is_a_case_insensitive_token_list_across_fields() {
    let running = start_echo_line(default_builder());
    for (fields, closes) in [
        ("Connection: keep-alive, Close\r\n", true),
        ("Connection: upgrade\r\nconnection: CLOSE\r\n", true),
        ("Connection: ,close,\r\n", true),
        ("Connection: closed\r\n", false),
        ("Connection: x-close\r\n", false),
        ("Connection: keep-alive\r\n", false),
    ] {
        let mut c = Client::new(running.local_addr());
        c.send(format!("GET / HTTP/1.1\r\nHost: x\r\n{fields}\r\n"));
        let r = c.read_response();
        assert_eq!(r.closes(), closes, "{fields:?}");
        if closes {
            assert!(c.at_eof(), "{fields:?}");
        } else {
            c.send("GET /again HTTP/1.1\r\nHost: x\r\n\r\n");
            assert_eq!(c.read_response().text(), "GET /again", "{fields:?}");
        }
    }
}

#[test]
fn http10_closes_unless_keep_alive_is_asked_for() {
    let running = start_echo_line(default_builder());
    let mut c = Client::new(running.local_addr());
    c.send("GET /old HTTP/1.0\r\n\r\n");
    let r = c.read_response();
    assert_eq!((r.status, r.text().as_str()), (200, "GET /old"));
    assert!(r.closes());
    assert!(c.at_eof());
}

#[test]
fn http10_keep_alive_is_answered_with_hints_counting_down() {
    let running =
        start_echo_line(Server::builder().idle_timeout(Duration::from_millis(7_900)).max_requests_per_connection(3));
    let mut c = Client::new(running.local_addr());
    for (i, max) in [(1, "2"), (2, "1")] {
        c.send(format!("GET /{i} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
        let r = c.read_response();
        assert_eq!(r.text(), format!("GET /{i}"));
        assert_eq!(r.header("connection"), Some("keep-alive"));
        // A second short of the idle timeout, rounded down, so a client
        // that waits the whole hint never sends into a connection the
        // server is closing.
        assert_eq!(r.header("keep-alive"), Some(format!("timeout=6, max={max}").as_str()));
    }
    c.send("GET /3 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = c.read_response();
    assert!(r.closes(), "the last allowed request is answered with close");
    assert!(c.at_eof());
    drop(c);
    assert_all_closed(&running);
    assert_eq!(running.stats().closes(CloseReason::RequestLimit), 1);
}

#[test]
fn handler_can_ask_to_close() {
    let running = start(default_builder(), |_| Response::text("bye").with_header("Connection", "close"));
    let mut c = Client::new(running.local_addr());
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /never HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.header_count("connection"), 1);
    assert!(r.closes());
    assert!(c.at_eof());
    drop(c);
    assert_all_closed(&running);
    assert_eq!(running.stats().closes(CloseReason::HandlerRequestedClose), 1);
    assert_eq!(running.stats().requests, 1);
}

#[test]
fn pipelined_requests_are_answered_in_order_with_bodies_in_between() {
    let running = start(default_builder(), |req| {
        let body = req.read_body().unwrap();
        Response::text(format!("{} {} [{}]", req.method(), req.target(), String::from_utf8_lossy(&body)))
    });
    let mut batch = String::new();
    for i in 0..20 {
        if i % 5 == 2 {
            batch.push_str(&format!("POST /{i} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nbody{}", i % 10));
        } else if i % 5 == 3 {
            batch.push_str(&format!(
                "PUT /{i} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            ));
        } else {
            batch.push_str(&format!("GET /{i} HTTP/1.1\r\nHost: x\r\n\r\n"));
        }
    }
    let expected: Vec<String> = (0..20)
        .map(|i| match i % 5 {
            2 => format!("POST /{i} [body{}]", i % 10),
            3 => format!("PUT /{i} [abc]"),
            _ => format!("GET /{i} []"),
        })
        .collect();
    // All at once, then one byte per write: the same answers either way.
    for split in [batch.len(), 1, 7] {
        let mut c = Client::new(running.local_addr());
        for piece in batch.as_bytes().chunks(split) {
            c.send(piece);
        }
        let got: Vec<String> = (0..20).map(|_| c.read_response().text()).collect();
        assert_eq!(got, expected, "split {split}");
    }
}

#[test]
fn responses_to_buffered_pipelined_requests_are_written_together() {
    // The handler for /2 waits for the test's signal. If the server flushed
    // each response as soon as it was made, the response to /1 would reach
    // the client while /2 is still being handled.
    let (release, wait) = mpsc::channel::<()>();
    let wait = Mutex::new(wait);
    let running = start(default_builder(), move |req| {
        if req.path() == "/2" {
            let _ = wait.lock().unwrap().recv_timeout(PATIENCE);
        }
        Response::text(req.path().to_string())
    });
    let mut c = Client::new(running.local_addr());
    c.send("GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n");
    c.assert_silent_for(Duration::from_millis(300), "response 1 was sent alone, before response 2 was ready");
    release.send(()).unwrap();
    assert_eq!(c.read_response().text(), "/1");
    assert_eq!(c.read_response().text(), "/2");
}

#[test]
fn in_memory_and_reader_bodies_get_exact_content_length() {
    let running = start(default_builder(), |req| match req.path() {
        "/mem" => Response::bytes(vec![7u8; 1000]),
        "/big" => Response::bytes(vec![9u8; 300_000]),
        _ => Response::from_reader(std::io::repeat(b'r').take(123_456), 123_456),
    });
    let mut c = Client::new(running.local_addr());
    for (path, len, byte) in [("/mem", 1000, 7u8), ("/reader", 123_456, b'r'), ("/big", 300_000, 9)] {
        c.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
        let r = c.read_response();
        assert_eq!(r.framing, "length");
        assert_eq!(r.header("content-length"), Some(len.to_string().as_str()));
        assert!(r.body.len() == len && r.body.iter().all(|&b| b == byte), "{path}");
    }
}

#[test]
fn a_slow_reader_body_streams_instead_of_holding_back_the_head() {
    /// Gives "first", then waits for the test's signal, then "secnd".
    struct Slow(u8, Mutex<mpsc::Receiver<()>>);
    impl Read for Slow {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            self.0 += 1;
            let part: &[u8] = match self.0 {
                1 => b"first",
                2 => {
                    let _ = self.1.lock().unwrap().recv_timeout(PATIENCE);
                    b"secnd"
                }
                _ => b"",
            };
            out[..part.len()].copy_from_slice(part);
            Ok(part.len())
        }
    }
    let (go_on, wait) = mpsc::channel();
    let wait = Mutex::new(Some(wait));
    let running = start(default_builder(), move |_| {
        let rx = wait.lock().unwrap().take().unwrap();
        Response::from_reader(Slow(0, Mutex::new(rx)), 10)
    });
    let mut c = Client::new(running.local_addr());
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    // The head and the first part must arrive while the reader is blocked.
    let mut seen = Vec::new();
    while !seen.ends_with(b"\r\n\r\nfirst") {
        let mut b = [0u8; 1];
        c.reader.read_exact(&mut b).expect("the head and first part, before the rest exists");
        seen.push(b[0]);
    }
    go_on.send(()).unwrap();
    let mut rest = [0u8; 5];
    c.reader.read_exact(&mut rest).unwrap();
    assert_eq!(&rest, b"secnd");
}

#[test]
fn a_reader_shorter_than_declared_fails_the_connection() {
    let running = start(default_builder(), |_| Response::from_reader(&b"only ten b"[..], 20));
    // The client must see a truncated body, never a complete message.
    let mut c = Client::new(running.local_addr());
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let err = c.read_response_to("GET").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
    drop(c);
    assert_all_closed(&running);
    assert_eq!(running.stats().closes(CloseReason::ResponseBodyError), 1);
}

#[test]
fn a_reader_is_read_only_up_to_its_declared_length() {
    /// Gives its bytes, then blocks until the test lets it go: an upstream
    /// socket that stays open, a pipe whose writer goes on.
    struct ThenBlocks(&'static [u8], Arc<Mutex<mpsc::Receiver<()>>>);
    impl Read for ThenBlocks {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                let _ = self.1.lock().unwrap().recv();
            }
            let n = self.0.len().min(out.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let (release, blocked) = mpsc::channel::<()>();
    let blocked = Arc::new(Mutex::new(blocked));
    let running = start(default_builder(), move |req| match req.path() {
        // More than declared: a range of a longer source.
        "/long" => Response::from_reader(&b"twenty bytes, really"[..], 10),
        "/blocks" => Response::from_reader(ThenBlocks(b"exactly", blocked.clone()), 7),
        _ => Response::from_reader(ThenBlocks(b"", blocked.clone()), 0),
    });
    // The declared bytes are the message, and the connection goes on: the
    // pipelined second request is answered too.
    let mut c = Client::new(running.local_addr());
    c.send("GET /long HTTP/1.1\r\nHost: x\r\n\r\nGET /long HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response().text(), "twenty byt");
    assert_eq!(c.read_response().text(), "twenty byt");
    // A reader that has given its `len` bytes is not read again: its
    // response arrives whole while a further read would still block (and
    // with `len` 0, the head alone).
    c.send("GET /blocks HTTP/1.1\r\nHost: x\r\n\r\nGET /empty HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response().text(), "exactly");
    assert_eq!(c.read_response().text(), "");
    drop(release);
    drop(c);
    assert_all_closed(&running);
    let stats = running.stats();
    assert_eq!(stats.closes(CloseReason::ResponseBodyError), 0, "{stats:?}");
    assert_eq!(stats.requests, 4);
}

#[test]
fn a_streamed_body_gathers_the_writes_between_flushes_into_one_chunk() {
    let running = start(default_builder(), |_| {
        Response::stream(|w| {
            // Small writes (a `writeln!` may make several) are one chunk
            // at the flush.
            writeln!(w, "tick {}", 1)?;
            w.write_all(b"!")?;
            w.flush()?;
            // A large write with nothing gathered is a chunk of its own.
            w.write_all(&[b'd'; 20_000])?;
            // Gathered chunks are bounded (16 KiB): 10,000 + 6,384, then
            // the rest of the second write with what follows.
            w.write_all(&[b'e'; 10_000])?;
            w.write_all(&[b'f'; 10_000])?;
            w.write_all(b"end")
        })
    });
    let raw = exchange_until_close(running.local_addr(), b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let raw = String::from_utf8(raw).unwrap();
    let body = &raw[raw.find("\r\n\r\n").unwrap() + 4..];
    let expected = format!(
        "8\r\ntick 1\n!\r\n4e20\r\n{}\r\n4000\r\n{}{}\r\ne23\r\n{}end\r\n0\r\n\r\n",
        "d".repeat(20_000),
        "e".repeat(10_000),
        "f".repeat(6_384),
        "f".repeat(3_616),
    );
    assert!(body == expected, "chunk heads: {:?}", body.lines().filter(|l| l.len() < 8).collect::<Vec<_>>());
}

#[test]
fn streamed_bodies_are_chunked_for_11_and_close_delimited_for_10() {
    let running = start(default_builder(), |_| {
        Response::stream(|w| {
            for i in 0..50 {
                writeln!(w, "line {i}")?;
                if i % 10 == 0 {
                    w.flush()?;
                }
            }
            w.write_all(&vec![b'z'; 100_000])
        })
    });
    let expected: Vec<u8> =
        (0..50).flat_map(|i| format!("line {i}\n").into_bytes()).chain(std::iter::repeat_n(b'z', 100_000)).collect();
    let mut c = Client::new(running.local_addr());
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response();
    assert_eq!((r.framing, r.header("content-length")), ("chunked", None));
    assert_eq!(r.body, expected);
    // The connection goes on after a chunked body.
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response().body, expected);
    drop(c);

    let mut c = Client::new(running.local_addr());
    c.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.framing, "close");
    assert!(r.header("transfer-encoding").is_none() && r.closes());
    assert_eq!(r.body, expected);
    drop(c);
    assert_all_closed(&running);
    assert_eq!(running.stats().closes(CloseReason::CloseDelimitedResponse), 1);
}

#[test]
fn a_failing_stream_never_looks_complete() {
    let running = start(default_builder(), |_| {
        Response::stream(|w| {
            w.write_all(b"partial")?;
            Err(std::io::Error::other("disk on fire"))
        })
    });
    let mut c = Client::new(running.local_addr());
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(c.read_response_to("GET").is_err(), "no last chunk may be sent");
    drop(c);
    assert_all_closed(&running);
    assert_eq!(running.stats().closes(CloseReason::ResponseBodyError), 1);
}

#[test]
fn head_gets_the_get_head_and_no_body() {
    let running = start(default_builder(), |req| match req.path() {
        "/stream" => Response::stream(|w| w.write_all(b"never for HEAD")),
        "/reader" => Response::from_reader(std::io::repeat(0).take(5000), 5000),
        _ => Response::text("twelve bytes"),
    });
    let mut c = Client::new(running.local_addr());
    for (path, framing_field, value) in [
        ("/", "content-length", "12"),
        ("/reader", "content-length", "5000"),
        ("/stream", "transfer-encoding", "chunked"),
    ] {
        c.send(format!("HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
        let r = c.read_response_to("HEAD").unwrap();
        assert_eq!(r.header(framing_field), Some(value), "{path}");
        assert!(r.body.is_empty());
    }
    // Had any body bytes been sent, this would read them as a status line.
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response().text(), "twelve bytes");
}

#[test]
fn no_content_reset_content_and_not_modified_carry_no_body() {
    let running = start(default_builder(), |req| {
        if req.path() == "/205/stream" {
            return Response::stream(|w| w.write_all(b"never")).with_status(205);
        }
        let code = req.path()[1..].parse().unwrap();
        Response::text("this body must not be sent").with_status(code)
    });
    let mut c = Client::new(running.local_addr());
    for code in [204u16, 304] {
        c.send(format!("GET /{code} HTTP/1.1\r\nHost: x\r\n\r\n"));
        let r = c.read_response();
        assert_eq!(r.status, code);
        assert_eq!(r.header("content-length"), None, "{code}");
        assert_eq!(r.header("transfer-encoding"), None, "{code}");
    }
    // RFC 9110 §15.3.6: 205 has no content either, but its framing is not
    // implied, so it says `Content-Length: 0`, whatever the handler made
    // (and a stream is never called). The response after it is intact.
    for path in ["/205", "/205/stream"] {
        c.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
        let r = c.read_response();
        assert_eq!((r.status, r.header("content-length"), r.body.len()), (205, Some("0"), 0), "{path}");
    }
    c.send("GET /200 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response().text(), "this body must not be sent");
}

#[test]
fn every_response_has_a_date_even_errors() {
    let running = start(default_builder(), |_| Response::text("x"));
    let mut c = Client::new(running.local_addr());
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let date = c.read_response().header("date").unwrap().to_string();
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
    assert_eq!(date.len(), 29, "{date}");
    assert!(date.ends_with(" GMT") && &date[3..5] == ", ", "{date}");
    let bad = exchange_until_close(running.local_addr(), b"GET / HTTP/1.1\r\n\r\n");
    assert!(String::from_utf8_lossy(&bad).contains("\r\nDate: "));
}

#[test]
fn a_panicking_handler_gets_500_and_the_server_keeps_serving() {
    let running = start(default_builder(), |req| {
        if req.path() == "/panic" {
            panic!("test panic");
        }
        Response::text("fine")
    });
    let mut c = Client::new(running.local_addr());
    c.send("GET /panic HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 500);
    assert!(r.closes());
    assert!(c.at_eof());
    let mut c = Client::new(running.local_addr());
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response().text(), "fine");
    drop(c);
    assert_all_closed(&running);
    assert_eq!(running.stats().closes(CloseReason::HandlerPanicked), 1);
}

#[test]
fn versions_and_target_forms() {
    let running =
        start(default_builder(), |req| Response::text(format!("{} {} {:?}", req.version(), req.path(), req.query())));
    let mut c = Client::new(running.local_addr());
    c.send("GET /a?b=1 HTTP/1.2\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response().text(), "HTTP/1.1 /a Some(\"b=1\")");
    c.send("\r\nGET http://example.com/p/q HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_eq!(c.read_response().text(), "HTTP/1.1 /p/q None");
    c.send("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response().text(), "HTTP/1.1 * None");
    let r = exchange_until_close(running.local_addr(), b"GET / HTTP/2.0\r\nHost: x\r\n\r\n");
    assert_eq!(status_of(&r), 505);
}

#[test]
fn handlers_get_the_stack_of_a_std_thread_by_default() {
    // Half a MiB on the stack: more than a 256 KiB stack holds, and well
    // within the 2 MiB of a std thread. (An overflow aborts the process:
    // this test binary would die with it.)
    let running = start(default_builder(), |_| {
        let big = std::hint::black_box([1u8; 512 * 1024]);
        Response::text(big.iter().map(|&b| u64::from(b)).sum::<u64>().to_string())
    });
    let mut c = Client::new(running.local_addr());
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response().text(), (512 * 1024).to_string());
}

#[test]
fn handlers_can_use_the_question_mark() {
    fn store(req: &mut h1serve::Request) -> std::io::Result<Response> {
        let body = req.read_body()?;
        if req.path() == "/full" {
            return Err(std::io::Error::other("disk full at /var/secret"));
        }
        Ok(Response::bytes(body))
    }
    fn item(req: &mut h1serve::Request) -> Result<Response, Response> {
        let id: u32 = req.query_param("id").and_then(|v| v.parse().ok()).ok_or_else(|| Response::status(400))?;
        Ok(Response::text(format!("item {id}")))
    }
    let failures = Arc::new(Mutex::new(Vec::new()));
    let log = failures.clone();
    let builder = default_builder().max_body_bytes(10).on_event(move |e| {
        if let h1serve::Event::HandlerFailed { error, .. } = e {
            log.lock().unwrap().push(error.to_string());
        }
    });
    let running = builder
        .bind("127.0.0.1:0")
        .unwrap()
        .spawn(|req| if req.path() == "/item" { item(req).or_else(Ok) } else { store(req) })
        .unwrap();
    let mut c = Client::new(running.local_addr());
    c.send("POST /store HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(c.read_response().text(), "hello");
    // Any other error is a 500 that tells the client nothing of it; the
    // event hook gets its text, and the connection goes on.
    c.send("POST /full HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
    let r = c.read_response();
    assert_eq!((r.status, r.closes(), r.text().as_str()), (500, false, "Internal Server Error\n"));
    // `Err(response)` is that response.
    c.send("GET /item?id=7 HTTP/1.1\r\nHost: x\r\n\r\nGET /item?id=x HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response().text(), "item 7");
    assert_eq!(c.read_response().status, 400);
    // A body error passed on with `?` is the client's: the server answers
    // it with its own status (413), and it is no handler failure.
    c.send("POST /store HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nc\r\ntwelve bytes\r\n0\r\n\r\n");
    let r = c.read_response();
    assert_eq!((r.status, r.closes()), (413, true));
    drop(c);
    assert_all_closed(&running);
    assert_eq!(*failures.lock().unwrap(), ["disk full at /var/secret"]);
}

#[test]
fn a_response_head_goes_out_with_its_body_not_ahead_of_it() {
    // Rules §2: one buffer per response, so a small response is one write,
    // one segment, never a head sent ahead of its body. The body's reader
    // holds the response back until the test has looked at the socket.
    struct Gated(Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>);
    impl Read for Gated {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let Some((entered, go)) = self.0.take() else { return Ok(0) };
            entered.send(()).unwrap();
            go.recv_timeout(PATIENCE).unwrap();
            out[..4].copy_from_slice(b"body");
            Ok(4)
        }
    }
    let (entered, in_read) = mpsc::channel();
    let (go, gate) = mpsc::channel();
    let gate = Mutex::new(Some((entered, gate)));
    let running = start(default_builder(), move |_| Response::from_reader(Gated(gate.lock().unwrap().take()), 4));
    let mut c = Client::new(running.local_addr());
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    in_read.recv_timeout(PATIENCE).unwrap();
    // The head is made; nothing may have been sent yet.
    c.stream().set_nonblocking(true).unwrap();
    let early = c.stream().peek(&mut [0u8; 64]);
    c.stream().set_nonblocking(false).unwrap();
    assert_eq!(early.map_err(|e| e.kind()), Err(ErrorKind::WouldBlock), "the head went out alone");
    go.send(()).unwrap();
    assert_eq!(c.read_response().text(), "body");
}
