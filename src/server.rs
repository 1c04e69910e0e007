//! The listener: accepting connections, the connection cap, one thread per
//! connection, shutdown, events and counters.
//!
//! Threads take turns at the listener (a "leader/follower" pool): a thread
//! with no connection waits in `accept` itself, and the thread that accepts
//! a connection serves it. No connection is handed from thread to thread,
//! which would cost a wake-up per connection. When the last waiting thread
//! takes a connection, the serving thread (the one that called
//! [`Server::serve`]) starts another; a thread whose connection ends goes
//! back to `accept`, or exits when enough others already wait there. Those
//! that wait unneeded for a while are sent away too, down to one.
//!
//! Each accepted connection gets a slot in a registry (the socket, shared
//! with its thread, plus its state: busy, idle, or being closed). At the
//! cap, the connection idle the longest is closed to make room (the close a
//! keep-alive client must expect anyway, RFC 9112 §9.3.1); when none is
//! idle (or the only idle ones were accepted less than a second ago and
//! have had no response: their first request may be unread in the socket),
//! the newcomer gets 503 at once, and the thread goes back to `accept`.
//! A thread blocked reading an idle connection is woken through the
//! registry, by the socket: for eviction its read half is shut; at
//! shutdown its FIN is sent, and the client's answer wakes it (see
//! `Slot::close_if_idle`).

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{
    AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
    Ordering::SeqCst,
};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::config::{Builder, Config};
use crate::conn::{self, Handler, Kept};
use crate::error::{CloseReason, RequestError};
use crate::linger::{self, Lingerer};
use crate::request::{Method, Request};
use crate::response::{IntoResponse, Response};

/// How long a refused (503) connection is drained before it is dropped.
const REFUSED_LINGER: Duration = Duration::from_secs(1);
/// At the shutdown deadline, the longest `serve` waits for the threads of
/// idle connections it has just cut (they run no handler, so they end at
/// once; the bound is for a thread the system does not schedule).
const CUT_IDLE_WAIT: Duration = Duration::from_millis(100);

/// Something that happened to a connection, passed to the hook set with
/// [`Builder::on_event`]. `id` numbers connections from 1.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A connection was accepted and given a thread.
    Opened {
        /// Connection number.
        id: u64,
        /// The client's address.
        remote: SocketAddr,
    },
    /// A response was written.
    Request {
        /// Connection number.
        id: u64,
        /// The request method.
        method: &'a Method,
        /// The request target.
        target: &'a str,
        /// The response status.
        status: u16,
    },
    /// A handler returned an error, answered with 500 (see
    /// [`IntoResponse`](crate::IntoResponse)).
    HandlerFailed {
        /// Connection number.
        id: u64,
        /// The error's text.
        error: &'a str,
    },
    /// The server refused a request itself, with this error's status: for
    /// its head, before any handler ran, or for its body, found while the
    /// handler read it (answered in place of the handler's response).
    Refused {
        /// Connection number.
        id: u64,
        /// What was wrong.
        error: RequestError,
    },
    /// The connection went idle, waiting for its next request.
    Idle {
        /// Connection number.
        id: u64,
    },
    /// The connection closed.
    Closed {
        /// Connection number.
        id: u64,
        /// Why.
        reason: CloseReason,
        /// Requests read on it.
        requests: u64,
    },
    /// A connection got 503 without a thread: it arrived at the cap with
    /// every connection busy, or no thread could be made for it.
    OverCapacity {
        /// The client's address.
        remote: SocketAddr,
    },
}

/// A snapshot of the server's counters, from [`Handle::stats`].
#[derive(Clone, PartialEq, Eq)]
pub struct Stats {
    /// Connections open (each with its thread), idle or busy.
    pub open: usize,
    /// Open connections waiting for their next request.
    pub idle: usize,
    /// Open connections reading a request, running a handler, writing a
    /// response, or closing (including those being closed for eviction or
    /// shutdown, which no longer count against the cap).
    pub busy: usize,
    /// Connections accepted since start (including those refused).
    pub accepted: u64,
    /// Requests that reached the handler and were answered, since start:
    /// its responses, and the 500 of a handler that panicked or the 408 or
    /// 4xx of a body that broke its framing while it read. The server's
    /// refusals of a request head (400, 408, 413, 414, 417, 431, 501, 505) are
    /// not counted here but by the closes they end in
    /// ([`CloseReason::BadRequest`], [`CloseReason::HeaderTimeout`]), and
    /// 503s at the cap in `over_capacity`.
    pub requests: u64,
    /// Connections refused with 503: at the cap, or when no thread could be
    /// made for them. With the closes, they account for every connection
    /// accepted once all have ended.
    pub over_capacity: u64,
    /// Threads alive for connections, serving one or waiting for one.
    pub threads: usize,
    /// Of those, waiting in `accept` for a connection ("parked": idle
    /// threads kept to save a spawn).
    pub parked: usize,
    closes: [u64; CloseReason::ALL.len()],
}

impl Stats {
    /// Connections closed for `reason` since start.
    pub fn closes(&self, reason: CloseReason) -> u64 {
        self.closes[reason.index()]
    }

    /// Connections closed since start, for any reason.
    pub fn closed(&self) -> u64 {
        self.closes.iter().sum()
    }
}

/// The counters, and the closes by reason (those that happened).
impl fmt::Debug for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let closes: std::collections::BTreeMap<&str, u64> =
            CloseReason::ALL.iter().map(|&r| (r.as_str(), self.closes(r))).filter(|&(_, n)| n > 0).collect();
        f.debug_struct("Stats")
            .field("open", &self.open)
            .field("idle", &self.idle)
            .field("busy", &self.busy)
            .field("accepted", &self.accepted)
            .field("requests", &self.requests)
            .field("over_capacity", &self.over_capacity)
            .field("threads", &self.threads)
            .field("parked", &self.parked)
            .field("closes", &closes)
            .finish()
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server").field("local_addr", &self.shared.local_addr).finish_non_exhaustive()
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("local_addr", &self.shared.local_addr)
            .field("shutting_down", &self.shared.is_shutting_down())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Running {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Running").field("handle", &self.handle).finish_non_exhaustive()
    }
}

