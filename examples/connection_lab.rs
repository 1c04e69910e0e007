//! The connection-management lab: the claims of the chapter on HTTP
//! connection management, measured on your machine.
//!
//! ```text
//! cargo run --release --example connection_lab -- [--requests N] [--parallel N] [--depth N]
//!                                                 [--round-trips N] [--quick] [--svg FILE]
//! ```
//!
//! | flag | meaning | default |
//! |---|---|---|
//! | `--requests N` | requests per access pattern | 20000 (`--quick`: 48) |
//! | `--parallel N` | connections in the parallel patterns (b) and (e) | 4 |
//! | `--depth N` | requests per pipelined batch in pattern (d) | 16 |
//! | `--round-trips N` | round trips per row of the Nagle experiment | 40 (`--quick`: 4) |
//! | `--quick` | tiny counts (a second or two; what the tests run) | |
//! | `--svg FILE` | also draw the pattern results as an SVG chart | |
//!
//! Built with `--release` the whole lab takes 10–20 seconds. Everything runs
//! in this one process over loopback: an h1serve server on `127.0.0.1:0`
//! answering every request with a 1 KiB body, and the clients measuring it.
//! Client and server share the machine's CPUs, so the figures are a
//! comparison between patterns, not a benchmark of the server.
//!
//! # What it measures, and what each row teaches
//!
//! **1. Access patterns** (the chapter's "serial, parallel, persistent,
//! pipelined"; rules §2 and §4–5). Each pattern sends the same number
//! of requests to a fresh server and reports requests per second, the
//! median (p50) and 99th-percentile (p99) latency of a request (from the
//! moment the client starts it, connecting first if it needs a new
//! connection, to the last byte of its response), and the connections the
//! server accepted for it.
//!
//! - **(a) serial, new connection per request** (`Connection: close`): every
//!   request pays the TCP handshake and the close. This is the baseline the
//!   chapter starts from: for small transactions the connection setup, not
//!   the server's work, dominates.
//! - **(b) N parallel, new connection per request**: N clients at once, each
//!   still opening a connection per request. Parallelism overlaps the waits
//!   and helps while CPUs (or, across a network, round trips) are idle, but
//!   every request still pays for its connection, and N connections compete
//!   for the same machine.
//! - **(c) one persistent connection, serial**: HTTP/1.1's default
//!   (RFC 9112 §9.3). The handshake is paid once; what is left per request
//!   is one round trip. The gap between (a) and (c) is the cost of a new
//!   connection (over loopback; across a network add a round trip for the
//!   handshake and TCP slow start).
//! - **(d) one persistent connection, pipelined**: the client writes `depth`
//!   requests at once and reads the responses, which come back strictly in
//!   order (RFC 9112 §9.3.2). Round trips are shared by a whole batch, and
//!   the server answers a batch with one write. Latency here is counted
//!   from the batch's send, so a request waits for those ahead of it.
//! - **(e) N persistent connections, parallel**: what browsers and
//!   connection pools do: a few warm connections used at once.
//!
//! The client reads each `Connection: close` response to end-of-stream
//! before closing, as a careful client does, so in (a) and (b) the server is
//! the side that closes first; the persistent clients end with a graceful
//! close of their own (`shutdown(Write)`, then read to end-of-stream).
//!
//! **2. Nagle and delayed ACK** (rules §2). Round trips on one
//! connection, with a response written in two small pieces (head, then
//! body) by a tiny raw server in this file, first with Nagle's algorithm on
//! (the socket default) and then with `TCP_NODELAY`; then h1serve, which
//! builds head and body in one buffer and writes them at once; then a
//! client that writes its request in two pieces, with and without
//! `TCP_NODELAY`. Nagle holds the second small write until the first is
//! acknowledged, and the peer, still waiting for the rest of the message,
//! delays that ACK (on Linux by at least 40 ms): a write-write-read stall
//! on every round trip. The first round trip of a connection is usually
//! spared (Linux acknowledges at once while a connection is new). The rows
//! with the client's split write show that a server cannot fix a client's
//! Nagle stall: each side must batch its own writes or set `TCP_NODELAY`.
//! The output says whether each expected stall was seen; some systems
//! acknowledge at once and show none.
//!
//! **3. TIME_WAIT** (rules §2 and §6). On Linux the lab counts, once all
//! patterns have run, the sockets in TIME_WAIT of each pattern's connections
//! (state `06` in `/proc/net/tcp` and `/proc/net/tcp6`; each pattern has its
//! own server, and a connection is the pattern's when one end is its server's
//! port and the other a port its client connected from), split by the side
//! holding them: the server's (local port = the server's) or the client's.
//! The side that closes first keeps each connection in TIME_WAIT, for 60 s on
//! Linux: a connection per request leaves one socket per request behind on
//! the server, keep-alive one per connection on the client. At a few thousand
//! connections a second the client comes back to its own ephemeral ports
//! within that minute; Linux then lets the new connection's SYN take over the
//! server's TIME_WAIT socket (RFC 6191, when TCP timestamps show it is a new
//! connection), so with large `--requests` fewer TIME_WAIT sockets than
//! connections remain, and the lab prints how many distinct client ports were
//! used. That is the ephemeral-port pressure the chapter warns about, and
//! reusing connections is its first fix. The lab warns when the counts may be
//! low (the kernel's TIME_WAIT table nearly full, or a run longer than a
//! minute). On other systems the columns say `n/a`.
//!
//! # Output
//!
//! A line describing the run, then three sections: the pattern table, with
//! columns `pattern | requests | requests/s | p50 ms | p99 ms | connections |
//! TIME_WAIT server | TIME_WAIT client` (`connections`: accepted by the
//! server for that pattern), followed by a `Warning:` line when the TIME_WAIT
//! counts may be low; the Nagle table, with `response or request written as |
//! mean ms | p50 ms | p99 ms | round trips >= 20 ms | stall expected | stall
//! seen`, followed by a line per row whose stall was seen or missing; then
//! `What the rows show:`, a few lines comparing the rows. With `--svg`, a
//! last line names the chart file. Tables are Markdown, so they can be pasted
//! into a document as they are. The program exits with status 1 (and a
//! message on stderr) if any exchange fails or a response is not the one
//! expected, and 2 for a bad command line.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::exit;
use std::thread;
use std::time::{Duration, Instant};

