//! Black-box tests of the `file_server` example: the real program serving a
//! temporary directory, driven over raw sockets.

mod common;

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;

/// What the file outside the served directory holds: no response may ever
/// contain it.
const SECRET: &str = "outside-secret-5d41402abc4b2a76";
const HELLO: &str = "hello, world\n";
/// 06 Nov 1994 08:49:37.5 GMT: half a second past the instant of RFC 9110's
/// example date, to check comparisons at one-second granularity.
const HELLO_MTIME_MS: u64 = 784_111_777_500;
const HELLO_LAST_MODIFIED: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
/// A few MiB and an odd remainder, so no buffer size divides it.
const BIG_LEN: usize = 3 * 1024 * 1024 + 12_345;
const ODD_NAME: &str = "a <b> & \"c\".txt";

/// A temporary tree, removed on drop:
///
/// ```text
/// BASE/outside/secret.txt       SECRET
/// BASE/root/                    the directory served
///     hello.txt big.bin space name.txt 100%.txt ODD_NAME
///     style.css app.js ... (one file per media type) noext PHOTO.JPG
///     sub/inner.txt  site/index.html  future.txt
/// ```
struct Tree {
    base: PathBuf,
    root: PathBuf,
    secret: PathBuf,
}

impl Tree {
    fn new() -> Tree {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
        let base = std::env::temp_dir().join(format!(
            "h1serve-file-server-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let root = base.join("root");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::create_dir_all(root.join("site")).unwrap();
        fs::create_dir_all(base.join("outside")).unwrap();
        let secret = base.join("outside").join("secret.txt");
        fs::write(&secret, SECRET).unwrap();

        fs::write(root.join("hello.txt"), HELLO).unwrap();
        set_mtime(&root.join("hello.txt"), UNIX_EPOCH + Duration::from_millis(HELLO_MTIME_MS));
        fs::write(root.join("big.bin"), big_content()).unwrap();
        fs::write(root.join("space name.txt"), "spaced\n").unwrap();
        fs::write(root.join("100%.txt"), "percent\n").unwrap();
        fs::write(root.join(ODD_NAME), "odd\n").unwrap();
        fs::write(root.join("sub").join("inner.txt"), "inner\n").unwrap();
        fs::write(root.join("site").join("index.html"), "<p>index</p>\n").unwrap();
        for (name, _) in TYPES {
            fs::write(root.join(name), name).unwrap();
        }
        fs::write(root.join("future.txt"), "from the future\n").unwrap();
        // Fri, 31 Dec 2100 23:59:59 GMT
        set_mtime(&root.join("future.txt"), UNIX_EPOCH + Duration::from_secs(4_133_980_799));
        Tree { base, root, secret }
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.base);
    }
}

fn set_mtime(path: &Path, t: SystemTime) {
    File::options().write(true).open(path).unwrap().set_modified(t).unwrap();
}

/// Deterministic bytes that are not a short repeating pattern, so a
/// misplaced or repeated block of the file shows.
fn big_content() -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..BIG_LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// File names and the `Content-Type` each must get.
const TYPES: &[(&str, &str)] = &[
    ("page.html", "text/html; charset=utf-8"),
    ("style.css", "text/css; charset=utf-8"),
    ("app.js", "text/javascript; charset=utf-8"),
    ("data.json", "application/json"),
    ("notes.txt", "text/plain; charset=utf-8"),
    ("README.md", "text/markdown; charset=utf-8"),
    ("feed.xml", "application/xml"),
    ("pic.png", "image/png"),
    ("photo.jpg", "image/jpeg"),
    ("PHOTO2.JPG", "image/jpeg"),
    ("anim.gif", "image/gif"),
    ("logo.svg", "image/svg+xml"),
    ("module.wasm", "application/wasm"),
    ("paper.pdf", "application/pdf"),
    ("favicon.ico", "image/x-icon"),
    ("archive.tar.gz", "application/octet-stream"),
    ("noext", "application/octet-stream"),
];

/// The program serving a fresh tree, with its stderr (the access log)
/// drained line by line into `log`. Draining also keeps a full pipe from
/// ever blocking the server. Fields drop in order: the program is killed
/// before its directory is removed.
struct Served {
    program: Example,
    log: Receiver<String>,
    tree: Tree,
}

fn serve() -> Served {
    let tree = Tree::new();
    let program = spawn_example("file_server", &[tree.root.to_str().unwrap(), "--addr", "127.0.0.1:0"]);
    served(program, tree)
}

fn served(mut program: Example, tree: Tree) -> Served {
    let stderr = program.child.stderr.take().unwrap();
    let (tx, log) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            // Keep reading after the test is gone, so the program never
            // writes into a closed pipe.
            let _ = tx.send(line);
        }
    });
    Served { program, log, tree }
}