/// A bound server, ready to [`serve`](Server::serve).
///
/// ```no_run
/// use h1serve::{Response, Server};
/// let server = Server::bind("127.0.0.1:8080")?;
/// println!("listening on http://{}", server.local_addr());
/// server.serve(|req| Response::text(format!("you asked for {}\n", req.path())))
/// # ; Ok::<(), std::io::Error>(())
/// ```
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

/// Controls a server from other threads: stop it, read its counters.
/// Cheap to clone.
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

/// A server serving on a background thread, from [`Server::spawn`].
/// Dropping it shuts the server down and waits for it ([`Running::detach`]
/// lets it serve on instead).
///
/// From inside one of this server's own handlers (an OAuth callback that
/// stops the server once it has its code), `shutdown` and dropping cannot
/// wait for `serve`, which waits for that handler: they begin the shutdown
/// and return at once, and the handler's response is still sent. This
/// holds on the handler's own thread; from a thread the handler starts and
/// waits for, use [`Handle::shutdown`], which never waits.
///
/// ```
/// use h1serve::{Response, Server};
/// let running = Server::bind("127.0.0.1:0")?.spawn(|_req| Response::text("hi\n"))?;
/// let addr = running.local_addr();
/// # let mut s = std::net::TcpStream::connect(addr)?;
/// # use std::io::{Read, Write};
/// # s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
/// # let mut out = String::new();
/// # s.read_to_string(&mut out)?;
/// # assert!(out.starts_with("HTTP/1.1 200 OK\r\n") && out.ends_with("\r\n\r\nhi\n"));
/// running.shutdown()?; // or just drop it
/// # Ok::<(), std::io::Error>(())
/// ```
#[must_use = "dropping a Running shuts its server down at once; keep it, or call `detach`"]
pub struct Running {
    handle: Handle,
    thread: Option<thread::JoinHandle<io::Result<()>>>,
}

/// State shared by the serving thread, the connection threads and handles.
pub(crate) struct Shared {
    /// Tells this server's threads from others (see `WORKS_FOR`).
    id: u64,
    pub(crate) config: Config,
    local_addr: SocketAddr,
    shutting_down: AtomicBool,
    registry: Mutex<Registry>,
    /// Signalled when a connection closes, if someone waits (`waiters`):
    /// a notification is a system call, not worth paying per connection.
    closed: Condvar,
    waiters: AtomicUsize,
    started: Instant,
    accepted: AtomicU64,
    /// Responses written on connections that have closed (open ones count
    /// their own: see `Slot::responses`).
    responses_of_closed: AtomicU64,
    over_capacity: AtomicU64,
    closes: [AtomicU64; CloseReason::ALL.len()],
    pool: Mutex<Pool>,
    /// Signalled to the serving thread when no thread is left waiting in
    /// `accept`, and at shutdown.
    pool_changed: Condvar,
    /// Connections to tell a thread to exit, announced or in flight (see
    /// `trim_idle_threads`); read without the lock on every accept.
    trimming: AtomicUsize,
    threads: AtomicUsize,
    /// Drains closed connections for them (see `linger`).
    pub(crate) lingerer: Lingerer,
    /// What accepted sockets inherit from the listener.
    pub(crate) inherited: Inherited,
}

#[derive(Default)]
struct Registry {
    slots: HashMap<u64, Arc<Slot>>,
    next_id: u64,
    /// Slots closed by eviction whose threads have not ended yet: they no
    /// longer count against the cap.
    evicting: usize,
}

#[derive(Default)]
struct Pool {
    /// Threads waiting in `accept` (or about to), the serving thread
    /// included when it accepts itself (see `serve`).
    accepting: usize,
    /// Whether the serving thread is one of them.
    serving_thread_accepting: bool,
    /// The listener, lent to each thread for its turn at `accept`; taken at
    /// shutdown, so that the port closes once the waiting threads leave,
    /// whatever busy threads still do.
    listener: Option<Arc<TcpListener>>,
    /// Fewest threads waiting in `accept` since the last trim: all but one
    /// of those were never needed (see `trim_idle_threads`).
    low_water: usize,
    /// Local addresses of the serving thread's own connections that tell a
    /// waiting thread to exit.
    trim: Vec<SocketAddr>,
}

/// A connection accepted, for the thread that accepted it (its socket is in
/// the slot).
struct Job {
    remote: SocketAddr,
    slot: Arc<Slot>,
}

const BUSY: u8 = 0;
const IDLE: u8 = 1;
const EVICTED: u8 = 2;
const SHUTDOWN: u8 = 3;

/// A connection's entry in the registry.
pub(crate) struct Slot {
    pub(crate) id: u64,
    /// BUSY and IDLE are set by the connection's thread; EVICTED and
    /// SHUTDOWN by whoever closes it, only from IDLE, by compare-and-swap,
    /// so a connection is never closed while it is handling a request.
    state: AtomicU8,
    /// Nanoseconds since server start when it last went idle.
    idle_since: AtomicU64,
    /// Responses written on this connection. Each connection counts its
    /// own, written by its thread alone: one counter that every thread
    /// increments would pass its cache line between cores on every
    /// request (measured: 5–11 % of the connection loop's `perf` samples
    /// when pipelined).
    responses: AtomicU64,
    /// The connection's socket, shared with its thread, to wake its
    /// blocked read.
    stream: Arc<TcpStream>,
    /// Cut at the shutdown deadline: the socket errors its thread then
    /// sees are the shutdown, and counted as such.
    cut: AtomicBool,
}

impl Slot {
    /// Marks the connection idle since `since` (see [`Shared::nanos`]).
    /// False if the server is shutting down, in which case it is now marked
    /// closed instead.
    pub(crate) fn enter_idle(&self, shared: &Shared, since: u64) -> bool {
        self.idle_since.store(since, SeqCst);
        self.state.store(IDLE, SeqCst);
        // Checked after the store: a shutdown that started before it is seen
        // here, one that starts after it sees IDLE and wakes us.
        if shared.is_shutting_down() {
            let _ = self.state.compare_exchange(IDLE, SHUTDOWN, SeqCst, SeqCst);
        }
        self.state.load(SeqCst) == IDLE
    }

    /// Marks the connection busy. False if it was closed while idle.
    pub(crate) fn leave_idle(&self) -> bool {
        self.state.compare_exchange(IDLE, BUSY, SeqCst, SeqCst).is_ok()
    }