use h1serve::{Response, Running, Server};

const USAGE: &str = "usage: connection_lab [--requests N] [--parallel N] [--depth N] [--round-trips N] \
                     [--quick] [--svg FILE]";

/// The response body every request gets: small, as in the chapter's
/// examples, so that connection costs, not bytes, dominate.
static BODY: [u8; 1024] = [b'.'; 1024];

/// A read the lab expects to succeed waits at most this long: only a broken
/// server makes it wait this long.
const PATIENCE: Duration = Duration::from_secs(20);

/// A round trip this slow on loopback is a stall, not work: loopback round
/// trips take tens of microseconds, delayed ACKs at least 40 ms (Linux).
const STALL: Duration = Duration::from_millis(20);

const REQUEST_KEEP_ALIVE: &[u8] = b"GET /lab HTTP/1.1\r\nHost: lab\r\n\r\n";
const REQUEST_CLOSE: &[u8] = b"GET /lab HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n";
/// The keep-alive request cut in two, for the client-side Nagle rows.
const REQUEST_PARTS: [&[u8]; 2] = [b"GET /lab HTTP/1.1\r\n", b"Host: lab\r\n\r\n"];

/// Requests per pattern: enough for a stable p99, and about 10 s in all
/// with `--release`.
const DEFAULT_REQUESTS: usize = 20_000;
/// Round trips per Nagle row: enough for a stable median, few enough that
/// each of the two rows that stall costs under 2 s.
const DEFAULT_ROUND_TRIPS: usize = 40;
/// `--quick`: a multiple of the default depth and parallelism.
const QUICK_REQUESTS: usize = 48;
const QUICK_ROUND_TRIPS: usize = 4;

struct Options {
    requests: usize,
    parallel: usize,
    depth: usize,
    round_trips: usize,
    svg: Option<String>,
}

fn main() {
    let options = parse_args();
    if let Err(e) = run(&options) {
        eprintln!("connection_lab: {e}");
        exit(1);
    }
}