impl Served {
    fn client(&self) -> Client {
        Client::new(self.program.addr)
    }

    /// Waits for an access-log line containing every one of `parts`.
    fn expect_log(&self, parts: &[&str]) {
        let deadline = Instant::now() + PATIENCE;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.log.recv_timeout(left) {
                Ok(line) if parts.iter().all(|p| line.contains(p)) => return,
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        panic!("no log line with {parts:?}; saw {seen:#?}");
    }
}

fn request(c: &mut Client, method: &str, target: &str, fields: &[(&str, &str)]) -> Resp {
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: x\r\n");
    for (name, value) in fields {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    c.send(req);
    c.read_response_to(method).expect("a response")
}

fn get(c: &mut Client, target: &str) -> Resp {
    request(c, "GET", target, &[])
}

#[test]
fn prints_its_address_and_directory_and_logs_requests() {
    let mut s = serve();
    assert_ne!(s.program.addr.port(), 0);
    let mut second = String::new();
    s.program.stdout.read_line(&mut second).unwrap();
    assert_eq!(second.trim_end(), format!("serving {}", fs::canonicalize(&s.tree.root).unwrap().display()));

    let mut c = s.client();
    assert_eq!(get(&mut c, "/hello.txt?x=1").status, 200);
    s.expect_log(&["127.0.0.1:", "\"GET /hello.txt?x=1 HTTP/1.1\" 200 13"]);
    assert_eq!(request(&mut c, "HEAD", "/hello.txt", &[]).status, 200);
    s.expect_log(&["\"HEAD /hello.txt HTTP/1.1\" 200 0"]);
    assert_eq!(get(&mut c, "/missing").status, 404);
    s.expect_log(&["\"GET /missing HTTP/1.1\" 404"]);
    // A request the server refuses itself never reaches the handler; the
    // event hook logs it.
    let out = exchange_until_close(s.program.addr, b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(status_of(&out), 400);
    s.expect_log(&["refused", "400"]);
}

#[test]
fn files_come_whole_with_their_exact_length_and_type() {
    let s = serve();
    let mut c = s.client();

    let r = get(&mut c, "/hello.txt");
    assert_eq!((r.status, r.text().as_str(), r.framing), (200, HELLO, "length"));
    assert_eq!(r.header("content-length"), Some("13"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));

    let r = get(&mut c, "/big.bin");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some(BIG_LEN.to_string().as_str()));
    assert_eq!(r.framing, "length");
    assert!(r.body == big_content(), "the body differs from the file");

    for (name, content_type) in TYPES {
        let r = get(&mut c, &format!("/{name}"));
        assert_eq!((r.status, r.header("content-type")), (200, Some(*content_type)), "{name}");
        assert_eq!(r.text(), *name);
    }

    // Names with bytes that must be percent-encoded in a URL.
    assert_eq!(get(&mut c, "/space%20name.txt").text(), "spaced\n");
    assert_eq!(get(&mut c, "/100%25.txt").text(), "percent\n");
    assert_eq!(get(&mut c, "/a%20%3Cb%3E%20%26%20%22c%22.txt").text(), "odd\n");
    // An encoded slash separates names like a plain one.
    assert_eq!(get(&mut c, "/sub%2Finner.txt").text(), "inner\n");
    // Empty and `.` segments name the same directory.
    assert_eq!(get(&mut c, "//sub/./inner.txt").text(), "inner\n");
    // The absolute form of the target (RFC 9112 §3.2.2) serves the same file.
    assert_eq!(get(&mut c, "http://x/sub/inner.txt").text(), "inner\n");

    // A directory with an index.html is served by it.
    let r = get(&mut c, "/site/");
    assert_eq!((r.status, r.text().as_str()), (200, "<p>index</p>\n"));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));