    /// Counts a response written (called by the connection's thread only).
    pub(crate) fn count_response(&self) {
        self.responses.store(self.responses.load(Relaxed) + 1, Release);
    }

    /// Why the connection was closed while idle.
    pub(crate) fn wake_reason(&self) -> CloseReason {
        match self.state.load(SeqCst) {
            EVICTED => CloseReason::Evicted,
            _ => CloseReason::Shutdown,
        }
    }

    /// Closes the connection if it is idle: marks it (so that it is never
    /// closed while it handles a request), then wakes its thread, blocked
    /// reading it.
    ///
    /// For eviction the read half is shut, so that the read returns at once
    /// and the evicted connection's thread ends: threads stay bounded by the
    /// cap. On Linux that costs the close its grace: input arriving after
    /// it is answered with a reset, which destroys any part of a response
    /// still queued (as for a slow reader that pipelined another request).
    /// At shutdown there is time for better (RFC 9112 §9.6, rules §6): only
    /// the FIN is sent, after whatever is queued; the thread wakes when the
    /// client closes too or sends a late request (read and discarded), and
    /// `finish_shutdown` shuts the read half of those still open at the
    /// linger timeout, the bound of every graceful close.
    fn close_if_idle(&self, why: u8) -> bool {
        let closed = self.state.compare_exchange(IDLE, why, SeqCst, SeqCst).is_ok();
        if closed {
            let half = if why == SHUTDOWN { Shutdown::Write } else { Shutdown::Read };
            let _ = self.stream.shutdown(half);
        }
        closed
    }
}

impl Server {
    /// A builder with the default limits and timeouts.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Binds with the default configuration.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<Server> {
        Builder::default().bind(addr)
    }

    pub(crate) fn from_listener(listener: TcpListener, config: Config) -> io::Result<Server> {
        let local_addr = listener.local_addr()?;
        // Threads wait in `accept`: on a listener made non-blocking
        // elsewhere they would spin instead.
        listener.set_nonblocking(false)?;
        let (listener, inherited) = preset_socket_options(listener, &config);
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let shared = Arc::new(Shared {
            id: NEXT_ID.fetch_add(1, Relaxed),
            config,
            local_addr,
            shutting_down: AtomicBool::new(false),
            registry: Mutex::new(Registry { next_id: 1, ..Registry::default() }),
            closed: Condvar::new(),
            waiters: AtomicUsize::new(0),
            started: Instant::now(),
            accepted: AtomicU64::new(0),
            responses_of_closed: AtomicU64::new(0),
            over_capacity: AtomicU64::new(0),
            closes: Default::default(),
            pool: Mutex::new(Pool::default()),
            pool_changed: Condvar::new(),
            trimming: AtomicUsize::new(0),
            threads: AtomicUsize::new(0),
            lingerer: Lingerer::new(),
            inherited,
        });
        Ok(Server { listener, shared })
    }

    /// The address the server listens on (with the real port when bound to
    /// port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// A handle to stop the server and read its counters from elsewhere.
    pub fn handle(&self) -> Handle {
        Handle { shared: self.shared.clone() }
    }

    /// Serves connections until [`Handle::shutdown`]; then waits for
    /// in-flight requests (up to the shutdown timeout) and returns.
    ///
    /// This thread does not serve connections itself (so that it can always
    /// return on time): it starts a connection thread whenever none is left
    /// waiting in `accept`.
    pub fn serve<H, R>(self, handler: H) -> io::Result<()>
    where
        H: Fn(&mut Request<'_>) -> R + Send + Sync + 'static,
        R: IntoResponse,
    {
        let handler: Arc<Handler> = Arc::new(move |req: &mut Request<'_>| handler(req).into_response());
        let listener = Arc::new(self.listener);
        let shared = &self.shared;
        shared.lock_pool().listener = Some(listener.clone());
        let mut next_trim = Instant::now() + shared.config.idle_thread_timeout;
        loop {
            let mut pool = shared.lock_pool();
            while pool.accepting > 0 && !shared.is_shutting_down() {
                let left = next_trim.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    shared.trim_idle_threads(&mut pool);
                    next_trim = Instant::now() + shared.config.idle_thread_timeout;
                    continue;
                }
                pool = shared.pool_changed.wait_timeout(pool, left).unwrap_or_else(|p| p.into_inner()).0;
            }
            if shared.is_shutting_down() {
                break;
            }
            // Counted before it starts, so that it is started only once.
            pool.accepting += 1;
            drop(pool);
            if shared.start_thread(&handler).is_err() {
                // No thread can be made (resource exhaustion): take one
                // connection here and refuse it, so that clients get 503
                // rather than a hung connect; then try again.
                shared.lock_pool().serving_thread_accepting = true;
                if let Some((stream, remote)) = shared.accept_one(&listener) {
                    shared.accepted.fetch_add(1, SeqCst);
                    shared.refuse_over_capacity(Arc::new(stream), remote);
                }
                let mut pool = shared.lock_pool();
                pool.serving_thread_accepting = false;
                shared.leave_accept(&mut pool);
            }
        }
        drop(listener);
        shared.finish_shutdown();
        Ok(())
    }

    /// Serves on a new thread; returns at once with a [`Running`] that can
    /// stop it.
    pub fn spawn<H, R>(self, handler: H) -> io::Result<Running>
    where
        H: Fn(&mut Request<'_>) -> R + Send + Sync + 'static,
        R: IntoResponse,
    {
        let handle = self.handle();
        let id = self.shared.id;
        let serving = move || {
            // Event hooks can run on this thread too.
            WORKS_FOR.with(|w| w.set(id));
            self.serve(handler)
        };
        let thread = thread::Builder::new().name("h1serve".into()).spawn(serving)?;
        Ok(Running { handle, thread: Some(thread) })
    }
}

impl Handle {
    /// Begins a graceful shutdown and returns at once: the server stops
    /// accepting, closes idle connections now (each is sent its FIN, and
    /// its client has until the linger timeout to close its end, as in any
    /// graceful close), lets busy ones finish their current request
    /// (answered with `Connection: close`) until the shutdown timeout, then
    /// closes what is left. `serve` returns when every connection is closed and its
    /// lingering close done, and at the latest at the shutdown timeout
    /// plus 0.35 s: up to 0.1 s for the threads of idle connections cut at
    /// the deadline to end, and a quarter second for a connection whose
    /// lingering close began just before, so that input still on its way
    /// cannot reset its response (or after a second, if that is longer and
    /// a thread waiting in `accept` could not be woken). Calling it again
    /// does nothing.
    ///
    /// A handler still running at the timeout is not stopped (a thread
    /// cannot be stopped from outside): its connection is cut, so its next
    /// read or write of it fails, and its thread ends when it returns,
    /// possibly after `serve` has. Shared state a handler touches may
    /// therefore outlive `serve` by as long as the handler runs on.
    pub fn shutdown(&self) {
        let shared = &self.shared;
        if shared.shutting_down.swap(true, SeqCst) {
            return;
        }
        // Wake every thread waiting in `accept`: one connection each. (A
        // thread that goes back to `accept` later sees the flag first: both
        // the flag check and this count are made under the pool lock.)
        let waiting = shared.lock_pool().accepting;
        for _ in 0..waiting {
            let _ = shared.connect_to_self();
        }
        for slot in shared.lock_registry().slots.values() {
            slot.close_if_idle(SHUTDOWN);
        }
        shared.pool_changed.notify_all();
    }

    /// The server's counters now.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Whether a shutdown has begun. A handler that streams for long (a
    /// feed of server-sent events) checks it to end its stream, rather than
    /// hold `serve` until the shutdown timeout cuts it.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.is_shutting_down()
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Waits until `ready(&stats)` holds or `timeout` passes; returns whether
    /// it held. Wakes on every connection close and re-checks at least every
    /// few milliseconds for other changes (such as a connection going idle).
    ///
    /// What a test double needs: wait for the event, not for a fixed time.
    /// (An `assert!` inside a handler does not fail the test: its panic
    /// becomes a 500. Record what the handler saw and assert on it in the
    /// test, as here, or check `closes(CloseReason::HandlerPanicked)`.)
    ///
    /// ```
    /// use std::io::Write;
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// use h1serve::{Response, Server};
    ///
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = seen.clone();
    /// let running = Server::bind("127.0.0.1:0")?.spawn(move |req| {
    ///     log.lock().unwrap().push(format!("{} {}", req.method(), req.target()));
    ///     Response::status(204)
    /// })?;
    /// // The code under test calls the double (here, by hand, without
    /// // waiting for the answer).
    /// let mut client = std::net::TcpStream::connect(running.local_addr())?;
    /// client.write_all(b"DELETE /items/7 HTTP/1.1\r\nHost: x\r\n\r\n")?;
    /// assert!(running.handle().wait_until(Duration::from_secs(10), |s| s.requests == 1));
    /// assert_eq!(*seen.lock().unwrap(), ["DELETE /items/7"]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn wait_until(&self, timeout: Duration, mut ready: impl FnMut(&Stats) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if ready(&self.stats()) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let guard = self.shared.lock_registry();
            drop(self.shared.wait_closed(guard, left.min(Duration::from_millis(5))));
        }
    }
}