fn parse_args() -> Options {
    let (mut requests, mut parallel, mut depth, mut round_trips, mut svg, mut quick) = (None, 4, 16, None, None, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |flag: &str| -> usize {
            match args.next().map(|v| v.parse::<usize>()) {
                Some(Ok(n)) if n > 0 => n,
                _ => usage(&format!("{flag} needs a number above 0")),
            }
        };
        match arg.as_str() {
            "--requests" => requests = Some(number(&arg)),
            "--parallel" => parallel = number(&arg),
            "--depth" => depth = number(&arg),
            "--round-trips" => round_trips = Some(number(&arg)),
            "--quick" => quick = true,
            "--svg" => svg = Some(args.next().unwrap_or_else(|| usage("--svg needs a file name"))),
            "-h" | "--help" => {
                println!("{USAGE}");
                exit(0)
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let requests = requests.unwrap_or(if quick { QUICK_REQUESTS } else { DEFAULT_REQUESTS });
    let round_trips = round_trips.unwrap_or(if quick { QUICK_ROUND_TRIPS } else { DEFAULT_ROUND_TRIPS });
    if parallel > requests {
        usage("--parallel cannot exceed --requests (every parallel connection needs a request)");
    }
    Options { requests, parallel, depth, round_trips, svg }
}

fn usage(message: &str) -> ! {
    eprintln!("connection_lab: {message}\n{USAGE}");
    exit(2)
}

fn run(o: &Options) -> Result<(), String> {
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "connection lab: h1serve in this process on 127.0.0.1, {} KiB responses, {} requests per pattern, \
         {cpus} CPUs shared by client and server",
        BODY.len() / 1024,
        o.requests
    );
    println!();

    let mut rows = Vec::new();
    for pattern in PATTERNS {
        rows.push(run_pattern(pattern, o).map_err(|e| format!("{}: {e}", pattern.label(o)))?);
    }
    // Every pattern had its own server port, so one look at the kernel's
    // tables, while the sockets are still in TIME_WAIT, serves them all.
    let oldest = rows[0].started.elapsed();
    let sockets = time_wait_sockets();
    for row in &mut rows {
        row.time_wait = sockets.as_ref().map(|s| count_time_wait(s, row.server_port, &row.client_ports));
    }
    print_patterns(&rows, o);
    if sockets.is_some() {
        print_time_wait_caveats(oldest);
    }
    println!();

    let nagle = nagle_rows(o.round_trips)?;
    print_nagle(&nagle, o.round_trips);
    println!();

    print_lessons(&rows, &nagle, o, cpus);

    if let Some(path) = &o.svg {
        std::fs::write(path, svg_chart(&rows, o, cpus)).map_err(|e| format!("cannot write {path}: {e}"))?;
        println!();
        println!("chart written to {path}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// 1. Access patterns

#[derive(Clone, Copy, PartialEq)]
enum Pattern {
    SerialNew,
    ParallelNew,
    Persistent,
    Pipelined,
    ParallelPersistent,
}

const PATTERNS: [Pattern; 5] =
    [Pattern::SerialNew, Pattern::ParallelNew, Pattern::Persistent, Pattern::Pipelined, Pattern::ParallelPersistent];

impl Pattern {
    fn label(self, o: &Options) -> String {
        match self {
            Pattern::SerialNew => "(a) serial, new connection per request".to_string(),
            Pattern::ParallelNew => format!("(b) {} parallel, new connection per request", o.parallel),
            Pattern::Persistent => "(c) 1 persistent connection, serial".to_string(),
            Pattern::Pipelined => format!("(d) 1 persistent connection, pipelined x{}", o.depth),
            Pattern::ParallelPersistent => format!("(e) {} persistent connections, parallel", o.parallel),
        }
    }

    /// The label in the chart, where space is short.
    fn short_label(self, o: &Options) -> String {
        match self {
            Pattern::SerialNew => "(a) serial, new connections".to_string(),
            Pattern::ParallelNew => format!("(b) {} parallel, new connections", o.parallel),
            Pattern::Persistent => "(c) 1 keep-alive, serial".to_string(),
            Pattern::Pipelined => format!("(d) 1 keep-alive, pipelined x{}", o.depth),
            Pattern::ParallelPersistent => format!("(e) {} keep-alive, parallel", o.parallel),
        }
    }
}

/// One pattern's results.
struct Row {
    pattern: Pattern,
    label: String,
    requests: usize,
    elapsed: Duration,
    /// Per-request latencies, sorted.
    latencies: Vec<Duration>,
    /// Connections the server accepted for this pattern.
    connections: u64,
    /// The pattern's server port.
    server_port: u16,
    /// The distinct local ports the client's connections used, sorted.
    client_ports: Vec<u16>,
    /// When the pattern started (its first TIME_WAIT socket is younger).
    started: Instant,
    /// TIME_WAIT sockets of this pattern's connections, counted after all
    /// patterns ran; `None` where the OS does not tell.
    time_wait: Option<TimeWait>,
}

impl Row {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    fn p50(&self) -> Duration {
        percentile(&self.latencies, 50)
    }
    fn p99(&self) -> Duration {
        percentile(&self.latencies, 99)
    }
}

/// The nearest-rank percentile of sorted `samples`.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// Starts a fresh server for one pattern, so that its counters and its
/// port's TIME_WAIT sockets belong to that pattern alone.
fn lab_server() -> io::Result<Running> {
    Server::builder()
        // One connection carries a whole pattern here, however many
        // requests it has (the default cap of 100 000 would close it).
        .max_requests_per_connection(u64::MAX)
        .bind("127.0.0.1:0")?
        .spawn(|_req| Response::bytes(&BODY[..]))
}

fn run_pattern(pattern: Pattern, o: &Options) -> Result<Row, String> {
    let running = lab_server().map_err(|e| format!("cannot start the server: {e}"))?;
    let addr = running.local_addr();
    let before = running.stats();
    let started = Instant::now();
    let sample = match pattern {
        Pattern::SerialNew => serial_new(addr, o.requests),
        Pattern::ParallelNew => in_parallel(o.requests, o.parallel, |n| serial_new(addr, n)),
        Pattern::Persistent => persistent(addr, o.requests, 1),
        Pattern::Pipelined => persistent(addr, o.requests, o.depth),
        Pattern::ParallelPersistent => in_parallel(o.requests, o.parallel, |n| persistent(addr, n, 1)),
    };
    let elapsed = started.elapsed();
    let Sample { mut latencies, mut ports } = sample.map_err(|e| e.to_string())?;
    latencies.sort_unstable();
    let opened = ports.len() as u64;
    ports.sort_unstable();
    ports.dedup();
    // Every client has closed; wait for the server's side of each close, so
    // that the counts below are final.
    if !running.handle().wait_until(PATIENCE, |s| s.open == 0) {
        return Err(format!("the server still has {} connections open", running.stats().open));
    }
    let after = running.stats();
    let (served, accepted) = (after.requests - before.requests, after.accepted - before.accepted);
    if served != o.requests as u64 {
        return Err(format!("the server answered {served} requests, the client sent {}", o.requests));
    }
    if accepted != opened {
        return Err(format!("the server accepted {accepted} connections, the client opened {opened}"));
    }
    running.shutdown().map_err(|e| format!("server shutdown: {e}"))?;
    Ok(Row {
        pattern,
        label: pattern.label(o),
        requests: o.requests,
        elapsed,
        latencies,
        connections: accepted,
        server_port: addr.port(),
        client_ports: ports,
        started,
        time_wait: None,
    })
}

/// What the clients of a pattern saw.
#[derive(Default)]
struct Sample {
    /// One per request.
    latencies: Vec<Duration>,
    /// The local port of each connection.
    ports: Vec<u16>,
}

/// Splits `requests` over `workers` threads, runs `work(share)` on each, and
/// gathers what they saw.
fn in_parallel(
    requests: usize,
    workers: usize,
    work: impl Fn(usize) -> io::Result<Sample> + Sync,
) -> io::Result<Sample> {
    thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = (0..workers)
            .map(|i| {
                let share = requests / workers + usize::from(i < requests % workers);
                scope.spawn(move || work(share))
            })
            .collect();
        let mut all = Sample::default();
        for handle in handles {
            let one = handle.join().map_err(|_| io::Error::other("a client thread panicked"))??;
            all.latencies.extend(one.latencies);
            all.ports.extend(one.ports);
        }
        Ok(all)
    })
}

/// Patterns (a) and (b): a new connection per request, `Connection: close`.
fn serial_new(addr: SocketAddr, requests: usize) -> io::Result<Sample> {
    let mut seen = Sample { latencies: Vec::with_capacity(requests), ports: Vec::with_capacity(requests) };
    for _ in 0..requests {
        let start = Instant::now();
        let mut client = Client::connect(addr)?;
        seen.ports.push(client.local_port()?);
        client.send(REQUEST_CLOSE)?;
        if !client.read_response()? {
            return Err(invalid("a response to `Connection: close` did not say `Connection: close`"));
        }
        // RFC 9112 §9.6: the server closes after this response. Reading to
        // end-of-stream before closing makes the server the side that
        // closes first, as it is for any client that waits for the close.
        client.expect_eof()?;
        seen.latencies.push(start.elapsed());
    }
    Ok(seen)
}

/// Patterns (c), (d) and (e): one connection, requests sent `depth` at a
/// time (1: strictly request, response, request...). A request's latency
/// runs from the send of its batch (the connect, for the first batch) to
/// the end of its response.
fn persistent(addr: SocketAddr, requests: usize, depth: usize) -> io::Result<Sample> {
    let mut latencies = Vec::with_capacity(requests);
    let batch = REQUEST_KEEP_ALIVE.repeat(depth);
    let mut start = Instant::now();
    let mut client = Client::connect(addr)?;
    let ports = vec![client.local_port()?];
    let mut left = requests;
    while left > 0 {
        let n = left.min(depth);
        // One write for the whole batch: the requests travel together.
        client.send(&batch[..n * REQUEST_KEEP_ALIVE.len()])?;
        for _ in 0..n {
            if client.read_response()? {
                return Err(invalid("the server closed a persistent connection"));
            }
            latencies.push(start.elapsed());
        }
        left -= n;
        start = Instant::now();
    }
    client.close()?;
    Ok(Sample { latencies, ports })
}

/// A client connection that knows just enough HTTP/1.1 to find where each
/// response ends and check it is the one expected.
struct Client {
    reader: BufReader<TcpStream>,
    line: String,
}

impl Client {
    fn connect(addr: SocketAddr) -> io::Result<Client> {
        let stream = TcpStream::connect(addr)?;
        // Like real clients: each request goes out in one write anyway.
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(PATIENCE))?;
        stream.set_write_timeout(Some(PATIENCE))?;
        Ok(Client { reader: BufReader::new(stream), line: String::new() })
    }

    fn local_port(&self) -> io::Result<u16> {
        Ok(self.reader.get_ref().local_addr()?.port())
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.reader.get_mut().write_all(bytes)
    }

    /// Reads one response: `200`, with a `Content-Length` body of exactly
    /// the lab's body size. Returns whether it said `Connection: close`.
    fn read_response(&mut self) -> io::Result<bool> {
        self.read_line()?;
        if !self.line.starts_with("HTTP/1.1 200 ") {
            return Err(invalid(&format!("unexpected status line {:?}", self.line.trim_end())));
        }
        let (mut length, mut close) = (None, false);
        loop {
            self.read_line()?;
            let field = self.line.trim_end_matches(['\r', '\n']);
            if field.is_empty() {
                break;
            }
            let (name, value) = field.split_once(':').ok_or_else(|| invalid("a header line without a colon"))?;
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<u64>().ok();
            } else if name.eq_ignore_ascii_case("connection") {
                close |= value.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"));
            }
        }
        if length != Some(BODY.len() as u64) {
            return Err(invalid("a response without the expected Content-Length"));
        }
        let read = io::copy(&mut (&mut self.reader).take(BODY.len() as u64), &mut io::sink())?;
        if read != BODY.len() as u64 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(close)
    }

    fn read_line(&mut self) -> io::Result<()> {
        self.line.clear();
        if self.reader.read_line(&mut self.line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    fn expect_eof(&mut self) -> io::Result<()> {
        let mut byte = [0u8; 1];
        match self.reader.read(&mut byte)? {
            0 => Ok(()),
            _ => Err(invalid("bytes after the last response")),
        }
    }

    /// A graceful close from the client's side: our FIN, then wait for the
    /// server's. The client closes first, so TIME_WAIT is on its side.
    fn close(mut self) -> io::Result<()> {
        self.reader.get_ref().shutdown(Shutdown::Write)?;
        self.expect_eof()
    }
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}

// ---------------------------------------------------------------------------
// 2. Nagle and delayed ACK

struct NagleRow {
    label: &'static str,
    stall_expected: bool,
    /// Round-trip times, sorted.
    times: Vec<Duration>,
}

impl NagleRow {
    fn mean(&self) -> Duration {
        self.times.iter().sum::<Duration>() / self.times.len().max(1) as u32
    }
    fn stalled(&self) -> usize {
        self.times.iter().filter(|&&t| t >= STALL).count()
    }
    fn stall_seen(&self) -> bool {
        percentile(&self.times, 50) >= STALL
    }
}

fn nagle_rows(round_trips: usize) -> Result<Vec<NagleRow>, String> {
    let h1 = lab_server().map_err(|e| format!("cannot start the server: {e}"))?;
    let h1_addr = h1.local_addr();
    let cases: [(&'static str, Option<bool>, bool, bool); 5] = [
        // (label, raw server's TCP_NODELAY or None for h1serve, client's TCP_NODELAY, client splits its request)
        ("server: head, then body; Nagle on", Some(false), true, false),
        ("server: head, then body; TCP_NODELAY", Some(true), true, false),
        ("server: h1serve, one write", None, true, false),
        ("client: request in 2 writes; Nagle on", None, false, true),
        ("client: request in 2 writes; TCP_NODELAY", None, true, true),
    ];
    let mut rows = Vec::new();
    for (label, raw_nodelay, client_nodelay, split) in cases {
        let stall_expected = raw_nodelay == Some(false) || (split && !client_nodelay);
        let mut times = match raw_nodelay {
            Some(nodelay) => {
                let (addr, server) = two_write_server(nodelay).map_err(|e| format!("raw server: {e}"))?;
                // On error, return before joining: a server whose client
                // never connected would wait in accept forever.
                let times =
                    round_trips_to(addr, client_nodelay, split, round_trips).map_err(|e| format!("{label}: {e}"))?;
                let served = server.join().map_err(|_| "the raw server panicked".to_string())?;
                served.map_err(|e| format!("{label}: raw server: {e}"))?;
                times
            }
            None => round_trips_to(h1_addr, client_nodelay, split, round_trips).map_err(|e| format!("{label}: {e}"))?,
        };
        times.sort_unstable();
        rows.push(NagleRow { label, stall_expected, times });
    }
    h1.shutdown().map_err(|e| format!("server shutdown: {e}"))?;
    Ok(rows)
}

/// A deliberately naive server for one connection: it writes each response
/// as two small writes, the head and then the body, the pattern that rules
/// §2 warns against. With Nagle on, the body waits for the ACK of the head.
fn two_write_server(nodelay: bool) -> io::Result<(SocketAddr, thread::JoinHandle<io::Result<()>>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = thread::spawn(move || -> io::Result<()> {
        let (stream, _) = listener.accept()?;
        stream.set_nodelay(nodelay)?;
        stream.set_read_timeout(Some(PATIENCE))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut out = stream;
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", BODY.len());
        let mut line = String::new();
        loop {
            // Skip one request head; the client closing ends the loop.
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                if line == "\r\n" {
                    break;
                }
            }
            out.write_all(head.as_bytes())?;
            out.write_all(&BODY)?;
        }
    });
    Ok((addr, server))
}

/// `n` request/response round trips on one connection.
fn round_trips_to(addr: SocketAddr, nodelay: bool, split: bool, n: usize) -> io::Result<Vec<Duration>> {
    let mut client = Client::connect(addr)?;
    client.reader.get_ref().set_nodelay(nodelay)?;
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        if split {
            // Write, write, read: the second write is small and the first
            // is unacknowledged, so with Nagle on it waits.
            client.send(REQUEST_PARTS[0])?;
            client.send(REQUEST_PARTS[1])?;
        } else {
            client.send(REQUEST_KEEP_ALIVE)?;
        }
        client.read_response()?;
        times.push(start.elapsed());
    }
    client.close()?;
    Ok(times)
}

// ---------------------------------------------------------------------------
// 3. TIME_WAIT

/// How long Linux keeps a socket in TIME_WAIT (`TCP_TIMEWAIT_LEN`, fixed).
const TIME_WAIT_SECS: u64 = 60;

/// The number of ephemeral ports a client can connect from (Linux).
fn ephemeral_ports() -> Option<u32> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut ends = range.split_whitespace().map(|n| n.parse::<u32>().ok());
    let (low, high) = (ends.next()??, ends.next()??);
    Some(high.checked_sub(low)? + 1)
}

/// TIME_WAIT sockets of one server port, by the side that holds them.
#[derive(Clone, Copy, Default)]
struct TimeWait {
    /// Local port is the server's: the server closed first.
    server_side: usize,
    /// Remote port is the server's: a client closed first.
    client_side: usize,
}

/// TIME_WAIT sockets on the machine and the kernel's limit
/// (`net.ipv4.tcp_max_tw_buckets`).
fn time_wait_table() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/net/sockstat").ok()?;
    // `TCP: inuse 5 orphan 0 tw 1234 alloc 10 mem 1`
    let tcp = stat.lines().find(|l| l.starts_with("TCP:"))?;
    let mut words = tcp.split_whitespace();
    words.find(|&w| w == "tw")?;
    let used = words.next()?.parse().ok()?;
    let limit = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_max_tw_buckets").ok()?.trim().parse().ok()?;
    Some((used, limit))
}

