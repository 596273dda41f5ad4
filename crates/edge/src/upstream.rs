//! Connections to backends and their keep-alive pool.
//!
//! Each worker thread keeps its own pool (a thread-local stack per backend
//! address, most recently used first), so checking a connection out or in
//! takes no lock and the socket stays on the runtime that polls it.

use crate::netns::{plain_socket, Netns};
use bytes::BytesMut;
use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, Interest};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// Initial read buffer of a request to a backend (most response heads and
/// small bodies fit; larger bodies are read in larger blocks).
pub(crate) const READ_BUF: usize = 4 * 1024;

/// One keep-alive HTTP/1.1 connection to a backend.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) addr: SocketAddr,
    pub(crate) stream: TcpStream,
    /// Bytes read from the backend and not consumed yet.
    pub(crate) buf: BytesMut,
    /// Whether it already carried a request (it may have been closed by
    /// the backend in the meantime).
    pub(crate) reused: bool,
    idle_since: Instant,
    /// The upstream timeout's timer (see [`crate::timer`]).
    pub(crate) timer: Pin<Box<Sleep>>,
}

impl Conn {
    /// Opens a connection, from inside `netns` if given, within `limit`.
    pub(crate) async fn connect(
        addr: SocketAddr,
        netns: Option<&Arc<Netns>>,
        limit: Duration,
    ) -> io::Result<Self> {
        let stream = match tokio::time::timeout(limit, dial(addr, netns)).await {
            Ok(stream) => stream?,
            Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
        };
        stream.set_nodelay(true)?;
        Ok(Self {
            addr,
            stream,
            buf: BytesMut::new(),
            reused: false,
            idle_since: Instant::now(),
            timer: Box::pin(tokio::time::sleep(limit)),
        })
    }

    /// Whether the backend has neither closed the connection nor sent
    /// anything unasked. Costs no syscall unless the socket was reported
    /// readable; `trust_recent`: a connection idle for less than
    /// [`RECENT`] is taken as open even then (its last response usually
    /// left the readiness set; a request that can be replayed is retried on
    /// a new connection if it was closed after all).
    fn is_open(&self, trust_recent: bool) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) if trust_recent && self.idle_since.elapsed() < RECENT => true,
            Poll::Ready(Ok(())) => matches!(
                self.stream.try_read(&mut [0u8; 1]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock
            ),
        }
    }
}

/// A TCP connection to `addr`, from inside `netns` if given. When `addr`
/// cannot be reached from there (a replica restarted in place gets a new
/// namespace: the one held keeps only its loopback), from the edge's own
/// namespace, across the bridge.
pub(crate) async fn dial(addr: SocketAddr, netns: Option<&Arc<Netns>>) -> io::Result<TcpStream> {
    if let Some(netns) = netns {
        match netns.socket(addr).await?.connect(addr).await {
            Err(e) if unreachable(&e) => {}
            done => return done,
        }
    }
    plain_socket(addr)?.connect(addr).await
}

/// Whether a connect failed for want of a route or local address (not
/// refused, not timed out).
fn unreachable(error: &io::Error) -> bool {
    use io::ErrorKind::{AddrNotAvailable, HostUnreachable, NetworkUnreachable};
    matches!(
        error.kind(),
        NetworkUnreachable | HostUnreachable | AddrNotAvailable
    )
}

/// Marks `stream` not readable after a read that returned less than it
/// had room for (the socket is drained), so the next read waits for the
/// reactor instead of first failing with `EAGAIN`: one syscall less per
/// request on each side. Sound on the proxy's current-thread worker
/// runtimes: no readiness event is processed between the read and this
/// call, and data arriving later raises a new (edge-triggered) event.
pub(crate) fn drained(stream: &TcpStream) {
    let _ = stream.try_io(Interest::READABLE, || {
        Err::<(), _>(io::ErrorKind::WouldBlock.into())
    });
}

/// The read side of a backend connection (or, in tests, of bytes).
pub(crate) trait Readable: AsyncRead + Unpin {
    /// Called after a read returned less than it had room for.
    fn short_read(&self) {}
}

impl Readable for TcpStream {
    fn short_read(&self) {
        drained(self);
    }
}