impl Running {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    /// A handle to the server.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// The server's counters now.
    pub fn stats(&self) -> Stats {
        self.handle.stats()
    }

    /// Shuts the server down (see [`Handle::shutdown`]) and waits for
    /// `serve` to return, and returns what it returned. Called from one of
    /// this server's handlers, it returns once the shutdown has begun.
    pub fn shutdown(mut self) -> io::Result<()> {
        self.handle.shutdown();
        self.join_thread()
    }

    /// Waits for the server to stop (after a [`Handle::shutdown`] elsewhere).
    /// Called from one of this server's handlers, which the server would
    /// wait for, it fails at once with [`io::ErrorKind::Deadlock`], and the
    /// server serves on (as after [`Running::detach`]).
    pub fn join(mut self) -> io::Result<()> {
        if self.handle.shared.is_current_thread() {
            self.thread = None;
            return Err(io::Error::new(io::ErrorKind::Deadlock, "join from the server's own handler"));
        }
        self.join_thread()
    }

    /// Lets the server serve on without this `Running`, until a
    /// [`Handle::shutdown`] or the end of the process; returns its handle.
    ///
    /// ```
    /// use h1serve::{Response, Server};
    /// fn start_metrics() -> std::io::Result<h1serve::Handle> {
    ///     let running = Server::bind("127.0.0.1:0")?.spawn(|_| Response::text("up 1\n"))?;
    ///     Ok(running.detach())
    /// }
    /// let metrics = start_metrics()?;
    /// # let mut s = std::net::TcpStream::connect(metrics.local_addr())?;
    /// # use std::io::{Read, Write};
    /// # s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    /// # let mut out = String::new();
    /// # s.read_to_string(&mut out)?;
    /// # assert!(out.ends_with("\r\n\r\nup 1\n"));
    /// // ... still serving; and when the program wants it gone:
    /// metrics.shutdown();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn detach(mut self) -> Handle {
        self.thread = None;
        self.handle.clone()
    }

    fn join_thread(&mut self) -> io::Result<()> {
        if self.handle.shared.is_current_thread() {
            // `serve` waits for this very thread's handler to return.
            self.thread = None;
            return Ok(());
        }
        match self.thread.take().map(thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the server thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.handle.shutdown();
            let _ = self.join_thread();
        }
    }
}

