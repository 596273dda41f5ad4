//! Upgraded connections (WebSocket and other `Upgrade` protocols): once the
//! backend answered `101`, bytes are copied both ways until either side
//! closes or the tunnel sits idle too long.

use crate::routes::InFlight;
use crate::upstream::Conn;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;

/// Joins the client's upgraded connection to the backend's, in the
/// background. The backend counts as in flight while the tunnel lasts.
pub(crate) fn spawn(on_upgrade: OnUpgrade, conn: Conn, guard: InFlight, idle: Duration) {
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => {
                tracing::debug!(%error, "edge client upgrade failed");
                return;
            }
        };
        let mut client = TokioIo::new(upgraded);
        let Conn { stream, buf, .. } = conn;
        // Bytes the backend sent right after its 101.
        if !buf.is_empty() && client.write_all(&buf).await.is_err() {
            return;
        }
        let start = Instant::now();
        let last = Arc::new(AtomicU64::new(0));
        let mut client = Active::new(client, start, last.clone());
        let mut backend = Active::new(stream, start, last.clone());
        tokio::select! {
            result = tokio::io::copy_bidirectional(&mut client, &mut backend) => {
                if let Err(error) = result {
                    tracing::debug!(%error, "edge tunnel ended with an error");
                }
            }
            () = idle_watch(start, &last, idle) => tracing::debug!("edge tunnel idle, closed"),
        }
        drop(guard);
    });
}

/// Returns once nothing went through for `idle`.
async fn idle_watch(start: Instant, last: &AtomicU64, idle: Duration) {
    loop {
        let since_start = Duration::from_millis(last.load(Relaxed));
        let deadline = start + since_start + idle;
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline).await;
    }
}

/// An IO that records the time of its last transfer.
struct Active<T> {
    io: T,
    start: Instant,
    last: Arc<AtomicU64>,
}

impl<T> Active<T> {
    fn new(io: T, start: Instant, last: Arc<AtomicU64>) -> Self {
        Self { io, start, last }
    }

    fn touch(&self) {
        let millis = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(millis, Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Active<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) {
            this.touch();
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Active<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(_))) {
            this.touch();
        }
        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
