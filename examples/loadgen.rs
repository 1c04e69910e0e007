//! A small HTTP/1.1 load generator, std-only, so that a server can be
//! measured without installing anything.
//!
//! ```text
//! cargo run --release --example loadgen -- URL [-c CONNECTIONS] [-d DURATION_S] [--close]
//!                                          [--pipeline DEPTH] [--threads N] [--timeout S]
//!                                          [-H 'NAME: VALUE']...
//! ```
//!
//! `URL` is `http://HOST[:PORT][/PATH[?QUERY]]`. Defaults: 50 connections,
//! 5 s, keep-alive, pipeline depth 1, one blocking thread per connection,
//! a 2 s timeout per request. Every connection sends
//! `GET PATH HTTP/1.1` with a `Host` field and, as soon as the response is
//! complete, the next request: a *closed loop*, as `wrk` does.
//!
//! * `--close` adds `Connection: close` to every request, so each request
//!   opens a new connection (like wrk with a script setting that header).
//! * `--pipeline D` writes D requests at once and then reads D responses
//!   (RFC 9112 §9.3.2); it cannot be combined with `--close`.
//! * `--threads N` drives the connections from N threads polling
//!   non-blocking sockets instead of one blocking thread per connection
//!   (see *Design*).
//! * `--timeout S`: a response not complete S seconds after its request was
//!   written counts as a timeout and its connection is replaced.
//! * `-H 'NAME: VALUE'` adds a header field to every request (repeatable),
//!   as wrk's `-H` does: a browser sends a dozen fields, and parsing them
//!   is most of what a server does per request.
//!
//! A wrong flag prints the usage on stderr and exits with 2; a first
//! connection that fails exits with 1; a completed run exits with 0 even if
//! requests failed (the errors are in the report).
//!
//! # Output
//!
//! A human-readable report, then one line for scripts:
//!
//! ```text
//! LOADGEN requests=123456 duration_s=5.000 rps=24691.2 p50_ms=1.021 p99_ms=3.120 p999_ms=7.150 max_ms=12.300
//!         errors=0 err_connect=0 err_read=0 err_write=0 err_status=0 err_timeout=0 conns=50
//! ```
//!
//! (on a single line). `requests` counts complete responses received
//! before the end of the run, whatever their status; requests still in
//! flight when the time is up are not counted, neither as requests nor as
//! errors. `rps` is `requests / duration_s`. Errors:
//!
//! * `connect`: a connection could not be opened;
//! * `read`: the connection failed or closed before a complete response,
//!   or the response was malformed (wrk counts parse errors the same way);
//! * `write`: a request could not be written;
//! * `status`: a final response whose status is not 2xx (wrk counts only
//!   status >= 400);
//! * `timeout`: no complete response within `--timeout`.
//!
//! `conns` is the number of connections opened: equal to `-c` in keep-alive
//! mode unless the server closed some, about one per request with `--close`.
//!
//! # Design
//!
//! The load generator shares the machine with the server it measures, so
//! every CPU cycle it spends is one the server does not get. std has no
//! readiness API (no `poll`/`epoll`): a thread that owns several sockets
//! can only learn that one of them is readable by trying it. Two engines
//! are offered; the default is the one that perturbs the server least:
//!
//! * **One blocking thread per connection (default).** A thread writes its
//!   request, then sleeps in `read` until the kernel wakes it because the
//!   response arrived, which is also when its latency is taken. A waiting
//!   connection costs no CPU; per request the client spends one `write`,
//!   usually one `read` and one wake-up, about what an epoll-based tool
//!   like wrk spends (a `read`, a `write`, a share of an `epoll_wait`). So
//!   the 50 threads do not distort the measurement the way their number
//!   suggests: they are asleep except when a response needs handling, and
//!   then they ask the CPU for the work any client has to do. Their cost is
//!   memory (a 256 KiB stack reservation, a 16 KiB buffer and a 35 KiB
//!   histogram each), fine for hundreds of connections, heavy for thousands.
//! * **`--threads N` polling threads.** Each thread owns its share of the
//!   connections in non-blocking mode and tries each in turn; after a pass
//!   that found nothing to do it yields, and after a few such passes it
//!   sleeps 50 µs between passes. When the server is busy and connections
//!   are many, a pass nearly always finds work and this is as cheap as
//!   blocking. But while responses are slow to come the threads keep
//!   polling: against a server that answers after 5 ms, 4 connections
//!   cost about a fifth of a core, where blocking threads and wrk cost
//!   almost nothing; and a response that arrives during a pass or a sleep
//!   waits to be noticed, which adds to its latency. Use it when one
//!   thread per connection is too many.
//!
//! Every thread keeps its own counters and histogram (no shared state
//! while running); they are merged at the end.
//!
//! Responses are parsed properly, so any server can be measured: the status
//! line, the fields, and the body framing of RFC 9112 §6.3 (no body for
//! 1xx, 204 and 304; `Transfer-Encoding: chunked`, §7.1; `Content-Length`,
//! §6.2; otherwise until the server closes). Interim 1xx responses are
//! skipped. The connection is reused unless the response says
//! `Connection: close` or is HTTP/1.0 without `keep-alive` (§9.3), or its
//! body ended with the connection.
//!
//! # Latency
//!
//! A request's latency runs from the moment its request (or its pipelined
//! batch) is handed to the kernel to the moment the last byte of its
//! response has been parsed, as the client sees it. With `--pipeline D`
//! every response is a sample, measured from the write of the batch, so
//! later responses of a batch are slower; wrk records one sample per batch
//! (its last response). With `--close` the clock starts once the
//! connection is open, as in wrk: connection setup is not in the figures.
//! Latencies go into a log-linear histogram (exact below 256 ns, then 128
//! buckets per power of two: better than 1% precision in fixed memory);
//! p50, p99 and p99.9 are read from it.
//!
//! **Coordinated omission.** Like wrk (not wrk2), this is a closed loop: a
//! connection sends its next request only when the previous response is
//! complete. When the server stalls for a second, each connection records
//! *one* slow request instead of the hundreds a steady stream of users
//! would have sent during the stall, so high percentiles understate what
//! users of a stalling server would see. The figures describe the server
//! under a fixed concurrency, not under a fixed arrival rate.
//!
//! # Comparing with wrk
//!
//! ```text
//! wrk -t2 -c50 -d5s --latency http://127.0.0.1:8080/     # vs  loadgen http://127.0.0.1:8080/
//! wrk -t2 -c8 -d5s -s close.lua http://127.0.0.1:8080/   # vs  loadgen http://127.0.0.1:8080/ --close -c 8
//! ```
//!
//! where `close.lua` is `wrk.headers["Connection"] = "close"`. Run the two
//! alternately, several times, on an otherwise idle machine: each shares
//! the CPU with the server, so a run is only comparable with runs made in
//! the same conditions. Expect requests per second in the same range (the
//! client CPU per request is about the same). Expect higher latencies here
//! against a busy server, by construction: both clocks start when a
//! request is written, but a loadgen thread writes the next request as
//! soon as a response is complete, so with C connections the mean latency
//! is close to C / rps (Little's law); wrk first handles the other sockets
//! its `epoll_wait` reported and only then writes, and that turnaround is
//! in neither its latency nor the server's load. (On a 2-core machine,
//! wrk `-c50` measured a 0.53 ms mean at 52,800 req/s, while each of its
//! connections took 50 / 52,800 = 0.95 ms per request.) wrk's `Latency`
//! line gives the mean and standard deviation; compare its `--latency`
//! percentiles with the ones here.
//!
//! What this teaches: the client side of HTTP/1.1 framing (a client must
//! know where each response ends to reuse the connection), pipelining,
//! `Connection: close`, and how a measuring tool shares the machine with
//! what it measures.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::exit;
use std::thread;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: loadgen URL [-c CONNECTIONS] [-d DURATION_S] [--close] [--pipeline DEPTH] \
                     [--threads N] [--timeout S] [-H 'NAME: VALUE']...\n  URL is http://HOST[:PORT][/PATH]; defaults: -c 50 -d 5, \
                     keep-alive, --pipeline 1, one thread per connection, --timeout 2";

