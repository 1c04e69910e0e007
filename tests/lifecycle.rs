//! The life of a connection under pressure: timeouts, the connection cap,
//! the request cap, graceful close, shutdown, vanishing clients, events.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use h1serve::{CloseReason, Event, Response, Server};

/// A handler gate: requests to `/wait` block until the test opens it.
#[derive(Clone)]
struct Gate {
    entered: Arc<Mutex<mpsc::Sender<()>>>,
    release: Arc<Mutex<mpsc::Receiver<()>>>,
}

fn gate() -> (Gate, mpsc::Receiver<()>, mpsc::Sender<()>) {
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    (
        Gate { entered: Arc::new(Mutex::new(entered_tx)), release: Arc::new(Mutex::new(release_rx)) },
        entered_rx,
        release_tx,
    )
}

impl Gate {
    fn pass(&self) {
        self.entered.lock().unwrap().send(()).unwrap();
        let _ = self.release.lock().unwrap().recv_timeout(PATIENCE);
    }
}

fn gated(builder: h1serve::Builder, gate: Gate) -> h1serve::Running {
    start(builder, move |req| {
        if req.path() == "/wait" {
            gate.pass();
        }
        Response::text(req.path().to_string())
    })
}

fn get(c: &mut Client, path: &str) -> Resp {
    c.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
    c.read_response()
}

/// Asserts that nothing answers a request at `addr` (after shutdown): the
/// connect fails, or the connection ends without a byte.
fn assert_not_served(addr: std::net::SocketAddr) {
    let answer = TcpStream::connect(addr).map(|mut s| {
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        s.read(&mut [0u8; 1])
    });
    assert!(!matches!(answer, Ok(Ok(n)) if n > 0), "served after shutdown: {answer:?}");
}