thread_local! {
    /// The server whose serving or connection thread this is (its
    /// `Shared::id`), 0 for none.
    static WORKS_FOR: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

impl Shared {
    /// Whether the calling thread is one of this server's own.
    fn is_current_thread(&self) -> bool {
        WORKS_FOR.with(|w| w.get()) == self.id
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(SeqCst)
    }

    /// Nanoseconds since the server started: the clock of idle periods.
    pub(crate) fn nanos(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    pub(crate) fn emit(&self, event: &Event<'_>) {
        if let Some(hook) = &self.config.on_event {
            // A panicking hook loses its event, nothing else: it runs on the
            // connection's thread, and from the drop guard that releases a
            // slot, where a second panic would abort the process.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(event)));
        }
    }

    fn lock_registry(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the map inconsistent
        // (each critical section is a single insert, remove or scan).
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_pool(&self) -> MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives a new connection a slot, evicting the longest-idle connection
    /// at the cap; gives the socket back when every connection is busy.
    fn admit(&self, stream: TcpStream) -> Result<Arc<Slot>, Arc<TcpStream>> {
        let stream = Arc::new(stream);
        let mut reg = self.lock_registry();
        if reg.slots.len() - reg.evicting >= self.config.max_connections {
            // The first that is still idle when we try (one may have just
            // received a request) is closed; its slot goes to the newcomer.
            if !eviction_order(reg.slots.values(), self.nanos()).iter().any(|s| s.close_if_idle(EVICTED)) {
                return Err(stream);
            }
            reg.evicting += 1;
        }
        let id = reg.next_id;
        reg.next_id += 1;
        let slot = Arc::new(Slot {
            id,
            state: AtomicU8::new(BUSY),
            idle_since: AtomicU64::new(0),
            responses: AtomicU64::new(0),
            stream,
            cut: AtomicBool::new(false),
        });
        reg.slots.insert(id, slot.clone());
        Ok(slot)
    }

    /// Removes a connection's slot and counts its close.
    ///
    /// The close is counted and reported before the slot goes, so that
    /// whoever sees the connection gone (`Stats::open`) also sees why.
    /// (`emit` cannot unwind, so a failing hook cannot keep the slot.)
    fn release(&self, slot: &Slot, reason: CloseReason, requests: u64) {
        // Cut at the shutdown deadline: whatever its thread then saw (an I/O
        // error, a body it could not skip), the shutdown closed it. A panic
        // stays a panic.
        let cut = slot.cut.load(SeqCst) && reason != CloseReason::HandlerPanicked;
        let reason = if cut { CloseReason::Shutdown } else { reason };
        self.closes[reason.index()].fetch_add(1, SeqCst);
        self.emit(&Event::Closed { id: slot.id, reason, requests });
        let mut reg = self.lock_registry();
        // Under the lock `stats` takes: it sees the slot's responses in the
        // slot or in the total, never in both or neither.
        self.responses_of_closed.fetch_add(slot.responses.load(Acquire), SeqCst);
        if reg.slots.remove(&slot.id).is_some() && slot.state.load(SeqCst) == EVICTED {
            reg.evicting -= 1;
        }
        drop(reg);
        if self.waiters.load(SeqCst) > 0 {
            self.closed.notify_all();
        }
    }

    /// Waits on `closed` for at most `timeout`.
    fn wait_closed<'a>(&self, reg: MutexGuard<'a, Registry>, timeout: Duration) -> MutexGuard<'a, Registry> {
        self.waiters.fetch_add(1, SeqCst);
        let reg = self.closed.wait_timeout(reg, timeout).unwrap_or_else(|p| p.into_inner()).0;
        self.waiters.fetch_sub(1, SeqCst);
        reg
    }

    /// Starts a connection thread, already counted as accepting.
    fn start_thread(self: &Arc<Self>, handler: &Arc<Handler>) -> io::Result<()> {
        let (shared, handler) = (self.clone(), handler.clone());
        self.threads.fetch_add(1, SeqCst);
        let mut builder = thread::Builder::new().name("h1serve-conn".into());
        if let Some(bytes) = self.config.thread_stack_size {
            builder = builder.stack_size(bytes);
        }
        let spawned = builder.spawn(move || {
            // Counted down however the thread ends, panics included.
            struct Alive<'a>(&'a AtomicUsize);
            impl Drop for Alive<'_> {
                fn drop(&mut self) {
                    self.0.fetch_sub(1, SeqCst);
                }
            }
            let _alive = Alive(&shared.threads);
            WORKS_FOR.with(|w| w.set(shared.id));
            shared.worker(&handler);
        });
        spawned.map(drop).inspect_err(|_| {
            self.threads.fetch_sub(1, SeqCst);
        })
    }

    /// A connection thread: take a connection from the listener, serve it,
    /// and go back for the next.
    fn worker(&self, handler: &Arc<Handler>) {
        let mut kept = Kept::default();
        while let Some(job) = self.next_connection() {
            self.run(job, handler, &mut kept);
            if !self.rejoin_accept() {
                return;
            }
        }
    }

    /// This thread's turn at the listener, which it leaves with a connection
    /// to serve, or with `None` at shutdown.
    fn next_connection(&self) -> Option<Job> {
        // Counted out of `accept` however this turn ends, a panic included:
        // a count left too high would make the serving thread believe a
        // thread still waits there, and no one would accept.
        struct LeaveAccept<'a>(&'a Shared);
        impl Drop for LeaveAccept<'_> {
            fn drop(&mut self) {
                self.0.leave_accept(&mut self.0.lock_pool());
            }
        }
        let _leave = LeaveAccept(self);
        let listener = self.lock_pool().listener.clone();
        listener.and_then(|listener| {
            loop {
                let (stream, remote) = self.accept_one(&listener)?;
                if self.trimming.load(SeqCst) > 0 && self.is_trim(remote) {
                    return None;
                }
                self.accepted.fetch_add(1, SeqCst);
                match self.admit(stream) {
                    Ok(slot) => break Some(Job { remote, slot }),
                    Err(stream) => self.refuse_over_capacity(stream, remote),
                }
            }
        })
    }

    /// Refuses a connection for want of capacity (a slot or a thread), and
    /// counts and reports it.
    fn refuse_over_capacity(&self, stream: Arc<TcpStream>, remote: SocketAddr) {
        self.over_capacity.fetch_add(1, SeqCst);
        self.emit(&Event::OverCapacity { remote });
        refuse(stream, self);
    }

    /// Accepts one connection; `None` at shutdown. Errors that come from the
    /// system running out of something (descriptors, memory) are waited
    /// out instead of spun on, as Go's net/http does.
    fn accept_one(&self, listener: &TcpListener) -> Option<(TcpStream, SocketAddr)> {
        let mut backoff = Duration::from_millis(5);
        loop {
            let accepted = listener.accept();
            if self.is_shutting_down() {
                return None;
            }
            match accepted {
                Ok(pair) => return Some(pair),
                Err(e) if is_transient(&e) => {}
                Err(_) => {
                    thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// Whether a connection from `remote` is one of `trim_idle_threads`'s,
    /// which this thread takes as its cue to exit.
    fn is_trim(&self, remote: SocketAddr) -> bool {
        let mut pool = self.lock_pool();
        let Some(i) = pool.trim.iter().position(|a| *a == remote) else { return false };
        pool.trim.swap_remove(i);
        self.trimming.fetch_sub(1, SeqCst);
        true
    }

    /// Lets the threads that waited in `accept` for the whole last
    /// `idle_thread_timeout` without being needed exit, keeping one: each
    /// is sent a connection from this thread (known by its address, not
    /// served, not counted), and the thread that accepts it exits.
    fn trim_idle_threads(&self, pool: &mut Pool) {
        let spare = pool.low_water.min(pool.accepting).saturating_sub(1);
        for _ in 0..spare {
            // Announced before the connection exists, and made under the
            // pool lock, which the thread that accepts it takes to look at
            // `trim`: it cannot look before the address is there.
            self.trimming.fetch_add(1, SeqCst);
            match self.connect_to_self().and_then(|s| s.local_addr()) {
                Ok(addr) => pool.trim.push(addr),
                Err(_) => {
                    self.trimming.fetch_sub(1, SeqCst);
                    break;
                }
            }
        }
        pool.low_water = pool.accepting - spare;
    }

    /// A connection to our own listener, to wake a thread waiting in
    /// `accept`.
    fn connect_to_self(&self) -> io::Result<TcpStream> {
        let mut addr = self.local_addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
        }
        TcpStream::connect_timeout(&addr, Duration::from_secs(1))
    }

    /// Counts a thread out of `accept`; when none is left there, the serving
    /// thread starts another.
    fn leave_accept(&self, pool: &mut Pool) {
        pool.accepting -= 1;
        pool.low_water = pool.low_water.min(pool.accepting);
        if pool.accepting == 0 {
            self.pool_changed.notify_all();
        }
    }

    /// After a connection: back to `accept`, unless enough threads already
    /// wait there (or the server is shutting down), in which case this
    /// thread exits.
    fn rejoin_accept(&self) -> bool {
        let mut pool = self.lock_pool();
        if self.is_shutting_down() || pool.accepting >= self.config.max_idle_threads {
            return false;
        }
        pool.accepting += 1;
        true
    }

    fn run(&self, job: Job, handler: &Arc<Handler>, kept: &mut Kept) {
        let Job { remote, slot } = job;
        // Counted as released even if our own code panics.
        struct Guard<'a>(&'a Shared, &'a Slot, Option<(CloseReason, u64)>);
        impl Drop for Guard<'_> {
            fn drop(&mut self) {
                let (reason, n) = self.2.unwrap_or((CloseReason::HandlerPanicked, 0));
                self.0.release(self.1, reason, n);
            }
        }
        let mut guard = Guard(self, &slot, None);
        self.emit(&Event::Opened { id: slot.id, remote });
        guard.2 = Some(conn::serve(slot.stream.clone(), remote, self, &**handler, &slot, kept));
    }

    fn stats(&self) -> Stats {
        let reg = self.lock_registry();
        let open = reg.slots.len();
        let idle = reg.slots.values().filter(|s| s.state.load(SeqCst) == IDLE).count();
        let responses =
            self.responses_of_closed.load(SeqCst) + reg.slots.values().map(|s| s.responses.load(Acquire)).sum::<u64>();
        drop(reg);
        let mut closes = [0; CloseReason::ALL.len()];
        for (c, a) in closes.iter_mut().zip(&self.closes) {
            *c = a.load(SeqCst);
        }
        Stats {
            open,
            idle,
            busy: open - idle,
            accepted: self.accepted.load(SeqCst),
            requests: responses,
            over_capacity: self.over_capacity.load(SeqCst),
            threads: self.threads.load(SeqCst),
            parked: {
                let pool = self.lock_pool();
                pool.accepting - usize::from(pool.serving_thread_accepting)
            },
            closes,
        }
    }

    /// After shutdown began: close the port once the threads waiting in
    /// `accept` have left, wait for busy connections to finish, up to the
    /// shutdown timeout, then close what is left.
    fn finish_shutdown(&self) {
        let deadline = Instant::now() + self.config.shutdown_timeout;
        // Each waiting thread was woken by a connection of its own (see
        // `Handle::shutdown`). Bounded: one whose wake-up connection failed
        // must not hold up the return.
        let mut pool = self.lock_pool();
        pool.listener = None;
        let left_accept = Instant::now() + Duration::from_secs(1);
        while pool.accepting > 0 {
            let left = left_accept.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            pool = self.pool_changed.wait_timeout(pool, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        drop(pool);
        let mut reg = self.lock_registry();
        for slot in reg.slots.values() {
            slot.close_if_idle(SHUTDOWN);
        }
        // Idle connections were sent their FIN; a client that has not
        // closed within the linger bound has its connection's thread woken
        // by force.
        let wake_at = (Instant::now() + self.config.linger_timeout).min(deadline);
        let mut woken = false;
        while !reg.slots.is_empty() {
            let now = Instant::now();
            if !woken && now >= wake_at {
                for slot in reg.slots.values().filter(|s| s.state.load(SeqCst) == SHUTDOWN) {
                    let _ = slot.stream.shutdown(Shutdown::Read);
                }
                woken = true;
            }
            let left = deadline.saturating_duration_since(now);
            if left.is_zero() {
                // Out of time: cut the remaining connections. Their threads
                // see errors on their next socket call and end.
                for slot in reg.slots.values() {
                    slot.cut.store(true, SeqCst);
                    let _ = slot.stream.shutdown(Shutdown::Both);
                }
                // Those of idle connections (woken here if the deadline
                // came before the linger bound) run no handler and end at
                // once: they are waited for, briefly, so that `serve`
                // returns with them closed and counted.
                let idle_end = Instant::now() + CUT_IDLE_WAIT;
                while reg.slots.values().any(|s| s.state.load(SeqCst) == SHUTDOWN) {
                    let left = idle_end.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    reg = self.wait_closed(reg, left);
                }
                break;
            }
            let next = if woken { left } else { wake_at.saturating_duration_since(now).min(left) };
            reg = self.wait_closed(reg, next);
        }
        drop(reg);
        // Responses already written are not lost to a process exit that
        // follows: their lingering closes finish first, each within its own
        // bound and all by the shutdown deadline (plus a short grace for
        // those that began just before it).
        self.lingerer.stop(deadline);
    }
}

/// How long a connection that has not yet had a response must have been
/// idle before the cap may evict it.
const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(1);

/// The idle connections the cap may evict, longest idle first (among
/// equals, the older connection), at `now` (see [`Shared::nanos`]).
///
/// A connection that has had no response yet is left out for its first
/// `FIRST_REQUEST_GRACE`: it is idle from the moment it is accepted, so
/// its first request may be in its socket, unread. Closing it would lose
/// that request without a word, where a client expects the close only of
/// a connection it has used (RFC 9112 §9.3.1); the newcomer gets 503
/// instead. Past the grace it may be evicted, so that connections opened
/// and left silent cannot hold the cap.
///
/// Each key is read once, before sorting: connection threads change them
/// without the registry lock, and a sort whose keys move under it may
/// panic, its order not being total.
fn eviction_order<'a>(slots: impl Iterator<Item = &'a Arc<Slot>>, now: u64) -> Vec<&'a Arc<Slot>> {
    let grace = FIRST_REQUEST_GRACE.as_nanos() as u64;
    let evictable = |s: &'a Arc<Slot>| {
        let since = s.idle_since.load(SeqCst);
        let answered = s.responses.load(Relaxed) > 0;
        let ok = s.state.load(SeqCst) == IDLE && (answered || now.saturating_sub(since) >= grace);
        ok.then_some((since, s.id, s))
    };
    let mut idle: Vec<(u64, u64, &Arc<Slot>)> = slots.filter_map(evictable).collect();
    idle.sort_unstable_by_key(|&(since, id, _)| (since, id));
    idle.into_iter().map(|(_, _, s)| s).collect()
}

