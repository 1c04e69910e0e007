//! Message framing and persistence: how long a request body is
//! (RFC 9112 §6.3), how a response is delimited, and whether the connection
//! stays open (RFC 9112 §9.3). Pure functions over parsed heads.

use crate::body::BodyLength;
use crate::error::RequestError;
use crate::headers::{Headers, is_reg_name_byte, list_members};
use crate::request::{Method, RequestHead, Version, absolute_form_authority};

/// What the server learns from a request head before the handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestFraming {
    pub body: BodyLength,
    /// The client is willing to keep the connection open after this
    /// exchange (RFC 9112 §9.3).
    pub keep_alive: bool,
    /// The client sent `Expect: 100-continue` (HTTP/1.1 only).
    pub expect_continue: bool,
}

/// Checks a complete request head and decides its framing. The order of
/// the checks follows RFC 9112: Host (§3.2), then the target form (§3.2),
/// then the body length (§6.3), then expectations (RFC 9110 §10.1.1). As
/// with Host and Content-Length, a repeated Expect field is refused (400)
/// whatever its values, before any value is judged (417).
pub(crate) fn request_framing(head: &RequestHead, max_body: u64) -> Result<RequestFraming, RequestError> {
    use RequestError::BadRequest as Bad;
    if head.method == Method::Connect {
        // Tunnels are out of scope: 501 rather than a 2xx that would promise one.
        return Err(RequestError::NotImplemented("CONNECT (no tunnels here)"));
    }
    let fields = FramingFields::of(&head.headers);
    check_host(&fields, head.version)?;
    check_target_form(&head.target, &head.method)?;
    let body = body_length(&fields, &head.headers, head.version)?;
    if let BodyLength::Exact(n) = body {
        if n > max_body {
            // Refused before a byte of it is read, and with no 100 Continue.
            return Err(RequestError::ContentTooLarge);
        }
    }
    if fields.expects > 1 {
        return Err(Bad("repeated Expect"));
    }
    let expect_continue = match fields.expect {
        // RFC 9110 §15.2: a server MUST NOT send a 1xx response, such as
        // 100 (Continue), to an HTTP/1.0 client. §10.1.1: it MUST ignore a
        // 100-continue expectation in an HTTP/1.0 request. Any other value
        // is ignored too (417 is only a MAY there).
        _ if head.version == Version::Http10 => false,
        None => false,
        Some(v) if v.eq_ignore_ascii_case(b"100-continue") => true,
        Some(_) => return Err(RequestError::ExpectationFailed),
    };
    Ok(RequestFraming { body, keep_alive: client_keeps_alive(&fields, head.version), expect_continue })
}

/// The fields that decide a request's framing and persistence, gathered in
/// one pass over the head. A browser sends a dozen fields or more; looking
/// up each of these names on its own walked them all six times.
#[derive(Debug, Default)]
struct FramingFields<'h> {
    /// The first `Host` value, and how many `Host` fields there are.
    host: Option<&'h [u8]>,
    hosts: usize,
    /// The first `Content-Length` value, and how many there are.
    content_length: Option<&'h [u8]>,
    content_lengths: usize,
    transfer_encoding: bool,
    /// The first `Expect` value, and how many there are.
    expect: Option<&'h [u8]>,
    expects: usize,
    /// The `Connection` tokens that decide persistence, from every
    /// `Connection` field (a case-insensitive list, RFC 9110 §7.6.1).
    close: bool,
    keep_alive: bool,
}

