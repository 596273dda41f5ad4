//! Traffic figures of apps and replicas. Counters are sharded per worker
//! thread (each shard on its own cache lines) and summed when read:
//! recording a request takes no lock, allocates nothing and writes no cache
//! line another worker writes. A worker owns its shard, so it updates it
//! with plain relaxed loads and stores (no locked instruction); any other
//! thread shares one extra shard, updated with atomic additions.

use crate::routes::{InFlight, Pool};
use easydeploy_core::ports::{TrafficFigures, LATENCY_BUCKETS_MS};
use http::StatusCode;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

/// Latency buckets: one per bound, then the unbounded one.
const BUCKETS: usize = LATENCY_BUCKETS_MS.len() + 1;

/// The bucket bounds in microseconds.
const BOUNDS_US: [u64; LATENCY_BUCKETS_MS.len()] = {
    let mut out = [0u64; LATENCY_BUCKETS_MS.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = (LATENCY_BUCKETS_MS[i] * 1000.0) as u64;
        i += 1;
    }
    out
};

/// One thread's counters.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    requests: AtomicU64,
    finished: AtomicU64,
    responses: [AtomicU64; 4],
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    latency_sum_us: AtomicU64,
    latency: [AtomicU64; BUCKETS],
}

/// Counters of one app or one replica: one shard per worker, then the
/// shared one.
#[derive(Debug)]
pub(crate) struct Traffic {
    shards: Box<[Shard]>,
}

thread_local! {
    /// The worker index of this thread (`usize::MAX`: not a worker).
    static WORKER: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// Makes the calling thread worker `index` (0-based, unique in its proxy):
/// the only writer of shard `index` of the proxy's counters.
pub(crate) fn pin_thread(index: usize) {
    WORKER.with(|w| w.set(index));
}

/// Adds `n` to a counter of a shard; `owned`: only this thread writes it.
fn add(counter: &AtomicU64, n: u64, owned: bool) {
    if owned {
        counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
    } else {
        counter.fetch_add(n, Relaxed);
    }
}

/// What one finished request adds to the figures.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    /// 0 when no response was produced (the client went away first).
    status: u16,
    bytes_in: u64,
    bytes_out: u64,
    latency_us: u64,
}

impl Traffic {
    /// Counters for a proxy with `workers` worker threads.
    pub(crate) fn new(workers: usize) -> Self {
        Self {
            shards: (0..=workers).map(|_| Shard::default()).collect(),
        }
    }

    /// The calling thread's shard, and whether it owns it.
    fn shard(&self) -> (&Shard, bool) {
        let shared = self.shards.len() - 1;
        match WORKER.with(Cell::get) {
            i if i < shared => (&self.shards[i], true),
            _ => (&self.shards[shared], false),
        }
    }

    fn begin(&self) {
        let (s, owned) = self.shard();
        add(&s.requests, 1, owned);
    }

    /// Records a finished request; `count_request`: also count it as received.
    fn end(&self, o: Outcome, count_request: bool) {
        let (s, owned) = self.shard();
        if count_request {
            add(&s.requests, 1, owned);
        }
        add(&s.finished, 1, owned);
        if o.bytes_in > 0 {
            add(&s.bytes_in, o.bytes_in, owned);
        }
        if o.bytes_out > 0 {
            add(&s.bytes_out, o.bytes_out, owned);
        }
        if o.status == 0 {
            return;
        }
        if let Some(class) = (o.status / 100).checked_sub(2).filter(|c| *c < 4) {
            add(&s.responses[usize::from(class)], 1, owned);
        }
        let bucket = BOUNDS_US.partition_point(|&bound| bound < o.latency_us);
        add(&s.latency[bucket], 1, owned);
        add(&s.latency_sum_us, o.latency_us, owned);
    }

