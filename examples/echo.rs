//! A small httpbin-like server for trying HTTP/1.1 by hand and for
//! black-box conformance tools.
//!
//! ```text
//! cargo run --example echo -- [ADDR] [--idle-timeout-ms N] [--header-timeout-ms N]
//!                             [--max-connections N] [--max-body-bytes N] [--log]
//! ```
//!
//! ADDR defaults to `127.0.0.1:8080`. The first line printed is
//! `listening on http://HOST:PORT`. `--log` prints every connection event
//! (opened, request, idle, closed with its reason) to stderr.
//!
//! Routes (every response the handler returns carries `X-Request-Line:
//! METHOD TARGET VERSION`; the 500 of `/panic` and the server's own
//! refusals, made without it, do not):
//!
//! | path | response |
//! |---|---|
//! | any other | 200, the request body echoed exactly (for any method) |
//! | `/headers` | 200, each request header as `name: value\n`, in received order |
//! | `/stream/N` | 200, N chunks of unknown total length (chunked, or close-delimited to HTTP/1.0) |
//! | `/delay/MS` | sleeps MS milliseconds, then echoes |
//! | `/bytes/N` | 200, N bytes (`abc…z` repeated), streamed with a Content-Length |
//! | `/status/CODE` | that status (200–599), empty body |
//! | `/panic` | the handler panics: 500, and the connection closes |
//!
//! Try: `curl -v localhost:8080/headers`, or pipelining by hand:
//! `printf 'GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n' | nc localhost 8080`.

use std::io::{self, Read, Write};
use std::process::exit;
use std::time::Duration;

use h1serve::{Event, Request, Response, Server};

const USAGE: &str = "usage: echo [ADDR] [--idle-timeout-ms N] [--header-timeout-ms N] \
                     [--max-connections N] [--max-body-bytes N] [--log]";

fn main() {
    let mut args = std::env::args().skip(1);
    let mut addr = "127.0.0.1:8080".to_string();
    let mut builder = Server::builder();
    let mut seen_addr = false;
    while let Some(arg) = args.next() {
        let mut number = |flag: &str| -> u64 {
            match args.next().map(|v| v.parse::<u64>()) {
                Some(Ok(n)) => n,
                _ => usage(&format!("{flag} needs a number")),
            }
        };
        builder = match arg.as_str() {
            "--idle-timeout-ms" => builder.idle_timeout(Duration::from_millis(number(&arg))),
            "--header-timeout-ms" => builder.header_timeout(Duration::from_millis(number(&arg))),
            "--max-connections" => builder.max_connections(number(&arg) as usize),
            "--max-body-bytes" => builder.max_body_bytes(number(&arg)),
            "--log" => builder.on_event(log_event),
            "-h" | "--help" => {
                println!("{USAGE}");
                exit(0)
            }
            flag if flag.starts_with('-') => usage(&format!("unknown flag {flag}")),
            _ if seen_addr => usage("more than one address"),
            other => {
                seen_addr = true;
                addr = other.to_string();
                builder
            }
        };
    }
    let server = builder.bind(&addr).unwrap_or_else(|e| {
        eprintln!("echo: cannot listen on {addr}: {e}");
        exit(1)
    });
    println!("listening on http://{}", server.local_addr());
    let _ = io::stdout().flush();
    if let Err(e) = server.serve(echo) {
        eprintln!("echo: {e}");
        exit(1);
    }
}

fn usage(problem: &str) -> ! {
    eprintln!("echo: {problem}\n{USAGE}");
    exit(2)
}

fn log_event(e: &Event) {
    eprintln!("{e:?}");
}

/// The handler: routes on the path, and stamps the request line on every
/// response.
fn echo(req: &mut Request) -> Response {
    let request_line = format!("{} {} {}", req.method(), req.target(), req.version());
    route(req).with_header("X-Request-Line", request_line)
}

fn route(req: &mut Request) -> Response {
    let path = req.path().to_string();
    let (first, rest) = match path.strip_prefix('/').and_then(|p| p.split_once('/')) {
        Some((first, rest)) => (first, rest),
        None => (path.trim_start_matches('/'), ""),
    };
    match (first, rest) {
        ("headers", "") => {
            let mut body = Vec::new();
            for (name, value) in req.headers().iter() {
                body.extend_from_slice(name.as_bytes());
                body.extend_from_slice(b": ");
                body.extend_from_slice(value);
                body.push(b'\n');
            }
            Response::bytes(body).with_header("Content-Type", "text/plain; charset=utf-8")
        }
        ("stream", n) => match n.parse::<u64>() {
            Ok(n) => Response::stream(move |w| {
                for i in 0..n {
                    writeln!(w, "chunk {i}")?;
                    w.flush()?;
                }
                Ok(())
            })
            .with_header("Content-Type", "text/plain; charset=utf-8"),
            Err(_) => bad("N must be a number"),
        },
        ("delay", ms) => match ms.parse::<u64>() {
            Ok(ms) => {
                std::thread::sleep(Duration::from_millis(ms));
                echo_body(req)
            }
            Err(_) => bad("MS must be a number"),
        },
        ("bytes", n) => match n.parse::<u64>() {
            Ok(n) => Response::from_reader(Alphabet.take(n), n).with_header("Content-Type", "application/octet-stream"),
            Err(_) => bad("N must be a number"),
        },
        ("status", code) => match code.parse::<u16>() {
            Ok(code @ 200..=599) => Response::status(code),
            _ => bad("CODE must be a final status, 200-599"),
        },
        ("panic", "") => panic!("/panic asked the handler to panic"),
        _ => echo_body(req),
    }
}

fn echo_body(req: &mut Request) -> Response {
    match req.read_body() {
        Ok(body) => Response::bytes(body),
        // The server answers 400/408/413 itself when the body broke a rule.
        Err(e) => Response::text(format!("cannot read the body: {e}\n")).with_status(400),
    }
}

fn bad(why: &str) -> Response {
    Response::text(format!("{why}\n")).with_status(400)
}

/// An endless `abcdefghijklmnopqrstuvwxyzabc…`.
struct Alphabet;

impl Read for Alphabet {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        for (i, b) in out.iter_mut().enumerate() {
            *b = b'a' + (i % 26) as u8;
        }
        // Keep the cycle aligned across reads.
        let n = out.len() - out.len() % 26;
        Ok(if n == 0 { out.len() } else { n })
    }
}
