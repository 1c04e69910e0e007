//! Load and exhaustion, bounded and on loopback: crowds past the connection
//! cap, slow clients (slowloris), endless heads, chunk-size lines, trailers
//! and bodies, and clients that never read. Each attack must meet a limit
//! (431, 414, 400, 413) or a timeout (408, the write timeout), and every
//! connection slot and thread must come back when the clients leave.

mod common;

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use h1serve::{CloseReason, Handle, Response, Running, Server};

/// Far above every timeout these servers use (at most 300 ms): only a
/// server that ignores its timeouts makes a client wait this long.
const HANG_BOUND: Duration = Duration::from_secs(5);

/// Holds handlers until the test opens it; counts those waiting.
#[derive(Default)]
struct Gate {
    state: Mutex<(usize, bool)>,
    changed: Condvar,
}

impl Gate {
    fn pass(&self) {
        let mut s = self.state.lock().unwrap();
        s.0 += 1;
        self.changed.notify_all();
        let deadline = Instant::now() + PATIENCE;
        while !s.1 && Instant::now() < deadline {
            s = self.changed.wait_timeout(s, PATIENCE).unwrap().0;
        }
    }

    fn wait_for(&self, entered: usize) -> bool {
        let s = self.state.lock().unwrap();
        let (s, _) = self.changed.wait_timeout_while(s, PATIENCE, |s| s.0 < entered).unwrap();
        s.0 >= entered
    }

    fn open(&self) {
        self.state.lock().unwrap().1 = true;
        self.changed.notify_all();
    }
}

/// Records the highest `open` and `threads` the server reports until told
/// to stop. `wait_until` re-checks on every close and every few
/// milliseconds, so this samples without a sleep of its own.
fn watch(handle: &Handle, stop: &AtomicBool) -> (usize, usize) {
    let (mut open, mut threads) = (0, 0);
    handle.wait_until(Duration::from_secs(60), |s| {
        open = open.max(s.open);
        threads = threads.max(s.threads);
        stop.load(SeqCst)
    });
    (open, threads)
}

struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

fn all_released(running: &Running) {
    assert!(
        running.handle().wait_until(PATIENCE, |s| s.open == 0 && s.threads == s.parked),
        "slots or threads not released: {:?}",
        running.stats()
    );
}

#[test]
fn a_crowd_past_the_cap_gets_503_and_every_slot_comes_back() {
    const CAP: usize = 8;
    const CLIENTS: usize = 40;
    let gate = Arc::new(Gate::default());
    let hold = gate.clone();
    let running = start(Server::builder().max_connections(CAP).retry_after(3), move |req| {
        hold.pass();
        Response::text(req.path().to_string())
    });
    let (addr, handle) = (running.local_addr(), running.handle().clone());
    let stop = AtomicBool::new(false);
    thread::scope(|scope| {
        let watcher = scope.spawn(|| watch(&handle, &stop));
        // Stops the watcher even if an assertion below fails.
        let _stop = StopOnDrop(&stop);
        // CAP clients take every slot and stay busy in the handler.
        let mut busy: Vec<Client> = (0..CAP)
            .map(|i| {
                let mut c = Client::new(addr);
                c.send(format!("GET /busy/{i} HTTP/1.1\r\nHost: x\r\n\r\n"));
                c
            })
            .collect();
        assert!(gate.wait_for(CAP), "{:?}", running.stats());
        // The rest arrive at once: no slot is idle, so each gets 503 from the
        // thread waiting at the listener, and a clean close.
        let refused: Vec<_> = (CAP..CLIENTS)
            .map(|i| {
                scope.spawn(move || {
                    let mut c = Client::new(addr);
                    c.send(format!("GET /extra/{i} HTTP/1.1\r\nHost: x\r\n\r\n"));
                    let r = c.read_response();
                    (r.status, r.header("retry-after").map(str::to_string), r.closes(), c.at_eof())
                })
            })
            .collect();
        for t in refused {
            assert_eq!(t.join().unwrap(), (503, Some("3".to_string()), true, true));
        }
        let stats = running.stats();
        assert_eq!((stats.open, stats.busy, stats.over_capacity), (CAP, CAP, (CLIENTS - CAP) as u64), "{stats:?}");
        gate.open();
        for (i, c) in busy.iter_mut().enumerate() {
            assert_eq!(c.read_response().text(), format!("/busy/{i}"));
        }
        drop(busy);
        all_released(&running);
        stop.store(true, SeqCst);
        let (peak_open, peak_threads) = watcher.join().unwrap();
        // All slots were busy while the crowd arrived, so no connection was
        // being evicted: the cap held exactly, and refusals took no thread
        // of their own (one per busy connection, plus the one waiting at the
        // listener, which answered every 503).
        assert!(peak_open <= CAP && peak_threads <= CAP + 1, "peaks: open {peak_open}, threads {peak_threads}");
    });
}