    for missing in ["/nope.txt", "/sub/nope/", "/hello.txt/", "/hello.txt/x"] {
        let r = get(&mut c, missing);
        assert_eq!(r.status, 404, "{missing}");
    }
    // None of the answers above ended the connection.
    let r = get(&mut c, "/hello.txt");
    assert_eq!(r.text(), HELLO);
    assert!(!r.closes());
}

#[test]
fn head_gets_the_fields_of_get_and_no_body() {
    let s = serve();
    let mut c = s.client();
    for target in ["/hello.txt", "/big.bin", "/", "/sub/", "/sub", "/site/", "/missing"] {
        let got = get(&mut c, target);
        let head = request(&mut c, "HEAD", target, &[]);
        assert_eq!(head.status, got.status, "{target}");
        assert_eq!(head.framing, "none");
        for field in ["content-length", "content-type", "last-modified", "location"] {
            assert_eq!(head.header(field), got.header(field), "{target}: {field}");
        }
        assert!(!head.closes(), "{target}");
    }
    assert_eq!(request(&mut c, "HEAD", "/big.bin", &[]).header("content-length"), Some(BIG_LEN.to_string().as_str()));
    // Had any HEAD response carried body bytes, this would read them as
    // its status line.
    assert_eq!(get(&mut c, "/hello.txt").text(), HELLO);
}

#[test]
fn directories_are_listed_escaped_sorted_with_slashes() {
    let s = serve();
    let mut c = s.client();
    let r = get(&mut c, "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let page = r.text();
    // The odd name is escaped in the text and percent-encoded in the link.
    let odd = "<a href=\"a%20%3Cb%3E%20%26%20%22c%22.txt\">a &lt;b&gt; &amp; &quot;c&quot;.txt</a>";
    assert!(page.contains(odd), "{page}");
    assert!(!page.contains("<b>"), "an unescaped name: {page}");
    assert!(page.contains("<a href=\"100%25.txt\">100%.txt</a>"), "{page}");
    assert!(page.contains("<a href=\"space%20name.txt\">space name.txt</a>"), "{page}");
    // Directories end with a slash, in the link and the text.
    assert!(page.contains("<a href=\"sub/\">sub/</a>"), "{page}");
    assert!(page.contains("<a href=\"site/\">site/</a>"), "{page}");
    assert!(!page.contains("../"), "the root has no parent: {page}");
    assert!(!page.contains(SECRET) && !page.contains("outside"), "{page}");
    // Sorted by name.
    let order = ["100%.txt", "PHOTO2.JPG", "README.md", "a &lt;b&gt;", "big.bin", "hello.txt", "sub/"];
    let at: Vec<usize> = order.iter().map(|n| page.find(&format!(">{n}")).unwrap_or_else(|| panic!("{n}"))).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "not sorted: {order:?} at {at:?}");

    let r = get(&mut c, "/sub/");
    let page = r.text();
    assert!(page.contains("<title>Index of /sub/</title>"), "{page}");
    assert!(page.contains("<a href=\"../\">../</a>"), "{page}");
    assert!(page.contains("<a href=\"inner.txt\">inner.txt</a>"), "{page}");
}

#[test]
fn a_directory_without_its_slash_is_redirected() {
    let s = serve();
    let mut c = s.client();
    for (target, location) in [
        ("/sub", "/sub/"),
        ("/sub?a=1&b", "/sub/?a=1&b"),
        ("/sub/.", "/sub/"),
        ("/site", "/site/"),
        // Rebuilt from the names: never `//sub/`, which a browser would
        // read as a redirect to the host `sub`.
        ("//sub", "/sub/"),
    ] {
        let r = get(&mut c, target);
        assert_eq!((r.status, r.header("location")), (301, Some(location)), "{target}");
        assert!(!r.closes());
    }
}