/// The machine's TCP sockets in TIME_WAIT (state `06` in `/proc/net/tcp`
/// and `/proc/net/tcp6`), as (local port, remote port); `None` where there
/// are no such tables.
///
/// The tables are read twice and a socket seen either time counts once:
/// the kernel writes them out a chunk per `read`, and while other programs
/// open and close connections a line can be skipped or repeated at a
/// chunk's edge. The lab's own sockets stay put meanwhile: they are all
/// closed, and TIME_WAIT lasts a minute.
fn time_wait_sockets() -> Option<HashSet<(u16, u16)>> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let port_of = |addr: &str| addr.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
    let mut seen = HashSet::new();
    let mut readable = false;
    for table in ["/proc/net/tcp", "/proc/net/tcp6", "/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        readable = true;
        // Lines: `sl local_address rem_address st ...`, addresses as
        // HEXIP:HEXPORT.
        for line in text.lines().skip(1) {
            let mut fields = line.split_ascii_whitespace().skip(1);
            let (Some(local), Some(remote), Some("06")) = (fields.next(), fields.next(), fields.next()) else {
                continue;
            };
            if let (Some(local), Some(remote)) = (port_of(local), port_of(remote)) {
                seen.insert((local, remote));
            }
        }
    }
    readable.then_some(seen)
}

