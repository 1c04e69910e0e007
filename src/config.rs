//! Server configuration: limits and timeouts, each with its default and the
//! reason for it.

use std::fmt;
use std::io;
use std::net::{TcpListener, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use crate::parse::HeadLimits;
use crate::server::{Event, Server};

/// The callback that receives connection [`Event`]s.
pub(crate) type EventHook = Arc<dyn Fn(&Event) + Send + Sync>;

/// Builds a [`Server`]: `Server::builder()`, setters, then [`Builder::bind`].
///
/// ```
/// use std::time::Duration;
/// let server = h1serve::Server::builder()
///     .idle_timeout(Duration::from_secs(5))
///     .max_connections(64)
///     .max_body_bytes(1 << 20)
///     .bind("127.0.0.1:0")?;
/// assert_ne!(server.local_addr().port(), 0);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Builder {
    pub(crate) config: Config,
}

/// The settings a running server uses (read-only once bound).
#[derive(Clone)]
pub(crate) struct Config {
    pub max_request_line: usize,
    pub max_head_bytes: usize,
    pub max_headers: usize,
    pub max_body_bytes: u64,
    pub max_drain_bytes: u64,
    pub idle_timeout: Duration,
    pub header_timeout: Duration,
    pub body_read_timeout: Duration,
    pub write_timeout: Duration,
    pub linger_timeout: Duration,
    pub linger_bytes: u64,
    pub shutdown_timeout: Duration,
    pub max_connections: usize,
    pub max_requests_per_connection: u64,
    pub thread_stack_size: Option<usize>,
    pub max_idle_threads: usize,
    pub idle_thread_timeout: Duration,
    pub retry_after_secs: u32,
    pub on_event: Option<EventHook>,
}

impl Config {
    pub(crate) fn head_limits(&self) -> HeadLimits {
        HeadLimits { request_line: self.max_request_line, head_bytes: self.max_head_bytes, fields: self.max_headers }
    }
}

impl Default for Builder {
    fn default() -> Builder {
        Builder {
            config: Config {
                max_request_line: 8 * 1024,
                max_head_bytes: 64 * 1024,
                max_headers: 100,
                max_body_bytes: 16 * 1024 * 1024,
                max_drain_bytes: 256 * 1024,
                idle_timeout: Duration::from_secs(60),
                header_timeout: Duration::from_secs(10),
                body_read_timeout: Duration::from_secs(30),
                write_timeout: Duration::from_secs(30),
                linger_timeout: Duration::from_secs(2),
                linger_bytes: 16 * 1024 * 1024,
                shutdown_timeout: Duration::from_secs(10),
                max_connections: 2048,
                max_requests_per_connection: 100_000,
                thread_stack_size: None,
                max_idle_threads: 64,
                idle_thread_timeout: Duration::from_secs(30),
                retry_after_secs: 1,
                on_event: None,
            },
        }
    }
}

impl Builder {
    /// Longest request line accepted; longer gets 414 URI Too Long
    /// (RFC 9112 §3). Default 8 KiB, the length RFC 9112 §3 asks every
    /// recipient to support at the least.
    pub fn max_request_line(mut self, bytes: usize) -> Builder {
        self.config.max_request_line = bytes;
        self
    }

    /// Largest header section (request line, fields, blank line); larger
    /// gets 431 (RFC 6585 §5). Default 64 KiB: far above what browsers send
    /// (a few KiB with cookies), small enough to bound per-connection memory.
    /// Trailer sections of chunked bodies have the same bound.
    pub fn max_head_bytes(mut self, bytes: usize) -> Builder {
        self.config.max_head_bytes = bytes;
        self
    }

    /// Most header fields per request; more gets 431. Default 100, as
    /// hyper and Go.
    pub fn max_headers(mut self, count: usize) -> Builder {
        self.config.max_headers = count;
        self
    }

    /// Largest request body. A declared `Content-Length` over it gets 413
    /// before any of the body is read (and no `100 Continue`); a chunked body
    /// that grows past it fails the handler's read and gets 413. Default
    /// 16 MiB: enough for the uploads a local tool takes, small enough that
    /// a stray client cannot fill memory through `read_to_end`.
    pub fn max_body_bytes(mut self, bytes: u64) -> Builder {
        self.config.max_body_bytes = bytes;
        self
    }