/// `println!` without the panic when stdout is a closed pipe (`| head`):
/// losing the report is the reader's choice.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(io::stdout(), $($arg)*);
    }};
}

/// Response heads (and chunk-size lines) longer than this are malformed.
const MAX_HEAD: usize = 64 * 1024;

fn main() {
    let opts = parse_args(std::env::args().skip(1)).unwrap_or_else(|msg| {
        eprintln!("loadgen: {msg}\n{USAGE}");
        exit(2)
    });
    let addr = match (opts.host.as_str(), opts.port).to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(addr)) => addr,
        Ok(None) => fail(&format!("{} has no address", opts.host)),
        Err(e) => fail(&format!("cannot resolve {}: {e}", opts.host)),
    };
    // The first connection is opened before the clock starts, so that a
    // wrong address or a server that is not running fails at once.
    let first = open(addr, opts.timeout).unwrap_or_else(|e| fail(&format!("cannot connect to {addr}: {e}")));

    let mut request = format!("GET {} HTTP/1.1\r\nHost: {}\r\n", opts.path, opts.authority);
    for field in &opts.headers {
        request.push_str(field);
        request.push_str("\r\n");
    }
    if opts.close {
        // RFC 9112 §9.6: the server closes after responding, and the
        // client must not send anything more on this connection.
        request.push_str("Connection: close\r\n");
    }
    request.push_str("\r\n");
    let start = Instant::now();
    let plan = &Plan {
        addr,
        batch: request.repeat(opts.pipeline),
        depth: opts.pipeline,
        close: opts.close,
        timeout: opts.timeout,
        start,
        deadline: start + opts.duration,
    };

    let engine = match opts.threads {
        None => format!("{} threads, blocking", opts.connections),
        Some(n) => format!("{n} threads, polling"),
    };
    say!(
        "loadgen: GET {} for {:.1} s, {} connections, {}, pipeline {}, {engine}",
        opts.url,
        opts.duration.as_secs_f64(),
        opts.connections,
        if opts.close { "close" } else { "keep-alive" },
        opts.pipeline,
    );

    let mut first = Some(first);
    let total = thread::scope(|scope| {
        let workers: Vec<_> = match opts.threads {
            None => (0..opts.connections)
                .map(|_| {
                    let conn = first.take();
                    thread::Builder::new()
                        .stack_size(256 * 1024)
                        .spawn_scoped(scope, move || blocking_connection(plan, conn))
                        .unwrap_or_else(|e| fail(&format!("cannot start a thread per connection: {e}")))
                })
                .collect(),
            Some(threads) => (0..threads)
                .map(|i| {
                    let share = opts.connections / threads + usize::from(i < opts.connections % threads);
                    let conn = first.take();
                    scope.spawn(move || polling_worker(plan, share, conn))
                })
                .collect(),
        };
        let mut total = Tally::new();
        for w in workers {
            total.merge(&w.join().expect("a worker panicked"));
        }
        total
    });
    report(&total, opts.duration);
}

