//! # h1serve
//!
//! A small, blocking, std-only HTTP/1.1 server: one thread per connection,
//! persistent connections, pipelining, exact framing, graceful close.
//!
//! ```
//! use h1serve::{Response, Server};
//!
//! let running = Server::builder()
//!     .bind("127.0.0.1:0")?
//!     .spawn(|req| match req.path() {
//!         "/" => Response::text("Hello, world!\n"),
//!         _ => Response::text("not found\n").with_status(404),
//!     })?;
//! println!("listening on http://{}", running.local_addr());
//! running.shutdown()?;
//! # Ok::<(), std::io::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod body;
mod chunked;
mod config;
mod conn;
mod date;
mod error;
mod framing;
mod headers;
mod io;
mod linger;
mod parse;
mod request;
mod response;
mod server;

pub use body::Body;
pub use config::Builder;
pub use error::{CloseReason, RequestError};
pub use headers::{HOP_BY_HOP, Headers, InvalidHeader};
pub use request::{Method, Request, Version};
pub use response::{Response, reason_phrase};
pub use server::{Event, Handle, Running, Server, Stats};
