//! Graceful ("lingering") close: how the server ends a connection without
//! destroying the response it has just written (RFC 9112 §9.6).
//!
//! TCP is full duplex. If the server closes its socket while bytes from the
//! client are still unread in the receive queue, or arrive after the close,
//! the kernel answers with a RST instead of a FIN, and the RST makes the
//! client's kernel discard data it has not yet handed to the application:
//! the client sees "connection reset by peer" where the response should
//! have been. It happens whenever the client sent more than we read (a
//! pipelined request after `Connection: close`, a body we refused with 413)
//! and is most visible with large responses still queued when we close.
//!
//! So the server closes in three steps, for every close it initiates:
//! 1. write out everything buffered;
//! 2. `shutdown(Write)`: our FIN goes out after the last byte of the
//!    response, so the client reads the whole response, then end-of-stream;
//! 3. read and discard input until the client closes too, or a time or byte
//!    bound runs out (nginx's `lingering_time`), then drop the socket.
//!
//! The bounds matter: a client that never closes must not hold the thread.
//!
//! Step 3 is the only one that waits on the client, so it is done for many
//! sockets at once by one lingering thread (see [`Lingerer`]), and the
//! connection's thread goes back to serving.

use std::io::{ErrorKind, Read};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Most sockets handed to the lingering thread at once, queued or held.
/// Past it a connection's own thread lingers (see [`Lingerer::close`]), and
/// a refused connection is dropped.
const LINGERING_MAX: usize = 1024;
/// How long the lingering thread sleeps between passes over its sockets,
/// at most: a socket handed off waits up to this for its first read.
const PASS_INTERVAL: Duration = Duration::from_millis(10);
/// When a socket that gave at least `SENDING_BYTES` in a pass is read
/// again: a client still sending at speed (the rest of a body the handler
/// did not read) must not be held to the pace of the passes, or its upload
/// would crawl (one receive buffer per 10 ms pass) and run into the linger
/// timeout before it is done.
const SENDING_INTERVAL: Duration = Duration::from_millis(1);
/// Less than this in a pass is a trickle, read at the pace of the passes:
/// a client sending a byte now and then must not wake the thread every
/// millisecond.
const SENDING_BYTES: u64 = 16 * 1024;
/// Longest wait between two reads of one socket. A socket found quiet is
/// read half as often each time, up to this: most clients close within a
/// pass, and one that never does costs a few reads, not one every pass.
const QUIET_MAX: Duration = Duration::from_millis(160);
/// Most bytes read from one socket in one pass, so that a client that keeps
/// sending cannot hold the thread.
const PASS_BYTES: u64 = 64 * 1024;
/// At shutdown every socket is dropped by the shutdown deadline, except
/// that one whose close began just before it still lingers this long (or
/// its own bound, if shorter): input already on its way must arrive and be
/// read, or the deadline would cause the very reset lingering prevents.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(250);

/// A socket whose write half is shut, read until its client closes.
struct Draining {
    stream: Arc<TcpStream>,
    /// Its place among the sockets handed off, given back when it is dropped.
    _ticket: Ticket,
    deadline: Instant,
    /// The earliest a shutdown may cut it off (see `SHUTDOWN_GRACE`).
    grace_end: Instant,
    budget: u64,
    /// When to read it next, and the wait after that if it is still quiet.
    next_read: Instant,
    quiet: Duration,
}

/// One of the places `Lingerer::max` allows: taken when a socket is handed
/// off, given back when the socket is dropped, wherever that happens (done,
/// refused by the thread, or still queued at the end).
struct Ticket(Arc<AtomicUsize>);

