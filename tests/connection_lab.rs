//! The `connection_lab` example, run for real with `--quick`: every access
//! pattern it claims to measure must have run, against a server that saw
//! the connections the pattern implies, and its chart must be a drawing of
//! those rows. Timings are only checked to be measured (above zero), never
//! against a bound.

mod common;

use std::io::Read;
use std::process::ExitStatus;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::*;

/// `--quick` takes a second or two; only a hung lab takes this long.
const DEADLINE: Duration = Duration::from_secs(60);

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs the example with `args`, killing it if it runs past `DEADLINE`.
fn run_lab(args: &[&str]) -> Run {
    let mut child = start_example_process("connection_lab", args);
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let stderr = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    // The lab's stdout reaches end-of-file when it exits: wait for that
    // event, with the deadline as the guard.
    let (done, finished) = mpsc::channel();
    thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        let _ = done.send(s);
    });
    let stdout = match finished.recv_timeout(DEADLINE) {
        Ok(s) => s,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("connection_lab ran longer than {DEADLINE:?}; killed");
        }
    };
    let status = child.wait().expect("wait for connection_lab");
    Run { status, stdout, stderr: stderr.join().unwrap() }
}

/// A row of the pattern table: `| (a) label | requests | requests/s | p50 ms
/// | p99 ms | connections | TIME_WAIT server | TIME_WAIT client |`.
struct PatternRow {
    label: String,
    requests: u64,
    per_second: f64,
    p50: f64,
    p99: f64,
    connections: u64,
    /// `None` when the lab says `n/a` (no TIME_WAIT counts on this OS).
    time_wait: Option<(u64, u64)>,
}

fn cells(line: &str) -> Vec<&str> {
    let inner = line.trim().strip_prefix('|').and_then(|l| l.strip_suffix('|')).expect("a table row");
    inner.split('|').map(str::trim).collect()
}

fn pattern_rows(stdout: &str) -> Vec<PatternRow> {
    stdout
        .lines()
        .filter(|l| l.starts_with("| ("))
        .map(|line| {
            let c = cells(line);
            assert_eq!(c.len(), 8, "pattern row with 8 columns: {line:?}");
            let num = |i: usize| -> f64 { c[i].parse().unwrap_or_else(|_| panic!("column {i} of {line:?}")) };
            let count = |i: usize| -> u64 { c[i].parse().unwrap_or_else(|_| panic!("column {i} of {line:?}")) };
            let time_wait = match (c[6], c[7]) {
                ("n/a", "n/a") => None,
                _ => Some((count(6), count(7))),
            };
            PatternRow {
                label: c[0].to_string(),
                requests: count(1),
                per_second: num(2),
                p50: num(3),
                p99: num(4),
                connections: count(5),
                time_wait,
            }
        })
        .collect()
}

/// Checks that `svg` is a tree of balanced elements (each start tag closed
/// by its own end tag, or self-closing) and returns the number of start
/// tags with `class="..."` of each wanted class.
fn check_svg_tree(svg: &str, classes: &[&str]) -> Vec<usize> {
    let mut open: Vec<&str> = Vec::new();
    let mut counts = vec![0; classes.len()];
    let mut rest = svg;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').expect("every tag ends") + start;
        let tag = &rest[start + 1..end];
        assert!(!tag.contains('<'), "a tag inside a tag: {tag:?}");
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(open.pop(), Some(name.trim()), "end tag </{name}> closes the wrong element");
        } else {
            let name = tag.split_whitespace().next().unwrap_or("").trim_end_matches('/');
            assert!(!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric()), "tag name in {tag:?}");
            for (class, n) in classes.iter().zip(&mut counts) {
                if tag.contains(&format!(r#"class="{class}""#)) {
                    *n += 1;
                }
            }
            if !tag.ends_with('/') {
                open.push(name);
            }
        }
        rest = &rest[end + 1..];
    }
    assert!(open.is_empty(), "elements left open: {open:?}");
    counts
}