impl Readable for tokio::net::tcp::ReadHalf<'_> {
    fn short_read(&self) {
        drained(self.as_ref());
    }
}

#[cfg(test)]
impl Readable for &[u8] {}

/// How long after its last response a pooled connection is assumed open
/// for a request that can be replayed.
const RECENT: Duration = Duration::from_millis(250);

/// How many of a backend's most recently pooled connections (on one
/// worker thread) keep their read buffer for the next exchange.
const WARM: usize = 8;

/// Limits of the keep-alive pool.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolLimits {
    /// Most idle connections per backend on one worker thread.
    pub(crate) max_idle: usize,
    /// How long an idle connection is kept.
    pub(crate) idle_timeout: Duration,
}

thread_local! {
    /// Idle connections by backend (the proxy's own keys: a fast hash).
    static POOL: RefCell<HashMap<SocketAddr, Vec<Conn>, foldhash::fast::RandomState>> =
        RefCell::new(HashMap::default());
}

/// An open idle connection to `addr` from this thread's pool (see
/// [`Conn::is_open`] for `replayable`).
pub(crate) fn checkout(addr: SocketAddr, limits: PoolLimits, replayable: bool) -> Option<Conn> {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let idle = pool.get_mut(&addr)?;
        while let Some(conn) = idle.pop() {
            if conn.idle_since.elapsed() < limits.idle_timeout && conn.is_open(replayable) {
                return Some(conn);
            }
        }
        None
    })
}

/// Puts a connection whose exchange ended cleanly back in this thread's pool.
pub(crate) fn checkin(mut conn: Conn, limits: PoolLimits) {
    // Keep a small read buffer for the next exchange (its memory is reused
    // once the last response's bytes are dropped); release a large one.
    if conn.buf.capacity() > 2 * READ_BUF {
        conn.buf = BytesMut::new();
    }
    conn.buf.clear();
    conn.reused = true;
    conn.idle_since = Instant::now();
    // `try_with`: a body finishing while the thread shuts down just closes.
    let _ = POOL.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        let idle = pool.entry(conn.addr).or_default();
        if idle.len() < limits.max_idle {
            idle.push(conn);
            // Connections are checked out most recent first: one pushed
            // below the top [`WARM`] is only reached again in a burst, so
            // it keeps no buffer while it waits (a burst of clients leaves
            // hundreds of them pooled).
            if let Some(cold) = idle.len().checked_sub(WARM + 1) {
                idle[cold].buf = BytesMut::new();
            }
        }
    });
}

/// Closes this thread's idle connections that timed out or were closed by
/// their backend.
pub(crate) fn sweep(limits: PoolLimits) {
    POOL.with(|pool| {
        pool.borrow_mut().retain(|_, idle| {
            idle.retain(|c| c.idle_since.elapsed() < limits.idle_timeout && c.is_open(false));
            !idle.is_empty()
        });
    });
}

/// Gives the memory this thread freed since the last call back to the
/// system: after a burst of connections the allocator would otherwise keep
/// it (mimalloc, the `easydeploy` binary's allocator, purges freed pages
/// only from within later allocations; glibc, which libraries such as
/// SQLite use, only returns the top of its heaps by itself).
pub(crate) fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: glibc's malloc_trim only walks and trims the allocator's
        // own free lists; it is thread-safe and takes no pointer.
        unsafe {
            malloc_trim(0);
        }
    }
    // SAFETY: mi_collect takes no pointer; it frees what this thread's
    // mimalloc heap holds unused (nothing when the program's allocator is
    // another one).
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
}

/// Number of idle connections to `addr` in this thread's pool.
#[cfg(test)]
pub(crate) fn idle_count(addr: SocketAddr) -> usize {
    POOL.with(|pool| pool.borrow().get(&addr).map_or(0, Vec::len))
}

