//! The route table: app name → pool of backends, swapped atomically.

use crate::metrics::Traffic;
use crate::netns::Netns;
use arc_swap::ArcSwap;
use easydeploy_core::ports::{TrafficFigures, Upstream};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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
    /// The replica's network namespace, when connections are opened from
    /// inside it.
    pub(crate) netns: Option<Arc<Netns>>,
    /// The namespace it was routed through (kept even when it could not
    /// be opened, so it is not tried again on every route update).
    via: Option<PathBuf>,
    pub(crate) in_flight: AtomicUsize,
    pub(crate) healthy: AtomicBool,
    pub(crate) traffic: Traffic,
}

impl Backend {
    fn new(addr: SocketAddr, via: Option<PathBuf>, workers: usize) -> Arc<Self> {
        Arc::new(Self {
            addr,
            netns: via.as_deref().and_then(open_netns),
            via,
            in_flight: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
            traffic: Traffic::new(workers),
        })
    }

    /// Whether it is reached at `upstream` (the same address, through the
    /// same namespace).
    fn reaches(&self, upstream: &Upstream) -> bool {
        self.addr == upstream.addr && self.via == upstream.netns
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
    /// The app's name.
    pub(crate) app: Box<str>,
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

/// App name → pool. Hashed with foldhash: the keys are the platform's own
/// app names (a client's host only looks one up), and SipHash cost about
/// 200 instructions per lookup.
type Table = HashMap<String, Arc<Pool>, foldhash::fast::RandomState>;

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
    /// Open connections from inside the replicas' network namespaces when
    /// they are given (see [`crate::EdgeConfig::dial_in_namespace`]).
    dial_in_namespace: bool,
    table: ArcSwap<Table>,
    /// Backends no longer routed to, kept so `in_flight` can see them drain
    /// and their last figures can be read.
    retired: Mutex<Vec<Retired>>,
}

impl Routes {
    /// An empty table for a proxy with `workers` worker threads.
    pub(crate) fn new(workers: usize, dial_in_namespace: bool) -> Self {
        Self {
            workers,
            dial_in_namespace,
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

    /// Routes `app` to `upstreams`. A backend already routed (or retired)
    /// at the same address through the same namespace keeps its counters;
    /// one whose namespace changed (a restarted container that got its
    /// address back) is a new backend.
    pub(crate) fn set(&self, app: &str, upstreams: Vec<Upstream>) {
        let mut retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        retired.retain(Retired::keep);
        let current = self.table.load_full();
        let old = current.get(app);
        let mut backends: Vec<Arc<Backend>> = Vec::with_capacity(upstreams.len());
        for mut upstream in upstreams {
            if !self.dial_in_namespace {
                upstream.netns = None;
            }
            if backends.iter().any(|b| b.addr == upstream.addr) {
                continue;
            }
            let reaches = |b: &&Arc<Backend>| b.reaches(&upstream);
            let reused = old.and_then(|p| p.backends.iter().find(reaches).cloned());
            let backend = reused
                .or_else(|| {
                    let i = retired
                        .iter()
                        .position(|r| r.app == app && reaches(&&r.backend))?;
                    Some(retired.swap_remove(i).backend)
                })
                .unwrap_or_else(|| Backend::new(upstream.addr, upstream.netns.clone(), self.workers));
            backends.push(backend);
        }
        if let Some(old) = old {
            let gone = old
                .backends
                .iter()
                .filter(|b| !backends.iter().any(|n| Arc::ptr_eq(n, b)));
            retired.extend(gone.map(|b| Retired::new(app, b)));
        }
        let pool = Pool {
            app: app.into(),
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

/// The namespace at `path`, or `None` (logged) when it cannot be opened:
/// the backend is then dialed at its address from the edge's namespace.
fn open_netns(path: &Path) -> Option<Arc<Netns>> {
    Netns::open(path)
        .inspect_err(|e| {
            tracing::warn!(netns = %path.display(), error = %e, "edge cannot open a replica's network namespace; using its bridge address");
        })
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn to(ports: &[u16]) -> Vec<Upstream> {
        ports.iter().map(|&p| addr(p).into()).collect()
    }

    #[test]
    fn a_backend_whose_namespace_changed_is_a_new_one() {
        let via = |path: &str| Upstream {
            addr: addr(1),
            netns: Some(path.into()),
        };
        let routes = Routes::new(1, true);
        routes.set("a", vec![via("/proc/self/ns/net")]);
        let first = routes.pool("a").unwrap().backends[0].clone();
        assert_eq!(
            first.netns.as_ref().unwrap().path(),
            Path::new("/proc/self/ns/net")
        );

        routes.set("a", vec![via("/proc/self/ns/net")]);
        assert!(Arc::ptr_eq(&routes.pool("a").unwrap().backends[0], &first));

        // Restarted in a new namespace with the same address.
        routes.set("a", vec![via("/proc/thread-self/ns/net")]);
        let second = routes.pool("a").unwrap().backends[0].clone();
        assert!(!Arc::ptr_eq(&second, &first));
        assert_eq!(
            second.netns.as_ref().unwrap().path(),
            Path::new("/proc/thread-self/ns/net")
        );
        assert_eq!(routes.retired.lock().unwrap().len(), 1, "the old one drains");

        // A namespace that cannot be opened: dialed at its address, and
        // not tried again while routed.
        routes.set("a", vec![via("/nonexistent/netns")]);
        let third = routes.pool("a").unwrap().backends[0].clone();
        assert!(third.netns.is_none());
        routes.set("a", vec![via("/nonexistent/netns")]);
        assert!(Arc::ptr_eq(&routes.pool("a").unwrap().backends[0], &third));

        let bridge_only = Routes::new(1, false);
        bridge_only.set("a", vec![via("/proc/self/ns/net")]);
        let backend = bridge_only.pool("a").unwrap().backends[0].clone();
        assert!(
            backend.netns.is_none(),
            "namespaces are not entered when turned off"
        );
        bridge_only.set("a", vec![via("/proc/self/ns/net")]);
        assert!(Arc::ptr_eq(&bridge_only.pool("a").unwrap().backends[0], &backend));
    }

    #[test]
    fn set_backends_keeps_counters_of_kept_addresses() {
        let routes = Routes::new(1, true);
        routes.set("a", to(&[1, 2, 1]));
        let pool = routes.pool("a").unwrap();
        assert_eq!(pool.backends.len(), 2);
        let _guard = pool.backends[0].begin();
        drop(crate::metrics::Tracker::new(pool.clone(), true));

        routes.set("a", to(&[1, 3]));
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
        let routes = Routes::new(1, true);
        routes.set("a", to(&[1]));
        let guard = routes.pool("a").unwrap().backends[0].begin();
        routes.remove("a");
        assert!(routes.pool("a").is_none());
        assert_eq!(routes.in_flight(addr(1)), 1);
        drop(guard);
        assert_eq!(routes.in_flight(addr(1)), 0);
        routes.set("b", to(&[2]));
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
        let routes = Routes::new(1, true);
        routes.set("a", to(&[1, 2, 3]));
        let pool = routes.pool("a").unwrap();
        let firsts: Vec<u16> = (0..4)
            .map(|_| pool.rotation().next().unwrap().addr.port())
            .collect();
        assert_eq!(firsts, [1, 2, 3, 1]);
    }
}
