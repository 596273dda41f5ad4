//! Coarse deadlines: one tokio timer per connection, moved only when it
//! is set later than the deadline or more than [`SLACK`] before it. Under
//! load a connection's timer is thus re-armed about once a second rather
//! than once per request; a timer that fires early is re-armed for the
//! real deadline.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// How long before its deadline a timer may be left armed.
const SLACK: Duration = Duration::from_secs(1);

/// Waits until `deadline` on `timer`, which is only moved when it is set
/// later than the deadline or more than [`SLACK`] before it (it may
/// then fire early, and is re-armed).
pub(crate) async fn expiry(mut timer: Pin<&mut Sleep>, deadline: Instant) {
    std::future::poll_fn(|cx| poll_expiry(timer.as_mut(), deadline, cx)).await;
}

/// [`expiry`] as a poll: ready once `deadline` has passed.
pub(crate) fn poll_expiry(mut timer: Pin<&mut Sleep>, deadline: Instant, cx: &mut Context<'_>) -> Poll<()> {
    loop {
        let armed = timer.deadline();
        if armed > deadline || armed + SLACK < deadline {
            timer.as_mut().reset(deadline);
        }
        std::task::ready!(timer.as_mut().poll(cx));
        if Instant::now() >= deadline {
            return Poll::Ready(());
        }
        timer.as_mut().reset(deadline);
    }
}