#[test]
fn quick_lab_measures_every_pattern_and_charts_it() {
    let svg_path = std::env::temp_dir().join(format!("connection_lab_test_{}.svg", std::process::id()));
    let _ = std::fs::remove_file(&svg_path);
    let run = run_lab(&["--quick", "--svg", svg_path.to_str().expect("a UTF-8 temp path")]);
    assert!(run.status.success(), "exit {:?}\nstdout:\n{}\nstderr:\n{}", run.status, run.stdout, run.stderr);

    let rows = pattern_rows(&run.stdout);
    let letters: Vec<&str> = rows.iter().map(|r| &r.label[..3]).collect();
    assert_eq!(letters, ["(a)", "(b)", "(c)", "(d)", "(e)"], "{}", run.stdout);
    for r in &rows {
        assert!(r.requests > 0 && r.per_second > 0.0, "{}: nothing measured", r.label);
        assert!(r.p50 > 0.0 && r.p99 >= r.p50, "{}: p50 {} p99 {}", r.label, r.p50, r.p99);
    }
    // Connections the server accepted: one per request where every request
    // asks for `Connection: close`, one per client connection otherwise
    // (the default `--parallel` is 4).
    let expected = [rows[0].requests, rows[1].requests, 1, 1, 4];
    for (r, want) in rows.iter().zip(expected) {
        assert_eq!(r.connections, want, "{}: connections", r.label);
    }
    assert!(rows[0].label.contains("new connection") && rows[4].label.contains("4 persistent"));

    // TIME_WAIT is held by the side that closed first: the server after
    // each `Connection: close` response (a, b), the client that ends a
    // persistent connection (c, d, e). Quick runs are far too small for the
    // client to come back to one of its ports. Only when the machine's
    // TIME_WAIT table is nearly full (the lab says so) may sockets skip
    // TIME_WAIT, and then the counts can only be lower.
    if cfg!(target_os = "linux") {
        let tw: Vec<(u64, u64)> =
            rows.iter().map(|r| r.time_wait.unwrap_or_else(|| panic!("{}: no TIME_WAIT count", r.label))).collect();
        let expected = [(rows[0].requests, 0), (rows[1].requests, 0), (0, 1), (0, 1), (0, 4)];
        if run.stdout.contains("TIME_WAIT table near its limit") {
            for (got, want) in tw.iter().zip(expected) {
                assert!(got.0 <= want.0 && got.1 <= want.1, "{got:?} > {want:?}\n{}", run.stdout);
            }
        } else {
            assert_eq!(tw, expected, "{}", run.stdout);
        }
    } else {
        assert!(run.stdout.contains("TIME_WAIT: not available on this OS"));
    }

    // The Nagle table: every scenario, with the stall expected exactly
    // where a side writes twice with Nagle on (whether it is seen depends
    // on the OS and is not checked).
    let nagle: Vec<Vec<&str>> =
        run.stdout.lines().filter(|l| l.starts_with("| server:") || l.starts_with("| client:")).map(cells).collect();
    let expected: Vec<(&str, &str)> = nagle.iter().map(|c| (c[0], c[5])).collect();
    assert_eq!(
        expected,
        [
            ("server: head, then body; Nagle on", "yes"),
            ("server: head, then body; TCP_NODELAY", "no"),
            ("server: h1serve, one write", "no"),
            ("client: request in 2 writes; Nagle on", "yes"),
            ("client: request in 2 writes; TCP_NODELAY", "no"),
        ]
    );
    for c in &nagle {
        let mean: f64 = c[1].parse().expect("mean ms");
        let p50: f64 = c[2].parse().expect("p50 ms");
        assert!(mean > 0.0 && p50 > 0.0, "{c:?}");
        assert!(c[6] == "yes" || c[6] == "no", "{c:?}");
    }
    assert!(run.stdout.contains("What the rows show:"));

    let svg = std::fs::read_to_string(&svg_path).expect("the chart was written");
    let _ = std::fs::remove_file(&svg_path);
    assert!(svg.starts_with("<svg") && svg.contains(r#"xmlns="http://www.w3.org/2000/svg""#));
    assert!(svg.trim_end().ends_with("</svg>"));
    assert_eq!(check_svg_tree(&svg, &["bar", "whisker"]), [5, 5], "one bar and one whisker per pattern");
    for letter in ["(a)", "(b)", "(c)", "(d)", "(e)"] {
        assert!(svg.contains(&format!(">{letter} ")), "chart labels {letter}");
    }
    assert!(svg.contains("requests per second") && svg.contains("latency"), "axis titles");
    assert!(run.stdout.contains(&format!("chart written to {}", svg_path.display())));
}

#[test]
fn lab_rejects_a_bad_command_line() {
    for args in [&["--requests", "0"][..], &["--requests", "2", "--parallel", "4"], &["--frobnicate"], &["--svg"]] {
        let run = run_lab(args);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("usage: connection_lab"), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: measured anyway: {}", run.stdout);
    }
}
