//! The smallest h1serve program, and the one benchmarks run.
//!
//! ```text
//! cargo run --release --example hello [ADDR]     # ADDR defaults to 127.0.0.1:8080
//! ```
//!
//! Prints `listening on http://HOST:PORT` (the real port, also when ADDR
//! asks for port 0) as its first line, then answers every request with
//! `200 OK` and the body `Hello, world!\n`. Ctrl-C stops it.

use std::io::Write;

fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let server = match h1serve::Server::bind(&addr) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hello: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    println!("listening on http://{}", server.local_addr());
    let _ = std::io::stdout().flush();
    if let Err(e) = server.serve(|_req| h1serve::Response::text("Hello, world!\n")) {
        eprintln!("hello: {e}");
        std::process::exit(1);
    }
}