/// Counts the TIME_WAIT sockets of the connections between `server_port`
/// and the client ports in `client_ports` (sorted).
///
/// Matching both ends, not just the server's port, keeps out sockets that
/// are not the pattern's: a listener on port 0 may get a port number that
/// an earlier listener used a moment ago, whose connections may still be
/// in TIME_WAIT.
fn count_time_wait(sockets: &HashSet<(u16, u16)>, server_port: u16, client_ports: &[u16]) -> TimeWait {
    let ours = |port: u16| client_ports.binary_search(&port).is_ok();
    let mut tw = TimeWait::default();
    for &(local, remote) in sockets {
        if local == server_port && ours(remote) {
            tw.server_side += 1;
        } else if remote == server_port && ours(local) {
            tw.client_side += 1;
        }
    }
    tw
}

/// Says when the TIME_WAIT counts may be too low: the kernel's table was
/// nearly full (past its limit, closing connections skip TIME_WAIT), or the
/// first pattern started so long ago that its sockets have begun to expire.
fn print_time_wait_caveats(oldest: Duration) {
    if let Some((used, limit)) = time_wait_table().filter(|&(used, limit)| used >= limit / 10 * 9) {
        println!();
        println!(
            "Warning: TIME_WAIT table near its limit ({used} of {limit} on this machine, \
             net.ipv4.tcp_max_tw_buckets): past it the kernel closes connections without TIME_WAIT, \
             so the counts above may be too low."
        );
    }
    if oldest >= Duration::from_secs(TIME_WAIT_SECS) {
        println!();
        println!(
            "Warning: TIME_WAIT counted {} s after the first pattern started: its oldest sockets had expired, \
             so the counts of the first patterns are too low (use fewer --requests).",
            oldest.as_secs()
        );
    }
}