fn fail(msg: &str) -> ! {
    eprintln!("loadgen: {msg}");
    exit(1)
}

// ---------------------------------------------------------------------------
// Command line

struct Opts {
    url: String,
    host: String,
    port: u16,
    /// The `Host` field value: the URL's authority (RFC 9110 §7.2).
    authority: String,
    path: String,
    connections: usize,
    duration: Duration,
    close: bool,
    pipeline: usize,
    threads: Option<usize>,
    timeout: Duration,
    /// Extra header field lines (`-H`), without their CRLF.
    headers: Vec<String>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Opts, String> {
    let mut url = None;
    let mut headers = Vec::new();
    let (mut connections, mut duration, mut close, mut pipeline, mut threads, mut timeout) =
        (50, Duration::from_secs(5), false, 1, None, Duration::from_secs(2));
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().ok_or_else(|| format!("{flag} needs a value"));
        match arg.as_str() {
            "-c" | "--connections" => connections = count(&arg, &value(&arg)?, 10_000)?,
            "-d" | "--duration" => duration = seconds(&arg, &value(&arg)?)?,
            "--close" => close = true,
            "--pipeline" => pipeline = count(&arg, &value(&arg)?, 1024)?,
            "--threads" => threads = Some(count(&arg, &value(&arg)?, 1024)?),
            "--timeout" => timeout = seconds(&arg, &value(&arg)?)?,
            "-H" | "--header" => headers.push(field_line(&value(&arg)?)?),
            "-h" | "--help" => {
                println!("{USAGE}");
                exit(0)
            }
            flag if flag.starts_with('-') => return Err(format!("unknown flag {flag}")),
            _ if url.is_some() => return Err("more than one URL".into()),
            _ => url = Some(arg),
        }
    }
    let url = url.ok_or("no URL")?;
    if close && pipeline > 1 {
        // A request with `Connection: close` must be the last one sent on
        // its connection (RFC 9112 §9.6), so there is nothing to pipeline.
        return Err("--close and --pipeline cannot be combined".into());
    }
    // RFC 3986 §3.1: the scheme is case-insensitive.
    let rest = url
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case("http://"))
        .map(|_| &url[7..])
        .ok_or("the URL must start with http:// (no TLS here)")?;
    let rest = rest.split('#').next().unwrap_or_default();
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'?' => (&rest[..i], format!("/{}", &rest[i..])),
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err("the path must not contain spaces or control characters".into());
    }
    let (host, port) = split_authority(authority).ok_or_else(|| format!("bad host or port in {url}"))?;
    Ok(Opts {
        url: url.clone(),
        host,
        port,
        authority: authority.to_string(),
        path,
        connections,
        duration,
        close,
        pipeline,
        threads: threads.map(|t: usize| t.min(connections)),
        timeout,
        headers,
    })
}

