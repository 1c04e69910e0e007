//! The request a handler sees: method, target, version, header fields, the
//! peer's address and the body as a [`std::io::Read`].

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Read};
use std::net::SocketAddr;

use crate::body::Body;
use crate::headers::Headers;

/// The request method (RFC 9110 §9). Methods are case-sensitive: `get` is
/// not `GET`, and arrives as [`Method::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Method {
    /// `GET`
    #[default]
    Get,
    /// `HEAD`: answered with the head a `GET` would get, and no body.
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `CONNECT`: the server answers 501 (it offers no tunnels).
    Connect,
    /// `OPTIONS`
    Options,
    /// `TRACE`
    Trace,
    /// `PATCH` (RFC 5789)
    Patch,
    /// Any other token.
    Other(String),
}

impl Method {
    pub(crate) fn from_bytes(b: &[u8]) -> Method {
        match b {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"CONNECT" => Method::Connect,
            b"OPTIONS" => Method::Options,
            b"TRACE" => Method::Trace,
            b"PATCH" => Method::Patch,
            // The parser only passes tokens: ASCII.
            other => Method::Other(String::from_utf8_lossy(other).into_owned()),
        }
    }

    /// The method as sent on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Connect => "CONNECT",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Patch => "PATCH",
            Method::Other(s) => s,
        }
    }

    /// Idempotent methods (RFC 9110 §9.2.2) are the ones a client may
    /// safely retry when a persistent connection closes under it
    /// (RFC 9112 §9.3.1): GET, HEAD, PUT, DELETE, OPTIONS, TRACE.
    /// POST and PATCH are not.
    pub fn is_idempotent(&self) -> bool {
        matches!(self, Method::Get | Method::Head | Method::Put | Method::Delete | Method::Options | Method::Trace)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The protocol version of a request. `HTTP/1.2` and higher 1.x minors are
/// served as 1.1 (RFC 9110 §2.5); other majors get 505.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Version {
    /// HTTP/1.0: a connection persists only if the client asks with
    /// `Connection: keep-alive`.
    Http10,
    /// HTTP/1.1: a connection persists unless either side says `close`.
    #[default]
    Http11,
}

impl Version {
    /// `"HTTP/1.0"` or `"HTTP/1.1"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The parsed request line and header section. The connection keeps one and
/// refills it for every request, so its storage is reused.
#[derive(Debug, Default)]
pub(crate) struct RequestHead {
    pub method: Method,
    pub target: String,
    pub version: Version,
    pub headers: Headers,
}

impl RequestHead {
    /// Gives back storage that a large request made grow, so that what a
    /// thread keeps between connections stays small (see `conn::Kept`).
    pub(crate) fn shrink(&mut self) {
        if !self.headers.storage_is_small() {
            self.headers = Headers::default();
        }
        if self.target.capacity() > TARGET_KEEP {
            self.target = String::new();
        }
    }
}

/// The longest request target whose storage is kept for the next
/// connection.
const TARGET_KEEP: usize = 1024;

/// An HTTP request, handed to the handler as `&mut Request`.
///
/// The body is read through [`Request::body`] (a [`std::io::Read`]); it
/// decodes `Content-Length` or chunked framing, enforces the body limit,
/// and sends `100 Continue` on the first read if the client asked for it.
/// A handler need not read the body: the server discards what is left when
/// it is small, or closes the connection when it is not, so the next
/// pipelined request is never confused with it.
///
/// ```
/// use std::io::{Read, Write};
/// use h1serve::{Response, Server};
///
/// let running = Server::bind("127.0.0.1:0")?.spawn(|req| {
///     let agent = req.header("user-agent").unwrap_or("?").to_string();
///     let name = req.query_param("name").unwrap_or_default().into_owned();
///     let mut body = String::new();
///     if req.body().read_to_string(&mut body).is_err() {
///         return Response::text("not UTF-8\n").with_status(400);
///     }
///     Response::text(format!("{} {} name={name} agent={agent} body={body}\n", req.method(), req.path()))
/// })?;
/// let mut client = std::net::TcpStream::connect(running.local_addr())?;
/// client.write_all(b"POST /greet?name=J%C3%BCrgen HTTP/1.1\r\nHost: x\r\nUser-Agent: doc\r\n\
///                    Content-Length: 2\r\nConnection: close\r\n\r\nhi")?;
/// let mut response = String::new();
/// client.read_to_string(&mut response)?;
/// assert!(response.ends_with("\r\n\r\nPOST /greet name=Jürgen agent=doc body=hi\n"), "{response}");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Request<'c> {
    pub(crate) head: &'c mut RequestHead,
    pub(crate) body: Body<'c>,
    pub(crate) remote_addr: SocketAddr,
}

