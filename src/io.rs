//! The connection's byte buffers and socket calls.
//!
//! One read buffer lives as long as the connection: bytes past the end of
//! request N are the start of request N+1 and stay where they are
//! (rules §5). One write buffer collects responses so that a response
//! goes out in one write, and the responses to requests that arrived
//! together go out together (rules §2). The rule that makes batching
//! safe: **before any read that may block, flush what is buffered**, so we
//! never wait for a client that is waiting for us.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Initial size of the read buffer. Requests without a body are a few
/// hundred bytes (a browser's, with cookies, one or two KiB); the buffer
/// doubles when a head needs it (up to the head limit), and when reads
/// keep filling it, as a pipelined batch does (up to [`READ_BUF_KEEP`],
/// see `ReadBuf::spare`). Every idle connection holds one, so its size is
/// most of a connection's heap.
const READ_BUF_INITIAL: usize = 512;
/// An idle connection whose read buffer grew past this gives it back.
const READ_BUF_KEEP: usize = 8 * 1024;
/// Responses are flushed once this much is buffered, even if more pipelined
/// requests are waiting, so the buffer stays bounded.
pub(crate) const WRITE_BUF_FLUSH: usize = 64 * 1024;
/// Reads into a caller's buffer at least this big skip the read buffer.
const DIRECT_READ_MIN: usize = 8 * 1024;

/// A growable buffer of received, not yet consumed bytes.
#[derive(Debug, Default)]
pub(crate) struct ReadBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The last read filled all the free space: there was more to read.
    last_read_filled: bool,
}

impl ReadBuf {
    /// The unconsumed bytes.
    pub(crate) fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Marks `n` bytes as used.
    pub(crate) fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.end - self.start);
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Copies up to `out.len()` unconsumed bytes into `out` and consumes them.
    pub(crate) fn copy_to(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.end - self.start);
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.consume(n);
        n
    }

    /// Free space after the data, making room by moving the data to the
    /// front or growing. The unconsumed bytes keep their order; callers that
    /// hold offsets hold them relative to `data()`.
    ///
    /// It grows when the data fills it (a head longer than the buffer), and
    /// also, up to [`READ_BUF_KEEP`], when the last read filled all the
    /// space it was given: the client sends more per write than fits (a
    /// pipelined batch), and reading it in pieces would cost a read and a
    /// half-parsed head per batch.
    fn spare(&mut self) -> &mut [u8] {
        let grow_for_batches = self.last_read_filled && self.buf.len() < READ_BUF_KEEP;
        self.last_read_filled = false;
        if self.end == self.buf.len() || grow_for_batches {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            // Still full: the unconsumed data alone fills the buffer (a head
            // or trailer section, which the parser's limits bound).
            if self.end == self.buf.len() || grow_for_batches {
                let new_len = (self.buf.len() * 2).max(READ_BUF_INITIAL);
                self.buf.resize(new_len, 0);
            }
        }
        &mut self.buf[self.end..]
    }

    /// Records a read of `n` bytes into the space `spare` gave.
    fn filled(&mut self, n: usize) {
        self.last_read_filled = n > 0 && self.end + n == self.buf.len();
        self.end += n;
    }

    /// The whole buffer as scratch space, discarding its contents: for the
    /// lingering close, when the connection will read no more requests.
    pub(crate) fn as_scratch(&mut self) -> &mut [u8] {
        self.clear();
        if self.buf.is_empty() {
            self.buf.resize(READ_BUF_INITIAL, 0);
        }
        &mut self.buf
    }

    /// Forgets the contents (the buffer itself is kept).
    fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
        self.last_read_filled = false;
    }

    /// Gives memory back while the connection is idle, if a large request
    /// made the buffer grow.
    fn shrink_if_idle(&mut self) {
        if self.is_empty() && self.buf.len() > READ_BUF_KEEP {
            self.buf = vec![0; READ_BUF_INITIAL];
        }
    }
}

/// A connection's buffers without its socket: what a connection thread
/// keeps from one connection for the next, so that a new connection
/// allocates neither buffer (a thread serves many connections in turn,
/// see `server`). Only small buffers are kept.
#[derive(Debug, Default)]
pub(crate) struct Buffers {
    rbuf: ReadBuf,
    wbuf: Vec<u8>,
}