/// Number of idle connections to `addr` in this thread's pool that hold a
/// read buffer.
#[cfg(test)]
fn buffered_count(addr: SocketAddr) -> usize {
    POOL.with(|pool| {
        let pool = pool.borrow();
        pool.get(&addr)
            .map_or(0, |idle| idle.iter().filter(|c| c.buf.capacity() > 0).count())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// `n` connections to a new local listener: its address, our ends
    /// and the accepted ends.
    async fn connections(n: usize) -> (SocketAddr, Vec<Conn>, Vec<TcpStream>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mut conns, mut accepted) = (Vec::new(), Vec::new());
        for _ in 0..n {
            conns.push(Conn::connect(addr, None, Duration::from_secs(1)).await.unwrap());
            accepted.push(listener.accept().await.unwrap().0);
        }
        (addr, conns, accepted)
    }

    fn keeping(max_idle: usize) -> PoolLimits {
        PoolLimits {
            max_idle,
            idle_timeout: Duration::from_secs(60),
        }
    }

    #[tokio::test]
    async fn pool_drops_closed_and_expired_connections() {
        let (addr, conns, mut accepted) = connections(3).await;
        let limits = keeping(2);
        for conn in conns {
            checkin(conn, limits);
        }
        assert_eq!(idle_count(addr), 2, "the pool keeps at most max_idle");

        // The backend closes the most recent one: checkout skips it.
        let mut last = accepted.remove(1);
        last.shutdown().await.unwrap();
        drop(last);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let conn = checkout(addr, limits, false).expect("the other one is open");
        assert!(conn.reused);
        assert_eq!(idle_count(addr), 0);

        checkin(conn, limits);
        sweep(PoolLimits {
            idle_timeout: Duration::ZERO,
            ..limits
        });
        assert_eq!(idle_count(addr), 0, "expired connections are swept");
    }

    #[tokio::test]
    async fn only_the_most_recently_pooled_connections_keep_a_buffer() {
        let (addr, conns, _accepted) = connections(WARM + 5).await;
        let limits = keeping(100);
        for mut conn in conns {
            conn.buf.reserve(READ_BUF);
            checkin(conn, limits);
        }
        assert_eq!(idle_count(addr), WARM + 5);
        assert_eq!(buffered_count(addr), WARM, "the older ones let their buffer go");

        // The most recent come out first, buffer and all.
        let conn = checkout(addr, limits, false).unwrap();
        assert!(conn.buf.capacity() >= READ_BUF);
        checkin(conn, limits);
        assert_eq!(buffered_count(addr), WARM);
    }

    /// The process's resident memory, in bytes.
    fn resident() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() * 1024
    }

    #[test]
    fn releasing_memory_gives_back_what_mimalloc_holds_freed() {
        const MIB: usize = 1024 * 1024;
        // On a thread of its own, like a worker after a burst: 64 MiB in
        // 4-KiB blocks, written to, then freed.
        std::thread::spawn(|| {
            // SAFETY: plain allocations, checked for null before use.
            let blocks: Vec<_> = (0..16 * 1024)
                .map(|_| unsafe { libmimalloc_sys::mi_malloc(4096) })
                .collect();
            for &block in &blocks {
                assert!(!block.is_null());
                // SAFETY: a live 4-KiB allocation, written within bounds.
                unsafe { block.cast::<u8>().write_bytes(1, 4096) };
            }
            for block in blocks {
                // SAFETY: allocated above by mi_malloc, freed once.
                unsafe { libmimalloc_sys::mi_free(block) };
            }
            let freed = resident();
            release_memory();
            let released = resident();
            assert!(
                released + 48 * MIB < freed,
                "resident {} MiB after freeing, {} MiB after release_memory",
                freed / MIB,
                released / MIB
            );
        })
        .join()
        .unwrap();
    }

    #[tokio::test]
    async fn an_address_unreachable_from_the_namespace_is_dialed_from_the_host() {
        // A namespace whose loopback is down has no route anywhere, like
        // the one a restarted container left behind.
        let scratch = crate::netns::tests::Scratch::new("stale", false);
        let netns = Netns::open(&scratch.path()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let inside = netns.socket(addr).await.unwrap().connect(addr).await;
        assert!(inside.as_ref().is_err_and(unreachable), "{inside:?}");

        let stream = dial(addr, Some(&netns)).await.unwrap();
        let (_, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, stream.local_addr().unwrap());
    }
}
