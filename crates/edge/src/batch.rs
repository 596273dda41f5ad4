//! Batched sends: the small writes a worker thread's tasks make in one
//! round (request heads to replicas, whole responses to clients) go out
//! together, in one `io_uring_enter`, once the round is over.
//!
//! Every send to a local peer wakes it, and the woken task takes the core
//! when the sender returns to user space. Sent one by one, a worker is
//! switched out after nearly every send and its peers handle one message
//! per wake-up; sent together, the peers are woken once for the batch and
//! the worker goes on with its round.
//!
//! Sends are non-blocking (`MSG_DONTWAIT`): one that finds the socket full
//! completes with what fit, and [`write_all`] writes the rest the usual
//! way, as it does on threads without a batch (io_uring unavailable, or
//! batching off).

use bytes::Bytes;
use io_uring::{opcode, types, IoUring};
use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Sends submitted per `io_uring_enter` (a larger batch takes several).
const RING: u32 = 256;

/// Consecutive `io_uring_enter` calls that may fail with a transient error
/// (`EINTR`, `EAGAIN`, `EBUSY`) before the batch is given up.
const RETRIES: u32 = 1000;

enum Slot {
    Free,
    Queued {
        fd: RawFd,
        data: Bytes,
        waker: Option<Waker>,
    },
    /// Sent (or failed); waiting for its future to take the outcome.
    Done(io::Result<usize>),
    /// Its future was dropped before the flush: skipped, then freed.
    Abandoned,
}

/// A worker thread's batch.
struct Batch {
    ring: IoUring,
    slots: Vec<Slot>,
    queued: Vec<usize>,
    free: Vec<usize>,
    /// The flusher task, while it waits for sends.
    flusher: Option<Waker>,
    /// A submission failed in a way that may leave sends with the kernel:
    /// this thread writes directly from then on.
    broken: bool,
}

thread_local! {
    static BATCH: RefCell<Option<Batch>> = const { RefCell::new(None) };
}

/// Sets up batching on this thread (a worker with a current-thread
/// runtime) and returns the task that flushes its batches, to be spawned
/// on that runtime; `None` where io_uring is unavailable.
pub(crate) fn start() -> Option<impl Future<Output = ()> + Send + 'static> {
    let ring = match IoUring::new(RING) {
        Ok(ring) => ring,
        Err(error) => {
            tracing::info!(%error, "io_uring unavailable: the edge sends without batching");
            return None;
        }
    };
    BATCH.with(|b| {
        *b.borrow_mut() = Some(Batch {
            ring,
            slots: Vec::new(),
            queued: Vec::new(),
            free: Vec::new(),
            flusher: None,
            broken: false,
        });
    });
    Some(flusher())
}

/// Flushes the batch each time sends were queued, once the tasks that are
/// ready then have run: `yield_now` on a current-thread runtime defers the
/// flusher until its run queue is empty (or until its next check for I/O
/// events, after at most a few dozen tasks).
async fn flusher() {
    loop {
        poll_fn(|cx| {
            BATCH.with(|b| match b.borrow_mut().as_mut() {
                Some(batch) if batch.queued.is_empty() => {
                    batch.flusher = Some(cx.waker().clone());
                    Poll::Pending
                }
                _ => Poll::Ready(()),
            })
        })
        .await;
        tokio::task::yield_now().await;
        let wakers = BATCH.with(|b| b.borrow_mut().as_mut().map(Batch::flush));
        wakers.into_iter().flatten().for_each(Waker::wake);
    }
}