/// The socket with its read and write buffers. The socket is shared with
/// the server's registry of connections, which uses it to wake or close
/// the connection from another thread: `shutdown(Read)` to evict an idle
/// connection at the cap (its blocked read returns at once),
/// `shutdown(Write)` to close an idle connection at shutdown (the FIN goes
/// after what is queued), `shutdown(Read)` again for those still open at
/// the linger bound, and `shutdown(Both)` for every connection left at the
/// shutdown deadline (see `Slot::close_if_idle` and
/// `Shared::finish_shutdown` in `server`). Sharing it rather than
/// duplicating the descriptor saves two system calls and a descriptor per
/// connection.
#[derive(Debug)]
pub(crate) struct Transport {
    pub(crate) stream: Arc<TcpStream>,
    pub(crate) rbuf: ReadBuf,
    pub(crate) wbuf: Vec<u8>,
    /// The read timeout currently set on the socket, to skip the syscall when
    /// it does not change (it rarely does: the idle timeout between
    /// requests, the body timeout while a body is read).
    read_timeout: Option<Duration>,
}

/// The socket timeout for a wait of `timeout`. A zero timeout means
/// "none" to std (and is an error): callers treat an expired deadline as a
/// timeout before calling.
pub(crate) fn socket_timeout(timeout: Duration) -> Duration {
    timeout.max(Duration::from_millis(1))
}

/// A read timed out (`WouldBlock` on Unix, `TimedOut` on Windows).
pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

impl Transport {
    /// A transport for `stream`, with `buffers` from an earlier connection
    /// (or new ones). `read_timeout` is the read timeout the socket already
    /// has, if known (see `server::preset_socket_options`).
    pub(crate) fn new(stream: Arc<TcpStream>, buffers: Buffers, read_timeout: Option<Duration>) -> Transport {
        let Buffers { rbuf, wbuf } = buffers;
        Transport { stream, rbuf, wbuf, read_timeout }
    }

    /// The buffers, emptied and shrunk if a large message made them grow,
    /// for the next connection; the socket is dropped.
    pub(crate) fn into_buffers(mut self) -> Buffers {
        self.rbuf.clear();
        self.wbuf.clear();
        self.shrink_idle_buffers();
        Buffers { rbuf: self.rbuf, wbuf: self.wbuf }
    }

