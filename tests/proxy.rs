//! The proxy example, checked on the wire: a raw client in front of it, and
//! behind it the echo example, an h1serve server, or a raw upstream that
//! writes exactly the bytes a test needs (including the ones h1serve itself
//! would never send) and reports every request it reads, connection by
//! connection.

mod common;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use common::*;
use h1serve::{CloseReason, Response};

fn proxy_to(upstream: SocketAddr) -> Example {
    let upstream = upstream.to_string();
    let proxy = spawn_example("proxy", &["--listen", "127.0.0.1:0", "--upstream", &upstream]);
    assert_ne!(proxy.addr.port(), 0, "the first line gives the real port");
    proxy
}

/// The echo example with the proxy in front of it.
fn echo_behind_proxy() -> (Example, Example) {
    let echo = spawn_example("echo", &["127.0.0.1:0"]);
    let proxy = proxy_to(echo.addr);
    (echo, proxy)
}

// ---------------------------------------------------------------------------
// A raw upstream.

/// What a raw upstream saw.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// A request read on connection `conn` (numbered from 1 in accept order).
    Request { conn: usize, method: String, target: String, body: Vec<u8> },
    /// Connection `conn` was closed (its script returned).
    Closed { conn: usize },
}

/// A request as the raw upstream read it.
struct RawRequest {
    method: String,
    target: String,
    body: Vec<u8>,
}

/// One accepted connection of a raw upstream, handed to its script.
struct RawConn {
    id: usize,
    reader: BufReader<TcpStream>,
    seen: mpsc::Sender<Seen>,
}

impl RawConn {
    /// Reads one request (the proxy always frames bodies with
    /// Content-Length) and reports it; `None` when the proxy closed.
    fn read_request(&mut self) -> Option<RawRequest> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if line == "\r\n" {
                break;
            }
            lines.push(line.strip_suffix("\r\n").expect("CRLF line endings").to_string());
        }
        let request_line = lines.remove(0);
        let mut parts = request_line.split(' ');
        let (method, target) = (parts.next()?.to_string(), parts.next()?.to_string());
        assert_eq!(parts.next(), Some("HTTP/1.1"), "the proxy speaks HTTP/1.1 upstream");
        let headers: Vec<(String, String)> = lines
            .iter()
            .map(|l| {
                let (n, v) = l.split_once(':').expect("field line");
                (n.to_string(), v.trim().to_string())
            })
            .collect();
        let field = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
        assert_eq!(field("transfer-encoding"), None, "bodies go upstream with a Content-Length");
        let mut body = vec![0; field("content-length").map_or(0, |v| v.parse().expect("a length"))];
        self.reader.read_exact(&mut body).ok()?;
        let seen = Seen::Request { conn: self.id, method: method.clone(), target: target.clone(), body: body.clone() };
        let _ = self.seen.send(seen);
        Some(RawRequest { method, target, body })
    }

    fn write(&mut self, bytes: impl AsRef<[u8]>) -> io::Result<()> {
        self.reader.get_mut().write_all(bytes.as_ref())
    }
}

/// A listener that runs `script` on each connection, on its own thread.
struct RawUpstream {
    addr: SocketAddr,
    seen: mpsc::Receiver<Seen>,
    stop: Arc<AtomicBool>,
}

fn raw_upstream(script: impl Fn(&mut RawConn) + Send + Sync + 'static) -> RawUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    let (tx, seen) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let script = Arc::new(script);
    let stopped = Arc::clone(&stop);
    thread::spawn(move || {
        for (i, stream) in listener.incoming().enumerate() {
            if stopped.load(Ordering::SeqCst) {
                return;
            }
            let Ok(stream) = stream else { continue };
            stream.set_read_timeout(Some(PATIENCE)).unwrap();
            stream.set_write_timeout(Some(PATIENCE)).unwrap();
            let mut conn = RawConn { id: i + 1, reader: BufReader::new(stream), seen: tx.clone() };
            let script = Arc::clone(&script);
            thread::spawn(move || {
                script(&mut conn);
                let (id, seen) = (conn.id, conn.seen.clone());
                drop(conn);
                let _ = seen.send(Seen::Closed { conn: id });
            });
        }
    });
    RawUpstream { addr, seen, stop }
}

impl RawUpstream {
    fn next(&self) -> Seen {
        self.seen.recv_timeout(PATIENCE).expect("the upstream saw nothing more")
    }

