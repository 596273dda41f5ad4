//! The route table: app name → pool of backends, swapped atomically.

use crate::metrics::Traffic;
use arc_swap::ArcSwap;
use easydeploy_core::ports::TrafficFigures;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long the figures of a replica taken out of rotation are kept when
/// nobody reads them.
const RETIRED_FIGURES: Duration = Duration::from_secs(600);

/// One replica address of an app with its live counters.
#[derive(Debug)]
pub(crate) struct Backend {
    pub(crate) addr: SocketAddr,
    pub(crate) in_flight: AtomicUsize,
    pub(crate) healthy: AtomicBool,
    pub(crate) traffic: Traffic,
}

impl Backend {
    fn new(addr: SocketAddr, workers: usize) -> Arc<Self> {
        Arc::new(Self {
            addr,
            in_flight: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
            traffic: Traffic::new(workers),
        })
    }

    fn figures(&self) -> TrafficFigures {
        self.traffic.figures(Some(self.in_flight.load(Relaxed) as u64))
    }

    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Relaxed)
    }

    /// Counts one request on this backend until the returned guard drops.
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Relaxed);
        InFlight(self.clone())
    }
}

/// Decrements its backend's in-flight count when dropped.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Backend>);

impl InFlight {
    pub(crate) fn backend(&self) -> &Backend {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

/// Request counts of one app since it was first given backends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppStats {
    /// Requests routed to the app.
    pub requests: u64,
    /// Responses with a 2xx status.
    pub responses_2xx: u64,
    /// Responses with a 3xx status.
    pub responses_3xx: u64,
    /// Responses with a 4xx status.
    pub responses_4xx: u64,
    /// Responses with a 5xx status (including the proxy's own 502/503/504).
    pub responses_5xx: u64,
}

impl From<&TrafficFigures> for AppStats {
    fn from(f: &TrafficFigures) -> Self {
        let [responses_2xx, responses_3xx, responses_4xx, responses_5xx] = f.responses_by_class;
        Self {
            requests: f.requests,
            responses_2xx,
            responses_3xx,
            responses_4xx,
            responses_5xx,
        }
    }
}

/// The backends of one app and its round-robin cursor.
#[derive(Debug)]
pub(crate) struct Pool {
    pub(crate) backends: Vec<Arc<Backend>>,
    cursor: AtomicUsize,
    /// The app's figures; shared by successive pools of the app.
    pub(crate) traffic: Arc<Traffic>,
}

impl Pool {
    /// All backends, starting at the next round-robin position.
    pub(crate) fn rotation(&self) -> impl Iterator<Item = &Arc<Backend>> {
        let n = self.backends.len();
        let start = if n == 0 {
            0
        } else {
            self.cursor.fetch_add(1, Relaxed) % n
        };
        (0..n).map(move |i| &self.backends[(start + i) % n])
    }
}

type Table = HashMap<String, Arc<Pool>>;

/// A backend taken out of rotation.
#[derive(Debug)]
struct Retired {
    app: String,
    backend: Arc<Backend>,
    since: Instant,
    /// Its figures were read since.
    reported: bool,
}

impl Retired {
    fn new(app: &str, backend: &Arc<Backend>) -> Self {
        Self {
            app: app.to_owned(),
            backend: backend.clone(),
            since: Instant::now(),
            reported: false,
        }
    }

    /// Kept while it drains, and until its last figures are read (or for
    /// [`RETIRED_FIGURES`]).
    fn keep(&self) -> bool {
        self.backend.in_flight.load(Relaxed) > 0 || (!self.reported && self.since.elapsed() < RETIRED_FIGURES)
    }
}

/// App name → pool, read without locks; writers are serialized by a mutex
/// that also keeps backends taken out of rotation while they drain.
#[derive(Debug, Default)]
pub(crate) struct Routes {
    /// Worker threads of the proxy (shards of the traffic counters).
    workers: usize,
    table: ArcSwap<Table>,
    /// Backends no longer routed to, kept so `in_flight` can see them drain
    /// and their last figures can be read.
    retired: Mutex<Vec<Retired>>,
}

impl Routes {
    /// An empty table for a proxy with `workers` worker threads.
    pub(crate) fn new(workers: usize) -> Self {
        Self {
            workers,
            ..Self::default()
        }
    }

    pub(crate) fn pool(&self, app: &str) -> Option<Arc<Pool>> {
        self.table.load().get(app).cloned()
    }

    pub(crate) fn snapshot(&self) -> Arc<Table> {
        self.table.load_full()
    }

    /// The figures of an app.
    pub(crate) fn traffic(&self, app: &str) -> Option<TrafficFigures> {
        self.table.load().get(app).map(|p| p.traffic.figures(None))
    }

    /// The figures of an app's replicas: those routed, then those taken out
    /// of rotation (reported once after they have drained).
    pub(crate) fn traffic_by_replica(&self, app: &str) -> Vec<(SocketAddr, TrafficFigures)> {
        let table = self.table.load();
        let routed = table.get(app).map(|p| p.backends.as_slice()).unwrap_or_default();
        let mut out: Vec<_> = routed.iter().map(|b| (b.addr, b.figures())).collect();
        let mut retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        for r in retired.iter_mut().filter(|r| r.app == app) {
            out.push((r.backend.addr, r.backend.figures()));
            r.reported = true;
        }
        retired.retain(Retired::keep);
        out
    }

