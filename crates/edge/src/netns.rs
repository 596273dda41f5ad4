//! Dialing a replica from inside its network namespace.
//!
//! A local replica lives in a network namespace of its own, joined to the
//! host by a veth pair on a bridge. A connection the edge opens to the
//! replica's bridge address crosses the pair, the bridge and the host's
//! netfilter hooks, packet by packet (measured with `scripts/bench-proxy.sh`
//! on 2026-11-29: 2–10 % of the req/s and about 1.5 µs of CPU per
//! request). A socket stays in the namespace it was created in, so a
//! socket made inside the replica's namespace reaches the
//! same address as a local one, over that namespace's loopback path. The
//! socket belongs to the edge: the replica sees a connection from its own
//! address and reaches nothing of the host.
//!
//! `setns` moves only the calling thread, so one dedicated thread makes
//! these sockets (enter, create, go back); connecting, reading and writing
//! happen on the worker threads like any other socket.

use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};
use socket2::{Domain, Socket, Type};
use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{mpsc, Arc, OnceLock};
use tokio::net::TcpSocket;
use tokio::sync::oneshot;

/// A replica's network namespace, held open (it outlives the replica's
/// processes while held: a replica restarted in place gets a new one, and
/// addresses no longer reachable from the old one are dialed across the
/// bridge, see [`crate::upstream::dial`]).
#[derive(Debug)]
pub(crate) struct Netns {
    path: PathBuf,
    file: File,
    /// A failure to make a socket in it was logged.
    warned: AtomicBool,
}

impl Netns {
    /// Opens the namespace file at `path` (Docker's sandbox key, or a
    /// `/proc/PID/ns/net` link).
    pub(crate) fn open(path: &Path) -> io::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            path: path.to_owned(),
            file: File::open(path)?,
            warned: AtomicBool::new(false),
        }))
    }

    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// A new non-blocking TCP socket for `addr`, created inside this
    /// namespace; outside of it (logged once) if that cannot be done, for
    /// instance without the `CAP_SYS_ADMIN` capability `setns` needs.
    pub(crate) async fn socket(self: &Arc<Self>, addr: SocketAddr) -> io::Result<TcpSocket> {
        match self.make(addr).await {
            Ok(socket) => Ok(TcpSocket::from_std_stream(socket.into())),
            Err(e) => {
                if !self.warned.swap(true, Relaxed) {
                    tracing::warn!(netns = %self.path.display(), error = %e, "edge cannot dial inside the replica's network namespace; using its bridge address");
                }
                plain_socket(addr)
            }
        }
    }

    async fn make(self: &Arc<Self>, addr: SocketAddr) -> io::Result<Socket> {
        let gone = || io::Error::other("the namespace thread stopped");
        let (reply, made) = oneshot::channel();
        let job = Job {
            netns: self.clone(),
            domain: Domain::for_address(addr),
            reply,
        };
        maker()?.send(job).map_err(|_| gone())?;
        made.await.map_err(|_| gone())?
    }
}

/// A new non-blocking TCP socket for `addr` in the edge's own namespace.
pub(crate) fn plain_socket(addr: SocketAddr) -> io::Result<TcpSocket> {
    if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
}

/// One socket to make.
struct Job {
    netns: Arc<Netns>,
    domain: Domain,
    reply: oneshot::Sender<io::Result<Socket>>,
}

/// The channel to the thread that makes sockets in other namespaces,
/// started on first use.
fn maker() -> io::Result<&'static mpsc::Sender<Job>> {
    static MAKER: OnceLock<Result<mpsc::Sender<Job>, String>> = OnceLock::new();
    let started = MAKER.get_or_init(|| {
        let home = File::open("/proc/thread-self/ns/net").map_err(|e| e.to_string())?;
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("edge-netns".into())
            .spawn(move || make_sockets(&home, &queue))
            .map_err(|e| e.to_string())?;
        Ok(jobs)
    });
    started
        .as_ref()
        .map_err(|e| io::Error::other(format!("cannot start the namespace thread: {e}")))
}

/// Serves jobs until the channel closes or the thread cannot return to
/// its `home` namespace (it then stops rather than make sockets in the
/// wrong one; later jobs fail and fall back to plain sockets).
fn make_sockets(home: &File, queue: &mpsc::Receiver<Job>) {
    let network = Some(LinkNameSpaceType::Network);
    for job in queue {
        let made = move_into_link_name_space(job.netns.file.as_fd(), network)
            .map_err(io::Error::from)
            .and_then(|()| {
                let socket = Socket::new(job.domain, Type::STREAM, None)?;
                socket.set_nonblocking(true)?;
                Ok(socket)
            });
        let back = move_into_link_name_space(home.as_fd(), network);
        let _ = job.reply.send(made);
        if let Err(e) = back {
            tracing::error!(error = %e, "edge namespace thread cannot return to its own namespace; stopping it");
            return;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use std::process::Command;

    /// A network namespace made with `ip netns` (needs root), deleted on
    /// drop; its loopback is up or not.
    pub(crate) struct Scratch(String);

    impl Scratch {
        pub(crate) fn new(name: &str, loopback_up: bool) -> Self {
            let name = format!("ed-{name}-{}", std::process::id());
            let ip = |args: &[&str]| {
                let status = Command::new("ip").args(args).status().expect("ip (iproute2)");
                assert!(status.success(), "ip {args:?}");
            };
            ip(&["netns", "add", &name]);
            if loopback_up {
                ip(&["-n", &name, "link", "set", "lo", "up"]);
            }
            Self(name)
        }

        pub(crate) fn path(&self) -> PathBuf {
            Path::new("/run/netns").join(&self.0)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }

    #[tokio::test]
    async fn sockets_made_in_a_namespace_reach_its_addresses() {
        let scratch = Scratch::new("reach", true);
        // A listener on the namespace's loopback, bound from a thread that
        // entered it.
        let path = scratch.path();
        let listener = std::thread::spawn(move || {
            let ns = File::open(path).unwrap();
            move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network)).unwrap();
            std::net::TcpListener::bind("127.0.0.1:0").unwrap()
        })
        .join()
        .unwrap();
        listener.set_nonblocking(true).unwrap();
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let addr = listener.local_addr().unwrap();

        // The same address from the edge's own namespace is another place.
        let outside = plain_socket(addr).unwrap().connect(addr);
        let outside = tokio::time::timeout(std::time::Duration::from_secs(1), outside).await;
        let accepted = tokio::time::timeout(std::time::Duration::from_millis(100), listener.accept()).await;
        assert!(
            accepted.is_err(),
            "a host connection must not reach the namespace ({outside:?})"
        );

        let netns = Netns::open(&scratch.path()).unwrap();
        let stream = netns.socket(addr).await.unwrap().connect(addr).await.unwrap();
        let (_, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, stream.local_addr().unwrap());
        assert!(!netns.warned.load(Relaxed));
    }

    #[tokio::test]
    async fn a_file_that_is_no_namespace_falls_back_to_a_plain_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let file = tempfile::NamedTempFile::new().unwrap();
        let netns = Netns::open(file.path()).unwrap();
        assert!(netns.make(addr).await.is_err(), "setns refuses a plain file");
        let socket = netns.socket(addr).await.unwrap();
        socket.connect(addr).await.unwrap();
        assert!(netns.warned.load(Relaxed));
    }
}