// ---------------------------------------------------------------------------
// Output

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

fn print_patterns(rows: &[Row], o: &Options) {
    println!("Access patterns ({} requests each; latency from the start of a request to its last byte):", o.requests);
    println!();
    let header = [
        "pattern",
        "requests",
        "requests/s",
        "p50 ms",
        "p99 ms",
        "connections",
        "TIME_WAIT server",
        "TIME_WAIT client",
    ];
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let (tw_server, tw_client) = match r.time_wait {
                Some(tw) => (tw.server_side.to_string(), tw.client_side.to_string()),
                None => ("n/a".to_string(), "n/a".to_string()),
            };
            vec![
                r.label.clone(),
                r.requests.to_string(),
                format!("{:.0}", r.per_second()),
                ms(r.p50()),
                ms(r.p99()),
                r.connections.to_string(),
                tw_server,
                tw_client,
            ]
        })
        .collect();
    print!("{}", markdown_table(&header, &body));
    if rows.iter().all(|r| r.time_wait.is_none()) {
        println!();
        println!("TIME_WAIT: not available on this OS (the lab reads Linux's /proc/net/tcp).");
    }
}

fn print_nagle(rows: &[NagleRow], round_trips: usize) {
    println!("Nagle and delayed ACK ({round_trips} round trips on one connection per row):");
    println!();
    let stalled_header = format!("round trips >= {} ms", STALL.as_millis());
    let header = [
        "response or request written as",
        "mean ms",
        "p50 ms",
        "p99 ms",
        &stalled_header,
        "stall expected",
        "stall seen",
    ];
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.label.to_string(),
                ms(r.mean()),
                ms(percentile(&r.times, 50)),
                ms(percentile(&r.times, 99)),
                format!("{}/{}", r.stalled(), r.times.len()),
                yes_no(r.stall_expected),
                yes_no(r.stall_seen()),
            ]
        })
        .collect();
    print!("{}", markdown_table(&header, &body));
    println!();
    for r in rows {
        match (r.stall_expected, r.stall_seen()) {
            (true, true) => println!(
                "- {}: stalled, p50 {} ms: Nagle held the second write until the peer's delayed ACK.",
                r.label,
                ms(percentile(&r.times, 50))
            ),
            (true, false) => println!(
                "- {}: no stall on this system: the peer acknowledged the first write at once, so Nagle had \
                 nothing to wait for (the stall depends on the OS's delayed-ACK policy).",
                r.label
            ),
            (false, true) => println!(
                "- {}: slow although no stall was expected: probably a loaded machine; run the lab again.",
                r.label
            ),
            (false, false) => {}
        }
    }
}

