//! A static file server: what to reach for instead of `python -m http.server`.
//!
//! ```text
//! cargo run --release --example file_server -- [DIR] [--addr ADDR]
//! ```
//!
//! DIR defaults to `.` and ADDR to `127.0.0.1:8000` (`--addr=ADDR` works
//! too; `--` ends the flags, for a DIR that starts with `-`). The first line
//! printed is `listening on http://HOST:PORT`, with the real port also when
//! ADDR asks for port 0; the second is `serving DIR`, DIR made absolute.
//! Each request gets one access line on stderr,
//! `REMOTE "METHOD TARGET VERSION" STATUS BYTES`, and requests the server
//! refuses before they reach the handler (malformed, too large...) get a
//! `refused` line. Bad flags print the usage on stderr and exit with 2.
//!
//! What it answers:
//!
//! | request | response |
//! |---|---|
//! | GET/HEAD of a file | 200, the file streamed from disk, `Content-Type` from the extension, `Last-Modified` |
//! | GET/HEAD of a directory `/d/` | its `index.html` if it has one, else an HTML listing |
//! | GET/HEAD of a directory without the slash, `/d` | 301 to `/d/`, so relative links in the page resolve |
//! | `If-Modified-Since` not older than the file | 304, no body |
//! | any other method | 405 with `Allow: GET, HEAD` |
//! | a path that is not a path (bad `%` escape, a control character such as NUL or LF, not UTF-8) | 400 |
//! | a missing file, a special file, or any way out of DIR | 404 |
//! | a file the operating system will not let it read | 403 |
//! | a file or directory found but not opened for another reason (out of descriptors, a disk error) | 500, and a line on stderr |
//!
//! Ways out of DIR get 404, the status of a file that is not there, rather
//! than 403: the answer must not tell a client what exists outside DIR, and
//! a symlink that leads out is, for a client, indistinguishable from a
//! missing file anyway.
//!
//! What it teaches:
//!
//! - **Exact `Content-Length` from metadata.** A file's length comes from
//!   the metadata of the open file and the body is streamed with
//!   [`Response::from_reader`], so a file of any size costs a fixed buffer,
//!   and the length lets the connection carry the next request
//!   (RFC 9112 §6.3) instead of ending the body by closing.
//! - **HEAD** (RFC 9110 §9.3.2) gets the same status and fields as GET and
//!   no body. The handler takes the same path for both, opening the file,
//!   so that a file GET could not open (403, 500) is not a 200 to HEAD;
//!   the server never reads the body of a response to HEAD.
//! - **Conditional requests**: `Last-Modified` (RFC 9110 §8.8.2) and
//!   `If-Modified-Since` (RFC 9110 §13.1.3) turn a browser's revalidation of
//!   its cached copy into a 304 with no body. HTTP dates are formatted and
//!   parsed (all three forms a recipient must accept) by
//!   [`h1serve::http_date`] and [`h1serve::parse_http_date`].
//! - **Path safety**: the path is percent-decoded strictly, `..` segments
//!   are refused however they are spelled (`%2e%2e`, `.%2E`, `..%2f`), every
//!   name must be a single plain path component, and the joined path is
//!   resolved with its symlinks followed and checked to still be inside
//!   DIR before anything is opened.
//! - **Persistent connections**: browsers open a few connections per host
//!   and send every page, script, stylesheet and image over them, one after
//!   the other. Because every response here has a known length, none of
//!   them ends its connection, and a page with fifty assets costs a handful
//!   of TCP handshakes rather than fifty.
//!
//! Limits, on purpose: no `Range` requests, no compression, no `ETag`. Text
//! types are announced as UTF-8. The symlink check runs before the file is
//! opened, so someone who can create files inside DIR while it is being
//! served can race it: swap in a link that leads out, or a FIFO, whose
//! `open` then blocks that connection's thread until a writer comes (std
//! has no portable non-blocking open). Serve only directories whose
//! writers you trust.

use std::fmt::Write as _;
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::process::exit;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use h1serve::{Event, Method, Request, Response, Server};

const USAGE: &str = "usage: file_server [DIR] [--addr ADDR]";

fn main() {
    let (dir, addr) = parse_args(std::env::args().skip(1));
    // The root is made canonical once, so that the canonical path of every
    // file served can be checked to start with it.
    let root = match fs::canonicalize(&dir) {
        Ok(root) if root.is_dir() => root,
        Ok(_) => fail(&format!("{dir} is not a directory")),
        Err(e) => fail(&format!("cannot serve {dir}: {e}")),
    };
    let server = Server::builder()
        .on_event(log_refusal)
        .bind(&addr)
        .unwrap_or_else(|e| fail(&format!("cannot listen on {addr}: {e}")));
    println!("listening on http://{}", server.local_addr());
    println!("serving {}", root.display());
    let _ = io::stdout().flush();
    let served = server.serve(move |req| {
        let response = respond(&root, req);
        log_access(req, &response);
        response
    });
    if let Err(e) = served {
        fail(&e.to_string());
    }
}

