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

use std::io::Read;
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// Closes `stream` gracefully: FIN after everything written, then discard
/// input into `scratch` for at most `timeout` and `max_bytes`. Returns the
/// bytes discarded. (The caller lends a buffer it no longer needs, so that
/// no page of stack is spent on it.)
pub(crate) fn close(stream: &TcpStream, scratch: &mut [u8], timeout: Duration, max_bytes: u64) -> u64 {
    if stream.shutdown(Shutdown::Write).is_err() {
        // Not connected any more: nothing to protect.
        return 0;
    }
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
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    discarded
}