    /// How much of a body the handler left unread the server will read and
    /// discard to keep the connection open; past it, it closes instead
    /// (as Go's net/http does, with the same default of 256 KiB).
    pub fn max_drain_bytes(mut self, bytes: u64) -> Builder {
        self.config.max_drain_bytes = bytes;
        self
    }

    /// How long a kept-alive connection may wait for the first byte of its
    /// next request before the server closes it. Announced to HTTP/1.0
    /// clients in `Keep-Alive: timeout=`, a second short and rounded down to
    /// whole seconds (the idle clock starts before the client has the
    /// response); under 2 s, no `timeout=` is sent.
    /// Default 60 s: idle connections cost a blocked thread and a few KiB,
    /// and at the connection cap the longest-idle one is closed first anyway.
    pub fn idle_timeout(mut self, timeout: Duration) -> Builder {
        self.config.idle_timeout = timeout;
        self
    }

    /// Deadline for a whole request head, counted from when its first bytes
    /// are in hand, not per read: a client trickling a byte at a time cannot
    /// hold a thread (slowloris). On expiry the client gets 408. Default 10 s.
    pub fn header_timeout(mut self, timeout: Duration) -> Builder {
        self.config.header_timeout = timeout;
        self
    }

    /// Longest wait for each read of a request body while the handler
    /// reads it (the time between two reads, like nginx's
    /// `client_body_timeout`). Default 30 s.
    pub fn body_read_timeout(mut self, timeout: Duration) -> Builder {
        self.config.body_read_timeout = timeout;
        self
    }

    /// Longest time a write may make no progress: a client that stops
    /// reading its response is cut off after it (nginx's `send_timeout`).
    /// A slow but reading client keeps going. Default 30 s. Zero is taken
    /// as 1 ms (to the system, a zero socket timeout means none).
    pub fn write_timeout(mut self, timeout: Duration) -> Builder {
        self.config.write_timeout = timeout;
        self
    }

    /// Bounds the lingering close: after `shutdown(Write)` the server reads
    /// and discards input until the client closes, for at most `timeout`
    /// and `bytes` (like nginx's `lingering_time`). Without it, input still
    /// arriving after the close makes the kernel send a reset that can
    /// destroy the response just written (RFC 9112 §9.6). Defaults 2 s and
    /// 16 MiB, the default body limit: a client that sends a whole body
    /// before it reads (one that does not use `Expect: 100-continue`) can
    /// then still read an early answer, such as a 401 or 413 sent before
    /// the body was read, if its body is no larger and arrives within the
    /// time. Where [`Builder::max_body_bytes`] is raised for larger
    /// uploads, raise this with it.
    pub fn linger(mut self, timeout: Duration, bytes: u64) -> Builder {
        self.config.linger_timeout = timeout;
        self.config.linger_bytes = bytes;
        self
    }