/// Reads `[DIR] [--addr ADDR]`, exiting with the usage on anything else.
fn parse_args(mut args: impl Iterator<Item = String>) -> (String, String) {
    let mut dir = None;
    let mut addr = None;
    let mut flags_ended = false;
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            _ if flags_ended || !arg.starts_with('-') => {
                if dir.replace(arg).is_some() {
                    usage("more than one DIR");
                }
                continue;
            }
            "--" => {
                flags_ended = true;
                continue;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                exit(0)
            }
            "--addr" => args.next().unwrap_or_else(|| usage("--addr needs a value")),
            flag => match flag.strip_prefix("--addr=") {
                Some(value) => value.to_string(),
                None => usage(&format!("unknown flag {flag}")),
            },
        };
        if addr.replace(value).is_some() {
            usage("more than one --addr");
        }
    }
    (dir.unwrap_or_else(|| ".".into()), addr.unwrap_or_else(|| "127.0.0.1:8000".into()))
}

fn usage(problem: &str) -> ! {
    eprintln!("file_server: {problem}\n{USAGE}");
    exit(2)
}

fn fail(problem: &str) -> ! {
    eprintln!("file_server: {problem}");
    exit(1)
}

/// One access line per request the handler answered, written as it returns
/// (before the response goes out). The target is safe to print as
/// it is: the server only accepts visible ASCII there, so a request cannot
/// forge log lines.
fn log_access(req: &Request, response: &Response) {
    let status = response.status_code();
    let no_body = *req.method() == Method::Head || status == 304;
    let bytes = if no_body { 0 } else { response.body_len().unwrap_or(0) };
    eprintln!("{} \"{} {} {}\" {status} {bytes}", req.remote_addr(), req.method(), req.target(), req.version());
}

/// Requests the server answered itself never reach the handler; the event
/// hook still sees them.
fn log_refusal(event: &Event) {
    if let Event::Refused { id, error } = event {
        eprintln!("connection {id}: refused: {error}");
    }
}

// ---------------------------------------------------------------------------
// The handler
// ---------------------------------------------------------------------------

fn respond(root: &Path, req: &Request) -> Response {
    match req.method() {
        Method::Get | Method::Head => {}
        // RFC 9110 §15.5.6: a 405 must list the methods the resource does
        // support in `Allow`.
        _ => return Response::text("method not allowed\n").with_status(405).with_header("Allow", "GET, HEAD"),
    }
    let names = match decode_path(req.path()) {
        Ok(names) => names,
        Err(PathError::Malformed) => return Response::text("bad path\n").with_status(400),
        Err(PathError::Outside) => return not_found(),
    };
    let mut path = root.to_path_buf();
    path.extend(&names);
    let (real, meta) = match confine(root, &path) {
        Ok(found) => found,
        Err(response) => return response,
    };
    if meta.is_dir() {
        if !req.path().ends_with('/') {
            return redirect_to_slash(&names, req.query());
        }
        if let Ok((index, meta)) = confine(root, &real.join("index.html")) {
            if meta.is_file() {
                return serve_file(req, &index, &meta);
            }
        }
        return listing(root, &real, &names);
    }
    // A file named as a directory (`/a.txt/`) is not there, as for open(2).
    if !meta.is_file() || req.path().ends_with('/') {
        return not_found();
    }
    serve_file(req, &real, &meta)
}

fn not_found() -> Response {
    Response::text("not found\n").with_status(404)
}

/// 301 to the same directory with a trailing slash (RFC 9110 §15.4.2).
/// The location is rebuilt from the decoded names rather than copied from
/// the request, so `//evil.example` (a directory named `evil.example`)
/// cannot turn into a redirect to another host.
fn redirect_to_slash(names: &[String], query: Option<&str>) -> Response {
    let mut location = String::from("/");
    for name in names {
        location.push_str(&percent_encode(name));
        location.push('/');
    }
    if let Some(query) = query {
        location.push('?');
        location.push_str(query);
    }
    Response::status(301).with_header("Location", location)
}