impl<'h> FramingFields<'h> {
    fn of(headers: &'h Headers) -> FramingFields<'h> {
        let mut f = FramingFields::default();
        for (name, value) in headers.iter_raw() {
            // `eq_ignore_ascii_case` compares lengths first, so a field
            // that is none of these costs five length comparisons.
            let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
            if is("host") {
                f.host = f.host.or(Some(value));
                f.hosts += 1;
            } else if is("content-length") {
                f.content_length = f.content_length.or(Some(value));
                f.content_lengths += 1;
            } else if is("transfer-encoding") {
                f.transfer_encoding = true;
            } else if is("expect") {
                f.expect = f.expect.or(Some(value));
                f.expects += 1;
            } else if is("connection") {
                for token in list_members(value) {
                    f.close |= token.eq_ignore_ascii_case(b"close");
                    f.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            }
        }
        f
    }
}

/// RFC 9112 §9.3: HTTP/1.1 persists unless `Connection: close`; HTTP/1.0
/// persists only with `Connection: keep-alive` (and no `close`).
fn client_keeps_alive(fields: &FramingFields<'_>, version: Version) -> bool {
    !fields.close && (version == Version::Http11 || fields.keep_alive)
}

/// RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code
/// to any HTTP/1.1 request message that lacks a Host header field and to any
/// request message that contains more than one Host header field line or a
/// Host header field with an invalid field value."
fn check_host(fields: &FramingFields<'_>, version: Version) -> Result<(), RequestError> {
    use RequestError::BadRequest as Bad;
    match fields.host {
        None if version == Version::Http11 => Err(Bad("missing Host")),
        None => Ok(()),
        Some(_) if fields.hosts > 1 => Err(Bad("repeated Host")),
        Some(v) if is_valid_host(v) => Ok(()),
        Some(_) => Err(Bad("invalid Host")),
    }
}

/// `Host = uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2): an
/// IP-literal in brackets or a reg-name, then optional digits. RFC 9112
/// §3.2: a server MUST answer 400 to a Host with an invalid value. Empty is
/// allowed (RFC 9112 §3.2: when the target has no authority).
pub(crate) fn is_valid_host(v: &[u8]) -> bool {
    let (host_ok, port) = if let Some(rest) = v.strip_prefix(b"[") {
        let Some(close) = rest.iter().position(|&b| b == b']') else { return false };
        (is_ip_literal(&rest[..close]), &rest[close + 1..])
    } else {
        match v.iter().position(|&b| b == b':') {
            Some(i) => (is_reg_name(&v[..i]), &v[i..]),
            None => (is_reg_name(v), &b""[..]),
        }
    };
    let port_ok = match port {
        [] => true,
        [b':', digits @ ..] => digits.iter().all(u8::is_ascii_digit) && digits.len() <= 5,
        _ => false,
    };
    host_ok && port_ok
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )`, where
/// `pct-encoded = "%" HEXDIG HEXDIG` (RFC 3986 §3.2.2, §2.1).
fn is_reg_name(host: &[u8]) -> bool {
    let mut i = 0;
    while i < host.len() {
        match host[i] {
            b'%' if host.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) => i += 3,
            b'%' => return false,
            b if is_reg_name_byte(b) => i += 1,
            _ => return false,
        }
    }
    true
}

/// What an IP-literal holds between its brackets: `IPv6address /
/// IPvFuture` (RFC 3986 §3.2.2). std's parser takes exactly RFC 3986's
/// IPv6 text forms (eight groups of up to four hex digits, one `::`, an
/// IPv4 tail), and no zone identifier.
fn is_ip_literal(inner: &[u8]) -> bool {
    match inner {
        // IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
        [b'v' | b'V', rest @ ..] => {
            let Some(dot) = rest.iter().position(|&b| b == b'.') else { return false };
            let (version, tail) = (&rest[..dot], &rest[dot + 1..]);
            !version.is_empty()
                && version.iter().all(u8::is_ascii_hexdigit)
                && !tail.is_empty()
                && tail.iter().all(|&b| b == b':' || (b != b'%' && is_reg_name_byte(b)))
        }
        _ => std::str::from_utf8(inner).is_ok_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok()),
    }
}

/// The request-target forms of RFC 9112 §3.2: origin-form (`/path?q`),
/// absolute-form (`http://host/path?q`), asterisk-form (`*`, OPTIONS
/// only). Authority-form belongs to CONNECT, which is refused earlier.
///
/// An origin server is asked for `http` and `https` URIs only, so an
/// absolute-form target must be one of those, and its authority a valid
/// host: RFC 9110 §4.2.1 ("A recipient that processes such a URI reference
/// [with an empty host] MUST reject it as invalid"), §4.2.4 (userinfo is
/// an error). A server uses that authority instead of `Host` (RFC 9112
/// §3.2.2), so it gets the checks `Host` gets, and must not be empty.
fn check_target_form(target: &str, method: &Method) -> Result<(), RequestError> {
    use RequestError::BadRequest as Bad;
    if target.starts_with('/') {
        return Ok(());
    }
    if target == "*" {
        return if *method == Method::Options { Ok(()) } else { Err(Bad("asterisk-form is for OPTIONS only")) };
    }
    match absolute_form_authority(target) {
        Some(authority) if is_valid_host(authority.as_bytes()) && !host_is_empty(authority) => Ok(()),
        Some(_) => Err(Bad("invalid host in absolute-form target")),
        None => Err(Bad("request target is neither a path nor an http(s) URI with a host")),
    }
}

/// Whether an authority's host (before any port) is empty.
fn host_is_empty(authority: &str) -> bool {
    authority.is_empty() || authority.starts_with(':')
}

/// The length of a request body, RFC 9112 §6.3, for requests (items 1, 2
/// and 8 are about responses):
///
/// 3. `Transfer-Encoding` and `Content-Length` together: rejected here
///    (the RFC lets a server go by Transfer-Encoding, but a message with
///    both is what request smuggling is made of, and it MUST close anyway).
/// 4. `Transfer-Encoding` with chunked last: chunked. Chunked not last, or
///    applied twice: 400. Any other coding: 501 (§6.1), as we decode only
///    chunked. In HTTP/1.0 Transfer-Encoding is rejected: 1.0 has no chunked
///    coding, so framing would be in doubt (§6.1).
/// 5. An invalid `Content-Length`: 400. Only one field of plain digits is
///    valid. A list (`5, 5`) or repeated field is rejected even when the
///    values agree, the strict choice RFC 9110 §8.6 allows; so is overflow.
/// 6. A valid `Content-Length`: the body is that many bytes.
/// 7. Neither: no body.
fn body_length(fields: &FramingFields<'_>, headers: &Headers, version: Version) -> Result<BodyLength, RequestError> {
    use RequestError::BadRequest as Bad;
    if fields.transfer_encoding {
        if fields.content_length.is_some() {
            return Err(Bad("both Transfer-Encoding and Content-Length"));
        }
        if version == Version::Http10 {
            return Err(Bad("Transfer-Encoding in HTTP/1.0"));
        }
        return transfer_coding(headers);
    }
    match fields.content_length {
        None => Ok(BodyLength::Exact(0)),
        Some(_) if fields.content_lengths > 1 => Err(Bad("repeated Content-Length")),
        Some(v) => parse_content_length(v).map(BodyLength::Exact).ok_or(Bad("invalid Content-Length")),
    }
}

fn transfer_coding(headers: &Headers) -> Result<BodyLength, RequestError> {
    use RequestError::BadRequest as Bad;
    let codings: Vec<&[u8]> = headers.list("transfer-encoding").collect();
    let chunked = |c: &[u8]| c.eq_ignore_ascii_case(b"chunked");
    match codings.last() {
        Some(last) if chunked(last) => {}
        // RFC 9112 §6.3: chunked not final → 400 and close.
        _ => return Err(Bad("chunked is not the final transfer coding")),
    }
    if codings.iter().filter(|c| chunked(c)).count() > 1 {
        // RFC 9112 §6.1: a sender MUST NOT apply chunked more than once.
        return Err(Bad("chunked applied more than once"));
    }
    if codings.len() > 1 {
        // gzip, deflate, ... before chunked: not implemented here.
        return Err(RequestError::NotImplemented("transfer codings other than chunked"));
    }
    Ok(BodyLength::Chunked)
}

/// `Content-Length = 1*DIGIT` (RFC 9110 §8.6): no sign, no spaces inside,
/// no list; `None` on overflow.
pub(crate) fn parse_content_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

/// How a response body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResponseFraming {
    /// No body and no length field: 1xx, 204, 304 (RFC 9110 §6.4.1, §8.6).
    NoBody,
    /// `Content-Length: n` (for HEAD, the length a GET would get).
    Length(u64),
    /// `Transfer-Encoding: chunked` (HTTP/1.1, unknown length).
    Chunked,
    /// Unknown length to an HTTP/1.0 client: the body ends when the
    /// connection closes (RFC 9112 §6.3 rule 8).
    CloseDelimited,
}