#[test]
fn a_crowd_of_keep_alive_clients_churns_through_a_small_cap() {
    const CAP: usize = 8;
    const CLIENTS: usize = 40;
    const REQUESTS: usize = 5;
    let running = start(Server::builder().max_connections(CAP), |req| Response::text(req.path().to_string()));
    let addr = running.local_addr();
    let refused = AtomicUsize::new(0);
    let lost = AtomicUsize::new(0);
    // Each client makes its requests on a kept-alive connection; at the cap
    // a newcomer closes the connection idle the longest, or gets 503 when
    // all are busy. Either way the client reconnects, as RFC 9112 §9.3.1
    // expects of a client whose persistent connection closes.
    let clients: Vec<Option<Client>> = thread::scope(|scope| {
        let threads: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let (refused, lost) = (&refused, &lost);
                scope.spawn(move || {
                    let deadline = Instant::now() + PATIENCE;
                    let mut conn: Option<Client> = None;
                    let mut done = 0;
                    while done < REQUESTS {
                        assert!(Instant::now() < deadline, "client {i} starved after {done} responses");
                        let c = conn.get_or_insert_with(|| Client::new(addr));
                        let path = format!("/c{i}/r{done}");
                        if c.stream().write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).is_err() {
                            conn = None;
                            lost.fetch_add(1, SeqCst);
                            continue;
                        }
                        match c.read_response_to("GET") {
                            Ok(r) if r.status == 200 => {
                                assert_eq!(r.text(), path);
                                done += 1;
                            }
                            Ok(r) => {
                                assert_eq!(r.status, 503, "{r:?}");
                                refused.fetch_add(1, SeqCst);
                                conn = None;
                            }
                            // Closed while idle to make room: reconnect.
                            Err(_) => {
                                lost.fetch_add(1, SeqCst);
                                conn = None;
                            }
                        }
                    }
                    conn
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    // The crowd is done but still holds its connections: once the evicted
    // ones have finished closing, no more than the cap remain, all idle.
    assert!(running.handle().wait_until(PATIENCE, |s| s.open <= CAP && s.idle == s.open), "{:?}", running.stats());
    let stats = running.stats();
    assert_eq!(stats.requests, (CLIENTS * REQUESTS) as u64, "{stats:?}");
    eprintln!(
        "churn: {} responses, {} connections accepted, {} evicted, {} refused with 503, {} requests to retry",
        stats.requests,
        stats.accepted,
        stats.closes(CloseReason::Evicted),
        refused.load(SeqCst),
        lost.load(SeqCst)
    );
    drop(clients);
    all_released(&running);
}

/// One slow client at a time: connects, sends a head a byte at a time and
/// never finishes it. Returns what ended its connection: the status the
/// server sent (0 for none), and how long after the first byte. Once
/// `stop` is set it sends no more, but still waits for the server's
/// verdict, which the header deadline (counted from the first byte) bounds:
/// every connection holding a slot is cut, however late it started.
fn trickle(addr: SocketAddr, stop: &AtomicBool) -> (u16, Duration) {
    let mut s = connect(addr);
    // The read timeout paces the trickle: a byte every 50 ms.
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let started = Instant::now();
    if s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Slow: ").is_err() {
        return (0, started.elapsed());
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                assert!(started.elapsed() < HANG_BOUND, "a slow client kept its slot for {:?}", started.elapsed());
                if !stop.load(SeqCst) {
                    let _ = s.write_all(b"a");
                }
            }
            Err(_) => break,
        }
    }
    (status_of(&got), started.elapsed())
}