fn print_lessons(rows: &[Row], nagle: &[NagleRow], o: &Options, cpus: usize) {
    let get = |p: Pattern| rows.iter().find(|r| r.pattern == p).expect("every pattern ran");
    let (a, b, c, d, e) = (
        get(Pattern::SerialNew),
        get(Pattern::ParallelNew),
        get(Pattern::Persistent),
        get(Pattern::Pipelined),
        get(Pattern::ParallelPersistent),
    );
    let ratio = |x: &Row, y: &Row| x.per_second() / y.per_second();
    println!("What the rows show:");
    let handshake = a.p50().saturating_sub(c.p50());
    println!(
        "- handshake: a new connection (handshake, close, and the server's setup for it) costs about {} ms per \
         request on loopback (p50 (a) - p50 (c)); across a network add a round trip for the handshake and TCP \
         slow start.",
        ms(handshake)
    );
    println!(
        "- persistence: one reused connection serves {:.1}x the requests per second of new connections (c vs a).",
        ratio(c, a)
    );
    println!(
        "- parallelism: {} connections at once give {:.1}x (b vs a) and {:.1}x (e vs c), on {cpus} CPUs that the \
         client and the server share.",
        o.parallel,
        ratio(b, a),
        ratio(e, c)
    );
    println!("- pipelining: batches of requests on one connection give {:.1}x (d vs c).", ratio(d, c));
    if let (Some(ta), Some(tc)) = (a.time_wait, c.time_wait) {
        println!(
            "- TIME_WAIT: (a) left {} sockets in TIME_WAIT on the server's side (the server closes first after \
             each `Connection: close` response, and Linux keeps the socket {TIME_WAIT_SECS} s); (c) left {} on \
             the client's side, for its one connection, which the client closed.",
            ta.server_side, tc.client_side
        );
        if let Some(ports) = ephemeral_ports() {
            println!(
                "- port pressure (rules §2): at (a)'s rate, {:.0} new connections/s x {TIME_WAIT_SECS} s \
                 of TIME_WAIT = {:.0} sockets in TIME_WAIT at steady state, against {ports} ephemeral ports \
                 for the client.",
                a.per_second(),
                a.per_second() * TIME_WAIT_SECS as f64
            );
        }
        for r in [a, b] {
            if r.client_ports.len() < r.connections as usize {
                println!(
                    "- {}'s {} connections came from only {} distinct client ports: the client went round its \
                     ports while the server still held some of them in TIME_WAIT, and Linux let each new SYN \
                     take over the old socket (allowed when TCP timestamps show the connection is new, RFC 6191), \
                     which is why fewer than one TIME_WAIT socket per connection remain.",
                    &r.label[..3],
                    r.connections,
                    r.client_ports.len()
                );
            }
        }
    }
    if let Some(stalled) = nagle.iter().find(|r| r.stall_expected && r.stall_seen()) {
        println!(
            "- Nagle: a response or request in two small writes waited {} ms (p50) per round trip; one write, \
             or TCP_NODELAY on the side that splits, removes the stall.",
            ms(percentile(&stalled.times, 50))
        );
    } else {
        println!("- Nagle: no delayed-ACK stall showed on this system (see above).");
    }
}

/// A Markdown table with aligned columns: the first left-aligned, the rest
/// right-aligned (they are numbers).
fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let width =
        |i: usize| rows.iter().map(|r| r[i].chars().count()).chain([header[i].chars().count(), 3]).max().unwrap_or(3);
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        out.push('|');
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == 0 {
                let _ = write!(out, " {cell:<w$} |");
            } else {
                let _ = write!(out, " {cell:>w$} |");
            }
        }
        out.push('\n');
    };
    line(&header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    let rule: Vec<String> = widths
        .iter()
        .enumerate()
        .map(|(i, &w)| if i == 0 { format!(":{}", "-".repeat(w - 1)) } else { format!("{}:", "-".repeat(w - 1)) })
        .collect();
    line(&rule);
    for r in rows {
        line(r);
    }
    out
}

// ---------------------------------------------------------------------------
// The chart