/// Decides a response's framing from its status, its body's length (`None`
/// for a stream of unknown length) and the request's version.
pub(crate) fn response_framing(status: u16, body_len: Option<u64>, version: Version) -> ResponseFraming {
    if status < 200 || status == 204 || status == 304 {
        return ResponseFraming::NoBody;
    }
    // RFC 9110 §15.3.6: "a server MUST NOT generate content in a 205
    // response". Unlike 204 it is not bodiless by framing (RFC 9112 §6.3),
    // so a client reads a length: it is told 0, and the handler's body is
    // not sent.
    if status == 205 {
        return ResponseFraming::Length(0);
    }
    match (body_len, version) {
        (Some(n), _) => ResponseFraming::Length(n),
        (None, Version::Http11) => ResponseFraming::Chunked,
        (None, Version::Http10) => ResponseFraming::CloseDelimited,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(version: Version, fields: &[(&str, &str)]) -> RequestHead {
        let mut h = RequestHead { target: "/".into(), version, ..Default::default() };
        for (n, v) in fields {
            h.headers.append(n, v);
        }
        h
    }

    fn framing(fields: &[(&str, &str)]) -> Result<RequestFraming, RequestError> {
        let mut all = vec![("Host", "example.com")];
        all.extend_from_slice(fields);
        request_framing(&head(Version::Http11, &all), 1000)
    }

    fn status_of(fields: &[(&str, &str)]) -> u16 {
        framing(fields).map_or_else(|e| e.status(), |_| 200)
    }

    #[test]
    fn body_length_rules() {
        assert_eq!(framing(&[]).unwrap().body, BodyLength::Exact(0));
        assert_eq!(framing(&[("Content-Length", "42")]).unwrap().body, BodyLength::Exact(42));
        assert_eq!(framing(&[("Content-Length", "007")]).unwrap().body, BodyLength::Exact(7));
        assert_eq!(framing(&[("Transfer-Encoding", "chunked")]).unwrap().body, BodyLength::Chunked);
        assert_eq!(framing(&[("Transfer-Encoding", "CHUNKED")]).unwrap().body, BodyLength::Chunked);
        let table: &[(&[(&str, &str)], u16)] = &[
            (&[("Content-Length", "+5")], 400),
            (&[("Content-Length", "-5")], 400),
            (&[("Content-Length", "0x5")], 400),
            (&[("Content-Length", "5 5")], 400),
            (&[("Content-Length", "5, 5")], 400),
            (&[("Content-Length", "5"), ("Content-Length", "5")], 400),
            (&[("Content-Length", "5"), ("Content-Length", "6")], 400),
            (&[("Content-Length", "")], 400),
            (&[("Content-Length", "18446744073709551616")], 400),
            (&[("Content-Length", "1001")], 413),
            (&[("Content-Length", "5"), ("Transfer-Encoding", "chunked")], 400),
            (&[("Transfer-Encoding", "chunked, gzip")], 400),
            (&[("Transfer-Encoding", "gzip")], 400),
            (&[("Transfer-Encoding", "chunked, chunked")], 400),
            (&[("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")], 400),
            (&[("Transfer-Encoding", "gzip, chunked")], 501),
            (&[("Transfer-Encoding", "gzip"), ("Transfer-Encoding", "chunked")], 501),
            (&[("Transfer-Encoding", "")], 400),
            (&[("Expect", "100-continue")], 200),
            (&[("Expect", "something-else")], 417),
            (&[("Expect", "100-continue"), ("Expect", "100-continue")], 400),
            (&[("Expect", "something-else"), ("Expect", "100-continue")], 400),
        ];
        for (fields, status) in table {
            assert_eq!(status_of(fields), *status, "{fields:?}");
        }
    }

    #[test]
    fn http10_rules() {
        let te = head(Version::Http10, &[("Transfer-Encoding", "chunked")]);
        assert_eq!(request_framing(&te, 10).unwrap_err().status(), 400);
        // Host is optional in 1.0, an Expect is ignored, persistence is opt-in.
        let plain = request_framing(&head(Version::Http10, &[("Expect", "100-continue")]), 10).unwrap();
        assert!(!plain.keep_alive && !plain.expect_continue);
        let ka = request_framing(&head(Version::Http10, &[("Connection", "Keep-Alive")]), 10).unwrap();
        assert!(ka.keep_alive);
    }

    #[test]
    fn host_rules() {
        assert_eq!(request_framing(&head(Version::Http11, &[]), 10).unwrap_err().status(), 400);
        for (v, ok) in [
            ("example.com", true),
            ("example.com:8080", true),
            ("127.0.0.1:1", true),
            ("[::1]:80", true),
            ("", true),
            ("a b", false),
            ("x:y", false),
            ("x:123456", false),
            ("[::1", false),
            ("a/b", false),
            ("a@b", false),
            // pct-encoded is "%" and two hex digits (RFC 3986 §2.1).
            ("caf%C3%A9.example", true),
            ("a%zz", false),
            ("a%4", false),
            ("%", false),
            // An IP-literal is an IPv6 address or an IPvFuture.
            ("[2001:db8::7]", true),
            ("[::ffff:192.0.2.1]:443", true),
            ("[1:2:3:4:5:6:7:8]", true),
            ("[v1.x]", true),
            ("[V7.a:b!]", true),
            ("[:::]", false),
            ("[127.0.0.1]", false),
            ("[1:2:3:4:5:6:7:8:9]", false),
            ("[v]", false),
            ("[v1.]", false),
            ("[vx.y]", false),
            ("[fe80::1%25eth0]", false),
            ("[]", false),
        ] {
            assert_eq!(is_valid_host(v.as_bytes()), ok, "{v:?}");
        }
        // The byte class the check uses is RFC 3986's reg-name set exactly.
        for b in 0..=255u8 {
            let rfc = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b);
            assert_eq!(is_reg_name_byte(b), rfc, "{b:#04x}");
        }
        let two = head(Version::Http11, &[("Host", "a"), ("Host", "a")]);
        assert_eq!(request_framing(&two, 10).unwrap_err().status(), 400);
    }

    #[test]
    fn connection_tokens_decide_persistence() {
        assert!(framing(&[]).unwrap().keep_alive);
        assert!(!framing(&[("Connection", "keep-alive, Close")]).unwrap().keep_alive);
        assert!(!framing(&[("Connection", "x"), ("Connection", "close")]).unwrap().keep_alive);
        assert!(framing(&[("Connection", "closed")]).unwrap().keep_alive);
    }

    #[test]
    fn target_forms() {
        let mut h = head(Version::Http11, &[("Host", "h")]);
        for (method, target, ok) in [
            (Method::Get, "/p", true),
            (Method::Get, "http://h/p", true),
            (Method::Get, "HTTPS://h:8443?q", true),
            (Method::Get, "http://[::1]:80/p?q=http://x", true),
            (Method::Get, "http://[:::]/", false),
            (Method::Get, "http://a%zz/", false),
            (Method::Get, "http://h", true),
            (Method::Options, "*", true),
            (Method::Get, "*", false),
            (Method::Get, "p", false),
            (Method::Get, "1http://h", false),
            // No host, or not a valid one (RFC 9110 §4.2.1, §4.2.4).
            (Method::Get, "http:///a", false),
            (Method::Get, "http://", false),
            (Method::Get, "http://?q", false),
            (Method::Get, "https://:80/", false),
            (Method::Get, "http://x:abc/", false),
            (Method::Get, "http://user@h/", false),
            (Method::Get, "http://a b/", false),
            // Not an http or https URI.
            (Method::Get, "http:/a", false),
            (Method::Get, "h:80", false),
            (Method::Get, "mailto:a@b", false),
            (Method::Get, "ftp://h/f", false),
        ] {
            h.method = method;
            h.target = target.into();
            assert_eq!(request_framing(&h, 10).is_ok(), ok, "{target}");
        }
        h.method = Method::Connect;
        h.target = "h:443".into();
        assert_eq!(request_framing(&h, 10).unwrap_err().status(), 501);
    }

    #[test]
    fn response_framing_rules() {
        use ResponseFraming::*;
        assert_eq!(response_framing(204, Some(0), Version::Http11), NoBody);
        assert_eq!(response_framing(304, Some(10), Version::Http11), NoBody);
        assert_eq!(response_framing(205, Some(10), Version::Http11), Length(0));
        assert_eq!(response_framing(205, None, Version::Http10), Length(0));
        assert_eq!(response_framing(200, Some(10), Version::Http10), Length(10));
        assert_eq!(response_framing(200, None, Version::Http11), Chunked);
        assert_eq!(response_framing(200, None, Version::Http10), CloseDelimited);
    }
}
