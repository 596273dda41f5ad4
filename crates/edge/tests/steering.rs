//! CPU locality through a real proxy: with one worker per CPU, a keep-alive
//! connection follows its client to the worker of the CPU the client's
//! packets arrive on, and a burst of connections arriving on one CPU is
//! still shared between the workers.

mod support;

use easydeploy_core::ports::TrafficSwitch;
use easydeploy_edge::EdgeConfig;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use support::*;

/// The CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a plain bit set the kernel fills.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(
            libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set),
            0
        );
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Pins the calling thread to `cpu`.
fn pin_to(cpu: usize) {
    // SAFETY: a plain bit set, zeroed then filled by libc's macro.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
            0
        );
    }
}

/// Sends a GET on `stream` and reads the whole answer; returns its status.
fn get_on(stream: &mut TcpStream) -> u16 {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "the proxy closed the connection");
        got.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .expect("a content-length");
    while got.len() < end + length {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "the proxy closed the connection mid-body");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got.len(), end + length, "nothing beyond the answer");
    head[9..12].parse().unwrap()
}

/// An edge with one worker per allowed CPU in front of one upstream, or
/// `None` (after checking that it does not steer) on a one-CPU machine.
async fn steering_edge() -> Option<(Edge, Vec<usize>)> {
    let cpus = allowed_cpus();
    let edge = start_edge(EdgeConfig {
        threads: cpus.len(),
        ..EdgeConfig::default()
    })
    .await;
    edge.proxy.set_backends("app", vec![upstream("a").await]);
    if cpus.len() < 2 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!edge.proxy.steers_by_cpu(), "one worker has nowhere to steer to");
        eprintln!("one CPU: nothing to steer");
        return None;
    }
    assert!(eventually(|| edge.proxy.steers_by_cpu()).await, "steering on");
    Some((edge, cpus))
}

/// Runs `client` on a thread of its own; returns what it returns.
async fn on_thread<T: Send + 'static>(client: impl FnOnce() -> T + Send + 'static) -> T {
    let thread = std::thread::spawn(client);
    tokio::task::spawn_blocking(move || thread.join().unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_keep_alive_connection_follows_its_client_to_another_cpu() {
    let Some((edge, cpus)) = steering_edge().await else {
        return;
    };
    let addr: SocketAddr = edge.addr;
    let (first, second) = (cpus[0], cpus[1]);
    let statuses = on_thread(move || {
        pin_to(first);
        let mut stream = TcpStream::connect(addr).unwrap();
        let mut statuses: Vec<u16> = (0..20).map(|_| get_on(&mut stream)).collect();
        pin_to(second);
        statuses.extend((0..80).map(|_| get_on(&mut stream)));
        statuses
    })
    .await;
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    assert!(
        edge.proxy.connections_moved() >= 1,
        "the connection moved to the worker of CPU {second}"
    );
}

#[tokio::test]
async fn connections_all_arriving_on_one_cpu_are_shared_between_workers() {
    let Some((edge, cpus)) = steering_edge().await else {
        return;
    };
    let addr = edge.addr;
    let (streams, statuses) = on_thread(move || {
        pin_to(cpus[0]);
        let mut streams: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(addr).unwrap()).collect();
        // Every connection answers, several times, wherever it went.
        let statuses: Vec<u16> = (0..3)
            .flat_map(|_| streams.iter_mut().map(get_on).collect::<Vec<_>>())
            .collect();
        (streams, statuses)
    })
    .await;
    assert_eq!(statuses.len(), 60);
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    // All 20 arrived at the first CPU's worker, which keeps at most a
    // quarter over its fair share plus two (here 15) and passes the rest on.
    let held = edge.proxy.connections_by_worker();
    assert_eq!(held.iter().sum::<usize>(), 20, "{held:?}");
    assert!(held.iter().all(|&n| n <= 15), "{held:?}");
    assert!(edge.proxy.connections_moved() >= 5, "{held:?}");
    drop(streams);
    assert!(eventually(|| edge.proxy.connections_by_worker().iter().sum::<usize>() == 0).await);
}

#[tokio::test]
async fn workers_left_free_do_not_steer() {
    let edge = start_edge(EdgeConfig {
        threads: allowed_cpus().len(),
        cpu_locality: false,
        ..EdgeConfig::default()
    })
    .await;
    edge.proxy.set_backends("app", vec![upstream("a").await]);
    assert_eq!(get(&edge, "app.localhost", "/").await.status, 200);
    assert!(!edge.proxy.steers_by_cpu());
    assert_eq!(edge.proxy.connections_moved(), 0);
}