/// A `-H` argument as a field line: `NAME: VALUE`, with a token for a name
/// and no control characters in the value (RFC 9110 §5.1, §5.5), so that
/// it cannot split the request. `Host` is the URL's to set.
fn field_line(arg: &str) -> Result<String, String> {
    let (name, value) = arg.split_once(':').ok_or_else(|| format!("-H {arg:?}: not NAME: VALUE"))?;
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) || name.eq_ignore_ascii_case("host") {
        return Err(format!("-H {arg:?}: not a field name loadgen can send"));
    }
    let value = value.trim_matches([' ', '\t']);
    if value.chars().any(|c| c.is_ascii_control() && c != '\t') {
        return Err(format!("-H {arg:?}: control characters in the value"));
    }
    Ok(format!("{name}: {value}"))
}

/// `host`, `host:port`, `[v6]` or `[v6]:port` (no user info).
fn split_authority(authority: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, if after.is_empty() { None } else { Some(after.strip_prefix(':')?) })
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => 80,
        Some(p) => p.parse().ok()?,
    };
    let valid = |c: char| c.is_ascii_alphanumeric() || "-._:%".contains(c);
    (!host.is_empty() && host.chars().all(valid)).then(|| (host.to_string(), port))
}

fn count(flag: &str, v: &str, max: usize) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("{flag} needs a whole number from 1 to {max}, not {v:?}")),
    }
}

/// A duration of at least a millisecond (a shorter one would round to
/// nothing: no run, or a socket timeout std refuses) and at most 10⁶ s.
fn seconds(flag: &str, v: &str) -> Result<Duration, String> {
    match v.strip_suffix('s').unwrap_or(v).parse::<f64>() {
        Ok(s) if (0.001..=1e6).contains(&s) => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!("{flag} needs a number of seconds from 0.001 to 1000000, not {v:?}")),
    }
}

// ---------------------------------------------------------------------------
// What every worker shares (read-only) and what it counts.

struct Plan {
    addr: SocketAddr,
    /// `depth` copies of the request, written with one call.
    batch: String,
    depth: usize,
    close: bool,
    timeout: Duration,
    start: Instant,
    /// No request is started and no response counted at or after this.
    deadline: Instant,
}

#[derive(Default)]
struct Errors {
    connect: u64,
    read: u64,
    write: u64,
    status: u64,
    timeout: u64,
}

struct Tally {
    /// What was wrong with the first malformed response, for the report.
    malformed: Option<&'static str>,
    requests: u64,
    conns: u64,
    errors: Errors,
    latency: Histogram,
}

impl Tally {
    fn new() -> Tally {
        Tally { malformed: None, requests: 0, conns: 0, errors: Errors::default(), latency: Histogram::new() }
    }

    /// Counts a complete response that ended at `now`, `elapsed` after its
    /// request (or batch) was written.
    fn response(&mut self, status: u16, elapsed: Duration) {
        self.requests += 1;
        if !(200..300).contains(&status) {
            self.errors.status += 1;
        }
        self.latency.record(elapsed.as_nanos().min(u64::MAX as u128) as u64);
    }

    fn malformed(&mut self, what: Malformed) {
        self.errors.read += 1;
        self.malformed.get_or_insert(what.0);
    }

    fn merge(&mut self, other: &Tally) {
        self.malformed = self.malformed.or(other.malformed);
        self.requests += other.requests;
        self.conns += other.conns;
        let (e, o) = (&mut self.errors, &other.errors);
        e.connect += o.connect;
        e.read += o.read;
        e.write += o.write;
        e.status += o.status;
        e.timeout += o.timeout;
        self.latency.merge(&other.latency);
    }
}

fn open(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, timeout)?;
    // Each request is written with a single call; without this, Nagle's
    // algorithm could hold a request back until the previous segment is
    // acknowledged.
    s.set_nodelay(true)?;
    Ok(s)
}

/// Opens a connection, or counts a connect error. A failed attempt is
/// followed by a short pause so that a refusing server is not flooded.
fn connect_or_count(plan: &Plan, tally: &mut Tally) -> Option<TcpStream> {
    let left = plan.deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return None;
    }
    match open(plan.addr, plan.timeout.min(left)) {
        Ok(s) => {
            tally.conns += 1;
            Some(s)
        }
        Err(_) => {
            tally.errors.connect += 1;
            None
        }
    }
}

const CONNECT_RETRY: Duration = Duration::from_millis(10);

// ---------------------------------------------------------------------------
// Engine 1: one blocking thread per connection.