impl Batch {
    /// Submits every queued send and collects their outcomes; returns the
    /// wakers of their futures (woken by the caller, outside the borrow).
    fn flush(&mut self) -> Vec<Waker> {
        let mut wakers = Vec::new();
        let queued = std::mem::take(&mut self.queued);
        for chunk in queued.chunks(RING as usize) {
            let mut submitted = 0;
            for &i in chunk {
                match &self.slots[i] {
                    Slot::Queued { fd, data, .. } if !self.broken => {
                        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
                        let sqe = opcode::Send::new(types::Fd(*fd), data.as_ptr(), len)
                            .flags(libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
                            .build()
                            .user_data(i as u64);
                        // SAFETY: the buffer belongs to the slot, which keeps
                        // it until the send's completion is reaped (or
                        // forever, if it never is).
                        if unsafe { self.ring.submission().push(&sqe) }.is_ok() {
                            submitted += 1;
                            continue;
                        }
                        // No room (cannot happen: a chunk fits the empty queue).
                        self.settle(i, Err(io::ErrorKind::WouldBlock.into()), &mut wakers);
                    }
                    // Not handed to the kernel: the caller writes it directly.
                    Slot::Queued { .. } => {
                        self.settle(i, Err(io::ErrorKind::WouldBlock.into()), &mut wakers);
                    }
                    Slot::Abandoned => {
                        self.slots[i] = Slot::Free;
                        self.free.push(i);
                    }
                    Slot::Free | Slot::Done(..) => {}
                }
            }
            if let Err(error) = self.complete(submitted, &mut wakers) {
                tracing::warn!(%error, "batched sends failed: the edge worker sends directly from now on");
                self.broken = true;
                for &i in chunk {
                    if let Slot::Queued { data, .. } = &mut self.slots[i] {
                        // The kernel may still read it: never freed.
                        std::mem::forget(std::mem::take(data));
                    }
                    let failed = io::Error::other(format!("batched send failed: {error}"));
                    self.settle(i, Err(failed), &mut wakers);
                }
            }
        }
        wakers
    }

    /// Submits what is in the submission queue and waits until `submitted`
    /// sends have completed (at once: they do not block).
    fn complete(&mut self, submitted: usize, wakers: &mut Vec<Waker>) -> io::Result<()> {
        let (mut pending, mut retries) = (submitted, 0);
        while pending > 0 {
            if let Err(error) = self.ring.submit_and_wait(pending) {
                let transient = matches!(
                    error.raw_os_error(),
                    Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
                );
                retries += 1;
                if !transient || retries > RETRIES {
                    return Err(error);
                }
            }
            loop {
                let Some(cqe) = self.ring.completion().next() else {
                    break;
                };
                let outcome = match cqe.result() {
                    n if n >= 0 => Ok(n as usize),
                    n => Err(io::Error::from_raw_os_error(-n)),
                };
                if self.settle(cqe.user_data() as usize, outcome, wakers) {
                    pending -= 1;
                }
            }
        }
        Ok(())
    }

    /// Gives a queued send its outcome (its buffer is dropped: the caller
    /// has its own); whether it was queued.
    fn settle(&mut self, i: usize, outcome: io::Result<usize>, wakers: &mut Vec<Waker>) -> bool {
        let Slot::Queued { waker, .. } = &mut self.slots[i] else {
            return false;
        };
        wakers.extend(waker.take());
        self.slots[i] = Slot::Done(outcome);
        true
    }
}

/// A send queued in this thread's batch: resolves, once flushed, to the
/// bytes sent (maybe fewer than given) or the error.
/// Dropped before the flush, the send is skipped (the socket it names may
/// be closed by then); it must not be leaked with `mem::forget`, which only
/// this module could do.
struct Queued {
    slot: usize,
    done: bool,
}

/// Queues `data` (not empty; the slot holds a reference to it) for `fd`;
/// `None` when this thread does not batch.
fn queue(fd: RawFd, data: &Bytes) -> Option<Queued> {
    let (slot, flusher) = BATCH.with(|b| {
        let mut b = b.borrow_mut();
        let batch = b.as_mut().filter(|batch| !batch.broken)?;
        let slot = Slot::Queued {
            fd,
            data: data.clone(),
            waker: None,
        };
        let i = match batch.free.pop() {
            Some(i) => {
                batch.slots[i] = slot;
                i
            }
            None => {
                batch.slots.push(slot);
                batch.slots.len() - 1
            }
        };
        batch.queued.push(i);
        Some((i, batch.flusher.take()))
    })?;
    if let Some(flusher) = flusher {
        flusher.wake();
    }
    Some(Queued { slot, done: false })
}

impl Future for Queued {
    type Output = io::Result<usize>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let i = self.slot;
        let ready = BATCH.with(|b| {
            let mut b = b.borrow_mut();
            let Some(batch) = b.as_mut() else {
                return Some(Err(io::Error::other("batched send polled off its worker")));
            };
            match &mut batch.slots[i] {
                Slot::Queued { waker, .. } => {
                    *waker = Some(cx.waker().clone());
                    None
                }
                slot => {
                    let Slot::Done(outcome) = std::mem::replace(slot, Slot::Free) else {
                        return Some(Err(io::Error::other("batched send lost")));
                    };
                    batch.free.push(i);
                    Some(outcome)
                }
            }
        });
        match ready {
            Some(ready) => {
                self.done = true;
                Poll::Ready(ready)
            }
            None => Poll::Pending,
        }
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let _ = BATCH.try_with(|b| {
            let Ok(mut b) = b.try_borrow_mut() else { return };
            let Some(batch) = b.as_mut() else { return };
            let slot = &mut batch.slots[self.slot];
            match slot {
                // Still in the queue: the flush skips it, then frees it.
                Slot::Queued { .. } => *slot = Slot::Abandoned,
                Slot::Done(..) => {
                    *slot = Slot::Free;
                    batch.free.push(self.slot);
                }
                Slot::Free | Slot::Abandoned => {}
            }
        });
    }
}