/// Draws the pattern results: one row per pattern, a bar for requests per
/// second on the left, and on the right a dot at p50 latency with a whisker
/// to p99 (log scale, as latencies differ by orders of magnitude).
fn svg_chart(rows: &[Row], o: &Options, cpus: usize) -> String {
    const WIDTH: f64 = 960.0;
    const TOP: f64 = 78.0;
    const ROW: f64 = 46.0;
    const BAR: f64 = 26.0;
    const LABELS_RIGHT: f64 = 250.0;
    const BARS: (f64, f64) = (260.0, 590.0);
    const LAT: (f64, f64) = (650.0, 930.0);
    let height = TOP + ROW * rows.len() as f64 + 80.0;
    let bottom = TOP + ROW * rows.len() as f64;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}""#
    );
    let _ = writeln!(s, r#"     font-family="Helvetica, Arial, sans-serif" font-size="13">"#);
    // An opaque background keeps the chart legible in dark themes.
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r##"<text x="{}" y="26" font-size="18" font-weight="bold" text-anchor="middle" fill="#222">{}</text>"##,
        WIDTH / 2.0,
        xml(&format!(
            "h1serve connection lab: {} requests per pattern, {} KiB responses, loopback",
            o.requests,
            BODY.len() / 1024
        ))
    );
    let _ = writeln!(
        s,
        r##"<text x="{}" y="46" text-anchor="middle" fill="#555">{}</text>"##,
        WIDTH / 2.0,
        xml(&format!("client and server in one process on {cpus} CPUs; compare rows, not machines"))
    );

    // Requests per second: linear axis from 0.
    let max_rate = rows.iter().map(Row::per_second).fold(0.0, f64::max);
    let (step, top_rate) = nice_axis(max_rate, 5);
    let x_rate = |v: f64| BARS.0 + (BARS.1 - BARS.0) * v / top_rate;
    let mut tick = 0.0;
    while tick <= top_rate + step / 2.0 {
        let x = x_rate(tick);
        let _ = writeln!(s, r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{bottom}" stroke="#ddd"/>"##);
        let _ = writeln!(
            s,
            r##"<text x="{x:.1}" y="{}" text-anchor="middle" fill="#444">{}</text>"##,
            bottom + 16.0,
            thousands(tick)
        );
        tick += step;
    }

    // Latency: log axis over whole decades around p50..p99.
    let lo = rows.iter().map(|r| r.p50().as_secs_f64() * 1000.0).fold(f64::INFINITY, f64::min).max(1e-3);
    let hi = rows.iter().map(|r| r.p99().as_secs_f64() * 1000.0).fold(0.0, f64::max).max(lo * 1.01);
    let (d0, d1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let d1 = d1.max(d0 + 1);
    let x_lat = |ms: f64| LAT.0 + (LAT.1 - LAT.0) * (ms.max(1e-6).log10() - d0 as f64) / (d1 - d0) as f64;
    for decade in d0..=d1 {
        for m in [1.0, 2.0, 5.0] {
            let v = m * 10f64.powi(decade);
            if decade == d1 && m > 1.0 {
                break;
            }
            let x = x_lat(v);
            let (stroke, label) = if m == 1.0 || d1 - d0 <= 2 { ("#ccc", true) } else { ("#eee", false) };
            let _ = writeln!(s, r#"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{bottom}" stroke="{stroke}"/>"#);
            if label {
                let _ = writeln!(
                    s,
                    r##"<text x="{x:.1}" y="{}" text-anchor="middle" fill="#444">{}</text>"##,
                    bottom + 16.0,
                    short_number(v)
                );
            }
        }
    }

    for (i, r) in rows.iter().enumerate() {
        let y = TOP + ROW * i as f64 + (ROW - BAR) / 2.0;
        let mid = y + BAR / 2.0;
        let _ = writeln!(
            s,
            r##"<text x="{LABELS_RIGHT}" y="{:.1}" text-anchor="end" fill="#222">{}</text>"##,
            mid + 4.5,
            xml(&r.pattern.short_label(o))
        );
        let rate = r.per_second();
        let w = (x_rate(rate) - BARS.0).max(1.0);
        let _ =
            write!(s, r##"<rect class="bar" x="{}" y="{y:.1}" width="{w:.1}" height="{BAR}" fill="#3b75af">"##, BARS.0);
        let _ = writeln!(s, "<title>{}</title></rect>", xml(&format!("{}: {:.0} requests/s", r.label, rate)));
        let inside = w > 90.0;
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="{}" fill="{}">{}/s</text>"##,
            if inside { BARS.0 + w - 6.0 } else { BARS.0 + w + 6.0 },
            mid + 4.5,
            if inside { "end" } else { "start" },
            if inside { "white" } else { "#222" },
            thousands(rate)
        );
        let (p50, p99) = (r.p50().as_secs_f64() * 1000.0, r.p99().as_secs_f64() * 1000.0);
        let (x50, x99) = (x_lat(p50), x_lat(p99));
        let title = xml(&format!("{}: p50 {} ms, p99 {} ms", r.label, ms(r.p50()), ms(r.p99())));
        let _ = write!(s, r##"<g class="whisker" stroke="#c0504d" stroke-width="2"><title>{title}</title>"##);
        let _ = write!(s, r#"<line x1="{x50:.1}" y1="{mid:.1}" x2="{x99:.1}" y2="{mid:.1}"/>"#);
        let _ = write!(s, r#"<line x1="{x99:.1}" y1="{:.1}" x2="{x99:.1}" y2="{:.1}"/>"#, mid - 7.0, mid + 7.0);
        let _ = writeln!(s, r##"<circle cx="{x50:.1}" cy="{mid:.1}" r="4.5" fill="#c0504d"/></g>"##);
        let _ = writeln!(
            s,
            r##"<text x="{x50:.1}" y="{:.1}" text-anchor="middle" font-size="11" fill="#555">{} / {} ms</text>"##,
            y - 1.0,
            ms(r.p50()),
            ms(r.p99())
        );
    }

    let axis = |s: &mut String, x0: f64, x1: f64, title: &str, note: &str| {
        let x = (x0 + x1) / 2.0;
        let _ = writeln!(s, r##"<line x1="{x0}" y1="{bottom}" x2="{x1}" y2="{bottom}" stroke="#888"/>"##);
        let _ = writeln!(
            s,
            r##"<text x="{x}" y="{}" text-anchor="middle" fill="#222">{}</text>"##,
            bottom + 38.0,
            xml(title)
        );
        let _ = writeln!(
            s,
            r##"<text x="{x}" y="{}" text-anchor="middle" font-size="11" fill="#555">{}</text>"##,
            bottom + 54.0,
            xml(note)
        );
    };
    axis(&mut s, BARS.0, BARS.1, "requests per second", "higher is better");
    axis(&mut s, LAT.0, LAT.1, "latency per request, ms (log scale)", "dot: p50, whisker to p99; labels p50 / p99");
    s.push_str("</svg>\n");
    s
}

/// A round tick step (1, 2 or 5 times a power of ten) giving about `ticks`
/// ticks up to `max`, and the axis end, a multiple of the step.
fn nice_axis(max: f64, ticks: usize) -> (f64, f64) {
    let raw = (max / ticks as f64).max(1e-9);
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * power).find(|&s| s >= raw).unwrap_or(10.0 * power);
    (step, (max / step).ceil().max(1.0) * step)
}

/// 12345.6 as "12,346".
fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A tick label for a latency in ms: 0.01, 0.5, 2, 100.
fn short_number(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