#[test]
fn slow_clients_cannot_hold_the_cap_past_the_header_deadline() {
    const CAP: usize = 4;
    const SLOW: usize = 3 * CAP;
    // Each slow client starts over after being cut off, this many times:
    // the server has no fairness between clients, so a legitimate client
    // racing twelve others for each freed slot may lose many races; the
    // budget bounds how long the attack (and the test) can last.
    const CUTS_EACH: usize = 2;
    let header_timeout = Duration::from_millis(300);
    let running = start(Server::builder().max_connections(CAP).header_timeout(header_timeout), |req| {
        Response::text(req.path().to_string())
    });
    let (addr, handle) = (running.local_addr(), running.handle());
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let (cut, refused, served_after, attempts) = thread::scope(|scope| {
        // Slow clients, three per slot, each reconnecting as soon as it
        // loses its connection (after a 503, once a slot is free).
        let slow: Vec<_> = (0..SLOW)
            .map(|_| {
                let stop = &stop;
                scope.spawn(move || {
                    let (mut cut, mut refused) = (0, 0);
                    while cut < CUTS_EACH && !stop.load(SeqCst) {
                        let (status, held) = trickle(addr, stop);
                        match status {
                            // RFC 9110 §15.5.9: the head did not arrive in time.
                            408 => {
                                assert!(held >= header_timeout, "cut off after {held:?}");
                                cut += 1;
                            }
                            503 => {
                                refused += 1;
                                handle.wait_until(PATIENCE, |s| s.open < CAP || stop.load(SeqCst));
                            }
                            // Closed while still idle, to make room for a
                            // newcomer: reconnect.
                            0 => {}
                            other => panic!("a slow client got {other}"),
                        }
                    }
                    (cut, refused)
                })
            })
            .collect();
        // Every slot held by a client that has started its head: none idle
        // (an idle one could be evicted, at once or after its grace) and
        // none being evicted (with one, `open` would pass the cap).
        assert!(handle.wait_until(PATIENCE, |s| s.open == CAP && s.busy == CAP), "{:?}", handle.stats());
        // A legitimate client tries, and waits for a free slot when refused.
        let mut attempts = 0;
        let served_after = loop {
            attempts += 1;
            assert!(started.elapsed() < PATIENCE, "never served in {attempts} attempts: {:?}", handle.stats());
            let mut c = Client::new(addr);
            c.send("GET /legit HTTP/1.1\r\nHost: x\r\n\r\n");
            match c.read_response_to("GET") {
                Ok(r) if r.status == 200 => break started.elapsed(),
                Ok(r) => assert_eq!(r.status, 503, "{r:?}"),
                Err(_) => {} // closed while idle: a slow newcomer took the slot
            }
            handle.wait_until(PATIENCE, |s| s.open < CAP);
        };
        stop.store(true, SeqCst);
        let (cut, refused) = slow.into_iter().map(|t| t.join().unwrap()).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        (cut, refused, served_after, attempts)
    });
    // The slots were held from before the first slow byte: the legitimate
    // client can only have been served once a header deadline had passed.
    assert!(served_after >= header_timeout, "served after {served_after:?}");
    assert!(cut >= CAP, "only {cut} slow connections were cut off");
    let stats = running.stats();
    assert!(stats.closes(CloseReason::HeaderTimeout) >= CAP as u64, "{stats:?}");
    eprintln!(
        "slowloris: legitimate client served after {served_after:?} in {attempts} attempts; \
         {cut} slow connections cut at the header deadline, {refused} refused with 503"
    );
    all_released(&running);
}

/// Sends `prefix`, then `unit` over and over, until the server cuts the
/// connection, while reading its response. Returns the response, how the
/// endless writer ended, and how many bytes it got out.
fn endless(addr: SocketAddr, prefix: &[u8], unit: &[u8]) -> (Resp, io::Error, usize) {
    let s = connect(addr);
    let mut w = s.try_clone().unwrap();
    let (prefix, unit) = (prefix.to_vec(), unit.to_vec());
    let writer = thread::spawn(move || {
        let mut sent = 0;
        let mut next: &[u8] = &prefix;
        loop {
            if let Err(e) = w.write_all(next) {
                return (e, sent);
            }
            sent += next.len();
            next = &unit;
        }
    });
    let mut c = Client::from_stream(s);
    let r = c.read_response_to("GET").expect("a response before the close");
    // The client never stops sending, so once the server's lingering close
    // has discarded its bound, the close may surface as a reset: either
    // way the connection ends.
    let _ = c.rest();
    let (error, sent) = writer.join().unwrap();
    (r, error, sent)
}