/// `n` clients each in the gated handler at once (so each on its own
/// thread), asking to close after the response.
fn burst_of_busy_clients(addr: std::net::SocketAddr, n: usize, entered: &mpsc::Receiver<()>) -> Vec<Client> {
    let clients = (0..n)
        .map(|_| {
            let mut c = Client::new(addr);
            c.send("GET /wait HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            c
        })
        .collect();
    for _ in 0..n {
        entered.recv_timeout(PATIENCE).unwrap();
    }
    clients
}

#[test]
fn idle_connections_close_after_the_idle_timeout() {
    let running = start_echo_line(Server::builder().idle_timeout(Duration::from_millis(200)));
    let mut c = Client::new(running.local_addr());
    let started = Instant::now();
    assert_eq!(get(&mut c, "/").status, 200);
    assert!(c.at_eof(), "closed cleanly (FIN), not reset");
    assert!(started.elapsed() >= Duration::from_millis(200));
    drop(c);
    assert_all_closed(&running);
    assert_eq!(running.stats().closes(CloseReason::IdleTimeout), 1);
}

#[test]
fn the_header_deadline_counts_from_the_first_byte_not_per_read() {
    let timeout = Duration::from_millis(400);
    let running = start_echo_line(Server::builder().header_timeout(timeout));
    let mut c = Client::new(running.local_addr());
    let mut trickle = c.stream().try_clone().unwrap();
    let started = Instant::now();
    // A byte every 20 ms: every read makes progress, the head never ends.
    let trickler = thread::spawn(move || {
        let head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ";
        for b in head.iter().chain(std::iter::repeat_n(&b'a', 5000)) {
            if trickle.write_all(&[*b]).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
    });
    let r = c.read_response();
    assert_eq!(r.status, 408);
    assert!(r.closes());
    assert!(started.elapsed() >= timeout);
    drop(c);
    trickler.join().unwrap();
    assert_all_closed(&running);
    assert_eq!(running.stats().closes(CloseReason::HeaderTimeout), 1);
}

#[test]
fn a_stalled_body_gets_408() {
    let running = start(Server::builder().body_read_timeout(Duration::from_millis(200)), |req| {
        let _ = req.read_body();
        Response::text("read")
    });
    let mut c = Client::new(running.local_addr());
    c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf.");
    let r = c.read_response();
    assert_eq!(r.status, 408);
    assert!(r.closes());
    drop(c);
    assert_all_closed(&running);
    assert_eq!(running.stats().closes(CloseReason::BodyTimeout), 1);
}

#[test]
fn a_client_that_stops_reading_is_cut_off_by_the_write_timeout() {
    let running =
        start(Server::builder().write_timeout(Duration::from_millis(300)), |_| Response::bytes(vec![b'w'; 64 << 20]));
    let mut c = Client::new(running.local_addr());
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    // The client reads nothing; the server's writes stop making progress.
    assert!(running.handle().wait_until(PATIENCE, |s| s.closed() == 1), "{:?}", running.stats());
    assert_eq!(running.stats().closes(CloseReason::Io), 1, "{:?}", running.stats());
    drop(c);
}

#[test]
fn at_the_cap_busy_servers_answer_503_then_recover() {
    let (gate, entered, release) = gate();
    let running = gated(Server::builder().max_connections(2).retry_after(7), gate);
    let mut busy: Vec<Client> = (0..2).map(|_| Client::new(running.local_addr())).collect();
    for c in &mut busy {
        c.send("GET /wait HTTP/1.1\r\nHost: x\r\n\r\n");
        entered.recv_timeout(PATIENCE).unwrap();
    }
    let mut extra = Client::new(running.local_addr());
    extra.send("GET /extra HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = extra.read_response();
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("7"));
    assert!(r.closes());
    assert!(extra.at_eof());
    assert_eq!(running.stats().over_capacity, 1);
    assert_eq!(running.stats().open, 2, "the refused connection got no slot");
    for (i, c) in busy.iter_mut().enumerate() {
        release.send(()).unwrap();
        assert_eq!(c.read_response().text(), "/wait", "busy client {i}");
    }
    // Slots free once both threads are back waiting (a client can read its
    // response just before its thread marks the connection idle): a
    // newcomer is served normally (it evicts an idle one).
    assert!(running.handle().wait_until(PATIENCE, |s| s.idle == 2), "{:?}", running.stats());
    let mut later = Client::new(running.local_addr());
    assert_eq!(get(&mut later, "/later").text(), "/later");
}

#[test]
fn at_the_cap_the_longest_idle_connection_makes_room() {
    let running = start_echo_line(Server::builder().max_connections(2));
    let mut oldest = Client::new(running.local_addr());
    assert_eq!(get(&mut oldest, "/1").status, 200);
    assert!(running.handle().wait_until(PATIENCE, |s| s.idle == 1));
    let mut newer = Client::new(running.local_addr());
    assert_eq!(get(&mut newer, "/2").status, 200);
    assert!(running.handle().wait_until(PATIENCE, |s| s.idle == 2));
    let mut newcomer = Client::new(running.local_addr());
    assert_eq!(get(&mut newcomer, "/3").text(), "GET /3");
    // The oldest was closed gracefully: end-of-stream, no reset.
    assert!(oldest.at_eof());
    assert_eq!(get(&mut newer, "/still-open").text(), "GET /still-open");
    assert!(running.handle().wait_until(PATIENCE, |s| s.closes(CloseReason::Evicted) == 1));
    assert_eq!(running.stats().over_capacity, 0);
}

#[test]
fn the_last_allowed_request_says_close() {
    let running = start_echo_line(Server::builder().max_requests_per_connection(2));
    let mut c = Client::new(running.local_addr());
    assert!(!get(&mut c, "/1").closes());
    assert!(get(&mut c, "/2").closes());
    assert!(c.at_eof());
}

/// Reads a `len`-byte body in small pieces, slowly, after sending bytes the
/// server will never read: a close without lingering would turn them into
/// a reset that destroys the part of the response still queued.
fn read_big_response_slowly(c: &mut Client, len: usize, unread_extra: &[u8]) -> Result<(), String> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        c.reader.read_exact(&mut b).map_err(|e| format!("head: {e}"))?;
        head.push(b[0]);
    }
    c.send(unread_extra);
    let mut got = 0;
    let mut piece = vec![0u8; 16 * 1024];
    while got < len {
        let n = c.reader.read(&mut piece).map_err(|e| format!("after {got} of {len} bytes: {e}"))?;
        if n == 0 {
            return Err(format!("EOF after {got} of {len} bytes"));
        }
        got += n;
        if got % (1024 * 1024) < n {
            thread::sleep(Duration::from_millis(10));
        }
    }
    if c.at_eof() { Ok(()) } else { Err("no clean end-of-stream".into()) }
}