fn blocking_connection(plan: &Plan, mut conn: Option<TcpStream>) -> Tally {
    let mut tally = Tally::new();
    if conn.is_some() {
        tally.conns += 1;
    }
    let mut input = InBuf::new();
    // The read timeout currently set on the socket: re-set only when it
    // would let a read overrun the request's limit (one system call less
    // per request).
    let mut armed = Duration::ZERO;
    while Instant::now() < plan.deadline {
        let Some(stream) = conn.as_mut() else {
            conn = connect_or_count(plan, &mut tally);
            if conn.is_none() {
                thread::sleep(CONNECT_RETRY.min(plan.deadline.saturating_duration_since(Instant::now())));
            }
            input.clear();
            armed = Duration::ZERO;
            continue;
        };
        let sent = Instant::now();
        if stream.write_all(plan.batch.as_bytes()).is_err() {
            tally.errors.write += 1;
            conn = None;
            continue;
        }
        let limit = (sent + plan.timeout).min(plan.deadline);
        let mut parser = ResponseParser::new();
        let mut answered = 0;
        let keep = loop {
            // Parse what is buffered before reading more: pipelined
            // responses often arrive together.
            match parser.advance(input.pending()) {
                Err(what) => {
                    tally.malformed(what);
                    break false;
                }
                Ok((used, done)) => {
                    input.consume(used);
                    if let Some(done) = done {
                        let now = Instant::now();
                        if now >= plan.deadline {
                            break false;
                        }
                        tally.response(done.status, now - sent);
                        answered += 1;
                        if !done.keep_alive {
                            // Pipelined requests after this one are
                            // unanswered; a new connection starts afresh.
                            break false;
                        }
                        if answered == plan.depth {
                            break !plan.close;
                        }
                        continue;
                    }
                }
            }
            let left = limit.saturating_duration_since(Instant::now());
            if left.is_zero() {
                if Instant::now() < plan.deadline {
                    tally.errors.timeout += 1;
                }
                break false;
            }
            if armed.is_zero() || armed > left + Duration::from_millis(5) {
                if stream.set_read_timeout(Some(left)).is_err() {
                    tally.errors.read += 1;
                    break false;
                }
                armed = left;
            }
            let space = match input.space() {
                Some(space) => space,
                None => {
                    tally.errors.read += 1;
                    break false;
                }
            };
            match stream.read(space) {
                Ok(0) => {
                    if let Some(done) = parser.eof() {
                        let now = Instant::now();
                        if now < plan.deadline {
                            tally.response(done.status, now - sent);
                        }
                    } else if Instant::now() < plan.deadline {
                        tally.errors.read += 1;
                    }
                    break false;
                }
                Ok(n) => input.filled(n),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    if Instant::now() < plan.deadline {
                        tally.errors.read += 1;
                    }
                    break false;
                }
            }
        };
        if !keep {
            conn = None;
            input.clear();
            armed = Duration::ZERO;
        }
    }
    tally
}

// ---------------------------------------------------------------------------
// Engine 2: a few threads polling non-blocking sockets.

/// One connection driven by a polling worker.
struct Polled {
    stream: Option<TcpStream>,
    /// Bytes of the batch written so far.
    written: usize,
    /// When the batch's first byte was handed to the kernel.
    sent: Instant,
    answered: usize,
    parser: ResponseParser,
    input: InBuf,
    /// After a connect error: when to try again.
    retry_at: Option<Instant>,
}

fn polling_worker(plan: &Plan, share: usize, first: Option<TcpStream>) -> Tally {
    let mut tally = Tally::new();
    let mut conns: Vec<Polled> = (0..share)
        .map(|_| Polled {
            stream: None,
            written: 0,
            sent: plan.start,
            answered: 0,
            parser: ResponseParser::new(),
            input: InBuf::new(),
            retry_at: None,
        })
        .collect();
    if let (Some(s), Some(c)) = (first, conns.first_mut()) {
        if s.set_nonblocking(true).is_ok() {
            tally.conns += 1;
            c.stream = Some(s);
        }
    }
    let mut idle_passes = 0u32;
    loop {
        let now = Instant::now();
        if now >= plan.deadline {
            break;
        }
        let mut progress = false;
        for c in &mut conns {
            progress |= poll_connection(plan, c, &mut tally);
        }
        if progress {
            idle_passes = 0;
        } else {
            // Nothing was ready: yield a few times (cheap when the server
            // is about to answer), then sleep so as not to take a whole
            // core from the server.
            idle_passes += 1;
            if idle_passes < 4 {
                thread::yield_now();
            } else {
                thread::sleep(Duration::from_micros(50));
            }
        }
    }
    tally
}