impl<'c> Request<'c> {
    /// The method.
    pub fn method(&self) -> &Method {
        &self.head.method
    }

    /// The request target exactly as received: origin form (`/a?b`),
    /// absolute form (`http://host/a`), or `*` (with OPTIONS).
    pub fn target(&self) -> &str {
        &self.head.target
    }

    /// The path of the target, without the query (`/a` for `/a?b`, and for
    /// `http://host/a?b`; `*` for the asterisk form). Not percent-decoded.
    pub fn path(&self) -> &str {
        split_target(&self.head.target).0
    }

    /// The query of the target, without the `?`, if there is one. Not
    /// decoded: see [`Request::query_pairs`].
    pub fn query(&self) -> Option<&str> {
        split_target(&self.head.target).1
    }

    /// The query's `name=value` pairs in order, decoded the way HTML forms
    /// encode them (`application/x-www-form-urlencoded`, WHATWG URL
    /// §5.1): pairs split at `&`, each at its first `=` (a pair without one
    /// has an empty value), `+` is a space, `%XX` a byte, bytes that are not
    /// UTF-8 become U+FFFD. A `%` not followed by two hex digits is kept as
    /// it is, as browsers do. Borrowed where nothing needed decoding.
    pub fn query_pairs(&self) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
        form_pairs(self.query().unwrap_or(""))
    }

    /// The decoded value of the first query parameter called `name`
    /// (compared after decoding), as [`Request::query_pairs`] decodes it.
    ///
    /// ```no_run
    /// // An OAuth redirect: GET /callback?code=4%2F0Ad&state=xyz
    /// use h1serve::{Response, Server};
    /// Server::bind("127.0.0.1:0")?.serve(|req| match req.query_param("code") {
    ///     Some(code) => Response::text(format!("signed in with {code}\n")),
    ///     None => Response::text("no code\n").with_status(400),
    /// })
    /// # ; Ok::<(), std::io::Error>(())
    /// ```
    pub fn query_param(&self, name: &str) -> Option<Cow<'_, str>> {
        self.query_pairs().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The protocol version.
    pub fn version(&self) -> Version {
        self.head.version
    }

    /// The header fields, in the order received.
    pub fn headers(&self) -> &Headers {
        &self.head.headers
    }

    /// The host the request is for, with its port if one was given: the
    /// authority of an absolute-form target (`GET http://host:8080/p`),
    /// which RFC 9112 §3.2.2 says a server uses instead of the `Host`
    /// field, else `Host` (empty if `Host` is, as RFC 9112 §3.2 allows
    /// when the target has no authority). `None` only for an HTTP/1.0
    /// request without `Host`.
    pub fn host(&self) -> Option<&str> {
        absolute_form_authority(&self.head.target).or_else(|| self.header("host"))
    }

    /// The first value of the header field `name`, if present (and UTF-8).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.headers.get(name)
    }

    /// The address of the client.
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote_addr
    }

    /// The request body, as a reader.
    pub fn body(&mut self) -> &mut Body<'c> {
        &mut self.body
    }

    /// Reads the whole body into a `Vec`. The body limit of the server
    /// bounds it.
    pub fn read_body(&mut self) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        self.body.read_to_end(&mut v)?;
        Ok(v)
    }
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.head.method)
            .field("target", &self.head.target)
            .field("version", &self.head.version)
            .field("headers", &self.head.headers)
            .field("remote_addr", &self.remote_addr)
            .finish_non_exhaustive()
    }
}

/// Splits a request target into path and query (RFC 9112 §3.2). For the
/// absolute form (`scheme ":" hier-part`, RFC 3986 §3) the scheme, and the
/// authority after `//`, are skipped first; the scheme ends at the first
/// `:`, so a `://` inside the query is never mistaken for it.
pub(crate) fn split_target(target: &str) -> (&str, Option<&str>) {
    let rest = if target.starts_with('/') || target == "*" {
        target
    } else {
        let after_scheme = target.split_once(':').map_or(target, |(_, rest)| rest);
        match after_scheme.strip_prefix("//") {
            Some(authority_and_path) => authority_and_path.find(['/', '?']).map_or("", |i| &authority_and_path[i..]),
            None => after_scheme,
        }
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    (if path.is_empty() { "/" } else { path }, query)
}

/// The authority of an absolute-form target with an `http` or `https`
/// scheme (RFC 9112 §3.2.2, RFC 9110 §4.2): what lies between `://` and
/// the path or query. `None` for any other target.
pub(crate) fn absolute_form_authority(target: &str) -> Option<&str> {
    let (scheme, rest) = target.split_once("://")?;
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return None;
    }
    Some(rest.find(['/', '?']).map_or(rest, |i| &rest[..i]))
}