#[test]
fn last_modified_and_if_modified_since() {
    let s = serve();
    let mut c = s.client();
    let r = get(&mut c, "/hello.txt");
    assert_eq!(r.header("last-modified"), Some(HELLO_LAST_MODIFIED));

    let ims = |c: &mut Client, fields: &[(&str, &str)]| request(c, "GET", "/hello.txt", fields);
    let not_modified = [
        // The date the server sent: the file changed half a second after it,
        // within the same second.
        HELLO_LAST_MODIFIED,
        "Sun, 06 Nov 1994 08:49:38 GMT",
        "Sat, 01 Jan 2000 00:00:00 GMT",
        // The obsolete forms every recipient must accept (RFC 9110 §5.6.7).
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
    ];
    for date in not_modified {
        let r = ims(&mut c, &[("If-Modified-Since", date)]);
        assert_eq!(r.status, 304, "{date}");
        assert_eq!(r.header("last-modified"), Some(HELLO_LAST_MODIFIED));
        assert!(r.header("content-type").is_none(), "no representation metadata on 304");
        assert!(!r.closes());
    }
    let modified = [
        "Sun, 06 Nov 1994 08:49:36 GMT",
        "Sun Nov  6 08:49:36 1994",
        // Not HTTP-dates: ignored.
        "yesterday",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 31 Feb 2000 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:49:37 GMT",
        "Sun,  06 Nov 1994 08:49:37 GMT",
        "",
    ];
    for date in modified {
        let r = ims(&mut c, &[("If-Modified-Since", date)]);
        assert_eq!((r.status, r.text().as_str()), (200, HELLO), "{date:?}");
    }
    // Two dates are not a valid value: ignored (RFC 9110 §13.1.3).
    let two = [("If-Modified-Since", HELLO_LAST_MODIFIED), ("If-Modified-Since", HELLO_LAST_MODIFIED)];
    assert_eq!(ims(&mut c, &two).status, 200);
    // If-None-Match takes precedence: no tag of ours can match a list...
    let r = ims(&mut c, &[("If-None-Match", "\"v1\""), ("If-Modified-Since", HELLO_LAST_MODIFIED)]);
    assert_eq!(r.status, 200);
    // ...but `*` matches any current representation.
    assert_eq!(ims(&mut c, &[("If-None-Match", "*")]).status, 304);
    assert_eq!(request(&mut c, "HEAD", "/hello.txt", &[("If-Modified-Since", HELLO_LAST_MODIFIED)]).status, 304);

    // A modification time in the future is sent as now, never later than
    // the response's Date (RFC 9110 §8.8.2.1).
    let r = get(&mut c, "/future.txt");
    let last_modified = r.header("last-modified").unwrap();
    assert!(!last_modified.contains("2100"), "{last_modified}");
    assert_eq!(request(&mut c, "GET", "/future.txt", &[("If-Modified-Since", last_modified)]).status, 304);
    // Every exchange above shared one connection.
    assert_eq!(get(&mut c, "/hello.txt").text(), HELLO);
}

#[test]
fn other_methods_get_405_with_allow() {
    let s = serve();
    let mut c = s.client();
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "get"] {
        // The body is left unread by the handler, and drained by the server
        // before the next request.
        c.send(format!("{method} /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"));
        let r = c.read_response();
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"), "{method}");
        assert!(!r.closes());
    }
    assert_eq!(get(&mut c, "/hello.txt").text(), HELLO);
}

/// Asks for `target` on its own connection and checks the answer is
/// `status` and has nothing of the file outside the served directory.
fn assert_refused(s: &Served, target: &str, status: u16) {
    let mut c = s.client();
    let r = get(&mut c, target);
    assert!(!r.text().contains(SECRET), "{target} leaked the file outside");
    assert!(!r.text().contains("root:"), "{target} leaked /etc/passwd");
    assert_eq!(r.status, status, "{target}: {}", r.text());
}

#[test]
fn no_path_leads_out_of_the_directory() {
    let s = serve();
    let secret_abs = fs::canonicalize(&s.tree.secret).unwrap();
    let secret_abs = secret_abs.to_str().unwrap();
    let secret_encoded = secret_abs.replace('/', "%2F");
    // The secret is readable, from where the tree is: it is the server
    // that must refuse it.
    assert_eq!(fs::read_to_string(secret_abs).unwrap(), SECRET);
    for target in [
        "/../outside/secret.txt",
        "/%2e%2e/outside/secret.txt",
        "/%2E%2E/outside/secret.txt",
        "/%2E%2e%2foutside%2fsecret.txt",
        "/..%2foutside/secret.txt",
        "/..%2Foutside%2Fsecret.txt",
        "/.%2e/outside/secret.txt",
        "/%2e./outside/secret.txt",
        "/sub/../../outside/secret.txt",
        "/sub/%2e%2e/%2e%2e/outside/secret.txt",
        "/sub/..",
        "/..",
        "/..\\outside\\secret.txt",
        "/..%5coutside%5csecret.txt",
        "/%5c..%5coutside%5csecret.txt",
        "http://x/../outside/secret.txt",
        "//etc/passwd",
        "/%2Fetc%2Fpasswd",
        &format!("/{secret_abs}"),
        &format!("/{secret_encoded}"),
        &format!("http://x/{secret_abs}"),
    ] {
        assert_refused(&s, target, 404);
    }
}