    /// The sum over all shards. `in_flight`: the count to report, or
    /// `None` for requests received minus requests finished.
    pub(crate) fn figures(&self, in_flight: Option<u64>) -> TrafficFigures {
        let mut f = TrafficFigures {
            latency_buckets: vec![0; BUCKETS],
            ..TrafficFigures::default()
        };
        let (mut finished, mut sum_us) = (0u64, 0u64);
        for s in &self.shards {
            f.requests += s.requests.load(Relaxed);
            finished += s.finished.load(Relaxed);
            for (to, from) in f.responses_by_class.iter_mut().zip(&s.responses) {
                *to += from.load(Relaxed);
            }
            f.bytes_in += s.bytes_in.load(Relaxed);
            f.bytes_out += s.bytes_out.load(Relaxed);
            sum_us += s.latency_sum_us.load(Relaxed);
            for (to, from) in f.latency_buckets.iter_mut().zip(&s.latency) {
                *to += from.load(Relaxed);
            }
        }
        f.in_flight = in_flight.unwrap_or(f.requests.saturating_sub(finished));
        f.latency_sum_ms = sum_us as f64 / 1000.0;
        f
    }
}

/// One request's figures while it is served, recorded on its app (and on
/// the replica that answered, or was last tried) when it ends: when the
/// backend's last body byte was handed on, when the proxy answered by
/// itself, or when the client went away. Latency runs from the request
/// head received to that moment. Also holds the replica's in-flight count.
pub(crate) struct Tracker {
    pub(crate) pool: Arc<Pool>,
    /// `None` when metrics are off or already recorded.
    start: Option<Instant>,
    status: u16,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    replica: Option<InFlight>,
}

impl Tracker {
    /// Starts tracking a request to `pool`'s app (counting it as received).
    pub(crate) fn new(pool: Arc<Pool>, on: bool) -> Self {
        if on {
            pool.traffic.begin();
        }
        Self {
            pool,
            start: on.then(Instant::now),
            status: 0,
            bytes_in: 0,
            bytes_out: 0,
            replica: None,
        }
    }

    /// The replica the request is being sent to.
    pub(crate) fn attempt(&mut self, guard: InFlight) {
        self.replica = Some(guard);
    }

    /// The response's status.
    pub(crate) fn respond(&mut self, status: StatusCode) {
        self.status = status.as_u16();
    }

    /// Records now and hands over the replica's in-flight count (for a
    /// tunnel that outlives the request).
    pub(crate) fn into_guard(mut self) -> Option<InFlight> {
        self.record();
        self.replica.take()
    }

    fn record(&mut self) {
        let Some(start) = self.start.take() else { return };
        let outcome = Outcome {
            status: self.status,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            latency_us: u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
        };
        self.pool.traffic.end(outcome, false);
        if let Some(replica) = &self.replica {
            replica.backend().traffic.end(outcome, true);
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.record();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_sum_shards_and_bucket_latencies() {
        let t = Traffic::new(2);
        t.begin();
        t.begin();
        let ok = Outcome {
            status: 200,
            bytes_in: 3,
            bytes_out: 5,
            latency_us: 1_000,
        };
        t.end(ok, false);
        assert_eq!(t.figures(None).in_flight, 1);
        t.end(
            Outcome {
                status: 503,
                latency_us: 300_000,
                ..ok
            },
            false,
        );
        let f = t.figures(None);
        assert_eq!((f.requests, f.in_flight), (2, 0));
        assert_eq!(f.responses_by_class, [1, 0, 0, 1]);
        assert_eq!((f.bytes_in, f.bytes_out), (6, 10));
        assert_eq!(f.latency_buckets.len(), LATENCY_BUCKETS_MS.len() + 1);
        assert_eq!(f.latency_buckets[0], 1, "1 ms is in the first bucket (≤ 1 ms)");
        assert_eq!(f.latency_buckets[8], 1, "300 ms is in the 250..500 ms bucket");
        assert!((f.latency_sum_ms - 301.0).abs() < 1e-9);
        t.end(
            Outcome {
                status: 0,
                latency_us: u64::MAX,
                ..ok
            },
            true,
        );
        let f = t.figures(Some(7));
        assert_eq!((f.requests, f.in_flight), (3, 7));
        assert_eq!(
            f.latency_buckets.iter().sum::<u64>(),
            2,
            "no response, no latency"
        );
    }
}
