//! The request-smuggling matrix: every way two parsers could disagree about
//! where a request ends, tried on a real server.
//!
//! Request smuggling needs two HTTP parsers in a row (a proxy and this
//! server) that frame the same bytes differently: one sees a body where the
//! other sees a second request. The server cannot know what the proxy in
//! front of it did, so its only defence is to accept a message only when
//! its framing has exactly one reading (RFC 9112 §6.3, §11.2) and to refuse
//! everything else with a precise status and a closed connection, so that
//! nothing after the doubtful bytes is ever served.
//!
//! Each row sends one request, followed in the same write by a sentinel
//! request (`GET /smuggled`), and checks
//! * the exact status of every response, in order;
//! * when framing is in doubt, the last response says `Connection: close`
//!   and end-of-stream follows (nothing after the doubtful bytes is read as
//!   a request); when it is not, no response says close and the connection
//!   is still open after the sentinel's response;
//! * the exact list of requests the handler saw, each with the body it
//!   read: no request was found hidden inside a body, no body swallowed the
//!   sentinel, and valid bodies arrived exactly as sent, decoded.

mod common;

use std::net::Shutdown;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use h1serve::{CloseReason, Response, Running, Server};

/// Sent after every case, in the same write.
const SENTINEL: &str = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
/// What the handler logs for the sentinel.
const SENTINEL_SEEN: &str = "GET /smuggled ";
/// A complete request, used as body bytes: a parser that loses track of
/// the body would serve it.
const HIDDEN: &str = "GET /hidden HTTP/1.1\r\nHost: x\r\n\r\n";
/// What the handler logs when reading the body failed.
const BAD_BODY: &str = "<bad body>";

/// One row of the matrix.
struct Case {
    name: &'static str,
    request: String,
    /// The status of every response, in order.
    statuses: Vec<u16>,
    /// The last response closes the connection.
    closes: bool,
    /// What the handler saw: "METHOD target body [trailer: value]...".
    seen: Vec<String>,
}

/// A valid POST: the handler sees `body`, then the sentinel is served on the
/// same connection.
fn ok(name: &'static str, fields: &str, wire_body: &str, body: &str) -> Case {
    ok_as(name, &post(fields, wire_body), &format!("POST / {}", escape(body)))
}

/// A valid request sent as `request`, seen by the handler as `seen`.
fn ok_as(name: &'static str, request: &str, seen: &str) -> Case {
    Case {
        name,
        request: request.to_string(),
        statuses: vec![200, 200],
        closes: false,
        seen: vec![seen.to_string(), SENTINEL_SEEN.to_string()],
    }
}

/// Refused from its head alone: the handler never runs, the connection
/// closes.
fn refused(name: &'static str, request: &str, status: u16) -> Case {
    Case { name, request: request.to_string(), statuses: vec![status], closes: true, seen: vec![] }
}

/// A POST whose head is refused.
fn refused_post(name: &'static str, fields: &str, wire_body: &str, status: u16) -> Case {
    refused(name, &post(fields, wire_body), status)
}

/// A chunked POST whose head is fine but whose body breaks: the handler's
/// read fails, the server answers `status` and closes.
fn bad_chunks(name: &'static str, wire_body: &str, status: u16) -> Case {
    Case {
        name,
        request: post("Transfer-Encoding: chunked\r\n", wire_body),
        statuses: vec![status],
        closes: true,
        seen: vec![format!("POST / {BAD_BODY}")],
    }
}

/// A valid chunked POST.
fn chunks(name: &'static str, wire_body: &str, seen_body_and_trailers: &str) -> Case {
    ok_as(name, &post("Transfer-Encoding: chunked\r\n", wire_body), &format!("POST / {seen_body_and_trailers}"))
}

fn post(fields: &str, body: &str) -> String {
    format!("POST / HTTP/1.1\r\nHost: x\r\n{fields}\r\n{body}")
}

fn escape(b: impl AsRef<[u8]>) -> String {
    b.as_ref().escape_ascii().to_string()
}