/// A backslash separates names on Windows; refused everywhere, even where
/// it is an ordinary character of a file name.
#[cfg(unix)]
#[test]
fn backslashes_are_refused_even_in_real_names() {
    let s = serve();
    fs::write(s.tree.root.join("back\\slash.txt"), "back\n").unwrap();
    assert_refused(&s, "/back%5Cslash.txt", 404);
    assert_refused(&s, "/back\\slash.txt", 404);
}

#[test]
fn malformed_paths_get_400() {
    let s = serve();
    for target in ["/%", "/%2", "/%zz", "/a%g0.txt", "/%%32e", "/%00", "/hello.txt%00.png", "/%ff", "/%c3%28"] {
        assert_refused(&s, target, 400);
    }
}

/// A control character in a decoded path is refused before any lookup, so
/// no request can put a line break or a terminal escape into the log (a
/// forged access line, a cleared screen); names that hold one are not
/// listed, as no request could get them.
#[cfg(unix)]
#[test]
fn control_characters_in_paths_get_400_and_are_not_listed() {
    let s = serve();
    fs::write(s.tree.root.join("line\nbreak.txt"), "forged\n").unwrap();
    // A name too long to look up was logged as the server's failure, path
    // and all: with a line break in it, that forged a second log line.
    let forged = format!("/{}%0a10.0.0.9:4242%20%22GET%20/admin%20HTTP/1.1%22%20200%2042", "a".repeat(300));
    for target in ["/line%0abreak.txt", "/x%0d%0ay", "/%1b%5b2J%1b%5b31mred", "/a%09b", "/a%7f", &forged] {
        assert_refused(&s, target, 400);
    }
    let access_line = format!("{forged} HTTP/1.1\" 400");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = s.log.recv_timeout(left).expect("the access line of the last request");
        assert!(!line.starts_with("10.0.0.9") && !line.contains('\u{1b}'), "{line:?}");
        if line.contains(&access_line) {
            break;
        }
    }
    let page = get(&mut s.client(), "/").text();
    assert!(!page.contains("break.txt"), "{page}");
}

/// When a file that is there cannot be opened for a reason of the
/// server's own (here: no descriptor left), GET gets 500, not a 404 that
/// would say the file is gone, and HEAD gets what GET gets, not a 200 made
/// from the file's metadata alone (RFC 9110 §9.3.2).
#[cfg(unix)]
#[test]
fn a_file_that_cannot_be_opened_is_a_500_to_get_and_head_alike() {
    const LIMIT: u32 = 24;
    let tree = Tree::new();
    let args = [tree.root.to_str().unwrap(), "--addr", "127.0.0.1:0"];
    let program = spawn_example_with_fd_limit("file_server", &args, LIMIT);
    let s = served(program, tree);
    // Each connection holds one of the program's descriptors: open them one
    // at a time, each answered in full, until the file cannot be opened
    // beside them.
    let mut clients = Vec::new();
    loop {
        assert!(clients.len() < LIMIT as usize, "never ran out of descriptors");
        let mut c = s.client();
        let got = get(&mut c, "/hello.txt");
        if got.status == 200 {
            assert_eq!(got.text(), HELLO);
            clients.push(c);
            continue;
        }
        assert_eq!(got.status, 500, "{}", got.text());
        let head = request(&mut c, "HEAD", "/hello.txt", &[]);
        assert_eq!(head.status, 500);
        assert_eq!(head.header("content-length"), got.header("content-length"));
        s.expect_log(&["hello.txt\": "]);
        break;
    }
    assert!(!clients.is_empty(), "not even one connection could be served");
}