/// Writes all of `data` to `stream`: through this thread's batch where it
/// has one (the rest, if the socket was full, directly), directly
/// otherwise (no copy of the data either way).
pub(crate) async fn write_all(stream: &mut TcpStream, data: &Bytes) -> io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    let sent = match queue(stream.as_raw_fd(), data) {
        Some(send) => match send.await {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(e),
        },
        None => 0,
    };
    if sent < data.len() {
        stream.write_all(&data[sent..]).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// A current-thread runtime with batching on, like an edge worker's.
    fn worker() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    fn batching() -> usize {
        BATCH.with(|b| b.borrow().as_ref().map_or(usize::MAX, |b| b.queued.len()))
    }

    #[test]
    fn sends_of_one_round_go_out_together_and_arrive_whole() {
        worker().block_on(async {
            tokio::spawn(start().expect("io_uring available here"));
            let mut writers = Vec::new();
            let mut readers = Vec::new();
            for _ in 0..40 {
                let (w, r) = pair().await;
                writers.push(w);
                readers.push(r);
            }
            let sends = writers.into_iter().enumerate().map(|(n, mut w)| {
                tokio::spawn(async move {
                    for k in 0..3 {
                        write_all(&mut w, &Bytes::from(format!("socket {n} message {k};")))
                            .await
                            .unwrap();
                    }
                    w
                })
            });
            let sends: Vec<_> = sends.collect();
            // Each task queues its first send in the same round: one batch.
            tokio::task::yield_now().await;
            assert_eq!(batching(), 40, "all first sends wait for one flush");
            for send in sends {
                drop(send.await.unwrap());
            }
            assert_eq!(batching(), 0);
            for (n, mut r) in readers.into_iter().enumerate() {
                let mut got = String::new();
                r.read_to_string(&mut got).await.unwrap();
                assert_eq!(
                    got,
                    format!("socket {n} message 0;socket {n} message 1;socket {n} message 2;")
                );
            }
        });
    }

    #[test]
    fn what_a_full_socket_did_not_take_is_written_directly() {
        worker().block_on(async {
            tokio::spawn(start().unwrap());
            let (mut w, mut r) = pair().await;
            let data: Bytes = (0..32u32 << 20)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<_>>()
                .into();
            let expected = data.clone();
            let reading = tokio::spawn(async move {
                let mut got = Vec::new();
                r.read_to_end(&mut got).await.unwrap();
                got
            });
            write_all(&mut w, &data).await.unwrap();
            drop(w);
            assert!(
                reading.await.unwrap() == expected,
                "32 MiB arrive intact and in order"
            );
        });
    }

    #[test]
    fn a_send_dropped_before_the_flush_is_not_sent() {
        worker().block_on(async {
            tokio::spawn(start().unwrap());
            let (mut w, mut r) = pair().await;
            let fd = w.as_raw_fd();
            let dropped = queue(fd, &Bytes::from_static(b"never")).unwrap();
            drop(dropped);
            write_all(&mut w, &Bytes::from_static(b"only this"))
                .await
                .unwrap();
            drop(w);
            let mut got = String::new();
            r.read_to_string(&mut got).await.unwrap();
            assert_eq!(got, "only this");
            let slots = BATCH.with(|b| b.borrow().as_ref().unwrap().slots.len());
            let free = BATCH.with(|b| b.borrow().as_ref().unwrap().free.len());
            assert_eq!(slots, free, "every slot is free again");
        });
    }

    #[test]
    fn errors_are_reported_and_threads_without_a_batch_write_directly() {
        worker().block_on(async {
            // No batch on this thread: a plain write.
            let (mut w, mut r) = pair().await;
            write_all(&mut w, &Bytes::from_static(b"direct")).await.unwrap();
            let mut got = [0; 6];
            r.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"direct");

            tokio::spawn(start().unwrap());
            // The peer is gone: the send fails (connection reset or broken pipe).
            drop(r);
            let mut result = Ok(());
            for _ in 0..10 {
                result = write_all(&mut w, &Bytes::from_static(b"to nobody")).await;
                if result.is_err() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            let error = result.unwrap_err();
            assert!(
                matches!(
                    error.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ),
                "{error}"
            );
        });
    }
}