/// Moves one connection forward as far as it can go without blocking.
/// Returns whether anything happened.
fn poll_connection(plan: &Plan, c: &mut Polled, tally: &mut Tally) -> bool {
    let mut progress = false;
    loop {
        let now = Instant::now();
        if now >= plan.deadline {
            return progress;
        }
        let Some(stream) = c.stream.as_mut() else {
            if c.retry_at.is_some_and(|t| now < t) {
                return progress;
            }
            progress = true;
            let opened = connect_or_count(plan, tally).filter(|s| s.set_nonblocking(true).is_ok());
            c.retry_at = opened.is_none().then(|| now + CONNECT_RETRY);
            c.stream = opened;
            c.written = 0;
            c.input.clear();
            continue;
        };
        if c.written < plan.batch.len() {
            if c.written == 0 {
                c.sent = now;
                c.answered = 0;
                c.parser = ResponseParser::new();
            }
            match stream.write(&plan.batch.as_bytes()[c.written..]) {
                Ok(n) => {
                    c.written += n;
                    progress = true;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return progress,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    tally.errors.write += 1;
                    c.stream = None;
                    return true;
                }
            }
        }
        // Waiting for responses: parse what is buffered, then read.
        match c.parser.advance(c.input.pending()) {
            Err(what) => {
                tally.malformed(what);
                c.stream = None;
                return true;
            }
            Ok((used, done)) => {
                c.input.consume(used);
                if let Some(done) = done {
                    tally.response(done.status, now - c.sent);
                    c.answered += 1;
                    if !done.keep_alive || (plan.close && c.answered == plan.depth) {
                        c.stream = None;
                    } else if c.answered == plan.depth {
                        c.written = 0;
                    }
                    progress = true;
                    continue;
                }
            }
        }
        if now.duration_since(c.sent) >= plan.timeout {
            tally.errors.timeout += 1;
            c.stream = None;
            return true;
        }
        let Some(space) = c.input.space() else {
            tally.errors.read += 1;
            c.stream = None;
            return true;
        };
        match stream.read(space) {
            Ok(0) => {
                if let Some(done) = c.parser.eof() {
                    tally.response(done.status, c.sent.elapsed());
                } else {
                    tally.errors.read += 1;
                }
                c.stream = None;
                return true;
            }
            Ok(n) => {
                c.input.filled(n);
                progress = true;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return progress,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                tally.errors.read += 1;
                c.stream = None;
                return true;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Input buffer and response parser (sans-I/O: fed bytes, returns events).

/// Bytes read and not yet parsed: `data[lo..hi]`. Body bytes are consumed
/// as soon as they arrive, so only a head or a line ever accumulates.
struct InBuf {
    data: Vec<u8>,
    lo: usize,
    hi: usize,
}

impl InBuf {
    fn new() -> InBuf {
        InBuf { data: vec![0; 16 * 1024], lo: 0, hi: 0 }
    }

    fn clear(&mut self) {
        (self.lo, self.hi) = (0, 0);
    }

    fn pending(&self) -> &[u8] {
        &self.data[self.lo..self.hi]
    }

    fn consume(&mut self, n: usize) {
        self.lo += n;
        if self.lo == self.hi {
            self.clear();
        }
    }

    /// Room to read into, or `None` if a head or line has outgrown MAX_HEAD.
    fn space(&mut self) -> Option<&mut [u8]> {
        // Move a partial head or line to the front rather than read a few
        // bytes at a time at the end.
        if self.lo > 0 && self.data.len() - self.hi < 4096 {
            self.data.copy_within(self.lo..self.hi, 0);
            (self.lo, self.hi) = (0, self.hi - self.lo);
        }
        if self.hi == self.data.len() {
            if self.data.len() < MAX_HEAD {
                self.data.resize(self.data.len() * 2, 0);
            } else {
                return None;
            }
        }
        Some(&mut self.data[self.hi..])
    }

    fn filled(&mut self, n: usize) {
        self.hi += n;
    }
}

/// A complete final response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Done {
    status: u16,
    /// Whether the connection can carry another request.
    keep_alive: bool,
}

#[derive(Debug)]
struct Malformed(&'static str);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Head,
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    Trailers,
    UntilClose,
}

#[derive(Debug)]
struct ResponseParser {
    phase: Phase,
    done: Done,
}

impl ResponseParser {
    fn new() -> ResponseParser {
        ResponseParser { phase: Phase::Head, done: Done { status: 0, keep_alive: false } }
    }

    /// Parses as much of `input` as possible. Returns the bytes used and,
    /// if a final response ended within them, that response (the parser is
    /// then ready for the next one; bytes after it are left unused).
    fn advance(&mut self, input: &[u8]) -> Result<(usize, Option<Done>), Malformed> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            match self.phase {
                Phase::Head => {
                    let Some(end) = head_end(rest) else {
                        return Ok((used, None));
                    };
                    used += end;
                    if let Some(done) = self.head(&rest[..end])? {
                        return Ok((used, Some(done)));
                    }
                }
                Phase::Length(n) | Phase::ChunkData(n) => {
                    let take = n.min(rest.len() as u64);
                    used += take as usize;
                    let left = n - take;
                    self.phase = match (self.phase, left) {
                        (Phase::Length(_), 0) => return Ok((used, Some(self.finish()))),
                        (Phase::Length(_), _) => Phase::Length(left),
                        (_, 0) => Phase::ChunkEnd,
                        (_, _) => Phase::ChunkData(left),
                    };
                    if left > 0 {
                        return Ok((used, None));
                    }
                }
                Phase::ChunkSize | Phase::ChunkEnd | Phase::Trailers => {
                    let Some((line, len)) = line(rest) else {
                        return Ok((used, None));
                    };
                    used += len;
                    match self.phase {
                        Phase::ChunkSize => {
                            // RFC 9112 §7.1: chunk-size [ chunk-ext ] CRLF;
                            // extensions are ignored.
                            let hex = line.split(|&b| b == b';').next().unwrap_or_default().trim_ascii();
                            let size = parse_hex(hex).ok_or(Malformed("chunk size"))?;
                            self.phase = if size == 0 { Phase::Trailers } else { Phase::ChunkData(size) };
                        }
                        Phase::ChunkEnd if line.is_empty() => self.phase = Phase::ChunkSize,
                        Phase::ChunkEnd => return Err(Malformed("no CRLF after chunk data")),
                        // §7.1.2: trailer fields end with an empty line.
                        _ if line.is_empty() => return Ok((used, Some(self.finish()))),
                        _ => {}
                    }
                }
                Phase::UntilClose => return Ok((input.len(), None)),
            }
        }
    }

    /// The connection reached end of file: completes a response delimited
    /// by the close (RFC 9112 §6.3, item 8); anything else was cut short.
    fn eof(&mut self) -> Option<Done> {
        (self.phase == Phase::UntilClose).then(|| self.finish())
    }

    fn finish(&mut self) -> Done {
        self.phase = Phase::Head;
        self.done
    }

    /// Interprets a complete head (status line and fields, up to and with
    /// the empty line). Returns the response if it has no body.
    fn head(&mut self, head: &[u8]) -> Result<Option<Done>, Malformed> {
        let mut lines = head.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        // RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
        let status_line = lines.next().unwrap_or_default();
        let minor = match status_line.get(..9) {
            Some([b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor, b' ']) if minor.is_ascii_digit() => *minor,
            _ => return Err(Malformed("status line")),
        };
        let code = status_line.get(9..12).filter(|c| c.iter().all(u8::is_ascii_digit));
        let status = code.map_or(0, |c| c.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0')));
        if !(100..=599).contains(&status) || status_line.get(12).is_some_and(|&b| b != b' ') {
            return Err(Malformed("status code"));
        }
        // §9.3: HTTP/1.1 connections persist unless `close` is sent;
        // HTTP/1.0 ones only with `keep-alive`.
        let mut keep_alive = minor != b'0';
        let mut length: Option<u64> = None;
        let mut chunked = None;
        for line in lines.filter(|l| !l.is_empty()) {
            if line[0] == b' ' || line[0] == b'\t' {
                // §5.2: obsolete line folding. Servers no longer send it,
                // and unfolding would need a copy of every head.
                return Err(Malformed("obsolete line folding"));
            }
            let colon = line.iter().position(|&b| b == b':').ok_or(Malformed("field line"))?;
            let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
            if name.is_empty() || name.iter().any(|b| b.is_ascii_whitespace()) {
                return Err(Malformed("field name"));
            }
            let members = || value.split(|&b| b == b',').map(<[u8]>::trim_ascii).filter(|m| !m.is_empty());
            if name.eq_ignore_ascii_case(b"content-length") {
                // §6.3 item 5: a list of identical values may be accepted
                // as that value; anything else is unrecoverable.
                for m in members() {
                    let n = parse_decimal(m).ok_or(Malformed("content-length"))?;
                    if length.is_some_and(|l| l != n) {
                        return Err(Malformed("conflicting content-length"));
                    }
                    length = Some(n);
                }
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                // §6.3 item 4: chunked must be the final coding, otherwise
                // the body runs until the close.
                if let Some(last) = members().next_back() {
                    chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
                }
            } else if name.eq_ignore_ascii_case(b"connection") {
                for token in members() {
                    if token.eq_ignore_ascii_case(b"close") {
                        keep_alive = false;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") && minor == b'0' {
                        keep_alive = true;
                    }
                }
            }
        }
        self.done = Done { status, keep_alive };
        // §6.3 item 1: 1xx, 204 and 304 responses end with their head.
        if status < 200 {
            if status == 101 {
                return Err(Malformed("101 Switching Protocols without an upgrade request"));
            }
            return Ok(None); // interim response: the final one follows
        }
        self.phase = match (chunked, length) {
            _ if status == 204 || status == 304 => return Ok(Some(self.finish())),
            // §6.3 items 3-4: Transfer-Encoding overrides Content-Length;
            // a sender of both is suspect, so the connection is not reused.
            (Some(true), length) => {
                self.done.keep_alive &= length.is_none();
                Phase::ChunkSize
            }
            (Some(false), _) | (None, None) => {
                self.done.keep_alive = false;
                Phase::UntilClose
            }
            (None, Some(0)) => return Ok(Some(self.finish())),
            (None, Some(n)) => Phase::Length(n),
        };
        Ok(None)
    }
}

/// The length of the head at the start of `input` (through the empty line
/// that ends it), if it is complete. Lines end with CRLF; a bare LF is
/// accepted too (RFC 9112 §2.2 allows a recipient to).
fn head_end(input: &[u8]) -> Option<usize> {
    let mut start = 0;
    while let Some(i) = input[start..].iter().position(|&b| b == b'\n') {
        let line = &input[start..start + i];
        start += i + 1;
        if line.is_empty() || line == b"\r" {
            return Some(start);
        }
    }
    None
}

/// The first line of `input` without its line ending, and its length with it.
fn line(input: &[u8]) -> Option<(&[u8], usize)> {
    let i = input.iter().position(|&b| b == b'\n')?;
    Some((input[..i].strip_suffix(b"\r").unwrap_or(&input[..i]), i + 1))
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from((d as char).to_digit(10)?)))
}

