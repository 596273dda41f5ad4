//! Coarse deadlines: one tokio timer per connection, moved only when it
//! is set later than the deadline or more than [`SLACK`] before it. Under
//! load a connection's timer is thus re-armed about once a second rather
//! than once per request; a timer that fires early is re-armed for the
//! real deadline.

use std::pin::Pin;
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// How long before its deadline a timer may be left armed.
const SLACK: Duration = Duration::from_secs(1);

/// Waits until `deadline` on `timer`, which is only moved when it is set
/// later than the deadline or more than [`SLACK`] before it (it may
/// then fire early, and is re-armed).
pub(crate) async fn expiry(mut timer: Pin<&mut Sleep>, deadline: Instant) {
    loop {
        let armed = timer.deadline();
        if armed > deadline || armed + SLACK < deadline {
            timer.as_mut().reset(deadline);
        }
        timer.as_mut().await;
        if Instant::now() >= deadline {
            return;
        }
        timer.as_mut().reset(deadline);
    }
}
