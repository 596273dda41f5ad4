//! CPU locality: with one worker per CPU the process may use, each worker
//! is pinned to its CPU, a new connection goes to the worker of the CPU
//! its packets arrive on (a classic BPF program on the `SO_REUSEPORT`
//! group), and a keep-alive connection whose packets have come to arrive
//! on another CPU moves to that CPU's worker between two requests.
//!
//! A client's requests and the answers that wake it then stay on one CPU:
//! no wake-ups sent across cores, no connection state bouncing between
//! their caches. Only the proxy's own HTTP/1.1 server moves connections;
//! TLS and HTTP/2 connections stay where they were accepted.
//!
//! Balance comes first: a worker takes connections by locality only up to
//! a quarter over its fair share (plus two), and one holding more than
//! that passes new connections to the least loaded worker. Where every
//! packet arrives on one CPU (a network card with one queue), the workers
//! still share the connections.

use std::cell::Cell;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// A connection on its way to another worker.
pub(crate) struct Moved {
    pub(crate) stream: std::net::TcpStream,
    pub(crate) peer: SocketAddr,
}

/// The workers' CPUs and the way to hand them connections.
pub(crate) struct Steering {
    /// The CPU of each worker.
    cpus: Vec<usize>,
    /// The worker of each CPU (by CPU number).
    worker_of: Vec<Option<usize>>,
    to: Vec<UnboundedSender<Moved>>,
    /// Connections moved so far.
    moved: AtomicU64,
    /// Connections each worker serves.
    held: Vec<Held>,
}

/// A worker's count of connections, on a cache line of its own.
#[repr(align(64))]
struct Held(AtomicUsize);

/// A connection counted as served by this thread's worker while it lives.
pub(crate) struct Holding<'a>(&'a Held);

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Relaxed);
    }
}

thread_local! {
    /// This thread's worker, where it is one that steers.
    static WORKER: Cell<Option<usize>> = const { Cell::new(None) };
}

impl Steering {
    /// Steering for `workers` workers, with each worker's receiver of the
    /// connections moved to it; `None` unless there is exactly one worker
    /// per CPU this process may run on (and more than one).
    pub(crate) fn new(workers: usize) -> Option<(Arc<Self>, Vec<UnboundedReceiver<Moved>>)> {
        let cpus = allowed_cpus()?;
        if workers < 2 || cpus.len() != workers {
            return None;
        }
        let mut worker_of = vec![None; cpus.iter().max().map_or(0, |&c| c + 1)];
        for (worker, &cpu) in cpus.iter().enumerate() {
            worker_of[cpu] = Some(worker);
        }
        let (to, from) = (0..workers).map(|_| unbounded_channel()).unzip();
        let steering = Self {
            cpus,
            worker_of,
            to,
            moved: AtomicU64::new(0),
            held: (0..workers).map(|_| Held(AtomicUsize::new(0))).collect(),
        };
        Some((Arc::new(steering), from))
    }