fn parse_hex(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| n.checked_mul(16)?.checked_add(u64::from((d as char).to_digit(16)?)))
}

// ---------------------------------------------------------------------------
// Latency histogram

/// Counts of nanosecond values in log-linear buckets: values below 256 each
/// have their own bucket; above, every power of two is split into 128
/// equal buckets, so a bucket is less than 1/128 (0.8%) of its values wide.
/// Values are tracked up to 2^40 ns (18 minutes, beyond any timeout worth
/// setting) in 4480 buckets, 35 KiB; larger ones count in the last bucket.
struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

const SUB_BITS: u32 = 7;
const HALF: u64 = 1 << SUB_BITS;
const LARGEST: u64 = (1 << 40) - 1;

impl Histogram {
    fn new() -> Histogram {
        Histogram { counts: vec![0; Self::index(LARGEST) + 1], total: 0, max: 0 }
    }

    fn index(v: u64) -> usize {
        if v < 2 * HALF {
            return v as usize;
        }
        // v >> shift is in [HALF, 2 * HALF).
        let shift = u64::from(63 - v.leading_zeros() - SUB_BITS);
        (2 * HALF + (shift - 1) * HALF + ((v >> shift) - HALF)) as usize
    }

    /// The smallest and largest value of bucket `i`.
    fn bounds(i: usize) -> (u64, u64) {
        let i = i as u64;
        if i < 2 * HALF {
            return (i, i);
        }
        let shift = (i - 2 * HALF) / HALF + 1;
        let low = (HALF + (i - 2 * HALF) % HALF) << shift;
        (low, low + ((1 << shift) - 1))
    }

