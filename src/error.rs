//! What can go wrong with a request, mapped to its status code in one place,
//! and the reasons a connection ends.

use std::fmt;

/// Why the server refused a request (or its body) itself, before or while
/// the handler ran. Each maps to one status code; the server answers it
/// with `Connection: close` and closes gracefully, because after a framing
/// error it can no longer tell where the next request would start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// 400: the bytes break a rule of RFC 9112/9110; the text names the rule
    /// (it is ours, never an echo of the peer's input).
    BadRequest(&'static str),
    /// 408: the head did not arrive within the header timeout
    /// (RFC 9110 §15.5.9), or a body read timed out.
    RequestTimeout,
    /// 413: the body is longer than the body limit (RFC 9110 §15.5.14).
    ContentTooLarge,
    /// 414: the request line is longer than its limit (RFC 9110 §15.5.15).
    UriTooLong,
    /// 417: an `Expect` value other than `100-continue` (RFC 9110 §10.1.1).
    ExpectationFailed,
    /// 431: the header section has too many bytes or fields (RFC 6585 §5).
    HeaderFieldsTooLarge,
    /// 501: a transfer coding other than chunked (RFC 9112 §6.1), CONNECT,
    /// or a method longer than the request-line limit (RFC 9112 §3); the
    /// text names which.
    NotImplemented(&'static str),
    /// 505: a major version other than 1 (RFC 9110 §15.6.6).
    VersionNotSupported,
}

impl RequestError {
    /// The status code this error is answered with.
    pub fn status(self) -> u16 {
        match self {
            RequestError::BadRequest(_) => 400,
            RequestError::RequestTimeout => 408,
            RequestError::ContentTooLarge => 413,
            RequestError::UriTooLong => 414,
            RequestError::ExpectationFailed => 417,
            RequestError::HeaderFieldsTooLarge => 431,
            RequestError::NotImplemented(_) => 501,
            RequestError::VersionNotSupported => 505,
        }
    }

    /// A short explanation for the response body and the logs.
    pub fn detail(self) -> &'static str {
        match self {
            RequestError::BadRequest(why) => why,
            RequestError::RequestTimeout => "request not received in time",
            RequestError::ContentTooLarge => "request body over the limit",
            RequestError::UriTooLong => "request line over the limit",
            RequestError::ExpectationFailed => "only 100-continue is supported",
            RequestError::HeaderFieldsTooLarge => "header section over the limit",
            RequestError::NotImplemented(what) => what,
            RequestError::VersionNotSupported => "only HTTP/1.x is supported",
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status(), self.detail())
    }
}

impl std::error::Error for RequestError {}

/// Why a connection ended. The connection loop returns one for every
/// connection, the event hook reports it, and the server counts them (see
/// [`Stats::closes`](crate::Stats)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client closed its side between requests.
    ClientClosed,
    /// The request said `Connection: close`, or was HTTP/1.0 without
    /// `Connection: keep-alive` (RFC 9112 §9.3).
    ClientRequestedClose,
    /// The handler's response said `Connection: close`.
    HandlerRequestedClose,
    /// The handler left a request body unread that was too large to skip,
    /// or it answered an `Expect: 100-continue` request without reading
    /// the body (the client may or may not send it now).
    UnreadBody,
    /// The response body had no length and the client speaks HTTP/1.0: the
    /// end of the connection marks the end of the body (RFC 9112 §6.3).
    CloseDelimitedResponse,
    /// The connection served `max_requests_per_connection` requests.
    RequestLimit,
    /// No new request started within the idle timeout.
    IdleTimeout,
    /// A head did not complete within the header timeout (answered 408).
    HeaderTimeout,
    /// A read of the request body timed out.
    BodyTimeout,
    /// The server refused the request with a 4xx/5xx of its own
    /// ([`RequestError`]).
    BadRequest,
    /// The handler panicked (answered 500 if nothing was sent yet).
    HandlerPanicked,
    /// The response body failed: its reader or stream returned an error,
    /// or produced more or fewer bytes than declared.
    ResponseBodyError,
    /// Reading or writing the socket failed: the client reset the
    /// connection, stopped reading past the write timeout, or vanished
    /// mid-request.
    Io,
    /// Closed while idle to make room for a new connection at the
    /// connection cap.
    Evicted,
    /// The server is shutting down.
    Shutdown,
}

impl CloseReason {
    /// Every reason, in the order [`CloseReason::index`] numbers them.
    pub const ALL: &'static [CloseReason] = &[
        CloseReason::ClientClosed,
        CloseReason::ClientRequestedClose,
        CloseReason::HandlerRequestedClose,
        CloseReason::UnreadBody,
        CloseReason::CloseDelimitedResponse,
        CloseReason::RequestLimit,
        CloseReason::IdleTimeout,
        CloseReason::HeaderTimeout,
        CloseReason::BodyTimeout,
        CloseReason::BadRequest,
        CloseReason::HandlerPanicked,
        CloseReason::ResponseBodyError,
        CloseReason::Io,
        CloseReason::Evicted,
        CloseReason::Shutdown,
    ];

    /// Position in [`CloseReason::ALL`].
    pub fn index(self) -> usize {
        CloseReason::ALL.iter().position(|&r| r == self).unwrap_or(0)
    }

    /// A short name, as in logs (`idle-timeout`, `client-closed`...).
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::ClientClosed => "client-closed",
            CloseReason::ClientRequestedClose => "client-requested-close",
            CloseReason::HandlerRequestedClose => "handler-requested-close",
            CloseReason::UnreadBody => "unread-body",
            CloseReason::CloseDelimitedResponse => "close-delimited-response",
            CloseReason::RequestLimit => "request-limit",
            CloseReason::IdleTimeout => "idle-timeout",
            CloseReason::HeaderTimeout => "header-timeout",
            CloseReason::BodyTimeout => "body-timeout",
            CloseReason::BadRequest => "bad-request",
            CloseReason::HandlerPanicked => "handler-panicked",
            CloseReason::ResponseBodyError => "response-body-error",
            CloseReason::Io => "io-error",
            CloseReason::Evicted => "evicted",
            CloseReason::Shutdown => "shutdown",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_index_and_name() {
        for (i, r) in CloseReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        let mut names: Vec<_> = CloseReason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), CloseReason::ALL.len());
    }

    #[test]
    fn errors_map_to_precise_statuses() {
        let cases = [
            (RequestError::BadRequest("x"), 400),
            (RequestError::RequestTimeout, 408),
            (RequestError::ContentTooLarge, 413),
            (RequestError::UriTooLong, 414),
            (RequestError::ExpectationFailed, 417),
            (RequestError::HeaderFieldsTooLarge, 431),
            (RequestError::NotImplemented("x"), 501),
            (RequestError::VersionNotSupported, 505),
        ];
        for (e, status) in cases {
            assert_eq!(e.status(), status);
        }
    }
}