/// The name and value pairs of a form-encoded string: a query, or the body
/// of a form POST (`application/x-www-form-urlencoded`), decoded as
/// [`Request::query_pairs`] decodes the query.
///
/// ```
/// use h1serve::{Request, Response, form_pairs};
/// fn sign_in(req: &mut Request) -> std::io::Result<Response> {
///     let body = String::from_utf8_lossy(&req.read_body()?).into_owned();
///     let user = form_pairs(&body).find(|(name, _)| name == "user").map(|(_, v)| v.into_owned());
///     Ok(Response::text(format!("hello, {}\n", user.unwrap_or_default())))
/// }
/// let pairs: Vec<_> = form_pairs("user=ada+l%C3%B6velace&remember").collect();
/// assert_eq!(pairs, [("user".into(), "ada lövelace".into()), ("remember".into(), "".into())]);
/// ```
pub fn form_pairs(s: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    s.split('&').filter(|pair| !pair.is_empty()).map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (form_decode(name), form_decode(value))
    })
}

/// Decodes one form-encoded name or value: `+` is a space, `%XX` a byte,
/// a `%` without two hex digits stays as it is.
fn form_decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['+', '%']) {
        return Cow::Borrowed(s);
    }
    let hex = |b: Option<&u8>| b.and_then(|&b| char::from(b).to_digit(16));
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i], hex(b.get(i + 1)), hex(b.get(i + 2))) {
            (b'+', ..) => out.push(b' '),
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi << 4 | lo) as u8);
                i += 2;
            }
            (byte, ..) => out.push(byte),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_decode_as_forms_do() {
        let pairs = |s| form_pairs(s).map(|(n, v)| (n.into_owned(), v.into_owned())).collect::<Vec<_>>();
        let owned = |v: &[(&str, &str)]| v.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect::<Vec<_>>();
        assert_eq!(pairs("a=1&b=&c&&a=2&=e"), owned(&[("a", "1"), ("b", ""), ("c", ""), ("a", "2"), ("", "e")]));
        assert_eq!(pairs("x+y=a+b%2Bc%20d"), owned(&[("x y", "a b+c d")]));
        assert_eq!(pairs("code=4%2F0Ad%3d%3D&k=v=w"), owned(&[("code", "4/0Ad=="), ("k", "v=w")]));
        // UTF-8 from its bytes; bytes that are not UTF-8 become U+FFFD.
        assert_eq!(pairs("e=%E2%82%AC&bad=%FF"), owned(&[("e", "€"), ("bad", "\u{FFFD}")]));
        // A stray `%` is kept, and never swallows what follows.
        assert_eq!(pairs("p=100%&q=%zz1&r=%4"), owned(&[("p", "100%"), ("q", "%zz1"), ("r", "%4")]));
        assert_eq!(pairs(""), owned(&[]));
        assert!(matches!(form_decode("plain"), Cow::Borrowed("plain")));
    }

    #[test]
    fn a_head_kept_between_connections_gives_back_only_large_storage() {
        let mut head = RequestHead::default();
        head.target.push_str("/p");
        head.headers.append("Host", "x");
        let kept = head.target.capacity();
        head.shrink();
        assert_eq!(head.target.capacity(), kept);
        for i in 0..100 {
            head.headers.append("X-Many", i.to_string());
        }
        head.target.push_str(&"x".repeat(2000));
        assert!(!head.headers.storage_is_small());
        head.shrink();
        assert!(head.headers.storage_is_small() && head.headers.is_empty());
        assert_eq!(head.target.capacity(), 0);
    }

    #[test]
    fn targets_split_into_path_and_query() {
        assert_eq!(split_target("/a/b?x=1&y"), ("/a/b", Some("x=1&y")));
        assert_eq!(split_target("/"), ("/", None));
        assert_eq!(split_target("http://h:80/p?q"), ("/p", Some("q")));
        assert_eq!(split_target("http://h"), ("/", None));
        assert_eq!(split_target("http://h?q"), ("/", Some("q")));
        assert_eq!(split_target("/a?b=http://x"), ("/a", Some("b=http://x")));
        assert_eq!(split_target("*"), ("*", None));
        // The scheme ends at the first colon: "://" in the query is data.
        assert_eq!(split_target("http:/public?x=://h/admin"), ("/public", Some("x=://h/admin")));
        assert_eq!(split_target("http://h/p?next=http://evil/x"), ("/p", Some("next=http://evil/x")));
    }

    #[test]
    fn methods_are_case_sensitive() {
        assert_eq!(Method::from_bytes(b"GET"), Method::Get);
        assert_eq!(Method::from_bytes(b"get"), Method::Other("get".into()));
        assert!(Method::Put.is_idempotent() && !Method::Post.is_idempotent());
    }
}