#[cfg(unix)]
#[test]
fn symlinks_out_of_the_directory_are_not_followed() {
    use std::os::unix::fs::symlink;
    let s = serve();
    let root = &s.tree.root;
    symlink(&s.tree.secret, root.join("link_out")).unwrap();
    symlink("../outside/secret.txt", root.join("relative_out")).unwrap();
    symlink(s.tree.secret.parent().unwrap(), root.join("dir_out")).unwrap();
    symlink("/", root.join("slash")).unwrap();
    symlink("hello.txt", root.join("link_in")).unwrap();
    symlink("sub", root.join("dir_in")).unwrap();
    for target in ["/link_out", "/relative_out", "/dir_out/secret.txt", "/dir_out/", "/slash/etc/passwd", "/slash/"] {
        assert_refused(&s, target, 404);
    }
    // Links that stay inside are followed.
    let mut c = s.client();
    assert_eq!(get(&mut c, "/link_in").text(), HELLO);
    assert_eq!(get(&mut c, "/dir_in/inner.txt").text(), "inner\n");
    assert_eq!(get(&mut c, "/dir_in").header("location"), Some("/dir_in/"));
    let page = get(&mut c, "/").text();
    assert!(page.contains("<a href=\"dir_in/\">dir_in/</a>"), "{page}");
    assert!(page.contains("<a href=\"link_in\">link_in</a>"), "{page}");
    // The listing shows only what a request can get: no link that leads
    // out (not even whether its target is a directory), none that leads
    // nowhere.
    symlink("missing.txt", root.join("dangling")).unwrap();
    let page = get(&mut c, "/").text();
    for name in ["link_out", "relative_out", "dir_out", "slash", "dangling"] {
        assert!(!page.contains(name), "{name} is listed: {page}");
    }
}

#[test]
fn one_connection_carries_many_requests() {
    let s = serve();
    let mut c = s.client();
    let expected = [
        ("GET", "/hello.txt", 200),
        ("HEAD", "/big.bin", 200),
        ("GET", "/", 200),
        ("GET", "/sub", 301),
        ("GET", "/missing", 404),
        ("GET", "/../outside/secret.txt", 404),
        ("GET", "/%zz", 400),
        ("DELETE", "/hello.txt", 405),
        ("GET", "/big.bin", 200),
        ("GET", "/hello.txt", 200),
    ];
    for (method, target, status) in expected {
        let r = request(&mut c, method, target, &[]);
        assert_eq!(r.status, status, "{method} {target}");
        assert!(!r.closes(), "{method} {target} closed the connection");
        if method == "GET" && target == "/big.bin" {
            assert_eq!(r.body.len(), BIG_LEN);
        }
    }
    // Pipelined: all requests sent before any response is read.
    let mut pipelined = String::new();
    for target in ["/hello.txt", "/big.bin", "/sub/inner.txt", "/missing"] {
        pipelined.push_str(&format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n"));
    }
    c.send(pipelined);
    assert_eq!(c.read_response().text(), HELLO);
    assert!(c.read_response().body == big_content());
    assert_eq!(c.read_response().text(), "inner\n");
    assert_eq!(c.read_response().status, 404);
    // And it closes when asked to.
    let r = request(&mut c, "GET", "/hello.txt", &[("Connection", "close")]);
    assert_eq!(r.text(), HELLO);
    assert!(r.closes() && c.at_eof());
}

#[test]
fn bad_flags_get_the_usage_and_exit_code_2() {
    let tree = Tree::new();
    let dir = tree.root.to_str().unwrap();
    for args in [
        &["--bogus"][..],
        &["-x"],
        &["--addr"],
        &[dir, "--addr"],
        &[dir, dir],
        &["--addr", "127.0.0.1:0", "--addr=127.0.0.1:0"],
    ] {
        let out = Command::new(example_path("file_server")).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage: file_server"), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let out = Command::new(example_path("file_server")).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("usage: file_server"));
    // Not a flag problem: a directory that is not there, or a file.
    for dir in [tree.base.join("nope"), tree.root.join("hello.txt")] {
        let out = Command::new(example_path("file_server")).arg(&dir).args(["--addr", "127.0.0.1:0"]).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", dir.display());
    }
}

#[test]
fn flags_in_any_order_and_the_equals_form() {
    let tree = Tree::new();
    let addr_flag = "--addr=127.0.0.1:0";
    let program = spawn_example("file_server", &[addr_flag, "--", tree.root.to_str().unwrap()]);
    let mut c = Client::new(program.addr);
    assert_eq!(get(&mut c, "/hello.txt").text(), HELLO);
}