    /// Pins the calling thread, worker `index`, to its CPU and notes which
    /// worker it is.
    pub(crate) fn enter(&self, index: usize) {
        let Some(&cpu) = self.cpus.get(index) else {
            return;
        };
        // SAFETY: `set` is a plain bit set, zeroed then filled by libc's macro.
        let pinned = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
        };
        if pinned {
            WORKER.with(|w| w.set(Some(index)));
        } else {
            tracing::warn!(cpu, error = %std::io::Error::last_os_error(), "edge worker {index} not pinned");
        }
    }

    /// Sends new connections to the worker of the CPU they arrive on:
    /// attaches the program to `listener`'s `SO_REUSEPORT` group, whose
    /// sockets are the workers' listeners in worker order.
    pub(crate) fn attach(&self, listener: &std::net::TcpListener) -> std::io::Result<()> {
        let mut program = reuseport_program(&self.cpus);
        let fprog = libc::sock_fprog {
            len: u16::try_from(program.len()).map_err(std::io::Error::other)?,
            filter: program.as_mut_ptr(),
        };
        // SAFETY: `fprog` points at `program`, alive for the call; the
        // kernel copies the program.
        let rc = unsafe {
            libc::setsockopt(
                listener.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_REUSEPORT_CBPF,
                std::ptr::from_ref(&fprog).cast(),
                std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// Counts a connection as served by the calling worker; `None` on
    /// threads that do not steer.
    pub(crate) fn hold(&self) -> Option<Holding<'_>> {
        let held = &self.held[WORKER.with(Cell::get)?];
        held.0.fetch_add(1, Relaxed);
        Some(Holding(held))
    }

    /// The most connections a worker takes by locality: a quarter over its
    /// fair share, plus two.
    fn limit(&self) -> usize {
        let total: usize = self.held.iter().map(|h| h.0.load(Relaxed)).sum();
        total.div_ceil(self.held.len()) * 5 / 4 + 2
    }

    /// The worker a new connection should go to when the calling one holds
    /// more than its limit: the least loaded.
    pub(crate) fn overflow(&self) -> Option<usize> {
        let me = WORKER.with(Cell::get)?;
        if self.held[me].0.load(Relaxed) <= self.limit() {
            return None;
        }
        let least = (0..self.held.len()).min_by_key(|&w| self.held[w].0.load(Relaxed))?;
        (least != me).then_some(least)
    }

    /// The worker `stream` should move to, if any: the worker of the CPU
    /// its packets last arrived on, when that is not the calling one and
    /// it is under its limit.
    pub(crate) fn elsewhere(&self, stream: &TcpStream) -> Option<usize> {
        let me = WORKER.with(Cell::get)?;
        let cpu = socket2::SockRef::from(stream).cpu_affinity().ok()?;
        let worker = (*self.worker_of.get(cpu)?)?;
        (worker != me && self.held[worker].0.load(Relaxed) < self.limit()).then_some(worker)
    }

    /// Hands `stream` to `worker`; it is closed if that worker has stopped.
    pub(crate) fn hand_over(&self, worker: usize, stream: TcpStream, peer: SocketAddr) {
        let Ok(stream) = stream.into_std() else {
            return;
        };
        if self.to[worker].send(Moved { stream, peer }).is_ok() {
            self.moved.fetch_add(1, Relaxed);
        }
    }

    /// Connections moved between workers so far.
    pub(crate) fn moved(&self) -> u64 {
        self.moved.load(Relaxed)
    }

    /// The connections each worker serves now.
    pub(crate) fn held(&self) -> Vec<usize> {
        self.held.iter().map(|h| h.0.load(Relaxed)).collect()
    }
}

/// The CPUs this process may run on, in order.
fn allowed_cpus() -> Option<Vec<usize>> {
    // SAFETY: `set` is a plain bit set the kernel fills.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        Some(
            (0..libc::CPU_SETSIZE as usize)
                .filter(|&c| libc::CPU_ISSET(c, &set))
                .collect(),
        )
    }
}

/// A classic BPF program choosing the socket of a `SO_REUSEPORT` group by
/// the CPU handling the packet: the index of that CPU in `cpus`, or, on
/// any other CPU, an index past the group so that the kernel picks by
/// hash as usual.
fn reuseport_program(cpus: &[usize]) -> Vec<libc::sock_filter> {
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const SKF_AD_CPU: u32 = (-0x1000i32 + 36) as u32; // SKF_AD_OFF + SKF_AD_CPU
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let mut program = vec![op(LD_W_ABS, 0, 0, SKF_AD_CPU)];
    for (index, &cpu) in cpus.iter().enumerate() {
        program.push(op(JEQ_K, 0, 1, cpu as u32));
        program.push(op(RET_K, 0, 0, index as u32));
    }
    program.push(op(RET_K, 0, 0, u32::MAX));
    program
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a program of the shape `reuseport_program` makes for a CPU.
    fn run(program: &[libc::sock_filter], cpu: u32) -> u32 {
        let (mut pc, mut a) = (0usize, 0u32);
        loop {
            let op = program[pc];
            match op.code {
                0x20 => a = cpu,
                0x15 => {
                    pc += usize::from(if a == op.k { op.jt } else { op.jf });
                }
                0x06 => return op.k,
                code => panic!("unexpected opcode {code:#x}"),
            }
            pc += 1;
        }
    }

    #[test]
    fn the_program_picks_the_worker_of_the_cpu_or_leaves_it_to_the_hash() {
        let program = reuseport_program(&[2, 3, 7]);
        assert_eq!(run(&program, 2), 0);
        assert_eq!(run(&program, 3), 1);
        assert_eq!(run(&program, 7), 2);
        assert_eq!(run(&program, 0), u32::MAX);
        assert_eq!(run(&program, 5), u32::MAX);
    }
}