    /// Sets the socket's read timeout, unless it is already set to that.
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        let timeout = socket_timeout(timeout);
        if self.read_timeout != Some(timeout) {
            self.stream.set_read_timeout(Some(timeout))?;
            self.read_timeout = Some(timeout);
        }
        Ok(())
    }

    /// Gives back buffer memory a large message made grow, while the
    /// connection is idle (the write buffer is empty then: it was flushed).
    pub(crate) fn shrink_idle_buffers(&mut self) {
        self.rbuf.shrink_if_idle();
        if self.wbuf.capacity() > READ_BUF_KEEP {
            self.wbuf = Vec::new();
        }
    }

    /// Writes out the write buffer.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        if !self.wbuf.is_empty() {
            let r = (&*self.stream).write_all(&self.wbuf);
            self.wbuf.clear();
            r?;
        }
        Ok(())
    }

    /// Flushes, then reads more bytes into the read buffer, waiting at most
    /// `timeout`. Returns the number read; 0 means the client closed its
    /// side.
    pub(crate) fn fill(&mut self, timeout: Duration) -> io::Result<usize> {
        self.flush()?;
        self.set_read_timeout(timeout)?;
        let spare = self.rbuf.spare();
        let n = retry_interrupted(|| (&*self.stream).read(spare))?;
        self.rbuf.filled(n);
        Ok(n)
    }

    /// As `fill`, with a deadline rather than a timeout: an expired
    /// deadline is a timeout error without a read.
    ///
    /// The time left is rounded down to a tenth of a second before it
    /// becomes the socket's timeout, so that successive reads of one
    /// message (a head arriving in pieces) reuse the setting instead of
    /// paying a system call each; a read that times out before the deadline
    /// is simply tried again.
    pub(crate) fn fill_by(&mut self, deadline: Instant) -> io::Result<usize> {
        const STEP: u128 = 100_000_000; // ns
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            let coarse = left.as_nanos() / STEP * STEP;
            let timeout = if coarse == 0 { left } else { Duration::from_nanos(coarse as u64) };
            match self.fill(timeout) {
                Err(e) if is_timeout(&e) && Instant::now() < deadline => continue,
                r => return r,
            }
        }
    }

    /// Reads into `out` (up to its length): from the read buffer if it has
    /// bytes, else straight from the socket when `out` is large, else via
    /// the buffer. 0 means the client closed its side.
    pub(crate) fn read_into(&mut self, out: &mut [u8], timeout: Duration) -> io::Result<usize> {
        if !self.rbuf.is_empty() {
            return Ok(self.rbuf.copy_to(out));
        }
        if out.len() >= DIRECT_READ_MIN {
            self.flush()?;
            self.set_read_timeout(timeout)?;
            return retry_interrupted(|| (&*self.stream).read(out));
        }
        self.fill(timeout)?;
        Ok(self.rbuf.copy_to(out))
    }

    /// Writes `body` after what is buffered: copied into the buffer when
    /// small, else sent with one vectored write per round (head and body
    /// together) without copying.
    pub(crate) fn write_body(&mut self, body: &[u8]) -> io::Result<()> {
        if self.wbuf.len() + body.len() <= WRITE_BUF_FLUSH {
            self.wbuf.extend_from_slice(body);
            return Ok(());
        }
        let mut head = std::mem::take(&mut self.wbuf);
        let r = write_all_vectored(&mut &*self.stream, &head, body);
        head.clear();
        self.wbuf = head;
        r
    }

    /// Flushes if the write buffer passed its bound.
    pub(crate) fn flush_if_full(&mut self) -> io::Result<()> {
        if self.wbuf.len() >= WRITE_BUF_FLUSH { self.flush() } else { Ok(()) }
    }
}

fn retry_interrupted<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// Writes `a` then `b` with as few `writev` calls as the kernel allows.
fn write_all_vectored(w: &mut impl Write, mut a: &[u8], mut b: &[u8]) -> io::Result<()> {
    while !a.is_empty() || !b.is_empty() {
        let n = match w.write_vectored(&[io::IoSlice::new(a), io::IoSlice::new(b)]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let from_a = n.min(a.len());
        a = &a[from_a..];
        b = &b[n - from_a..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_buffer_keeps_unconsumed_bytes_in_order_when_it_compacts_or_grows() {
        let mut rb = ReadBuf::default();
        let mut expected = Vec::new();
        let mut next = 0u8;
        for round in 0..200 {
            let spare = rb.spare();
            let n = spare.len().min(37 + round % 50);
            for b in &mut spare[..n] {
                *b = next;
                expected.push(next);
                next = next.wrapping_add(1);
            }
            rb.filled(n);
            let take = (round * 7) % (rb.data().len() + 1);
            let mut out = vec![0; take];
            assert_eq!(rb.copy_to(&mut out), take);
            assert_eq!(out, expected[..take]);
            expected.drain(..take);
            assert_eq!(rb.data(), &expected[..]);
        }
    }

    #[test]
    fn read_buffer_grows_for_batches_only_up_to_the_idle_bound() {
        let mut rb = ReadBuf::default();
        // Every read fills the space given, and the reader consumes it all.
        for _ in 0..20 {
            let n = rb.spare().len();
            rb.filled(n);
            rb.consume(n);
        }
        assert_eq!(rb.buf.len(), READ_BUF_KEEP);
        // A read that leaves room does not make it grow.
        let n = rb.spare().len() - 1;
        rb.filled(n);
        rb.consume(n);
        assert_eq!(rb.spare().len(), READ_BUF_KEEP);
    }

    #[test]
    fn vectored_write_sends_both_parts_across_short_writes() {
        struct Trickle(Vec<u8>);
        impl Write for Trickle {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                let n = b.len().min(3);
                self.0.extend_from_slice(&b[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut w = Trickle(Vec::new());
        write_all_vectored(&mut w, b"head:", b"body bytes").unwrap();
        assert_eq!(w.0, b"head:body bytes");
    }
}