#[test]
fn endless_heads_bodies_and_trailers_meet_a_limit() {
    const MAX_BODY: u64 = 64 * 1024;
    let running = start(
        Server::builder()
            .max_body_bytes(MAX_BODY)
            .max_head_bytes(16 * 1024)
            .linger(Duration::from_millis(300), 256 * 1024),
        |req| {
            let _ = req.read_body();
            Response::text("read")
        },
    );
    let chunked = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    let kib = |b: u8| vec![b; 1024];
    let cases: Vec<(&str, String, Vec<u8>, u16)> = vec![
        // RFC 9112 §3: request line past its limit → 414.
        ("endless request line", "GET /".into(), kib(b'a'), 414),
        // RFC 9112 §3: a method longer than any implemented → 501.
        ("endless method", String::new(), kib(b'M'), 501),
        // RFC 6585 §5: header section past its limit → 431.
        ("endless field value", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".into(), kib(b'a'), 431),
        ("endless fields", "GET / HTTP/1.1\r\nHost: x\r\n".into(), b"X-F: v\r\n".to_vec(), 431),
        ("endless empty lines before the request", String::new(), b"\r\n".to_vec(), 431),
        // A chunk-size line is bounded, with its extensions (RFC 9112 §7.1.1
        // lets a server limit them).
        ("endless chunk-size digits", chunked.into(), kib(b'0'), 400),
        ("endless chunk extension", format!("{chunked}1;"), kib(b'e'), 400),
        // The body limit, whatever the framing (RFC 9110 §15.5.14).
        ("endless chunks", chunked.into(), [&b"400\r\n"[..], &kib(b'd'), b"\r\n"].concat(), 413),
        ("one huge chunk", format!("{chunked}fffffffffff\r\n"), kib(b'd'), 413),
        (
            "huge Content-Length",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n".into(),
            kib(b'd'),
            413,
        ),
        // Trailer sections are bounded like heads.
        ("endless trailers", format!("{chunked}0\r\n"), b"X-T: v\r\n".to_vec(), 431),
        ("endless trailer value", format!("{chunked}0\r\nX-T: "), kib(b'v'), 431),
    ];
    for (name, prefix, unit, status) in &cases {
        let started = Instant::now();
        let (r, error, sent) = endless(running.local_addr(), prefix.as_bytes(), unit);
        assert_eq!(r.status, *status, "{name}: {r:?}");
        assert!(r.closes(), "{name}");
        // The server cut the connection; it did not just stop reading (which
        // would leave the writer blocked until its timeout).
        assert!(
            !matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{name}: the writer ended with {error:?} after {:?}",
            started.elapsed()
        );
        // Bounded: the limit, the lingering close, and the socket buffers.
        assert!(sent < 64 << 20, "{name}: the server took {sent} bytes");
        assert_all_closed(&running);
    }
    let stats = running.stats();
    assert_eq!(stats.closes(CloseReason::BadRequest), cases.len() as u64, "{stats:?}");
}

#[test]
fn clients_that_never_read_are_cut_off_by_the_write_timeout() {
    let streamed_ended = Arc::new(AtomicBool::new(false));
    let ended = streamed_ended.clone();
    let running = start(
        Server::builder().write_timeout(Duration::from_millis(300)).linger(Duration::from_millis(100), 256 * 1024),
        move |req| {
            if req.path() == "/endless-stream" {
                let ended = ended.clone();
                // A stream that never ends on its own: only a failed write
                // stops it.
                return Response::stream(move |w| {
                    let r = loop {
                        if let Err(e) = w.write_all(&[b's'; 16 * 1024]) {
                            break Err(e);
                        }
                    };
                    ended.store(true, SeqCst);
                    r
                });
            }
            Response::bytes(vec![b'r'; 256 * 1024])
        },
    );
    let addr = running.local_addr();

    // Pipelines requests for large responses forever and reads nothing.
    let started = Instant::now();
    let s = connect(addr);
    let mut w = s.try_clone().unwrap();
    let writer = thread::spawn(move || {
        loop {
            if let Err(e) = w.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n") {
                return e;
            }
        }
    });
    assert!(running.handle().wait_until(PATIENCE, |s| s.closes(CloseReason::Io) == 1), "{:?}", running.stats());
    let error = writer.join().unwrap();
    assert!(!matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "{error:?}");
    assert!(started.elapsed() < HANG_BOUND, "cut off only after {:?}", started.elapsed());
    drop(s);
    assert_all_closed(&running);

    // One request for an endless stream, never read: the handler's write
    // fails, the stream ends, and the connection closes.
    let mut c = Client::new(addr);
    c.send("GET /endless-stream HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(running.handle().wait_until(PATIENCE, |s| s.closes(CloseReason::Io) == 2), "{:?}", running.stats());
    assert!(streamed_ended.load(SeqCst), "the endless stream is still running");
    drop(c);
    all_released(&running);
}