/// An `accept` error to try again at once: a connection that was reset
/// before we took it, a signal, or the listener's read timeout (see
/// `preset_socket_options`). The others come from the system running out
/// of something.
fn is_transient(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted) || crate::io::is_timeout(e)
}

/// What accepted sockets inherit from the listener (see
/// `preset_socket_options`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Inherited {
    /// `TCP_NODELAY` and the write timeout.
    pub(crate) options: bool,
    /// The read timeout they start with, if any.
    pub(crate) read_timeout: Option<Duration>,
}

/// The shortest idle timeout also set on the listener as its read timeout:
/// it bounds each `accept` too, and a shorter one would wake every thread
/// waiting there that often.
const LISTENER_READ_TIMEOUT_MIN: Duration = Duration::from_secs(1);

/// Sets on the listening socket the options every connection needs, where
/// accepted sockets inherit them (Linux copies a listening socket's
/// options to each socket it accepts): then a connection costs no system
/// call for them, where it would cost three (`TCP_NODELAY`, the write
/// timeout and the idle read timeout). Returns the listener and what its
/// sockets inherit; each connection sets the rest itself
/// (`conn::set_socket_options`, `io::Transport`).
///
/// The read timeout also bounds each `accept`, which then returns
/// `WouldBlock` once per idle timeout while no one connects: the thread
/// just waits again (`is_transient`). So it is set only for idle timeouts
/// of a second or more.
fn preset_socket_options(listener: TcpListener, config: &Config) -> (TcpListener, Inherited) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::fd::OwnedFd;
        // std sets these options only through a `TcpStream`; it is the same
        // kind of socket, and goes straight back to being a listener.
        let socket = TcpStream::from(OwnedFd::from(listener));
        let options = conn::set_socket_options(&socket, config);
        let read_timeout = Some(crate::io::socket_timeout(config.idle_timeout))
            .filter(|&t| t >= LISTENER_READ_TIMEOUT_MIN && socket.set_read_timeout(Some(t)).is_ok());
        (TcpListener::from(OwnedFd::from(socket)), Inherited { options, read_timeout })
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = config;
        (listener, Inherited::default())
    }
}