impl Ticket {
    fn take(taken: &Arc<AtomicUsize>, max: usize) -> Option<Ticket> {
        if taken.fetch_add(1, SeqCst) >= max {
            taken.fetch_sub(1, SeqCst);
            return None;
        }
        Some(Ticket(taken.clone()))
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

/// The lingering close of many sockets, by one thread.
///
/// Once a connection's response is out and its FIN sent, all that is left
/// is to wait for the client's FIN. Waiting on the connection's own thread
/// costs a blocking read and a wake-up per connection, and holds the thread
/// for the client's round trip. So the socket is handed to one lingering
/// thread that reads every socket it holds without blocking, once per pass,
/// and drops each at end-of-stream or at its bounds. When that thread is
/// full (or cannot be started) the connection's own thread lingers, so the
/// bound on sockets held never weakens the close.
pub(crate) struct Lingerer {
    state: Mutex<State>,
    /// Sockets handed off and not yet dropped, queued or held.
    taken: Arc<AtomicUsize>,
    /// The most of them at once.
    max: usize,
}

enum State {
    NotStarted,
    Running(SyncSender<Message>, JoinHandle<()>),
    Stopped,
}

/// What the lingering thread is sent.
enum Message {
    /// A socket to drain.
    Drain(Draining),
    /// Drop every socket still held by this instant (each after its grace):
    /// the server is shutting down, and its shutdown timeout bounds the
    /// lingering too.
    CutOff(Instant),
}

impl Lingerer {
    pub(crate) fn new() -> Lingerer {
        Lingerer::with_max(LINGERING_MAX)
    }

    pub(crate) fn with_max(max: usize) -> Lingerer {
        Lingerer { state: Mutex::new(State::NotStarted), taken: Arc::default(), max }
    }

    /// Closes `stream` gracefully (steps 2 and 3 above): hands the drain to
    /// the lingering thread if it has room, else drains here into
    /// `scratch` (lent by the caller, which no longer needs it).
    pub(crate) fn close(&self, stream: &Arc<TcpStream>, scratch: &mut [u8], timeout: Duration, max_bytes: u64) {
        if stream.shutdown(Shutdown::Write).is_err() {
            // Not connected any more: nothing to protect.
            return;
        }
        if !self.hand_off(stream.clone(), timeout, max_bytes) {
            drain(stream, scratch, timeout, max_bytes);
        }
    }

    /// Hands a socket whose write half is shut to the lingering thread, to
    /// be read for at most `timeout` and `max_bytes`. False when the thread
    /// is full, stopped, or cannot be started.
    pub(crate) fn hand_off(&self, stream: Arc<TcpStream>, timeout: Duration, max_bytes: u64) -> bool {
        let Some(ticket) = Ticket::take(&self.taken, self.max) else { return false };
        let now = Instant::now();
        let draining = Draining {
            stream,
            _ticket: ticket,
            deadline: now + timeout,
            grace_end: now + timeout.min(SHUTDOWN_GRACE),
            budget: max_bytes,
            next_read: now,
            quiet: PASS_INTERVAL,
        };
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let State::NotStarted = *state {
            // Room for every socket `max` allows, and the cut-off.
            let (tx, rx) = mpsc::sync_channel(self.max + 1);
            match thread::Builder::new().name("h1serve-linger".into()).spawn(move || linger_all(rx)) {
                Ok(thread) => *state = State::Running(tx, thread),
                Err(_) => return false,
            }
        }
        match &*state {
            State::Running(tx, _) => tx.try_send(Message::Drain(draining)).is_ok(),
            _ => false,
        }
    }

    /// Takes no more sockets, and waits for those held to be done: each by
    /// its own deadline, and all by `cut_off` (or `SHUTDOWN_GRACE` after
    /// they were handed off, if that is later).
    pub(crate) fn stop(&self, cut_off: Instant) {
        let state = std::mem::replace(&mut *self.state.lock().unwrap_or_else(|p| p.into_inner()), State::Stopped);
        if let State::Running(tx, thread) = state {
            // Sent after every socket handed off (none can be handed off
            // now), so it reaches the thread when all of them are held.
            let _ = tx.send(Message::CutOff(cut_off));
            drop(tx); // the thread ends once the channel is empty and closed
            let _ = thread.join();
        }
    }
}

/// Discards input from `stream` (its write half already shut) until the
/// client closes, or `timeout` or `max_bytes` runs out, blocking this
/// thread.
fn drain(stream: &TcpStream, scratch: &mut [u8], timeout: Duration, max_bytes: u64) {
    let deadline = Instant::now() + timeout;
    let mut discarded = 0u64;
    while discarded < max_bytes {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match (&*stream).read(scratch) {
            Ok(0) => break,
            Ok(n) => discarded += n as u64,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

/// Reads and discards what has arrived on a non-blocking socket, up to a
/// bound, without waiting for more: for a socket about to be dropped with
/// no lingering (the request a refused client sent with its connection),
/// so that the drop sends a FIN, not a reset.
pub(crate) fn discard_arrived(stream: &TcpStream) {
    let mut scratch = [0u8; 1024];
    for _ in 0..16 {
        match (&*stream).read(&mut scratch) {
            Ok(n) if n > 0 => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            _ => return,
        }
    }
}

/// The lingering thread: passes over its sockets every `PASS_INTERVAL`
/// until its channel is closed and every socket is done.
fn linger_all(rx: Receiver<Message>) {
    let mut held: Vec<Draining> = Vec::new();
    let mut scratch = vec![0u8; 16 * 1024];
    let mut open = true;
    loop {
        if held.is_empty() {
            // Nothing to do until the next socket: block (no pass, no timer).
            match rx.recv() {
                Ok(m) => receive(&mut held, m),
                Err(_) => return,
            }
        }
        while open {
            match rx.try_recv() {
                Ok(m) => receive(&mut held, m),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => open = false,
            }
        }
        let now = Instant::now();
        held.retain_mut(|d| still_open(d, &mut scratch, now));
        if held.is_empty() && !open {
            return;
        }
        // Sleep until the next socket is due, and at most a pass interval.
        if let Some(due) = held.iter().map(|d| d.next_read).min() {
            let sleep = due.saturating_duration_since(Instant::now()).min(PASS_INTERVAL);
            if !sleep.is_zero() {
                thread::sleep(sleep);
            }
        }
    }
}

fn receive(held: &mut Vec<Draining>, m: Message) {
    match m {
        Message::Drain(d) => hold(held, d),
        Message::CutOff(at) => held.iter_mut().for_each(|d| d.deadline = d.deadline.min(at.max(d.grace_end))),
    }
}

fn hold(held: &mut Vec<Draining>, d: Draining) {
    // A socket that cannot be made non-blocking is dropped: reading it
    // here could stall every other one.
    if d.stream.set_nonblocking(true).is_ok() {
        held.push(d);
    }
}

/// One pass over one socket: reads what has arrived, without blocking, if
/// it is due. False when the socket is done: end-of-stream, an error, or a
/// bound.
fn still_open(d: &mut Draining, scratch: &mut [u8], now: Instant) -> bool {
    if now < d.next_read {
        return now < d.deadline;
    }
    let mut read = 0u64;
    while read < PASS_BYTES {
        match (&*d.stream).read(scratch) {
            Ok(0) => return false,
            Ok(n) => {
                read += n as u64;
                d.budget = d.budget.saturating_sub(n as u64);
                if d.budget == 0 {
                    return false;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    (d.quiet, d.next_read) = next_read(read, d.quiet, now);
    now < d.deadline
}

/// After a pass that read `read` bytes of a socket: its new quiet wait,
/// and when to read it next. Quiet: less and less often. Sending at speed:
/// keep up with it, at once if this pass's share did not empty it.
/// Trickling: at the pace of the passes.
fn next_read(read: u64, quiet: Duration, now: Instant) -> (Duration, Instant) {
    match read {
        0 => {
            let quiet = (quiet * 2).min(QUIET_MAX);
            (quiet, now + quiet)
        }
        PASS_BYTES.. => (PASS_INTERVAL, now),
        SENDING_BYTES.. => (PASS_INTERVAL, now + SENDING_INTERVAL),
        _ => (PASS_INTERVAL, now + PASS_INTERVAL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    /// A connected pair: (client, server side made non-blocking).
    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        (client, server)
    }

    /// A place of its own, for a socket made by a test.
    fn ticket() -> Ticket {
        Ticket::take(&Arc::default(), 1).unwrap()
    }

    /// `server`, handed off at `now` with a minute to linger and `budget`.
    fn draining(stream: Arc<TcpStream>, now: Instant, budget: u64) -> Draining {
        Draining {
            stream,
            _ticket: ticket(),
            deadline: now + Duration::from_secs(60),
            grace_end: now + SHUTDOWN_GRACE,
            budget,
            next_read: now,
            quiet: PASS_INTERVAL,
        }
    }

    /// The bound holds for the sockets queued to the thread as well as
    /// those it holds: it once bounded only the queue, and the thread,
    /// which empties the queue every pass, held any number (4000 refused
    /// connections whose clients kept their end open were all held).
    #[test]
    fn the_lingering_thread_takes_no_more_than_its_maximum_of_sockets() {
        let lingerer = Lingerer::with_max(3);
        let pairs: Vec<(TcpStream, TcpStream)> = (0..4).map(|_| pair()).collect();
        let hand_off = |server: &TcpStream| {
            lingerer.hand_off(Arc::new(server.try_clone().unwrap()), Duration::from_secs(60), 1 << 20)
        };
        // The clients keep their ends open: every socket lingers.
        for (_, server) in &pairs[..3] {
            assert!(hand_off(server));
        }
        assert!(!hand_off(&pairs[3].1), "a fourth socket was taken");
        assert_eq!(lingerer.taken.load(SeqCst), 3);
        // A client that closes frees its place once its socket is read.
        let (client, _) = &pairs[0];
        client.shutdown(Shutdown::Both).unwrap();
        let patience = Instant::now() + Duration::from_secs(20);
        while lingerer.taken.load(SeqCst) == 3 && Instant::now() < patience {
            thread::sleep(PASS_INTERVAL);
        }
        assert!(hand_off(&pairs[3].1), "the freed place was not given back");
        lingerer.stop(Instant::now());
        assert_eq!(lingerer.taken.load(SeqCst), 0, "every place is given back once the thread is done");
    }

    /// Waits until `stream` has input to read (or end-of-stream).
    fn wait_readable(stream: &TcpStream) {
        while matches!(stream.peek(&mut [0u8; 1]), Err(ref e) if e.kind() == ErrorKind::WouldBlock) {
            thread::yield_now();
        }
    }

    #[test]
    fn a_quiet_socket_is_read_less_and_less_often_until_it_speaks_or_closes() {
        let (mut client, server) = pair();
        let start = Instant::now();
        let mut d = draining(Arc::new(server), start, 1000);
        let mut scratch = [0u8; 64];
        let mut now = start;
        let mut waits = Vec::new();
        for _ in 0..6 {
            assert!(still_open(&mut d, &mut scratch, now));
            waits.push(d.quiet.as_millis());
            now = d.next_read;
        }
        assert_eq!(waits, [20, 40, 80, 160, 160, 160]);
        // Input that arrives before the next read is due waits for it.
        client.write_all(b"late").unwrap();
        wait_readable(&d.stream);
        assert!(still_open(&mut d, &mut scratch, now - Duration::from_millis(1)));
        assert_eq!(d.budget, 1000);
        assert!(still_open(&mut d, &mut scratch, now));
        assert_eq!((d.budget, d.quiet), (996, PASS_INTERVAL));
        // A trickle is read at the pace of the passes.
        assert_eq!(d.next_read, now + PASS_INTERVAL);
        // The client's close ends it.
        drop(client);
        wait_readable(&d.stream);
        let due = d.next_read;
        assert!(!still_open(&mut d, &mut scratch, due));
    }

    #[test]
    fn a_socket_sending_at_speed_is_read_again_soon_and_a_trickle_is_not() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        let cases = [
            // Quiet: the wait doubles, up to its bound.
            (0, ms(10), (ms(20), now + ms(20))),
            (0, QUIET_MAX, (QUIET_MAX, now + QUIET_MAX)),
            // A trickle: the pace of the passes.
            (1, QUIET_MAX, (PASS_INTERVAL, now + PASS_INTERVAL)),
            (SENDING_BYTES - 1, ms(10), (PASS_INTERVAL, now + PASS_INTERVAL)),
            // At speed: soon, and at once when the pass's share did not
            // empty it.
            (SENDING_BYTES, ms(10), (PASS_INTERVAL, now + SENDING_INTERVAL)),
            (PASS_BYTES - 1, ms(40), (PASS_INTERVAL, now + SENDING_INTERVAL)),
            (PASS_BYTES, ms(10), (PASS_INTERVAL, now)),
        ];
        for (read, quiet, expected) in cases {
            assert_eq!(next_read(read, quiet, now), expected, "{read} bytes");
        }
    }

    #[test]
    fn a_socket_is_dropped_at_its_deadline_or_byte_bound() {
        let (mut client, server) = pair();
        let start = Instant::now();
        let stream = Arc::new(server);
        let draining =
            |budget| Draining { deadline: start + Duration::from_secs(1), ..draining(stream.clone(), start, budget) };
        let mut scratch = [0u8; 64];
        assert!(!still_open(&mut draining(1000), &mut scratch, start + Duration::from_secs(1)));
        client.write_all(&[b'x'; 10]).unwrap();
        wait_readable(&stream);
        assert!(!still_open(&mut draining(10), &mut scratch, start));
    }

    #[test]
    fn a_shutdown_cuts_lingering_at_its_deadline_but_not_within_the_grace() {
        let start = Instant::now();
        let lingering = |grace_end| Draining { grace_end, ..draining(Arc::new(pair().1), start, 1000) };
        let mut held = Vec::new();
        // Handed off long before the cut-off, and just before it.
        receive(&mut held, Message::Drain(lingering(start)));
        receive(&mut held, Message::Drain(lingering(start + SHUTDOWN_GRACE)));
        receive(&mut held, Message::CutOff(start + Duration::from_millis(100)));
        let deadlines: Vec<_> = held.iter().map(|d| d.deadline - start).collect();
        assert_eq!(deadlines, [Duration::from_millis(100), SHUTDOWN_GRACE]);
    }
}
