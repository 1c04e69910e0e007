//! Heap allocations on the request path, counted by a global allocator
//! that wraps the system's. The count covers the whole test process (the
//! server's threads and the client), so the client here allocates nothing
//! per request, the tests take turns (`ONE_AT_A_TIME`), and each bound
//! leaves a margin for what runs beside the requests.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use h1serve::{Response, Server};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        // SAFETY: the caller's contract is `System.alloc`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is `System.dealloc`'s.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        // SAFETY: the caller's contract is `System.realloc`'s.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const HELLO: &[u8] = b"Hello, world!\n";

/// Sends `request` and reads one response to its last byte (the hello
/// body), into `buf`, without allocating.
fn exchange(stream: &mut TcpStream, request: &[u8], buf: &mut [u8]) {
    stream.write_all(request).unwrap();
    let mut filled = 0;
    while !buf[..filled].ends_with(HELLO) {
        let n = stream.read(&mut buf[filled..]).unwrap();
        assert!(n > 0, "the server closed before the whole response");
        filled += n;
    }
    assert!(buf.starts_with(b"HTTP/1.1 200 OK\r\n"));
}

/// `n` requests, each on a new connection that the server closes.
fn close_requests(addr: SocketAddr, n: usize, buf: &mut [u8]) {
    for _ in 0..n {
        let mut stream = TcpStream::connect(addr).unwrap();
        exchange(&mut stream, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", buf);
    }
}

#[test]
fn keep_alive_requests_allocate_nothing() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let running = Server::bind("127.0.0.1:0").unwrap().spawn(|_req| Response::text("Hello, world!\n")).unwrap();
    let mut stream = TcpStream::connect(running.local_addr()).unwrap();
    let mut buf = [0u8; 1024];
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    // The first requests size the connection's buffers.
    for _ in 0..10 {
        exchange(&mut stream, request, &mut buf);
    }
    let before = ALLOCATIONS.load(Relaxed);
    for _ in 0..1000 {
        exchange(&mut stream, request, &mut buf);
    }
    let allocated = ALLOCATIONS.load(Relaxed) - before;
    drop(stream);
    running.shutdown().unwrap();
    // None per request. The process count also takes in what runs beside
    // the requests: the test harness reporting the other test, and a
    // thread the server may still be starting to wait at the listener
    // (the connection took the one that waited). One allocation per
    // request would count 1000.
    assert!(allocated <= 20, "{allocated} allocations during 1000 keep-alive requests");
}

#[test]
fn a_connection_thread_reuses_its_buffers_for_its_next_connection() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let running = Server::bind("127.0.0.1:0").unwrap().spawn(|_req| Response::text("Hello, world!\n")).unwrap();
    let addr = running.local_addr();
    let mut buf = [0u8; 1024];
    // Every thread that will serve has served once: its buffers are sized.
    close_requests(addr, 50, &mut buf);
    let before = ALLOCATIONS.load(Relaxed);
    close_requests(addr, 500, &mut buf);
    let allocated = ALLOCATIONS.load(Relaxed) - before;
    running.shutdown().unwrap();
    // Per connection: its slot in the registry and the shared socket (two
    // allocations). New buffers, request head and response fields would
    // add ten more. The margin is for a thread started now and then.
    assert!(allocated <= 500 * 3, "{allocated} allocations for 500 connections");
}