#[test]
fn closing_never_resets_away_a_response_still_queued() {
    const LEN: usize = 8 << 20;
    let running = start(default_builder(), |_| Response::bytes(vec![b'q'; LEN]));
    let mut c = Client::new(running.local_addr());
    c.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    read_big_response_slowly(&mut c, LEN, b"GET /never-read HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    drop(c);
    // HTTP/1.0, and the request cap: the same close.
    let mut c = Client::new(running.local_addr());
    c.send("GET / HTTP/1.0\r\n\r\n");
    read_big_response_slowly(&mut c, LEN, &[b'j'; 100_000]).unwrap();
    assert_all_closed(&running);
}

/// An idle client that neither closes nor sends after the shutdown's FIN
/// holds its connection only for the linger bound: then its thread is woken
/// by force, and `serve` returns long before the shutdown deadline.
#[test]
fn shutdown_waits_for_a_silent_idle_client_only_for_the_linger_bound() {
    let builder = default_builder().linger(Duration::from_millis(300), 1 << 20).shutdown_timeout(PATIENCE * 3);
    let running = start(builder, |_| Response::text("hi"));
    let mut c = Client::new(running.local_addr());
    assert_eq!(get(&mut c, "/").status, 200);
    let handle = running.handle().clone();
    assert!(handle.wait_until(PATIENCE, |s| s.idle == 1), "{:?}", handle.stats());
    let started = Instant::now();
    running.shutdown().unwrap();
    assert!(
        started.elapsed() < PATIENCE,
        "waited {:?}: the shutdown deadline, not the linger bound",
        started.elapsed()
    );
    assert!(c.at_eof(), "no FIN");
    assert_eq!(handle.stats().closes(CloseReason::Shutdown), 1, "{:?}", handle.stats());
}

/// With a shutdown deadline before the linger bound, silent idle clients
/// are cut at the deadline, and `serve` returns with their connections
/// closed and counted, not with their threads still ending.
#[test]
fn idle_connections_cut_at_the_shutdown_deadline_are_closed_when_serve_returns() {
    const IDLE: usize = 32;
    let builder = default_builder().linger(PATIENCE, 1 << 20).shutdown_timeout(Duration::from_millis(100));
    let running = start(builder, |_| Response::text("hi"));
    let handle = running.handle().clone();
    let mut clients: Vec<Client> = (0..IDLE).map(|_| Client::new(running.local_addr())).collect();
    for c in &mut clients {
        assert_eq!(get(c, "/").status, 200);
    }
    assert!(handle.wait_until(PATIENCE, |s| s.idle == IDLE), "{:?}", handle.stats());
    running.shutdown().unwrap();
    let stats = handle.stats();
    assert_eq!((stats.open, stats.closes(CloseReason::Shutdown)), (0, IDLE as u64), "{stats:?}");
}

/// At shutdown an idle connection is sent its FIN behind whatever it still
/// has queued, and its read half is left open: a late request from a client
/// still reading a large response is read and discarded, and the response
/// arrives whole. (Shutting the read half first, as it once did to wake the
/// connection's thread, makes Linux answer that request with a reset that
/// cut the response short.)
#[test]
fn shutdown_never_resets_away_a_response_still_queued_on_an_idle_connection() {
    const LEN: usize = 3 << 20;
    let running = start(default_builder(), |_| Response::bytes(vec![b's'; LEN]));
    let handle = running.handle().clone();
    let mut c = Client::new(running.local_addr());
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        c.reader.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    // The whole response is in the socket buffers, not yet read: the
    // connection is idle.
    assert!(handle.wait_until(PATIENCE, |s| s.idle == 1), "{:?}", handle.stats());
    handle.shutdown();
    // A server that shut the read half would close at once: give it the
    // time to (the grace of the close is the linger timeout, 2 s).
    handle.wait_until(Duration::from_millis(200), |s| s.closed() == 1);
    c.send("GET /late HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut body = Vec::new();
    c.reader.read_to_end(&mut body).unwrap_or_else(|e| panic!("after {} of {LEN} bytes: {e}", body.len()));
    assert_eq!(body.len(), LEN);
    drop(c);
    running.join().unwrap();
    assert_eq!(handle.stats().closes(CloseReason::Shutdown), 1, "{:?}", handle.stats());
}

#[test]
fn threads_not_needed_for_the_idle_thread_timeout_exit_down_to_one() {
    const BUSY: usize = 4;
    let (gate, entered, release) = gate();
    let running = gated(Server::builder().idle_thread_timeout(Duration::from_millis(50)), gate);
    let (addr, handle) = (running.local_addr(), running.handle().clone());
    let mut clients = burst_of_busy_clients(addr, BUSY, &entered);
    for _ in 0..BUSY {
        release.send(()).unwrap();
    }
    for c in &mut clients {
        assert_eq!(c.read_response().text(), "/wait");
    }
    drop(clients);
    // The burst left five threads; once they wait unneeded, all but one go.
    assert!(handle.wait_until(PATIENCE, |s| s.open == 0 && s.threads == 1 && s.parked == 1), "{:?}", handle.stats());
    // The connections that told them to go were neither served nor counted.
    let stats = handle.stats();
    assert_eq!((stats.accepted, stats.requests, stats.closed()), (BUSY as u64, BUSY as u64, BUSY as u64), "{stats:?}");
    let mut c = Client::new(addr);
    assert_eq!(get(&mut c, "/after").text(), "/after");
}

/// A zero idle-thread timeout is taken as 1 ms. Taken as it was, the
/// serving thread trimmed in a loop that never waited, holding the pool
/// lock every connection thread needs to reach `accept`: nothing was
/// served.
#[test]
fn a_zero_idle_thread_timeout_still_serves() {
    let running =
        start(Server::builder().idle_thread_timeout(Duration::ZERO), |req| Response::text(req.path().to_string()));
    let mut c = Client::new(running.local_addr());
    assert_eq!(get(&mut c, "/a").text(), "/a");
    assert!(running.handle().wait_until(PATIENCE, |s| s.requests == 1), "{:?}", running.stats());
}

#[test]
fn the_lingering_close_does_not_hold_the_connection_thread() {
    // A long linger: only the client's close (or the bound) ends it.
    let running = start(default_builder().linger(Duration::from_secs(60), 1 << 20), |_| Response::text("bye"));
    let mut c = Client::new(running.local_addr());
    c.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(c.read_response().text(), "bye");
    assert!(c.at_eof());
    // The client keeps its end open, so the socket lingers, but not on the
    // connection's thread: that one is back at the listener.
    assert!(running.handle().wait_until(PATIENCE, |s| s.open == 0 && s.threads == s.parked), "{:?}", running.stats());
    // Still lingering: late bytes are read and discarded, never answered
    // with a reset.
    c.send(vec![b'l'; 100_000]);
    assert!(c.at_eof(), "reset after the close");
}

#[test]
fn shutdown_returns_after_the_lingering_closes() {
    const LINGER: Duration = Duration::from_millis(300);
    let running = start(default_builder().linger(LINGER, 1 << 20), |_| Response::text("bye"));
    let started = Instant::now();
    let mut c = Client::new(running.local_addr());
    c.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(c.read_response().text(), "bye");
    // The client never closes, so the socket lingers its whole bound. A
    // process that exits when `serve` returns must not reset a response
    // still queued, so `serve` returns only after that.
    running.shutdown().unwrap();
    assert!(started.elapsed() >= LINGER, "returned after {:?}", started.elapsed());
    assert!(c.at_eof());
}

#[test]
fn the_shutdown_timeout_bounds_the_lingering_closes_too() {
    // A client that never closes would hold its socket for the whole
    // linger bound; the shutdown timeout, much shorter, ends it first.
    const LINGER: Duration = Duration::from_secs(10);
    let builder = default_builder().linger(LINGER, 1 << 20).shutdown_timeout(Duration::from_millis(200));
    let running = start(builder, |_| Response::text("bye"));
    let started = Instant::now();
    let mut c = Client::new(running.local_addr());
    c.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(c.read_response().text(), "bye");
    running.shutdown().unwrap();
    // The shutdown timeout and the grace of a close that began just before
    // it, 0.45 s: far below the linger bound, with room for a loaded machine.
    assert!(started.elapsed() < LINGER / 2, "returned after {:?}", started.elapsed());
    assert!(c.at_eof());
}

#[test]
fn idle_threads_wait_at_the_listener_up_to_the_bound_and_leave_at_shutdown() {
    const BUSY: usize = 5;
    let (gate, entered, release) = gate();
    let running = gated(Server::builder().max_idle_threads(2), gate);
    let (addr, handle) = (running.local_addr(), running.handle().clone());
    let mut clients = burst_of_busy_clients(addr, BUSY, &entered);
    // A thread per busy connection, and one more waiting at the listener.
    assert!(handle.wait_until(PATIENCE, |s| s.threads == BUSY + 1 && s.parked == 1), "{:?}", handle.stats());
    for _ in 0..BUSY {
        release.send(()).unwrap();
    }
    for c in &mut clients {
        assert_eq!(c.read_response().text(), "/wait");
        assert!(c.at_eof());
    }
    drop(clients);
    // Back at the listener, two at most; the others exited.
    assert!(handle.wait_until(PATIENCE, |s| s.open == 0 && s.threads == 2 && s.parked == 2), "{:?}", handle.stats());
    let mut c = Client::new(addr);
    assert_eq!(get(&mut c, "/again").text(), "/again");
    drop(c);
    assert!(handle.wait_until(PATIENCE, |s| s.open == 0 && s.parked == 2), "{:?}", handle.stats());
    running.shutdown().unwrap();
    // Each waiting thread was woken, and left; the port is closed.
    assert!(handle.wait_until(PATIENCE, |s| s.threads == 0), "{:?}", handle.stats());
    assert_not_served(addr);
}

#[test]
fn error_closes_are_graceful_too() {
    let running = start(Server::builder().max_body_bytes(10), |_| Response::text("x"));
    for request in ["GET / HTTP/1.1\r\n\r\n", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n"] {
        let mut c = Client::new(running.local_addr());
        c.send(request);
        let mut first = [0u8; 1];
        c.reader.read_exact(&mut first).unwrap();
        // More bytes arrive after the server decided to close.
        c.send(vec![b'g'; 200_000]);
        let rest = c.rest().expect("the whole error response, then EOF, no reset");
        assert!(String::from_utf8_lossy(&rest).contains("Connection: close"));
    }
}

#[test]
fn shutdown_closes_idle_connections_first_and_lets_busy_ones_finish() {
    let (gate, entered, release) = gate();
    let running = gated(Server::builder().idle_timeout(Duration::from_secs(600)), gate);
    let mut idle = Client::new(running.local_addr());
    assert_eq!(get(&mut idle, "/").status, 200);
    let mut busy = Client::new(running.local_addr());
    busy.send("GET /wait HTTP/1.1\r\nHost: x\r\n\r\n");
    entered.recv_timeout(PATIENCE).unwrap();
    assert!(running.handle().wait_until(PATIENCE, |s| s.idle == 1));
    let addr = running.local_addr();
    let handle = running.handle().clone();
    let stopper = thread::spawn(move || running.shutdown());
    // Idle: sent its FIN now, while the busy request is still running
    // (with a 600 s idle timeout, only the shutdown closes it); once its
    // client closes too, its thread is done.
    assert!(idle.at_eof());
    drop(idle);
    assert!(handle.wait_until(PATIENCE, |s| s.open == 1));
    release.send(()).unwrap();
    let r = busy.read_response();
    assert_eq!(r.text(), "/wait");
    assert!(r.closes(), "in-flight requests are answered with close");
    assert!(busy.at_eof());
    stopper.join().unwrap().unwrap();
    let stats = handle.stats();
    assert_eq!((stats.open, stats.closes(CloseReason::Shutdown)), (0, 2), "{stats:?}");
    // No longer accepting.
    assert_not_served(addr);
}

#[test]
fn shutdown_gives_up_on_handlers_past_the_deadline() {
    let (gate, entered, release) = gate();
    let running = gated(Server::builder().shutdown_timeout(Duration::from_millis(200)), gate);
    let mut busy = Client::new(running.local_addr());
    // Its body only begun, and not read by the handler: once cut, the body
    // cannot be skipped either.
    busy.send("POST /wait HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc");
    entered.recv_timeout(PATIENCE).unwrap();
    // A second connection is mid-head.
    let mut half = Client::new(running.local_addr());
    half.send("GET /half HTTP/1.1\r\nHost: x\r\nX-Half");
    let handle = running.handle().clone();
    assert!(handle.wait_until(PATIENCE, |s| s.busy == 2), "{:?}", handle.stats());
    // Returns although the handler is still blocked.
    running.shutdown().unwrap();
    release.send(()).unwrap();
    // Both were cut at the deadline: closed by the shutdown, not by an I/O
    // error or an unread body of their own, whatever their threads saw.
    assert!(handle.wait_until(PATIENCE, |s| s.closed() == 2), "{:?}", handle.stats());
    assert_eq!(handle.stats().closes(CloseReason::Shutdown), 2, "{:?}", handle.stats());
}

#[test]
fn vanishing_clients_release_their_connection_and_thread() {
    let running = start(default_builder(), |req| {
        let _ = req.read_body();
        Response::bytes(vec![b'v'; 32 << 20])
    });
    // Mid-head, mid-body, and mid-response (a large one, unread).
    for request in [
        &b"GET / HTTP/1.1\r\nHost: x\r\nX-Half"[..],
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly some",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let mut s = connect(running.local_addr());
        s.write_all(request).unwrap();
        if request.ends_with(b"\r\n\r\n") {
            let mut first = [0u8; 1];
            s.read_exact(&mut first).unwrap();
        }
        drop(s);
    }
    assert!(running.handle().wait_until(PATIENCE, |s| s.open == 0 && s.threads == s.parked), "{:?}", running.stats());
    assert_eq!(running.stats().closes(CloseReason::Io), 3, "{:?}", running.stats());
    let mut c = Client::new(running.local_addr());
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response().body.len(), 32 << 20);
}

#[test]
fn failing_to_make_a_thread_refuses_that_connection_and_keeps_serving() {
    // No system can give a thread a 64 TiB stack: every spawn fails.
    let running = start_echo_line(Server::builder().thread_stack_size(1 << 46));
    for _ in 0..2 {
        let mut c = Client::new(running.local_addr());
        c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(c.read_response().status, 503);
    }
    let stats = running.stats();
    // Counted as refused for want of capacity, as at the cap.
    assert_eq!((stats.open, stats.accepted, stats.over_capacity), (0, 2, 2), "{stats:?}");
}

#[test]
fn events_report_each_step_and_the_close_reason() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let log = events.clone();
    let running = start_echo_line(Server::builder().on_event(move |e| {
        let line = match e {
            Event::Opened { .. } => "opened".to_string(),
            Event::Request { target, status, .. } => format!("request {target} {status}"),
            Event::Idle { .. } => "idle".to_string(),
            Event::Closed { reason, requests, .. } => format!("closed {reason} after {requests}"),
            other => format!("{other:?}"),
        };
        log.lock().unwrap().push(line);
    }));
    let mut c = Client::new(running.local_addr());
    assert_eq!(get(&mut c, "/a").status, 200);
    c.send("GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    c.read_response();
    drop(c);
    assert_all_closed(&running);
    assert_eq!(
        *events.lock().unwrap(),
        ["opened", "idle", "request /a 200", "idle", "request /b 200", "closed client-requested-close after 2"]
    );
}

#[test]
fn a_client_that_never_reads_cannot_stall_others() {
    let running = start(Server::builder().write_timeout(Duration::from_millis(300)), |req| {
        if req.path() == "/huge" { Response::bytes(vec![0u8; 64 << 20]) } else { Response::text("ok") }
    });
    let mut stuck = Client::new(running.local_addr());
    stuck.send("GET /huge HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut other = Client::new(running.local_addr());
    assert_eq!(get(&mut other, "/").text(), "ok");
    drop(stuck);
    let err = TcpStream::connect(running.local_addr()).and_then(|mut s| s.write_all(b"x")).err();
    assert!(err.is_none_or(|e| e.kind() != ErrorKind::ConnectionRefused));
}

#[test]
fn empty_lines_between_requests_leave_the_connection_idle() {
    // Some clients send CRLF after a request body (RFC 9112 §2.2 asks the
    // server to ignore it). It must not start the header deadline: with a
    // 200 ms header timeout, a 408 would arrive well within 600 ms.
    let running = start(
        Server::builder().header_timeout(Duration::from_millis(200)).idle_timeout(Duration::from_secs(30)),
        |req| Response::bytes(req.read_body().unwrap()),
    );
    let mut c = Client::new(running.local_addr());
    c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi\r\n");
    assert_eq!(c.read_response().text(), "hi");
    c.assert_silent_for(Duration::from_millis(600), "the idle connection got a response nobody asked for");
    c.send("\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response().status, 200);
    assert_eq!(running.stats().closes(CloseReason::HeaderTimeout), 0);
}

#[test]
fn panics_in_body_readers_and_event_hooks_cost_only_the_connection() {
    struct Exploding;
    impl Read for Exploding {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            panic!("the body's reader fails")
        }
    }
    let running = start(
        Server::builder().on_event(|e| {
            if matches!(e, Event::Closed { .. } | Event::Idle { .. }) {
                panic!("the hook fails");
            }
        }),
        |req| if req.path() == "/boom" { Response::from_reader(Exploding, 10) } else { Response::text("ok") },
    );
    for _ in 0..3 {
        let mut c = Client::new(running.local_addr());
        c.send("GET /boom HTTP/1.1\r\nHost: x\r\n\r\n");
        let r = c.read_response_to("GET");
        assert!(r.is_err(), "the body cannot look complete: {r:?}");
    }
    let mut c = Client::new(running.local_addr());
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response().text(), "ok");
    drop(c);
    assert!(
        running.handle().wait_until(PATIENCE, |s| s.open == 0 && s.threads == s.parked && s.closed() == 4),
        "{:?}",
        running.stats()
    );
    assert_eq!(running.stats().closes(CloseReason::HandlerPanicked), 3);
}

#[test]
fn empty_lines_do_not_restart_the_idle_timeout() {
    // RFC 9112 §2.2: a server skips empty lines before a request line. A
    // client that sends only those is still idle, and its idle period
    // ends at the idle timeout however often it sends one.
    const IDLE: Duration = Duration::from_millis(300);
    let idle_events = Arc::new(Mutex::new(0));
    let count = idle_events.clone();
    let builder = default_builder().idle_timeout(IDLE).on_event(move |e| {
        if let Event::Idle { .. } = e {
            *count.lock().unwrap() += 1;
        }
    });
    let running = start(builder, |_| Response::text("hi"));
    let handle = running.handle().clone();
    let mut c = connect(running.local_addr());
    let mut writer = c.try_clone().unwrap();
    let (stop, stopped) = mpsc::channel::<()>();
    let trickler = thread::spawn(move || {
        // The client's pace, well inside the idle timeout.
        while stopped.recv_timeout(IDLE / 6).is_err() {
            if writer.write_all(b"\r\n").is_err() {
                break;
            }
        }
    });
    let closed = handle.wait_until(PATIENCE, |s| s.closes(CloseReason::IdleTimeout) == 1);
    let _ = stop.send(());
    trickler.join().unwrap();
    assert!(closed, "{:?}", handle.stats());
    // Closed gracefully, without a response: nothing was asked.
    let mut rest = Vec::new();
    assert!(c.read_to_end(&mut rest).is_ok_and(|_| rest.is_empty()), "{rest:?}");
    // One idle period, reported once.
    assert_eq!(*idle_events.lock().unwrap(), 1);
}

#[test]
fn empty_lines_keep_an_idle_connection_first_in_line_for_eviction() {
    // A went idle before B; an empty line from A is no request, so at the
    // cap A is still the connection idle the longest.
    let running = start(default_builder().max_connections(2), |_| Response::text("hi"));
    let handle = running.handle().clone();
    let mut a = Client::new(running.local_addr());
    assert_eq!(get(&mut a, "/").status, 200);
    assert!(handle.wait_until(PATIENCE, |s| s.idle == 1), "{:?}", handle.stats());
    let mut b = Client::new(running.local_addr());
    assert_eq!(get(&mut b, "/").status, 200);
    assert!(handle.wait_until(PATIENCE, |s| s.idle == 2), "{:?}", handle.stats());
    // The CR makes A busy (an empty line has begun), the LF idle again.
    a.send("\r");
    assert!(handle.wait_until(PATIENCE, |s| s.idle == 1), "{:?}", handle.stats());
    a.send("\n");
    assert!(handle.wait_until(PATIENCE, |s| s.idle == 2), "{:?}", handle.stats());
    let mut newcomer = Client::new(running.local_addr());
    assert_eq!(get(&mut newcomer, "/").status, 200);
    assert!(a.at_eof(), "A, idle the longest, makes room");
    assert_eq!(get(&mut b, "/again").status, 200);
    // Counted when A's thread has finished closing it.
    assert!(handle.wait_until(PATIENCE, |s| s.closes(CloseReason::Evicted) == 1), "{:?}", handle.stats());
}

#[test]
fn a_half_received_empty_line_leaves_no_deadline_for_the_next_request() {
    // An empty line split between its CR and LF: while only the CR is
    // here, the head deadline runs; once the line is skipped, it must not
    // carry over to the request that follows much later.
    // Long enough that the head's second piece arrives within it even on
    // a loaded machine.
    let header_timeout = Duration::from_secs(2);
    let running = start(default_builder().header_timeout(header_timeout), |_| Response::text("hi"));
    let handle = running.handle().clone();
    let mut c = Client::new(running.local_addr());
    assert!(handle.wait_until(PATIENCE, |s| s.idle == 1), "{:?}", handle.stats());
    c.send("\r");
    assert!(handle.wait_until(PATIENCE, |s| s.busy == 1), "{:?}", handle.stats());
    c.send("\n");
    assert!(handle.wait_until(PATIENCE, |s| s.idle == 1), "{:?}", handle.stats());
    // Idle past the header timeout: time is what is under test.
    thread::sleep(header_timeout + Duration::from_millis(500));
    // A head in two pieces, so that the server waits for its rest.
    c.send("GET / HTTP/1.1\r\n");
    assert!(handle.wait_until(PATIENCE, |s| s.busy == 1), "{:?}", handle.stats());
    c.send("Host: x\r\n\r\n");
    assert_eq!(c.read_response().status, 200);
}

#[test]
fn a_handler_can_stop_its_own_server_and_its_response_is_sent() {
    // An OAuth callback: the handler that gets the code stops the server.
    // `Running::shutdown` and dropping `Running` wait for `serve`, which
    // waits for this handler: from here they must only begin the shutdown.
    for how in ["shutdown", "drop", "join"] {
        let own: Arc<Mutex<Option<h1serve::Running>>> = Arc::default();
        let taken = own.clone();
        let running = start(default_builder().shutdown_timeout(Duration::from_secs(60)), move |req| {
            let Some(running) = taken.lock().unwrap().take() else { return Response::status(500) };
            let said = match how {
                "shutdown" => format!("{:?}", running.shutdown()),
                "drop" => {
                    drop(running);
                    "dropped".into()
                }
                _ => {
                    let handle = running.handle().clone();
                    let joined = running.join().map_err(|e| e.kind());
                    let serving = !handle.is_shutting_down();
                    handle.shutdown();
                    format!("{joined:?} serving={serving}")
                }
            };
            Response::text(format!("code={} {said}", req.query_param("code").unwrap_or_default()))
        });
        let (addr, handle) = (running.local_addr(), running.handle().clone());
        *own.lock().unwrap() = Some(running);
        let mut c = Client::new(addr);
        c.send("GET /callback?code=42 HTTP/1.1\r\nHost: x\r\n\r\n");
        let r = c.read_response();
        let expected = match how {
            "shutdown" => "code=42 Ok(())",
            "drop" => "code=42 dropped",
            _ => "code=42 Err(Deadlock) serving=true",
        };
        assert_eq!(r.text(), expected);
        assert!(r.closes() && c.at_eof(), "{how}: a shutting-down server closes after the response");
        assert!(handle.wait_until(PATIENCE, |s| s.open == 0), "{how}: {:?}", handle.stats());
        assert!(handle.is_shutting_down());
    }
}

#[test]
fn refusals_are_reported_whether_the_head_or_the_body_broke_a_rule() {
    let refused = Arc::new(Mutex::new(Vec::new()));
    let log = refused.clone();
    let builder = Server::builder().max_body_bytes(10).on_event(move |e| {
        if let Event::Refused { error, .. } = e {
            log.lock().unwrap().push(error.status());
        }
    });
    let running = start(builder, |req| match req.read_body() {
        Ok(_) => Response::text("read"),
        Err(_) => Response::status(500), // the server answers the body's error itself
    });
    let addr = running.local_addr();
    // A head without Host: refused before the handler runs.
    assert_eq!(status_of(&exchange_until_close(addr, b"GET / HTTP/1.1\r\n\r\n")), 400);
    // A chunked body over the limit: found while the handler reads it.
    let over = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nc\r\ntwelve bytes\r\n0\r\n\r\n";
    assert_eq!(status_of(&exchange_until_close(addr, over)), 413);
    assert_all_closed(&running);
    assert_eq!(*refused.lock().unwrap(), [400, 413]);
}