/// Refuses a connection with 503 (at the cap, or when no thread could be
/// made). The accept loop must not block on it, so the response is
/// written without blocking (it fits in an empty send buffer), and the
/// lingering close is left to the lingering thread (see `linger`).
fn refuse(stream: Arc<TcpStream>, shared: &Shared) {
    let config = &shared.config;
    // No body: the request was not read, so whether it is a HEAD
    // (which must get none, RFC 9110 §9.3.2) is unknown.
    let response = Response::status(503).with_header("Retry-After", config.retry_after_secs.to_string());
    let mut bytes = Vec::with_capacity(256);
    response.write_refusal(&mut bytes);
    if stream.set_nonblocking(true).is_err() || (&*stream).write(&bytes).is_err() {
        return;
    }
    let _ = stream.shutdown(Shutdown::Write);
    if !shared.lingerer.hand_off(stream.clone(), REFUSED_LINGER, config.linger_bytes) {
        // The lingering thread is full, and the bound on refused sockets
        // held matters more than their close: the socket is dropped here.
        // What has arrived of the request is read first (without blocking),
        // as dropping a socket with unread input sends a reset in place of
        // the FIN (RFC 9112 §9.6), which can destroy the 503 before its
        // client reads it.
        linger::discard_arrived(&stream);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::panic::{self, AssertUnwindSafe};

    /// Slots in `state`, idle since `since[i]`, sharing one socket.
    fn slots(since: &[u64], state: u8) -> Vec<Arc<Slot>> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = Arc::new(TcpStream::connect(listener.local_addr().unwrap()).unwrap());
        let slot = |(i, &since): (usize, &u64)| Slot {
            id: i as u64 + 1,
            state: AtomicU8::new(state),
            idle_since: AtomicU64::new(since),
            responses: AtomicU64::new(0),
            stream: stream.clone(),
            cut: AtomicBool::new(false),
        };
        since.iter().enumerate().map(slot).map(Arc::new).collect()
    }

    #[test]
    fn eviction_takes_the_longest_idle_first_then_the_older_connection() {
        let all = slots(&[30, 10, 20, 10, 5], IDLE);
        all.iter().for_each(|s| s.count_response());
        all[4].state.store(BUSY, SeqCst);
        let order: Vec<u64> = eviction_order(all.iter(), 40).iter().map(|s| s.id).collect();
        assert_eq!(order, [2, 4, 3, 1]);
    }

    /// A connection idle since it was accepted may have its first request
    /// unread in its socket: the cap leaves it alone for a grace period.
    #[test]
    fn a_connection_without_a_response_is_evicted_only_after_a_grace() {
        let second = Duration::from_secs(1).as_nanos() as u64;
        let all = slots(&[5, 10, 5 * second], IDLE);
        all[0].count_response();
        let order = |now: u64| -> Vec<u64> { eviction_order(all.iter(), now).iter().map(|s| s.id).collect() };
        // The first has had its response: always a candidate. The others
        // are once idle for a second.
        assert_eq!(order(second + 9), [1]);
        assert_eq!(order(second + 10), [1, 2]);
        assert_eq!(order(6 * second - 1), [1, 2]);
        assert_eq!(order(6 * second), [1, 2, 3]);
    }

    /// Connection threads move the keys while the cap sorts them. A sort
    /// that read them as it went panicked within a fraction of a second
    /// here (its order not being total); the order must read each once.
    #[test]
    fn eviction_order_survives_keys_moving_while_it_sorts() {
        let all = slots(&(0..600).collect::<Vec<u64>>(), IDLE);
        let stop = Arc::new(AtomicBool::new(false));
        let mover = {
            let (all, stop) = (all.clone(), stop.clone());
            thread::spawn(move || {
                let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
                while !stop.load(Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    all[(x % 600) as usize].idle_since.store(x % 1000, SeqCst);
                }
            })
        };
        let started = Instant::now();
        let sorted = panic::catch_unwind(AssertUnwindSafe(|| {
            while started.elapsed() < Duration::from_millis(500) {
                assert_eq!(eviction_order(all.iter(), u64::MAX).len(), 600);
            }
        }));
        stop.store(true, Relaxed);
        mover.join().unwrap();
        assert!(sorted.is_ok(), "the sort panicked");
    }

    #[test]
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn accepted_sockets_inherit_the_connection_options_from_the_listener() {
        // The kernel keeps timeouts in its own ticks: compare loosely.
        let near = |t: Option<Duration>, ms: u64| t.is_some_and(|t| t.as_millis().abs_diff(ms.into()) < 20);
        for (idle_ms, read_timeout_inherited) in [(1500, true), (300, false)] {
            let config = Builder::default()
                .idle_timeout(Duration::from_millis(idle_ms))
                .write_timeout(Duration::from_millis(900))
                .config;
            let (listener, inherited) = preset_socket_options(TcpListener::bind("127.0.0.1:0").unwrap(), &config);
            let read_timeout = read_timeout_inherited.then_some(Duration::from_millis(idle_ms));
            assert_eq!(inherited, Inherited { options: true, read_timeout });
            let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (accepted, _) = listener.accept().unwrap();
            assert!(accepted.nodelay().unwrap());
            assert!(near(accepted.write_timeout().unwrap(), 900));
            match read_timeout {
                Some(_) => assert!(near(accepted.read_timeout().unwrap(), idle_ms)),
                // A short idle timeout is left to each connection: on the
                // listener it would wake the threads in `accept` as often.
                None => assert_eq!(accepted.read_timeout().unwrap(), None),
            }
        }
    }

    #[test]
    fn debug_output_names_the_address_and_the_closes_that_happened() {
        let mut closes = [0; CloseReason::ALL.len()];
        closes[CloseReason::IdleTimeout.index()] = 3;
        let stats = Stats {
            open: 1,
            idle: 1,
            busy: 0,
            accepted: 4,
            requests: 9,
            over_capacity: 0,
            threads: 2,
            parked: 1,
            closes,
        };
        let text = format!("{stats:?}");
        assert!(text.contains("requests: 9") && text.ends_with("closes: {\"idle-timeout\": 3} }"), "{text}");
        let server = Server::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().to_string();
        for text in [format!("{server:?}"), format!("{:?}", server.handle())] {
            assert!(text.contains(&addr), "{text}");
        }
        let text = format!("{:?}", Builder::default().on_event(|_| {}));
        assert!(
            text.contains("shutdown_timeout: 10s") && text.ends_with("retry_after: 1, on_event: Some(\"set\") }"),
            "{text}"
        );
    }

    #[test]
    fn a_zero_write_timeout_is_the_shortest_one_not_none() {
        // To the system a zero timeout means none (std refuses to set it):
        // a client that stops reading would then hold its thread for ever.
        let config = Builder::default().write_timeout(Duration::ZERO).config;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(conn::set_socket_options(&accepted, &config));
        let t = accepted.write_timeout().unwrap();
        assert!(t.is_some_and(|t| t < Duration::from_millis(50)), "{t:?}");
    }

    #[test]
    fn a_refusal_the_lingering_thread_has_no_room_for_still_ends_with_a_fin() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut server = Server::from_listener(listener, Builder::default().config).unwrap();
        Arc::get_mut(&mut server.shared).unwrap().lingerer = Lingerer::with_max(0);
        let mut client = TcpStream::connect(server.local_addr()).unwrap();
        client.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let (accepted, _) = server.listener.accept().unwrap();
        refuse(Arc::new(accepted), &server.shared);
        let mut response = String::new();
        client.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 503 "), "{response}");
        // A socket dropped with its input unread would have sent a reset,
        // which the client's socket records as an error.
        assert!(client.take_error().unwrap().is_none());
    }

    #[test]
    fn a_listener_made_non_blocking_elsewhere_is_made_blocking() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let config = Builder::default().idle_timeout(Duration::from_secs(1)).config;
        let server = Server::from_listener(listener, config).unwrap();
        // Nobody connects: a blocking accept waits for the listener's read
        // timeout (where it has one) or for ever; a non-blocking one
        // returns at once.
        let (tx, rx) = std::sync::mpsc::channel();
        let started = Instant::now();
        thread::spawn(move || {
            let _ = server.listener.accept();
            let _ = tx.send(());
        });
        let returned = rx.recv_timeout(Duration::from_millis(100)).is_ok();
        assert!(!returned, "accept returned after {:?}", started.elapsed());
    }

    #[test]
    fn accept_waits_again_at_once_after_its_timeout_but_backs_off_when_out_of_resources() {
        for kind in [io::ErrorKind::WouldBlock, io::ErrorKind::TimedOut, io::ErrorKind::ConnectionAborted] {
            assert!(is_transient(&kind.into()), "{kind:?}");
        }
        // EMFILE and ENOMEM, as Linux numbers them.
        for errno in [24, 12] {
            assert!(!is_transient(&io::Error::from_raw_os_error(errno)), "errno {errno}");
        }
    }
}