    /// How long [`Handle::shutdown`](crate::Handle::shutdown) waits for
    /// in-flight requests before it closes their connections; it also
    /// bounds the lingering closes at shutdown (a close that began just
    /// before the deadline still gets a quarter second), so `serve` returns
    /// within it, plus at most 0.35 s. Idle connections are sent their FIN
    /// at once, and their clients have until the linger timeout or this
    /// deadline, whichever comes first, to close. Default 10 s.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Builder {
        self.config.shutdown_timeout = timeout;
        self
    }

    /// Most connections open at once (each holds a thread). At the cap a
    /// new connection closes the connection idle the longest, or, when all
    /// are busy, gets 503 with `Retry-After`. A connection that has not had
    /// a response yet is not closed for a newcomer until it has been idle
    /// for a second: its first request may be on its way. Default 2048; at
    /// least 1.
    pub fn max_connections(mut self, count: usize) -> Builder {
        self.config.max_connections = count.max(1);
        self
    }

    /// Most requests served on one connection; the last response says
    /// `Connection: close`, and `Keep-Alive: max=` counts down to it.
    /// Default 100 000 (nginx's `keepalive_requests` is 1000): finite, so a
    /// connection's life is bounded, and high enough that even a client
    /// pipelining at a million requests a second reconnects only a few
    /// times a second. Pipelined requests sent after the last allowed one
    /// are not answered, and the client must resend them (RFC 9112 §9.3.2).
    /// At least 1.
    pub fn max_requests_per_connection(mut self, count: u64) -> Builder {
        self.config.max_requests_per_connection = count.max(1);
        self
    }

    /// Stack size of connection threads, where handlers run. Default: that
    /// of any thread std spawns (2 MiB, or `RUST_MIN_STACK`), so code that
    /// runs on a `std::thread` runs in a handler: a stack overflow aborts
    /// the whole process, and ordinary library calls in a debug build
    /// (an HTTP client's, say) can need more than 256 KiB. The size costs
    /// address space, not memory: only touched pages count, and the server
    /// itself touches two pages (8 KiB) of an idle connection's stack (1000
    /// idle connections measured the same RSS with 256 KiB and 2 MiB
    /// stacks). Lower it only where address space is short (32-bit
    /// targets), and only for handlers known to need little.
    pub fn thread_stack_size(mut self, bytes: usize) -> Builder {
        self.config.thread_stack_size = Some(bytes);
        self
    }

    /// How many threads may wait in `accept` for the next connection when
    /// their own has ended, rather than exit (it is still one thread per
    /// connection; keeping them saves a spawn per connection). At least
    /// one thread always waits there. Default 64.
    pub fn max_idle_threads(mut self, count: usize) -> Builder {
        self.config.max_idle_threads = count;
        self
    }

    /// Threads that wait in `accept` this long without being needed exit,
    /// down to one: after a burst, the server gives back the threads (and
    /// their stacks) it no longer uses. Default 30 s; at least 1 ms (the
    /// serving thread checks this often, and a zero would leave it no time
    /// to wait in between).
    pub fn idle_thread_timeout(mut self, timeout: Duration) -> Builder {
        self.config.idle_thread_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The `Retry-After` seconds sent with 503 at the connection cap.
    /// Default 1.
    pub fn retry_after(mut self, seconds: u32) -> Builder {
        self.config.retry_after_secs = seconds;
        self
    }

    /// Calls `hook` with every [`Event`]: a connection opened
    /// ([`Event::Opened`]), a response written ([`Event::Request`]), a
    /// handler's error answered with 500 ([`Event::HandlerFailed`]), a
    /// request the server refused itself ([`Event::Refused`]), a connection
    /// gone idle ([`Event::Idle`]) or closed, with its reason
    /// ([`Event::Closed`]), and a connection turned away with 503, at the
    /// cap or for want of a thread ([`Event::OverCapacity`]). A
    /// connection's events run on its own thread; `OverCapacity` on the
    /// thread that accepted it, which may be the one in [`Server::serve`].
    /// Keep it short. Default: none.
    pub fn on_event(mut self, hook: impl Fn(&Event) + Send + Sync + 'static) -> Builder {
        self.config.on_event = Some(Arc::new(hook));
        self
    }

    /// Binds the listening socket. Use port 0 for any free port and
    /// [`Server::local_addr`] to learn it.
    pub fn bind(self, addr: impl ToSocketAddrs) -> io::Result<Server> {
        Server::from_listener(TcpListener::bind(addr)?, self.config)
    }

    /// Serves on a listener bound elsewhere. The server makes it blocking
    /// (its threads wait in `accept`) and, where accepted sockets inherit
    /// them, sets on it the options every connection needs: `TCP_NODELAY`,
    /// the write timeout, and the idle timeout as its read timeout when
    /// that is a second or more.
    pub fn listener(self, listener: TcpListener) -> io::Result<Server> {
        Server::from_listener(listener, self.config)
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        f.debug_struct("Builder")
            .field("max_request_line", &c.max_request_line)
            .field("max_head_bytes", &c.max_head_bytes)
            .field("max_headers", &c.max_headers)
            .field("max_body_bytes", &c.max_body_bytes)
            .field("max_drain_bytes", &c.max_drain_bytes)
            .field("idle_timeout", &c.idle_timeout)
            .field("header_timeout", &c.header_timeout)
            .field("body_read_timeout", &c.body_read_timeout)
            .field("write_timeout", &c.write_timeout)
            .field("linger", &(c.linger_timeout, c.linger_bytes))
            .field("shutdown_timeout", &c.shutdown_timeout)
            .field("max_connections", &c.max_connections)
            .field("max_requests_per_connection", &c.max_requests_per_connection)
            .field("thread_stack_size", &c.thread_stack_size)
            .field("max_idle_threads", &c.max_idle_threads)
            .field("idle_thread_timeout", &c.idle_thread_timeout)
            .field("retry_after", &c.retry_after_secs)
            .field("on_event", &c.on_event.as_ref().map(|_| "set"))
            .finish()
    }
}