/// Streams a regular file, or answers 304 if the client's copy is current.
/// A HEAD takes the same path: the server never reads the body of a
/// response to HEAD, and opening the file gives HEAD the status GET would
/// get when the file cannot be opened.
fn serve_file(req: &Request, path: &Path, meta: &Metadata) -> Response {
    if not_modified(req, last_modified(meta)) {
        return with_last_modified(Response::status(304), meta);
    }
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) => return open_error(path, &e),
    };
    // The length is taken from the open file, not from the path looked up
    // earlier: it is the file whose bytes are about to be sent. `take` sends
    // that many and no more if the file grows meanwhile; if it shrinks, the
    // server closes the connection rather than send a short body.
    let meta = match file.metadata() {
        Ok(meta) if meta.is_file() => meta,
        Ok(_) => return not_found(),
        Err(e) => return open_error(path, &e),
    };
    let len = meta.len();
    file_headers(Response::from_reader(file.take(len), len), path, &meta)
}

fn file_headers(response: Response, path: &Path, meta: &Metadata) -> Response {
    with_last_modified(response.with_header("Content-Type", content_type(path)), meta)
}

fn with_last_modified(response: Response, meta: &Metadata) -> Response {
    match last_modified(meta) {
        Some(secs) => response.with_header("Last-Modified", h1serve::http_date(UNIX_EPOCH + Duration::from_secs(secs))),
        None => response,
    }
}

/// Maps a failure to look up a name (`confine`) to a status. One the
/// system will not let us see is a 403; any other means the client cannot
/// have that name (missing, too long, a symlink loop), so it is a 404. The
/// unexpected ones are logged for the operator.
fn lookup_error(path: &Path, e: &io::Error) -> Response {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => not_found(),
        io::ErrorKind::PermissionDenied => forbidden(),
        _ => {
            log_error(path, e);
            not_found()
        }
    }
}

/// Maps a failure to open or read what `confine` just found to a status.
/// Denied is a 403; anything else is the server's own failure (out of
/// descriptors, a disk error), so a 500 rather than a 404, which would say
/// the file is gone and which a cache may keep (RFC 9110 §15.5.5,
/// §15.6.1).
fn open_error(path: &Path, e: &io::Error) -> Response {
    match e.kind() {
        io::ErrorKind::PermissionDenied => forbidden(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => not_found(),
        _ => {
            log_error(path, e);
            Response::text("internal server error\n").with_status(500)
        }
    }
}

fn forbidden() -> Response {
    Response::text("forbidden\n").with_status(403)
}

/// A line for the operator. The path is printed escaped (`{:?}`), though
/// `decode_path` lets no control character into it: a request must not be
/// able to write line breaks or terminal escapes into the log.
fn log_error(path: &Path, e: &io::Error) {
    eprintln!("file_server: {:?}: {e}", path.display().to_string());
}

/// An HTML page listing a directory: names sorted, HTML-escaped in the
/// text and percent-encoded in the links, directories with a trailing
/// slash. Only what a client could get is listed: an entry that leads out
/// of DIR (or nowhere) is left out, as a request for it gets 404, and the
/// listing must not tell what exists outside DIR either.
fn listing(root: &Path, dir: &Path, names: &[String]) -> Response {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => return open_error(dir, &e),
    };
    let mut items: Vec<(String, bool)> = Vec::new();
    for entry in entries.flatten() {
        // A name that is not UTF-8 could not be asked for (paths must
        // decode to UTF-8), so it is not listed.
        let Ok(name) = entry.file_name().into_string() else { continue };
        if !is_plain_name(&name) {
            continue;
        }
        // `confine` follows symlinks: a link to a directory inside DIR
        // lists as a directory.
        let Ok((_, meta)) = confine(root, &entry.path()) else { continue };
        items.push((name, meta.is_dir()));
    }
    items.sort();
    let mut title = String::from("/");
    for name in names {
        title.push_str(name);
        title.push('/');
    }
    let title = escape_html(&title);
    let mut page = format!(
        "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n\
         <body>\n<h1>Index of {title}</h1>\n<ul>\n"
    );
    if !names.is_empty() {
        page.push_str("<li><a href=\"../\">../</a></li>\n");
    }
    for (name, is_dir) in &items {
        let slash = if *is_dir { "/" } else { "" };
        // Relative links: every byte but the unreserved ones is encoded, so
        // a name like `a:b` cannot be read as a URI scheme.
        let _ = writeln!(page, "<li><a href=\"{}{slash}\">{}{slash}</a></li>", percent_encode(name), escape_html(name));
    }
    page.push_str("</ul>\n</body>\n</html>\n");
    Response::html(page)
}

/// The media type for a file's extension (compared case-insensitively).
fn content_type(path: &Path) -> &'static str {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "mp4" => "video/mp4",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

// ---------------------------------------------------------------------------
// Path safety
// ---------------------------------------------------------------------------