    pub(crate) fn set(&self, app: &str, addrs: Vec<SocketAddr>) {
        let mut retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        retired.retain(Retired::keep);
        let current = self.table.load_full();
        let old = current.get(app);
        let mut backends: Vec<Arc<Backend>> = Vec::with_capacity(addrs.len());
        for addr in addrs {
            if backends.iter().any(|b| b.addr == addr) {
                continue;
            }
            let reused = old.and_then(|p| p.backends.iter().find(|b| b.addr == addr).cloned());
            let backend = reused
                .or_else(|| {
                    let i = retired
                        .iter()
                        .position(|r| r.app == app && r.backend.addr == addr)?;
                    Some(retired.swap_remove(i).backend)
                })
                .unwrap_or_else(|| Backend::new(addr, self.workers));
            backends.push(backend);
        }
        if let Some(old) = old {
            let gone = old
                .backends
                .iter()
                .filter(|b| !backends.iter().any(|n| n.addr == b.addr));
            retired.extend(gone.map(|b| Retired::new(app, b)));
        }
        let pool = Pool {
            backends,
            cursor: AtomicUsize::new(0),
            traffic: old.map_or_else(|| Arc::new(Traffic::new(self.workers)), |p| p.traffic.clone()),
        };
        let mut table = Table::clone(&current);
        table.insert(app.to_owned(), Arc::new(pool));
        self.table.store(Arc::new(table));
    }

    pub(crate) fn remove(&self, app: &str) {
        let mut retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        retired.retain(Retired::keep);
        let current = self.table.load_full();
        let Some(old) = current.get(app) else { return };
        retired.extend(old.backends.iter().map(|b| Retired::new(app, b)));
        let mut table = Table::clone(&current);
        table.remove(app);
        self.table.store(Arc::new(table));
    }

    pub(crate) fn in_flight(&self, addr: SocketAddr) -> usize {
        let table = self.table.load();
        let routed = table.values().flat_map(|p| p.backends.iter());
        let retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        routed
            .chain(retired.iter().map(|r| &r.backend))
            .filter(|b| b.addr == addr)
            .map(|b| b.in_flight.load(Relaxed))
            .sum()
    }

    pub(crate) fn is_healthy(&self, addr: SocketAddr) -> bool {
        let table = self.table.load();
        let mut found = table
            .values()
            .flat_map(|p| p.backends.iter())
            .filter(|b| b.addr == addr);
        found.next().is_some_and(|b| b.is_healthy()) && found.all(|b| b.is_healthy())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn set_backends_keeps_counters_of_kept_addresses() {
        let routes = Routes::new(1);
        routes.set("a", vec![addr(1), addr(2), addr(1)]);
        let pool = routes.pool("a").unwrap();
        assert_eq!(pool.backends.len(), 2);
        let _guard = pool.backends[0].begin();
        drop(crate::metrics::Tracker::new(pool.clone(), true));

        routes.set("a", vec![addr(1), addr(3)]);
        assert_eq!(routes.in_flight(addr(1)), 1);
        assert_eq!(routes.traffic("a").unwrap().requests, 1);
        assert!(Arc::ptr_eq(
            &routes.pool("a").unwrap().backends[0],
            &pool.backends[0]
        ));
        assert!(routes.is_healthy(addr(3)));
        assert!(!routes.is_healthy(addr(2)), "unrouted addresses are not healthy");
    }

    #[test]
    fn removed_backends_stay_visible_while_draining() {
        let routes = Routes::new(1);
        routes.set("a", vec![addr(1)]);
        let guard = routes.pool("a").unwrap().backends[0].begin();
        routes.remove("a");
        assert!(routes.pool("a").is_none());
        assert_eq!(routes.in_flight(addr(1)), 1);
        drop(guard);
        assert_eq!(routes.in_flight(addr(1)), 0);
        routes.set("b", vec![addr(2)]);
        assert_eq!(
            routes.retired.lock().unwrap().len(),
            1,
            "kept until its figures are read"
        );
        let replicas = routes.traffic_by_replica("a");
        assert_eq!(replicas.len(), 1);
        assert_eq!(replicas[0].0, addr(1));
        assert!(
            routes.retired.lock().unwrap().is_empty(),
            "read once, then dropped"
        );
        assert!(routes.traffic_by_replica("a").is_empty());
    }

    #[test]
    fn rotation_is_round_robin() {
        let routes = Routes::new(1);
        routes.set("a", vec![addr(1), addr(2), addr(3)]);
        let pool = routes.pool("a").unwrap();
        let firsts: Vec<u16> = (0..4)
            .map(|_| pool.rotation().next().unwrap().addr.port())
            .collect();
        assert_eq!(firsts, [1, 2, 3, 1]);
    }
}
