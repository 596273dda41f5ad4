//! Traffic figures of apps and replicas. Counters are sharded per worker
//! thread (each shard on its own cache lines, updated with relaxed atomics)
//! and summed when read: recording a request takes no lock, allocates
//! nothing and writes no cache line another worker writes.

use crate::routes::{InFlight, Pool};
use easydeploy_core::ports::{TrafficFigures, LATENCY_BUCKETS_MS};
use http::StatusCode;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
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

/// Counters of one app or one replica.
#[derive(Debug)]
pub(crate) struct Traffic {
    shards: Box<[Shard]>,
}

impl Default for Traffic {
    fn default() -> Self {
        Self {
            shards: (0..shard_count()).map(|_| Shard::default()).collect(),
        }
    }
}

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn shard_count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Gives the calling thread its own shard (worker `index`).
pub(crate) fn pin_thread(index: usize) {
    SHARD.with(|s| s.set(index % shard_count()));
}

/// The calling thread's shard; threads not pinned take the next one.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    SHARD.with(|s| {
        if s.get() == usize::MAX {
            s.set(NEXT.fetch_add(1, Relaxed) % shard_count());
        }
        s.get()
    })
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
    fn shard(&self) -> &Shard {
        &self.shards[shard_index() % self.shards.len()]
    }

    fn begin(&self) {
        self.shard().requests.fetch_add(1, Relaxed);
    }

    /// Records a finished request; `count_request`: also count it as received.
    fn end(&self, o: Outcome, count_request: bool) {
        let s = self.shard();
        if count_request {
            s.requests.fetch_add(1, Relaxed);
        }
        s.finished.fetch_add(1, Relaxed);
        if o.bytes_in > 0 {
            s.bytes_in.fetch_add(o.bytes_in, Relaxed);
        }
        if o.bytes_out > 0 {
            s.bytes_out.fetch_add(o.bytes_out, Relaxed);
        }
        if o.status == 0 {
            return;
        }
        if let Some(class) = (o.status / 100).checked_sub(2).filter(|c| *c < 4) {
            s.responses[usize::from(class)].fetch_add(1, Relaxed);
        }
        let bucket = BOUNDS_US.partition_point(|&bound| bound < o.latency_us);
        s.latency[bucket].fetch_add(1, Relaxed);
        s.latency_sum_us.fetch_add(o.latency_us, Relaxed);
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
        let t = Traffic::default();
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