#[derive(Debug, PartialEq)]
enum PathError {
    /// Not a path at all: 400.
    Malformed,
    /// A path that tries to leave DIR: answered as not found.
    Outside,
}

/// Decodes the path of the request target into the names to walk down
/// from DIR. Decoding comes first and splitting second, so an encoded
/// slash (`%2F`) separates names like a plain one and can never hide a
/// `..` or an absolute path inside one name.
fn decode_path(path: &str) -> Result<Vec<String>, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::Malformed);
    }
    let bytes = percent_decode(path).ok_or(PathError::Malformed)?;
    // No file name holds a NUL (the OS would cut the name there), and no
    // name worth serving holds another control character: refused, they
    // can never reach a log line or a terminal as a line break or an
    // escape sequence.
    if bytes.iter().any(|b| b.is_ascii_control()) {
        return Err(PathError::Malformed);
    }
    let decoded = String::from_utf8(bytes).map_err(|_| PathError::Malformed)?;
    let mut names = Vec::new();
    for name in decoded.split('/') {
        match name {
            // `//` and `/./` name the same directory. A client resolves dot
            // segments before sending (RFC 3986 §5.2.4), so a `..` that
            // arrives was meant to climb: refused, never resolved.
            "" | "." => continue,
            _ if !is_plain_name(name) => return Err(PathError::Outside),
            _ => {}
        }
        names.push(name.to_string());
    }
    Ok(names)
}

/// Whether `name` is one plain name in a directory, and one a request can
/// ask for: not `..`, no backslash (a separator on Windows, and never
/// needed in a URL), no control character, and nothing else the platform
/// reads as more than a name (a drive prefix such as `C:` on Windows).
fn is_plain_name(name: &str) -> bool {
    let mut parts = Path::new(name).components();
    matches!((parts.next(), parts.next()), (Some(Component::Normal(_)), None))
        && !name.contains('\\')
        && !name.bytes().any(|b| b.is_ascii_control())
}

/// Follows every symlink in `path` and checks the result is still inside
/// `root` (canonical). `Path::starts_with` compares whole components, so
/// `/srv/www-secret` is not inside `/srv/www`.
fn confine(root: &Path, path: &Path) -> Result<(PathBuf, Metadata), Response> {
    let real = fs::canonicalize(path).map_err(|e| lookup_error(path, &e))?;
    if !real.starts_with(root) {
        return Err(not_found());
    }
    let meta = fs::metadata(&real).map_err(|e| lookup_error(&real, &e))?;
    Ok((real, meta))
}

/// Strict percent-decoding (RFC 3986 §2.1): `%` must be followed by two
/// hex digits. `+` stays `+`: it means a space only in form data.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    fn hex(b: u8) -> Option<u8> {
        char::from(b).to_digit(16).map(|d| d as u8)
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = hex(*b.get(i + 1)?)?;
            let lo = hex(*b.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Encodes every byte except the unreserved ones (RFC 3986 §2.3).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Conditional requests and HTTP dates
// ---------------------------------------------------------------------------

/// The modification time in whole seconds since the epoch, as
/// `Last-Modified` can carry it (HTTP dates have a resolution of one
/// second). A time in the future is replaced by now: an origin server must
/// not send a `Last-Modified` later than its `Date` (RFC 9110 §8.8.2.1).
fn last_modified(meta: &Metadata) -> Option<u64> {
    let modified = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?.as_secs();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(modified.min(now))
}

/// True if the preconditions say the client's copy is current, so the
/// answer is 304 (RFC 9110 §13.2.2).
fn not_modified(req: &Request, modified: Option<u64>) -> bool {
    let headers = req.headers();
    // RFC 9110 §13.1.3: If-Modified-Since is ignored when If-None-Match is
    // present. This server sends no entity tags, so no listed tag can match;
    // only `*` ("any current representation", RFC 9110 §13.1.2) does.
    if headers.contains("if-none-match") {
        return headers.list("if-none-match").any(|member| member == b"*");
    }
    // Also ignored: a resource without a modification date, more than one
    // field (one date is the only valid value), a value that is not an
    // HTTP-date. GET and HEAD are the only methods that get here.
    let Some(modified) = modified else { return false };
    let mut values = headers.get_all_bytes("if-modified-since");
    let (Some(value), None) = (values.next(), values.next()) else { return false };
    let Some(since) = std::str::from_utf8(value).ok().and_then(h1serve::parse_http_date) else { return false };
    let Ok(since) = since.duration_since(UNIX_EPOCH).map(|d| d.as_secs()) else { return false };
    // Both sides are whole seconds: a file changed 0.5 s after the second
    // the client saw has the same `Last-Modified`, and is not modified.
    modified <= since
}