    fn record(&mut self, v: u64) {
        self.counts[Self::index(v.min(LARGEST))] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// The value below which `p` percent of the samples fall (the middle of
    /// its bucket), or 0 without samples.
    fn percentile(&self, p: f64) -> u64 {
        let rank = ((p / 100.0 * self.total as f64).ceil() as u64).clamp(1, self.total.max(1));
        let mut seen = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += n;
            if n > 0 && seen >= rank {
                let (low, high) = Self::bounds(i);
                return (low + (high - low) / 2).min(self.max);
            }
        }
        0
    }
}

// ---------------------------------------------------------------------------
// Report

fn report(t: &Tally, duration: Duration) {
    let secs = duration.as_secs_f64();
    let rps = t.requests as f64 / secs;
    let ms = |ns: u64| ns as f64 / 1e6;
    let h = &t.latency;
    let (p50, p90, p99, p999) = (h.percentile(50.0), h.percentile(90.0), h.percentile(99.0), h.percentile(99.9));
    let e = &t.errors;
    let errors = e.connect + e.read + e.write + e.status + e.timeout;
    say!("  requests     {} in {secs:.3} s: {rps:.1} req/s", t.requests);
    say!(
        "  latency      p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
        ms(p50),
        ms(p90),
        ms(p99),
        ms(p999),
        ms(h.max)
    );
    say!(
        "  errors       {errors} (connect {}, read {}, write {}, status {}, timeout {})",
        e.connect,
        e.read,
        e.write,
        e.status,
        e.timeout
    );
    if let Some(what) = t.malformed {
        say!("  malformed    responses counted as read errors, the first: {what}");
    }
    say!("  connections  {} opened", t.conns);
    say!(
        "LOADGEN requests={} duration_s={secs:.3} rps={rps:.1} p50_ms={:.3} p99_ms={:.3} p999_ms={:.3} max_ms={:.3} \
         errors={errors} err_connect={} err_read={} err_write={} err_status={} err_timeout={} conns={}",
        t.requests,
        ms(p50),
        ms(p99),
        ms(p999),
        ms(h.max),
        e.connect,
        e.read,
        e.write,
        e.status,
        e.timeout,
        t.conns
    );
}