    /// The next request seen, skipping closes: `(conn, "METHOD TARGET")`.
    fn next_request(&self) -> (usize, String) {
        loop {
            if let Seen::Request { conn, method, target, .. } = self.next() {
                return (conn, format!("{method} {target}"));
            }
        }
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        // Wake the accept loop so that its thread ends.
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

/// `200` with a Content-Length body, on a connection that stays open.
fn ok(body: &str) -> String {
    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len())
}

fn names(r: &Resp) -> Vec<&str> {
    r.headers.iter().map(|(n, _)| n.as_str()).filter(|n| !n.eq_ignore_ascii_case("date")).collect()
}

// ---------------------------------------------------------------------------
// Hop-by-hop fields.

#[test]
fn request_hop_by_hop_fields_stay_on_the_client_hop() {
    let (_echo, proxy) = echo_behind_proxy();
    let mut c = Client::new(proxy.addr);
    c.send(
        "GET /headers HTTP/1.1\r\n\
         Host: example.test\r\n\
         Connection: close, X-Hop\r\n\
         X-Hop: 1\r\n\
         Keep-Alive: timeout=5\r\n\
         TE: trailers\r\n\
         Proxy-Authorization: Basic dXNlcjpwYXNz\r\n\
         Proxy-Connection: keep-alive\r\n\
         Upgrade: websocket\r\n\
         Trailer: X-T\r\n\
         X-End-To-End: kept\r\n\
         Via: 1.1 an-earlier-proxy\r\n\
         \r\n",
    );
    let r = c.read_response();
    assert_eq!(r.status, 200);
    // Echo lists the fields it received, in order: every hop-by-hop one is
    // gone, the client's Host is kept, and our Via follows the earlier one.
    assert_eq!(r.text(), "Host: example.test\nX-End-To-End: kept\nVia: 1.1 an-earlier-proxy\nVia: 1.1 h1serve-proxy\n");
    assert_eq!(r.header("x-request-line"), Some("GET /headers HTTP/1.1"));
    // The client's `close` applied to its own hop.
    assert!(r.closes());
    assert!(c.at_eof());
}

#[test]
fn an_http10_keep_alive_is_not_passed_on() {
    // The dumb-proxy hang of rules §4: were `Connection: keep-alive`
    // forwarded, the upstream would keep its connection open after the
    // response. Here it is answered on the client's hop and not forwarded.
    let (echo, proxy) = echo_behind_proxy();
    let mut c = Client::new(proxy.addr);
    c.send("GET /headers HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.header("connection"), Some("keep-alive"));
    // No Host from the 1.0 client: the upstream's address stands in.
    assert_eq!(r.text(), format!("Host: {}\nVia: 1.0 h1serve-proxy\n", echo.addr));
    assert_eq!(r.header("x-request-line"), Some("GET /headers HTTP/1.1"), "sent upstream as 1.1");
    // Same connection: a chunked upstream body reaches the 1.0 client
    // delimited by the close.
    c.send("GET /stream/3 HTTP/1.0\r\n\r\n");
    let r = c.read_response();
    assert_eq!((r.framing, r.text().as_str()), ("close", "chunk 0\nchunk 1\nchunk 2\n"));
}

#[test]
fn response_hop_by_hop_fields_stay_on_the_upstream_hop() {
    // h1serve writes Connection and Keep-Alive itself, so this upstream is
    // raw: it names a field in Connection, as h1serve never would.
    let up = raw_upstream(|conn| {
        while conn.read_request().is_some() {
            let response = "HTTP/1.1 200 OK\r\n\
                            Connection: keep-alive, X-Up-Hop\r\n\
                            X-Up-Hop: 1\r\n\
                            Keep-Alive: timeout=5\r\n\
                            Proxy-Authenticate: Basic realm=\"up\"\r\n\
                            Proxy-Connection: keep-alive\r\n\
                            Upgrade: h2c\r\n\
                            Trailer: X-Checksum\r\n\
                            Transfer-Encoding: chunked\r\n\
                            X-End-To-End: kept\r\n\
                            \r\n\
                            5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Checksum: 1\r\n\r\n";
            if conn.write(response).is_err() {
                return;
            }
        }
    });
    let proxy = proxy_to(up.addr);
    let mut c = Client::new(proxy.addr);
    for _ in 0..2 {
        c.send("GET /r HTTP/1.1\r\nHost: x\r\n\r\n");
        let r = c.read_response();
        assert_eq!((r.status, r.text().as_str()), (200, "hello world"));
        // h1serve chunks the body for this hop itself; nothing else that
        // belonged to the upstream's hop is left.
        assert_eq!(r.framing, "chunked");
        assert_eq!(names(&r), ["X-End-To-End", "Via", "Transfer-Encoding"]);
        assert_eq!(r.header("via"), Some("1.1 h1serve-proxy"));
    }
    // The trailer section was read to its end: the connection was reused.
    assert_eq!(up.next_request(), (1, "GET /r".to_string()));
    assert_eq!(up.next_request(), (1, "GET /r".to_string()));
}

// ---------------------------------------------------------------------------
// Bodies and the client's persistent connection.

#[test]
fn bodies_both_ways_on_one_client_connection() {
    let (_echo, proxy) = echo_behind_proxy();
    let mut c = Client::new(proxy.addr);

    c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world");
    let r = c.read_response();
    assert_eq!((r.status, r.text().as_str()), (200, "hello world"));
    assert_eq!(r.header("x-request-line"), Some("POST /echo HTTP/1.1"));

    // A chunked request body is decoded and sent on with a Content-Length.
    c.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n");
    assert_eq!(c.read_response().text(), "hello");
    c.send("POST /headers HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n");
    assert_eq!(c.read_response().text(), "Host: x\nVia: 1.1 h1serve-proxy\nContent-Length: 5\n");

    // h1serve answers the expectation on the client's hop when the proxy
    // reads the body; it is not passed on.
    c.send("POST /headers HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
    assert_eq!(c.read_one("POST").unwrap().status, 100);
    c.send("hi");
    assert_eq!(c.read_response().text(), "Host: x\nVia: 1.1 h1serve-proxy\nContent-Length: 2\n");

    // Large, every byte value, both ways.
    let big: Vec<u8> = (0..1_000_003u32).map(|i| (i % 251) as u8).collect();
    c.send(format!("PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", big.len()));
    c.send(&big);
    let r = c.read_response();
    assert_eq!(r.header("content-length"), Some("1000003"));
    assert!(r.body == big, "the body came back altered");

    // Unknown length upstream (chunked): chunked to this client.
    c.send("GET /stream/5 HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.framing, "chunked");
    assert_eq!(r.text(), "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n");

    // Known length upstream: the same Content-Length, exact bytes.
    c.send("GET /bytes/300000 HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response();
    assert_eq!((r.framing, r.header("content-length")), ("length", Some("300000")));
    assert!(r.body.iter().enumerate().all(|(i, &b)| b == b'a' + (i % 26) as u8));

    // HEAD: the length a GET would get, and no body (the next response
    // would be corrupted by one).
    c.send("HEAD /bytes/1000 HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response_to("HEAD").unwrap();
    assert_eq!((r.status, r.header("content-length")), (200, Some("1000")));
    for code in [204, 304] {
        c.send(format!("GET /status/{code} HTTP/1.1\r\nHost: x\r\n\r\n"));
        let r = c.read_response();
        assert_eq!((r.status, r.framing), (code, "none"));
    }

    // Pipelined: answered in order.
    c.send("GET /bytes/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /bytes/2 HTTP/1.1\r\nHost: x\r\n\r\nGET /bytes/3 HTTP/1.1\r\nHost: x\r\n\r\n");
    for want in ["a", "ab", "abc"] {
        let r = c.read_response();
        assert_eq!(r.text(), want);
        assert!(!r.closes());
    }
}

#[test]
fn a_chunked_stream_is_relayed_as_it_arrives() {
    // The upstream sends its second chunk only when the test says so, after
    // the client has the first: a proxy that waited for more before passing
    // data on would hang here.
    let (go, wait) = mpsc::channel::<()>();
    let wait = std::sync::Mutex::new(wait);
    let up = raw_upstream(move |conn| {
        if conn.read_request().is_some() {
            let _ = conn.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n");
            // Until told, or until the test ends (a failed test drops `go`).
            let _ = wait.lock().unwrap().recv();
            let _ = conn.write("6\r\nsecond\r\n0\r\n\r\n");
        }
    });
    let proxy = proxy_to(up.addr);
    let mut c = Client::new(proxy.addr);
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut line = String::new();
    while line != "\r\n" {
        line.clear();
        c.reader.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "closed in the head");
    }
    let mut chunk = String::new();
    for _ in 0..2 {
        c.reader.read_line(&mut chunk).unwrap();
    }
    assert_eq!(chunk, "5\r\nfirst\r\n");
    go.send(()).unwrap();
    let mut rest = String::new();
    for _ in 0..4 {
        c.reader.read_line(&mut rest).unwrap();
    }
    assert_eq!(rest, "6\r\nsecond\r\n0\r\n\r\n");
}

// ---------------------------------------------------------------------------
// The upstream pool.

#[test]
fn requests_from_several_clients_share_one_upstream_connection() {
    let upstream = start(default_builder(), |req| {
        let body = req.read_body().unwrap();
        match req.path() {
            "/stream" => Response::stream(|w| w.write_all(b"streamed")),
            "/empty" => Response::status(204),
            _ => Response::text(format!("{} {} {}", req.method(), req.target(), String::from_utf8_lossy(&body))),
        }
    });
    let proxy = proxy_to(upstream.local_addr());

    let mut a = Client::new(proxy.addr);
    for (request, method, want) in [
        ("GET /a HTTP/1.1\r\nHost: x\r\n\r\n", "GET", "GET /a "),
        ("HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n", "HEAD", ""),
        ("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n", "GET", "streamed"),
        ("POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody", "POST", "POST /b body"),
        ("GET /empty HTTP/1.1\r\nHost: x\r\n\r\n", "GET", ""),
        ("GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "GET", "GET /last "),
    ] {
        a.send(request);
        assert_eq!(a.read_response_to(method).unwrap().text(), want);
    }
    assert!(a.at_eof(), "the client's close ends the client's connection");
    let mut b = Client::new(proxy.addr);
    for (path, want) in [("/c", "GET /c "), ("/stream", "streamed")] {
        b.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert_eq!(b.read_response().text(), want);
    }
    // Eight requests from two client connections, one upstream connection,
    // still open after the first client's connection closed.
    assert!(upstream.handle().wait_until(PATIENCE, |s| s.requests == 8), "{:?}", upstream.stats());
    let stats = upstream.stats();
    assert_eq!((stats.accepted, stats.open), (1, 1), "{stats:?}");
}

#[test]
fn only_connections_the_upstream_keeps_alive_go_back_to_the_pool() {
    // This upstream announces a close but leaves the connection open and
    // keeps answering, so that a proxy reusing it would be seen doing so.
    let up = raw_upstream(|conn| {
        while let Some(req) = conn.read_request() {
            let response = match req.target.as_str() {
                "/close" => "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nclose".to_string(),
                // HTTP/1.0 without keep-alive: not persistent either.
                "/http10" => "HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhttp10".to_string(),
                "/until-close" => {
                    let _ = conn.write("HTTP/1.1 200 OK\r\n\r\nuntil close");
                    return;
                }
                _ => ok("keep"),
            };
            if conn.write(response).is_err() {
                return;
            }
        }
    });
    let proxy = proxy_to(up.addr);
    let mut c = Client::new(proxy.addr);
    let order = ["/keep", "/keep", "/close", "/keep", "/http10", "/keep", "/until-close", "/keep"];
    for path in order {
        c.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
        let r = c.read_response();
        assert_eq!(r.text(), path.trim_start_matches('/').replace('-', " "));
        // The upstream's closes are its own hop's business.
        assert!(!r.closes());
    }
    let seen: Vec<(usize, String)> = order.iter().map(|_| up.next_request()).collect();
    let want: Vec<(usize, String)> =
        [1, 1, 1, 2, 2, 3, 3, 4].into_iter().zip(order.map(|p| format!("GET {p}"))).collect();
    assert_eq!(seen, want);
}

#[test]
fn an_abandoned_response_closes_its_upstream_connection() {
    let up = raw_upstream(|conn| {
        while let Some(req) = conn.read_request() {
            if req.target == "/big" {
                // Far more than the socket buffers hold: the upstream is
                // still writing when the client goes away.
                let _ = conn.write("HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n");
                let block = vec![b'x'; 64 * 1024];
                while conn.write(&block).is_ok() {}
                return;
            }
            if conn.write(ok("small")).is_err() {
                return;
            }
        }
    });
    let proxy = proxy_to(up.addr);
    let mut c = Client::new(proxy.addr);
    c.send("GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut head = [0u8; 12];
    c.reader.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    drop(c);
    assert_eq!(up.next(), Seen::Request { conn: 1, method: "GET".into(), target: "/big".into(), body: vec![] });
    // The proxy closed that upstream connection rather than pool one with
    // most of a body still in it.
    assert_eq!(up.next(), Seen::Closed { conn: 1 });
    let mut c = Client::new(proxy.addr);
    c.send("GET /small HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response().text(), "small");
    assert_eq!(up.next_request(), (2, "GET /small".to_string()));
}

// ---------------------------------------------------------------------------
// Retries.

#[test]
fn idempotent_requests_are_retried_on_a_fresh_connection_and_others_get_502() {
    // Each upstream connection answers one request; it reads a second one
    // and closes without a word, as a server does whose idle timeout fires
    // just as the request arrives. The proxy cannot see it coming: the
    // connection was open when it was taken from the pool.
    let up = raw_upstream(|conn| {
        let Some(req) = conn.read_request() else { return };
        let body = format!("{} {} {}", req.method, req.target, String::from_utf8_lossy(&req.body));
        if conn.write(ok(&body)).is_ok() {
            let _ = conn.read_request();
        }
    });
    let proxy = proxy_to(up.addr);
    let mut c = Client::new(proxy.addr);
    for (method, path, body, status) in [
        ("GET", "/warm", "", 200),
        ("GET", "/a", "", 200),
        ("POST", "/b", "post-body", 502),
        ("PUT", "/c", "first-put", 200),
        ("PUT", "/d", "second-put", 200),
        ("PATCH", "/e", "patch-body", 502),
        ("DELETE", "/f", "", 200),
    ] {
        c.send(format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}", body.len()));
        let r = c.read_response();
        assert_eq!(r.status, status, "{method} {path}: {}", r.text());
        if status == 200 {
            assert_eq!(r.text(), format!("{method} {path} {body}"));
        }
        assert!(!r.closes(), "an upstream failure does not close the client's connection");
    }
    let mut seen = Vec::new();
    while seen.len() < 9 {
        if let Seen::Request { conn, method, target, body } = up.next() {
            seen.push(format!("{conn} {method} {target} {}", String::from_utf8_lossy(&body)));
        }
    }
    assert_eq!(
        seen,
        [
            "1 GET /warm ",
            "1 GET /a ",             // the pooled connection closed: sent again...
            "2 GET /a ",             // ...once, on a fresh one
            "2 POST /b post-body",   // closed, and not sent again:
            "3 PUT /c first-put",    // the next connection serves the next request
            "3 PUT /d second-put",   // closed: sent again,
            "4 PUT /d second-put",   // the buffered body with it
            "4 PATCH /e patch-body", // closed, and not sent again
            "5 DELETE /f ",
        ]
    );
}

#[test]
fn a_pooled_connection_the_upstream_already_closed_is_not_used() {
    // h1serve closes idle connections after its idle timeout; once the
    // close has reached the proxy, the proxy must notice it before reusing
    // the connection, or this POST would get 502.
    let upstream = start(
        default_builder().idle_timeout(Duration::from_millis(500)).linger(Duration::from_millis(200), 1 << 20),
        |req| {
            let body = req.read_body().unwrap();
            Response::text(format!("{} {}", req.method(), String::from_utf8_lossy(&body)))
        },
    );
    let proxy = proxy_to(upstream.local_addr());
    let mut c = Client::new(proxy.addr);
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response().text(), "GET ");
    // The pooled connection timed out upstream; its FIN was sent before
    // the lingering close began, 200 ms before it is counted.
    assert!(
        upstream.handle().wait_until(PATIENCE, |s| s.closes(CloseReason::IdleTimeout) == 1),
        "{:?}",
        upstream.stats()
    );
    c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody");
    let r = c.read_response();
    assert_eq!((r.status, r.text().as_str()), (200, "POST body"));
    assert_eq!(upstream.stats().accepted, 2);
}

// ---------------------------------------------------------------------------
// Upstream failures.

#[test]
fn an_unreachable_upstream_gets_502() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = listener.local_addr().unwrap();
    drop(listener);
    let proxy = proxy_to(gone);
    let mut c = Client::new(proxy.addr);
    for request in ["GET / HTTP/1.1\r\nHost: x\r\n\r\n", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"] {
        c.send(request);
        let r = c.read_response();
        assert_eq!(r.status, 502);
        assert!(r.text().contains("cannot connect"), "{}", r.text());
        assert!(!r.closes());
    }
}

#[test]
fn invalid_upstream_responses_get_502() {
    // Each connection answers one request with the bytes named by its
    // target, then closes.
    let up = raw_upstream(|conn| {
        let Some(req) = conn.read_request() else { return };
        let bytes: &[u8] = match req.target.as_str() {
            "/not-http" => b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
            "/http2" => b"HTTP/2 200\r\n\r\n",
            "/bad-status" => b"HTTP/1.1 2000 OK\r\n\r\n",
            "/length-list" => b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok",
            "/length-twice" => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
            "/length-sign" => b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
            "/length-and-chunked" => {
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
            }
            "/gzip" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok",
            "/obs-fold" => b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 2\r\n\r\nok",
            "/space-before-colon" => b"HTTP/1.1 200 OK\r\nX-A : 1\r\nContent-Length: 2\r\n\r\nok",
            "/switching" => b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
            "/half-head" => b"HTTP/1.1 200 OK\r\nContent-Le",
            "/nothing" => b"",
            other => panic!("no such case {other}"),
        };
        let _ = conn.write(bytes);
    });
    let proxy = proxy_to(up.addr);
    let mut c = Client::new(proxy.addr);
    for case in [
        "/not-http",
        "/http2",
        "/bad-status",
        "/length-list",
        "/length-twice",
        "/length-sign",
        "/length-and-chunked",
        "/gzip",
        "/obs-fold",
        "/space-before-colon",
        "/switching",
        "/half-head",
        "/nothing",
    ] {
        c.send(format!("GET {case} HTTP/1.1\r\nHost: x\r\n\r\n"));
        let r = c.read_response();
        assert_eq!(r.status, 502, "{case}: {}", r.text());
        assert!(!r.closes(), "{case}");
    }
}

#[test]
fn unusual_but_valid_upstream_responses_are_relayed() {
    let up = raw_upstream(|conn| {
        let Some(req) = conn.read_request() else { return };
        let bytes: &[u8] = match req.target.as_str() {
            // Interim responses are absorbed; only the final one is relayed.
            "/interim" => {
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n\
                  HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
            }
            "/http10-until-close" => b"HTTP/1.0 200 OK\r\nX-Old: yes\r\n\r\nuntil close",
            "/head" => b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n",
            "/bare-lf" => b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
            other => panic!("no such case {other}"),
        };
        let _ = conn.write(bytes);
    });
    let proxy = proxy_to(up.addr);
    let mut c = Client::new(proxy.addr);

    c.send("GET /interim HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_one("GET").unwrap();
    assert_eq!((r.status, r.text().as_str(), r.header("link")), (201, "ok", None));

    c.send("GET /http10-until-close HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response();
    assert_eq!((r.framing, r.text().as_str()), ("chunked", "until close"));
    assert_eq!((r.header("x-old"), r.header("via")), (Some("yes"), Some("1.0 h1serve-proxy")));

    c.send("HEAD /head HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response_to("HEAD").unwrap();
    assert_eq!(r.header("content-length"), Some("1234"));

    c.send("GET /bare-lf HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response().text(), "ok");
}

#[test]
fn a_body_cut_off_upstream_is_cut_off_for_the_client() {
    let up = raw_upstream(|conn| {
        if conn.read_request().is_some() {
            let _ = conn.write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nonly5");
        }
    });
    let proxy = proxy_to(up.addr);
    // The head promised 10 bytes; the client must not get a complete-looking
    // response, so the proxy closes its connection after the 5 it has.
    let out = exchange_until_close(proxy.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let text = String::from_utf8_lossy(&out);
    assert_eq!(status_of(&out), 200);
    assert!(text.contains("Content-Length: 10\r\n") && text.ends_with("\r\n\r\nonly5"), "{text:?}");
}

// ---------------------------------------------------------------------------
// Command line.

#[test]
fn bad_command_lines_get_usage_and_exit_code_2() {
    for args in [
        &[][..],
        &["--listen", "127.0.0.1:0"],
        &["--upstream", "127.0.0.1:1"],
        &["--listen"],
        &["--listen", "127.0.0.1:0", "--upstream"],
        &["--listen", "127.0.0.1:0", "--upstream", "no-port"],
        &["--listen", "127.0.0.1:0", "--upstream", "host:http"],
        &["--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--upstream", "h:1"],
        &["--listen", "127.0.0.1:0", "--upstream", "h:1", "--bogus"],
    ] {
        let out = Command::new(example_path("proxy")).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage: proxy"), "{args:?}");
    }
}
