//! # h1serve
//!
//! A small, blocking, std-only HTTP/1.1 server: one thread per connection,
//! persistent connections, pipelining, exact framing, graceful close. It is
//! meant to be embedded (local dashboards, OAuth callbacks, test doubles,
//! metrics endpoints) and to be read: each concept of HTTP connection
//! management lives in its own module, with the rule it implements quoted
//! from RFC 9112 / RFC 9110 and a test that fails without it.
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
//! // ... later, from any thread:
//! running.shutdown()?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! ## The life of a connection
//!
//! ```text
//!  a thread waiting in accept takes it (when none is left waiting, another is started)
//!    │
//!    ▼
//!  cap reached? ──yes──► an idle connection? ──yes──► close it (evict), go on
//!    │                  (one not yet answered: idle for a second)
//!    │                          │ no
//!    │                          └──► 503 + Retry-After, back to accept (linger elsewhere)
//!    ▼
//!  the same thread serves it (TCP_NODELAY and timeouts inherited from the listener,
//!    or set now where sockets do not inherit them)
//!    │
//!    ▼
//!  ┌► IDLE: flush output, wait for a first byte ──(idle timeout / evicted / shutdown)──► close
//!  │   │ first byte
//!  │   ▼
//!  │  HEAD: parse as bytes arrive, header deadline ──(malformed 400/414/431/505, 408)──► close
//!  │   │ complete head
//!  │   ▼
//!  │  FRAMING: Host, target form, body length, Expect ──(400/413/417/501)──► close
//!  │   │
//!  │   ▼
//!  │  HANDLER (catch_unwind; body read lazily, 100 Continue on first read) ──(panic: 500)──► close
//!  │   │
//!  │   ▼
//!  │  SETTLE BODY: read to end? drain if small : close
//!  │   │
//!  │   ▼
//!  │  DECIDE: keep alive? (client, handler, body, framing, request cap, shutdown)
//!  │   │        then write the head saying so, and the body
//!  │   ▼
//!  └── keep ◄─┴─► close: flush, shutdown(Write), then the lingering thread drains
//!                  input (bounded) and drops the socket; this thread goes back to accept
//! ```
//!
//! Every connection ends with a [`CloseReason`], reported to the event hook
//! ([`Builder::on_event`]) and counted in [`Stats`].
//!
//! ## From the chapter's rules to the code
//!
//! The server embodies the rules of HTTP connection management, in six
//! sections: §1 TCP underneath, §2 where the time goes, §3 connection
//! headers and hop-by-hop fields, §4 serial, parallel, persistent and
//! pipelined connections, §5 pipelining, §6 closing connections. Comments
//! in the code cite them as "rules §N". Where each lives, and the test that
//! proves it (the modules are private: `cargo doc --document-private-items
//! --open` renders them too; a good reading order is `conn`, `parse`,
//! `framing`, `body`, `chunked`, `response`, `linger`, `server`):
//!
//! | § | rule | module | test |
//! |---|---|---|---|
//! | 1 | TCP is a byte stream: parse whatever way bytes are split | `parse` (resumable state machine; a line that arrived whole is taken in one step), `chunked`, `io` (one read buffer per connection) | `parse::tests::same_result_at_every_split_point`, `parse::tests::a_finished_line_is_never_parsed_again`, `parse::tests::whole_request_lines_and_byte_states_agree`, `chunked::tests::decodes_at_every_split`, `tests/connections.rs` pipelining with 1-byte writes |
//! | 2 | TCP_NODELAY; one buffer per response; responses to buffered pipelined requests flushed once | `server::preset_socket_options`, `conn::set_socket_options`, `io::Transport` (flush before any blocking read), `response` | `server::tests::accepted_sockets_inherit_the_connection_options_from_the_listener`, `conn::tests::a_socket_that_inherited_nothing_gets_nodelay_and_the_write_timeout`, `tests/connections.rs::a_response_head_goes_out_with_its_body_not_ahead_of_it`, `responses_to_buffered_pipelined_requests_are_written_together` |
//! | 2 | Short connections cost a handshake each and leave TIME_WAIT behind: persist | `conn` (persistent by default); the `connection_lab` example measures both | `tests/connection_lab.rs::quick_lab_measures_every_pattern_and_charts_it` |
//! | 3 | `Connection` is a case-insensitive token list across fields; hop-by-hop fields can be stripped | `headers` ([`Headers::has_token`], [`Headers::remove_hop_by_hop`]), `framing::client_keeps_alive` | `headers::tests`, `tests/connections.rs::connection_is_a_case_insensitive_token_list_across_fields`, `tests/proxy.rs::request_hop_by_hop_fields_stay_on_the_client_hop` |
//! | 4 | HTTP/1.1 persists by default; HTTP/1.0 only with keep-alive, answered with `Keep-Alive: timeout, max`; `close` from either side ends it | `framing`, `conn` (the keep-alive decision), `response` (connection fields) | `tests/connections.rs::http10_*`, `handler_can_ask_to_close` |
//! | 4 | A proxy does not pass `Connection: keep-alive` on (a dumb proxy that does hangs its clients) | the `proxy` example, with [`Headers::remove_hop_by_hop`] | `tests/proxy.rs::an_http10_keep_alive_is_not_passed_on` |
//! | 4, 6 | Only self-delimited messages persist, and a declared length is exact: Content-Length, chunked for 1.1, close-delimited for 1.0 | `framing::response_framing`, `conn::copy_exact`, `chunked` | `tests/connections.rs::streamed_bodies_are_chunked_for_11_and_close_delimited_for_10`, `a_reader_shorter_than_declared_fails_the_connection`, `a_reader_is_read_only_up_to_its_declared_length` |
//! | 4 | Idle timeout, header deadline, connection cap with eviction of the longest-idle | `conn::read_head`, `server` (registry, `admit`) | `tests/lifecycle.rs` |
//! | 5 | Pipelining: answer in order, never lose the next request's bytes, skip or refuse an unread body | `io::ReadBuf`, `conn::settle_body`, `body` | `tests/connections.rs::pipelined_requests_are_answered_in_order_with_bodies_in_between`, `tests/bodies.rs::small_unread_bodies_are_skipped_*` |
//! | 5 | After a request with `Connection: close`, nothing more on the connection is processed | `conn::exchange` (the close decision), `conn::serve` | `tests/connections.rs::connection_close_ends_the_connection_and_nothing_after_it_is_processed` |
//! | 6 | Every server-initiated close is graceful: flush, `shutdown(Write)`, drain with bounds (idle connections at shutdown too; eviction at the cap shuts the read half first, to free the thread at once; the shutdown deadline cuts what is left) | `linger` (one lingering thread for all sockets), `conn::serve` (the single exit path), `server` (`Slot::close_if_idle`) | `tests/lifecycle.rs::closing_never_resets_away_a_response_still_queued`, `the_lingering_close_does_not_hold_the_connection_thread`, `shutdown_never_resets_away_a_response_still_queued_on_an_idle_connection`, `server::tests::a_refusal_the_lingering_thread_has_no_room_for_still_ends_with_a_fin` |
//! | 6 | Only idempotent requests may be retried automatically (below) | [`Method::is_idempotent`], the `proxy` example | `tests/proxy.rs::idempotent_requests_are_retried_on_a_fresh_connection_and_others_get_502` |
//!
//! ## Which requests a client may retry
//!
//! A persistent connection can be closed by the server at any moment it is
//! idle (idle timeout, eviction at the cap, shutdown), and a request the
//! client sent at that moment is lost. RFC 9112 §9.3.1 lets a client retry
//! it automatically only if the method is idempotent (RFC 9110 §9.2.2):
//! GET, HEAD, PUT, DELETE, OPTIONS, TRACE ([`Method::is_idempotent`]); never
//! silently a POST or PATCH. The `Keep-Alive: timeout=` hint sent to
//! HTTP/1.0 clients is a second short of the idle timeout, rounded down
//! (the idle clock starts when the response is sent), so a client that
//! honours it does not send into a connection about to close.
//!
//! ## Strictness
//!
//! Where RFC 9112 allows a recipient several behaviours, h1serve takes the
//! strict one whenever leniency could let two parsers on the path disagree
//! about where a message ends (the root of request smuggling): bare LF and
//! bare CR are rejected, as are obs-fold, whitespace before a colon, a
//! `Content-Length` list even of equal values, `Transfer-Encoding` with
//! `Content-Length`, and `Transfer-Encoding` in HTTP/1.0. See the `parse`,
//! `framing` and `chunked` module docs for each choice.
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
pub use date::{http_date, parse_http_date};
pub use error::{CloseReason, RequestError};
pub use headers::{HOP_BY_HOP, Headers, InvalidHeader};
pub use request::{Method, Request, Version, form_pairs};
pub use response::{IntoResponse, Response, reason_phrase};
pub use server::{Event, Handle, Running, Server, Stats};

// The README's code compiles (and runs, where it ends) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
