//! Helpers of `scripts/bench-proxy.sh` (not a test):
//!
//! - `bench upstream PORT` — a minimal, fast HTTP/1.1 server (keep-alive,
//!   pipelining) answering every request with a small fixed page, so the
//!   proxies in front of it are what is measured. Built static, it is the
//!   app the platform deploys `FROM scratch`.
//! - `bench idle ADDR HOST N` — opens N client connections to ADDR, sends
//!   one `GET /` with `Host: HOST` on each, reads the answers, prints
//!   `ready N` and keeps them open (idle) until stdin closes.
//! - `bench edge LISTEN APP BACKEND [on|off] [coalesce|nocoalesce]
//!   [batch|nobatch] [pinned|free] [NETNS]` — the edge proxy alone, routing
//!   `APP.localhost` to BACKEND (dialed from inside the network namespace
//!   file NETNS if given), with traffic metrics, wake-up coalescing and
//!   batched sends on (defaults) or off, until stdin closes (for profiling
//!   without the platform, and for measuring what a setting costs or saves).

use std::io::{BufRead, Read as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The allocator of the platform's binary, so a standalone edge measures
/// what the server runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PAGE: &str = "Hello from the Easy Deploy benchmark upstream!\n";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["upstream", port] => upstream(port.parse().expect("PORT")),
        ["idle", addr, host, n] => idle(addr.parse().expect("ADDR"), host, n.parse().expect("N")),
        ["edge", listen, app, backend, rest @ ..] => edge(
            listen.parse().expect("LISTEN"),
            app,
            easydeploy_core::ports::Upstream {
                addr: backend.parse().expect("BACKEND"),
                netns: rest.iter().find(|a| a.starts_with('/')).map(Into::into),
            },
            easydeploy_edge::EdgeConfig {
                metrics: !rest.contains(&"off"),
                coalesce_wakeups: !rest.contains(&"nocoalesce"),
                batch_sends: !rest.contains(&"nobatch"),
                cpu_locality: !rest.contains(&"free"),
                ..easydeploy_edge::EdgeConfig::default()
            },
        ),
        _ => {
            eprintln!(
                "usage: bench upstream PORT | idle ADDR HOST N | edge LISTEN APP BACKEND [on|off] [coalesce|nocoalesce] [batch|nobatch] [pinned|free] [NETNS]"
            );
            std::process::exit(2);
        }
    }
}

/// One thread per core, each with its own runtime, sharing the listener.
fn upstream(port: u16) {
    let listener = std::net::TcpListener::bind(("0.0.0.0", port)).expect("bind");
    listener.set_nonblocking(true).unwrap();
    let answer = |extra: &str| {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n{extra}\r\n{PAGE}",
            PAGE.len()
        )
        .into_bytes()
    };
    let response = Arc::new([answer(""), answer("connection: close\r\n")]);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads: Vec<_> = (0..cores)
        .map(|_| {
            let listener = listener.try_clone().unwrap();
            let response = response.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = TcpListener::from_std(listener).unwrap();
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(serve(stream, response.clone()));
                    }
                });
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

/// Answers each request head in the buffer; skips `Content-Length` bodies.
/// A request asking to close gets `connection: close`, then the
/// connection is closed once the answer is sent (requests after it are
/// not answered), so clients do not send into a closing connection.
async fn serve(mut stream: TcpStream, response: Arc<[Vec<u8>; 2]>) {
    let mut buf = Vec::with_capacity(4096);
    let mut out = Vec::with_capacity(4096);
    let mut skip = 0usize;
    loop {
        let mut chunk = [0u8; 4096];
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut close = false;
        while !close {
            if skip > 0 {
                let s = skip.min(buf.len());
                buf.drain(..s);
                skip -= s;
                if skip > 0 {
                    break;
                }
            }
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                break;
            };
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            for line in head.lines() {
                if let Some(v) = line.strip_prefix("content-length:") {
                    skip = v.trim().parse().unwrap_or(0);
                }
                if let Some(v) = line.strip_prefix("connection:") {
                    close |= v.split(',').any(|t| t.trim() == "close");
                }
            }
            buf.drain(..end + 4);
            out.extend_from_slice(&response[usize::from(close)]);
        }
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if close {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

fn idle(addr: SocketAddr, host: &str, n: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let conns = rt.block_on(async {
        let mut conns = Vec::with_capacity(n);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            let request = request.clone();
            tasks.spawn(async move {
                // Spread the connects a little: listen backlogs are finite.
                tokio::time::sleep(Duration::from_micros(100 * (i as u64 % 1000))).await;
                let mut stream = TcpStream::connect(addr).await?;
                stream.write_all(request.as_bytes()).await?;
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                loop {
                    let n = stream.read(&mut buf).await?;
                    if n == 0 {
                        return Err(std::io::Error::other("closed"));
                    }
                    got.extend_from_slice(&buf[..n]);
                    if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if got.len() >= end + 4 + len {
                            return Ok(stream);
                        }
                    }
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            match done.unwrap() {
                Ok(stream) => conns.push(stream),
                Err(e) => eprintln!("idle connection failed: {e}"),
            }
        }
        conns
    });
    println!("ready {}", conns.len());
    // Hold them until told to stop.
    let _ = std::io::stdin().lock().read_to_end(&mut Vec::new());
    drop(conns);
}

fn edge(
    listen: SocketAddr,
    app: &str,
    backend: easydeploy_core::ports::Upstream,
    config: easydeploy_edge::EdgeConfig,
) {
    use easydeploy_core::ports::TrafficSwitch;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let proxy = easydeploy_edge::EdgeProxy::new(config);
        proxy.set_upstreams(app, vec![backend]);
        let listener = TcpListener::bind(listen).await.unwrap();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let stop = shutdown.clone();
        std::thread::spawn(move || {
            let _ = std::io::stdin().lock().lines().count();
            stop.cancel();
        });
        proxy.serve(listener, shutdown).await;
    });
}