/// A server whose handler reads every body and logs what it saw; it answers
/// with the same line.
fn recorder() -> (Running, Arc<Mutex<Vec<String>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    // A body read that waits for bytes that never come would only happen if
    // the server mis-framed a row; bound it so that such a bug fails the row
    // with 408 rather than stalling the test.
    let builder = Server::builder().body_read_timeout(Duration::from_secs(2)).max_body_bytes(1 << 20);
    let running = start(builder, move |req| {
        let mut line = format!("{} {} ", req.method(), req.target());
        match req.read_body() {
            Ok(body) => line.push_str(&escape(body)),
            Err(_) => line.push_str(BAD_BODY),
        }
        if let Some(trailers) = req.body().trailers() {
            for (name, value) in trailers.iter() {
                line.push_str(&format!(" [{name}: {}]", escape(value)));
            }
        }
        seen.lock().unwrap().push(line.clone());
        Response::text(line)
    });
    (running, log)
}

/// Runs every row on its own connection; reports all failing rows at once.
fn run_matrix(cases: Vec<Case>) {
    let (running, log) = recorder();
    let mut failures = Vec::new();
    for case in &cases {
        log.lock().unwrap().clear();
        if let Err(why) = run_case(&running, case, &log) {
            failures.push(format!("{}: {why}\n    request: {}", case.name, escape(&case.request)));
        }
    }
    assert!(failures.is_empty(), "{} of {} rows failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
    assert_all_closed(&running);
    assert_eq!(running.stats().closes(CloseReason::HandlerPanicked), 0);
}

fn run_case(running: &Running, case: &Case, log: &Mutex<Vec<String>>) -> Result<(), String> {
    let mut c = Client::new(running.local_addr());
    c.send(format!("{}{SENTINEL}", case.request));
    let mut statuses = Vec::new();
    for i in 0..case.statuses.len() {
        let r = c.read_response_to("GET").map_err(|e| format!("response {i}: {e} (got {statuses:?})"))?;
        statuses.push(r.status);
        let last = i + 1 == case.statuses.len();
        if r.closes() != (last && case.closes) {
            return Err(format!("response {i} ({}) says close: {}, {:?}", r.status, r.closes(), r.text()));
        }
    }
    if statuses != case.statuses {
        return Err(format!("statuses {statuses:?}, expected {:?}", case.statuses));
    }
    if !case.closes {
        // Nothing more is pending: when the client ends its side, the
        // server ends too, without another response.
        c.stream().shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
    }
    match c.rest() {
        Ok(rest) if rest.is_empty() => {}
        Ok(rest) => return Err(format!("bytes after the last response: {}", escape(rest))),
        Err(e) => return Err(format!("no clean end-of-stream: {e}")),
    }
    let seen = log.lock().unwrap().clone();
    if seen != case.seen {
        return Err(format!("the handler saw {seen:?}, expected {:?}", case.seen));
    }
    Ok(())
}

#[test]
fn content_length() {
    let hidden_len = HIDDEN.len();
    let cl = |n: &str| format!("Content-Length: {n}\r\n");
    run_matrix(vec![
        // RFC 9110 §8.6: Content-Length = 1*DIGIT. The body is exactly that
        // many bytes, whatever they look like.
        ok("a request-shaped body is a body", &cl(&hidden_len.to_string()), HIDDEN, HIDDEN),
        ok("leading zeros", &cl("05"), "hello", "hello"),
        ok("forty leading zeros do not overflow", &cl(&format!("{}5", "0".repeat(40))), "hello", "hello"),
        ok("OWS around the value", "Content-Length: \t 5 \t\r\n", "hello", "hello"),
        ok("no space after the colon", "Content-Length:5\r\n", "hello", "hello"),
        ok("lower-case name", "content-length: 5\r\n", "hello", "hello"),
        ok_as(
            "a GET may have a body",
            &format!("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: {hidden_len}\r\n\r\n{HIDDEN}"),
            &format!("GET / {}", escape(HIDDEN)),
        ),
        Case {
            name: "Content-Length 0: what follows is the next request",
            request: post(&cl("0"), HIDDEN),
            statuses: vec![200, 200, 200],
            closes: false,
            seen: vec!["POST / ".into(), "GET /hidden ".into(), SENTINEL_SEEN.into()],
        },
        Case {
            name: "a valid body, then Connection: close: nothing after it is read",
            request: post(&format!("{}Connection: close\r\n", cl(&hidden_len.to_string())), HIDDEN),
            statuses: vec![200],
            closes: true,
            seen: vec![format!("POST / {}", escape(HIDDEN))],
        },
        Case {
            name: "Content_Length is another field: no body",
            // `<` cannot begin a method: the would-be body is refused as the
            // next request.
            request: post("Content_Length: 7\r\n", "<hello>"),
            statuses: vec![200, 400],
            closes: true,
            seen: vec!["POST / ".into()],
        },
        // Signs, hex, inner spaces, empty values and other digits are not
        // 1*DIGIT: 400 and close (RFC 9112 §6.3 rule 5).
        refused_post("plus sign", &cl("+5"), "hello", 400),
        refused_post("minus sign", &cl("-5"), "hello", 400),
        refused_post("hex", &cl("0x5"), "hello", 400),
        refused_post("hex digits", &cl("5a"), "hello", 400),
        refused_post("exponent", &cl("5e0"), "hello", 400),
        refused_post("decimal point", &cl("5.0"), "hello", 400),
        refused_post("space inside", &cl("1 0"), "helloworld", 400),
        refused_post("tab inside", &cl("1\t0"), "helloworld", 400),
        refused_post("empty", &cl(""), "hello", 400),
        refused_post("fullwidth digit", &cl("\u{ff15}"), "hello", 400),
        refused_post("quoted", &cl("\"5\""), "hello", 400),
        // Lists and repeated fields, even when the values agree: the strict
        // choice RFC 9110 §8.6 allows, since a proxy may pick either.
        refused_post("list, equal values", &cl("5, 5"), "hello", 400),
        refused_post("list, different values", &cl("5, 38"), "hello", 400),
        refused_post("list with an empty member", &cl("5,"), "hello", 400),
        refused_post("repeated, equal values", &format!("{}{}", cl("5"), cl("5")), "hello", 400),
        refused_post(
            "repeated, different values",
            &format!("{}{}", cl("5"), cl(&hidden_len.to_string())),
            "hello",
            400,
        ),
        refused_post("repeated, different case", &format!("{}content-length: 5\r\n", cl("5")), "hello", 400),
        // Overflow is an error, never a wrap to a small length.
        refused_post("2^64 wraps to 0 if unchecked", &cl("18446744073709551616"), HIDDEN, 400),
        refused_post("2^64 + 5 wraps to 5 if unchecked", &cl("18446744073709551621"), "hello", 400),
        refused_post("thirty nines", &cl(&"9".repeat(30)), "hello", 400),
        // Fits in u64 but not under the body limit: 413 before any byte of
        // the body is read, then close (the unread body is in the way).
        refused_post("u64::MAX", &cl("18446744073709551615"), "hello", 413),
        refused_post("over the body limit", &cl(&((1 << 20) + 1).to_string()), "hello", 413),
        // HTTP/1.0 reads Content-Length the same way; keep-alive only when
        // asked for (RFC 9112 §9.3).
        ok_as(
            "HTTP/1.0 keep-alive with a body",
            &format!("POST / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: {hidden_len}\r\n\r\n{HIDDEN}"),
            &format!("POST / {}", escape(HIDDEN)),
        ),
        Case {
            name: "HTTP/1.0 without keep-alive closes after its response",
            request: format!("POST / HTTP/1.0\r\nContent-Length: {hidden_len}\r\n\r\n{HIDDEN}"),
            statuses: vec![200],
            closes: true,
            seen: vec![format!("POST / {}", escape(HIDDEN))],
        },
        refused(
            "HTTP/1.0 with a list",
            "POST / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 5, 5\r\n\r\nhello",
            400,
        ),
    ]);
}

#[test]
fn transfer_encoding() {
    let te = |v: &str| format!("Transfer-Encoding: {v}\r\n");
    let hello = "5\r\nhello\r\n0\r\n\r\n";
    let both = |first: &str, second: &str| format!("{first}{second}");
    run_matrix(vec![
        ok("chunked", &te("chunked"), hello, "hello"),
        ok(
            "a request-shaped chunk is data",
            &te("chunked"),
            &format!("{:x}\r\n{HIDDEN}\r\n0\r\n\r\n", HIDDEN.len()),
            HIDDEN,
        ),
        // Codings are case-insensitive tokens (RFC 9112 §7).
        ok("upper case", &te("CHUNKED"), hello, "hello"),
        ok("mixed case", &te("ChUnKeD"), hello, "hello"),
        ok("lower-case name", "transfer-encoding: chunked\r\n", hello, "hello"),
        ok("OWS around the value", "Transfer-Encoding: \t chunked \t\r\n", hello, "hello"),
        // RFC 9110 §5.6.1: recipients accept (and ignore) empty list members.
        ok("trailing empty member", &te("chunked,"), hello, "hello"),
        ok("leading empty member", &te(" , chunked"), hello, "hello"),
        ok_as(
            "a GET may have a chunked body",
            &format!("GET / HTTP/1.1\r\nHost: x\r\n{}\r\n{hello}", te("chunked")),
            "GET / hello",
        ),
        // RFC 9112 §6.1: chunked at most once; §6.3: chunked must be last,
        // else the length cannot be known: 400 and close.
        refused_post("repeated fields", &both(&te("chunked"), &te("chunked")), hello, 400),
        refused_post("chunked twice in a list", &te("chunked, chunked"), hello, 400),
        refused_post("chunked not last", &te("chunked, gzip"), hello, 400),
        refused_post("chunked not last across fields", &both(&te("chunked"), &te("gzip")), hello, 400),
        refused_post("identity after chunked", &both(&te("chunked"), &te("identity")), hello, 400),
        refused_post("unknown coding alone", &te("x-custom"), hello, 400),
        refused_post("gzip alone", &te("gzip"), hello, 400),
        refused_post("identity alone", &te("identity"), hello, 400),
        refused_post("empty value", &te(""), hello, 400),
        refused_post("only commas", &te(",,"), hello, 400),
        refused_post("quoted", &te("\"chunked\""), hello, 400),
        refused_post("with a parameter", &te("chunked;q=1"), hello, 400),
        refused_post("prefixed", &te("xchunked"), hello, 400),
        refused_post("two words", &te("chunked x"), hello, 400),
        refused_post("vertical tab", &te("\u{b}chunked"), hello, 400),
        // RFC 9112 §6.1: a coding before chunked that we cannot decode is 501.
        refused_post("gzip then chunked", &te("gzip, chunked"), hello, 501),
        refused_post("identity then chunked", &te("identity, chunked"), hello, 501),
        refused_post("gzip then chunked across fields", &both(&te("gzip"), &te("chunked")), hello, 501),
        // RFC 9112 §6.3 rule 3: both TE and CL is what CL.TE and TE.CL
        // smuggling are made of; refused (and it MUST close anyway).
        refused_post(
            "CL.TE: CL first",
            &both("Content-Length: 6\r\n", &te("chunked")),
            &format!("0\r\n\r\n{HIDDEN}"),
            400,
        ),
        refused_post(
            "TE.CL: TE first",
            &both(&te("chunked"), "Content-Length: 4\r\n"),
            &format!("{:x}\r\n{HIDDEN}\r\n0\r\n\r\n", HIDDEN.len()),
            400,
        ),
        refused_post("TE with Content-Length 0", &both(&te("chunked"), "Content-Length: 0\r\n"), hello, 400),
        refused_post("TE with an invalid Content-Length", &both(&te("chunked"), "Content-Length: x\r\n"), hello, 400),
        // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 leaves framing in
        // doubt (1.0 has no chunked): 400, keep-alive or not.
        refused("HTTP/1.0", &format!("POST / HTTP/1.0\r\n{}\r\n{hello}", te("chunked")), 400),
        refused(
            "HTTP/1.0 keep-alive",
            &format!("POST / HTTP/1.0\r\nConnection: keep-alive\r\n{}\r\n{hello}", te("chunked")),
            400,
        ),
        Case {
            name: "Transfer_Encoding is another field: no body",
            request: post("Transfer_Encoding: chunked\r\n", "0\r\n\r\n"),
            statuses: vec![200, 400],
            closes: true,
            seen: vec!["POST / ".into()],
        },
    ]);
}

#[test]
fn chunk_syntax() {
    let t = |trailer: &str| format!("5\r\nhello\r\n0\r\n{trailer}\r\n");
    run_matrix(vec![
        // RFC 9112 §7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF.
        chunks("one chunk", "5\r\nhello\r\n0\r\n\r\n", "hello"),
        chunks("no chunks", "0\r\n\r\n", ""),
        chunks("several chunks", "3\r\nhel\r\n1\r\nl\r\n1\r\no\r\n0\r\n\r\n", "hello"),
        chunks("upper-case hex", "A\r\n0123456789\r\n0\r\n\r\n", "0123456789"),
        chunks("lower-case hex", "a\r\n0123456789\r\n0\r\n\r\n", "0123456789"),
        chunks("leading zeros past 16 digits", &format!("{}5\r\nhello\r\n000\r\n\r\n", "0".repeat(30)), "hello"),
        chunks("a last-chunk inside the data", "7\r\n0\r\n\r\nAB\r\n0\r\n\r\n", &escape("0\r\n\r\nAB")),
        chunks("extensions", "5;a=b;c=\"d e\\\"f\"\r\nhello\r\n0;last\r\n\r\n", "hello"),
        chunks("BWS in extensions", "5 ; a = b\t;\tc\r\nhello\r\n0\r\n\r\n", "hello"),
        chunks("a trailer", &t("X-T: v\r\n"), "hello [X-T: v]"),
        // Trailer fields never frame anything (RFC 9112 §7.1.2).
        chunks("a Content-Length trailer", &t("Content-Length: 40\r\n"), "hello [Content-Length: 40]"),
        chunks(
            "a Transfer-Encoding trailer",
            &t("Transfer-Encoding: chunked\r\n"),
            "hello [Transfer-Encoding: chunked]",
        ),
        Case {
            name: "bytes after the last chunk are the next request",
            request: post("Transfer-Encoding: chunked\r\n", &format!("0\r\n\r\n{HIDDEN}")),
            statuses: vec![200, 200, 200],
            closes: false,
            seen: vec!["POST / ".into(), "GET /hidden ".into(), SENTINEL_SEEN.into()],
        },
        // Sizes are plain hex: no prefix, sign, whitespace or separator.
        bad_chunks("0x prefix", "0x5\r\nhello\r\n0\r\n\r\n", 400),
        bad_chunks("plus sign", "+5\r\nhello\r\n0\r\n\r\n", 400),
        bad_chunks("minus sign", "-5\r\nhello\r\n0\r\n\r\n", 400),
        bad_chunks("space before", " 5\r\nhello\r\n0\r\n\r\n", 400),
        bad_chunks("space after", "5 \r\nhello\r\n0\r\n\r\n", 400),
        bad_chunks("empty size", "\r\nhello\r\n0\r\n\r\n", 400),
        bad_chunks("underscore", "1_0\r\n0123456789abcdef\r\n0\r\n\r\n", 400),
        bad_chunks("not hex", "g\r\nhello\r\n0\r\n\r\n", 400),
        // Overflow is an error, never a wrap (RFC 9112 §7.1).
        bad_chunks("2^64 wraps to 0 if unchecked", &format!("10000000000000000\r\n\r\n{HIDDEN}"), 400),
        bad_chunks("2^64 + 5 wraps to 5 if unchecked", "10000000000000005\r\nhello\r\n0\r\n\r\n", 400),
        bad_chunks("u64::MAX is over the body limit", "ffffffffffffffff\r\nhello\r\n0\r\n\r\n", 413),
        bad_chunks("over the body limit", "100001\r\nhello\r\n0\r\n\r\n", 413),
        // chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )
        bad_chunks("extension: empty name", "5;\r\nhello\r\n0\r\n\r\n", 400),
        bad_chunks("extension: no name before =", "5;=b\r\nhello\r\n0\r\n\r\n", 400),
        bad_chunks("extension: empty value", "5;a=\r\nhello\r\n0\r\n\r\n", 400),
        bad_chunks("extension: space inside a token", "5;a=b c\r\nhello\r\n0\r\n\r\n", 400),
        bad_chunks("extension: control character", "5;a=\u{1}\r\nhello\r\n0\r\n\r\n", 400),
        bad_chunks("extension: NUL", "5;a\u{0}\r\nhello\r\n0\r\n\r\n", 400),
        bad_chunks("extension: not a token", "5;@=b\r\nhello\r\n0\r\n\r\n", 400),
        bad_chunks("extension: unterminated quote", "5;a=\"b\r\nhello\r\n0\r\n\r\n", 400),
        bad_chunks("extension: bare LF", "5;a=b\nhello\r\n0\r\n\r\n", 400),
        bad_chunks("extension: whitespace before CRLF", "5;a=b \r\nhello\r\n0\r\n\r\n", 400),
        // The CRLF after chunk data is required: without it a shorter or
        // longer chunk would shift where the next size is read.
        bad_chunks("data longer than the size", "5\r\nhelloX\r\n0\r\n\r\n", 400),
        bad_chunks("data shorter than the size", "5\r\nhel\r\n0\r\n\r\n", 400),
        bad_chunks("no CRLF after data", "5\r\nhello0\r\n\r\n", 400),
        bad_chunks("CR without LF after data", "5\r\nhello\r0\r\n\r\n", 400),
        // Every line ends in CRLF (RFC 9112 §2.2 allows a bare LF; we do
        // not, so that no two readings of a line end exist).
        bad_chunks("bare LF after the size", "5\nhello\r\n0\r\n\r\n", 400),
        bad_chunks("bare CR after the size", "5\rhello\r\n0\r\n\r\n", 400),
        bad_chunks("bare LF after data", "5\r\nhello\n0\r\n\r\n", 400),
        bad_chunks("bare LF after the last chunk", "0\n\r\n", 400),
        bad_chunks("bare LF ending the trailers", "0\r\n\n", 400),
        // Trailer fields follow the rules of header fields.
        bad_chunks("trailer: obs-fold", &t("X: a\r\n b\r\n"), 400),
        bad_chunks("trailer: whitespace before colon", &t("X : a\r\n"), 400),
        bad_chunks("trailer: leading whitespace", &t(" X: a\r\n"), 400),
        bad_chunks("trailer: no colon", &t("nocolon\r\n"), 400),
        bad_chunks("trailer: NUL in value", &t("X: a\u{0}b\r\n"), 400),
        bad_chunks("trailer: bare LF", &t("X: a\n"), 400),
        // A body that never ends must not take the sentinel as its rest.
        bad_chunks("no last chunk: the sentinel is not a chunk", "5\r\nhello\r\n", 400),
        bad_chunks("no end of trailers: the sentinel is not a trailer", "0\r\n", 400),
    ]);
}

#[test]
fn field_syntax_and_host() {
    let get = |fields: &str| format!("GET / HTTP/1.1\r\n{fields}\r\n");
    run_matrix(vec![
        ok_as("a plain GET", &get("Host: x\r\n"), "GET / "),
        ok_as("OWS around a value", &get("Host: x\r\nX-A:  \t v \t \r\n"), "GET / "),
        ok_as("empty Host", &get("Host:\r\n"), "GET / "),
        ok_as("HTTP/1.0 needs no Host", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "GET / "),
        // RFC 9112 §5.2: obs-fold is rejected with 400 (a server may instead
        // unfold, but then two readings of the field exist).
        refused("obs-fold", &get("Host: x\r\nX-A: 1\r\n folded\r\n"), 400),
        refused("obs-fold with a tab", &get("Host: x\r\nX-A: 1\r\n\tfolded\r\n"), 400),
        refused_post("obs-fold continuing Content-Length", "Content-Length: 5\r\n 0\r\n", "hello", 400),
        refused_post(
            "obs-fold hiding Transfer-Encoding",
            "X-A: 1\r\n Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
            "hello",
            400,
        ),
        // RFC 9112 §5.1: no whitespace between name and colon; a server MUST
        // reject it with 400.
        refused_post("space before colon in Content-Length", "Content-Length : 5\r\n", "hello", 400),
        refused_post("tab before colon in Content-Length", "Content-Length\t: 5\r\n", "hello", 400),
        refused_post("space before colon in Transfer-Encoding", "Transfer-Encoding : chunked\r\n", "0\r\n\r\n", 400),
        refused("space before colon in Host", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
        // RFC 9112 §2.2: whitespace before the first field line is rejected.
        refused("whitespace before the first field", "GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400),
        refused_post("space inside a name", "Content Length: 5\r\n", "hello", 400),
        refused("empty name", &get("Host: x\r\n: v\r\n"), 400),
        refused("no colon", &get("Host: x\r\nX-A\r\n"), 400),
        refused("CR inside a value", &get("Host: x\r\nX-A: a\rb\r\n"), 400),
        refused("bare LF ending a field", "GET / HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n", 400),
        refused("NUL in a name", &get("Host: x\r\nX\u{0}A: 1\r\n"), 400),
        refused_post("Content-Length with a vertical tab", "Content-Length:\u{b}5\r\n", "hello", 400),
        // RFC 9112 §3.2: exactly one valid Host in HTTP/1.1.
        refused("no Host", &get(""), 400),
        refused("duplicated Host", &get("Host: x\r\nHost: x\r\n"), 400),
        refused("duplicated Host, different values", &get("Host: x\r\nHost: y\r\n"), 400),
        refused("duplicated Host, different case", &get("Host: x\r\nhost: x\r\n"), 400),
        refused("duplicated Host in HTTP/1.0", "GET / HTTP/1.0\r\nHost: x\r\nHost: y\r\n\r\n", 400),
        refused("Host list", &get("Host: x, y\r\n"), 400),
        refused("Host with a path", &get("Host: x/y\r\n"), 400),
        refused("Host with a bad port", &get("Host: x:8o\r\n"), 400),
    ]);
}
