//! Helpers shared by the integration tests of Easy Deploy's crates.

use std::net::{TcpListener, TcpStream};
use std::process::Child;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Lowest port handed out by [`free_port`].
const LOWEST: u32 = 10_000;

/// A loopback TCP port free now, for a server a test starts, below the
/// kernel's ephemeral range, and never the same twice in one process.
///
/// A port from the ephemeral range (what binding port 0 gives) is not
/// safe to hand to another process: until that process listens, any
/// outgoing connection may take the port as its source port, and a
/// readiness poll on it may connect to itself (TCP simultaneous open);
/// either makes the server's `bind` fail with "address in use".
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let end = ephemeral_start().unwrap_or(32_768);
    let span = end.saturating_sub(LOWEST).max(1);
    // Test binaries of different clones may run at once: start apart.
    let start = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let port = LOWEST + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = u16::try_from(port).expect("ports below the ephemeral range fit in u16");
        if bindable([127, 0, 0, 1], port) && bindable([0, 0, 0, 0], port) {
            return port;
        }
    }
    panic!("no free port in {LOWEST}..{end}");
}

/// Waits until `server`, a child process given `port` (from [`free_port`]),
/// accepts connections on `127.0.0.1:port`; panics, naming it `what`, if
/// it exits first or takes longer than `within`.
pub fn wait_listening(server: &mut Child, port: u16, within: Duration, what: &str) {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = server.try_wait() {
            panic!("{what} exited ({status}) before listening on port {port}");
        }
        assert!(
            started.elapsed() < within,
            "{what} did not listen on port {port} within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether a listener could take `ip:port` now (the test one is closed at once).
fn bindable(ip: [u8; 4], port: u16) -> bool {
    TcpListener::bind(std::net::SocketAddr::from((ip, port))).is_ok()
}

/// The first port of the kernel's ephemeral range (Linux), if known.
fn ephemeral_start() -> Option<u32> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    range.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_free_distinct_and_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let distinct: std::collections::HashSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        let ephemeral = ephemeral_start().unwrap_or(32_768);
        for &port in &ports {
            assert!((LOWEST..ephemeral).contains(&u32::from(port)), "{port}");
            TcpListener::bind(("127.0.0.1", port)).unwrap();
        }
    }

    #[test]
    fn waiting_ends_when_the_server_listens_or_exits() {
        let port = free_port();
        let mut server = std::process::Command::new("python3")
            .args(["-c", &format!("import socket,time; s=socket.socket(); time.sleep(0.3); s.bind(('127.0.0.1',{port})); s.listen(); time.sleep(30)")])
            .spawn()
            .unwrap();
        wait_listening(&mut server, port, Duration::from_secs(20), "the listener");
        server.kill().unwrap();
        server.wait().unwrap();

        let mut exits = std::process::Command::new("true").spawn().unwrap();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_listening(&mut exits, free_port(), Duration::from_secs(20), "true")
        }));
        let message = panicked.unwrap_err();
        let message = message.downcast_ref::<String>().unwrap();
        assert!(message.starts_with("true exited"), "{message}");
    }
}
