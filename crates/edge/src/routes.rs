//! The route table: app name → pool of backends, swapped atomically.

use arc_swap::ArcSwap;
use http::StatusCode;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

/// One replica address with its live counters.
#[derive(Debug)]
pub(crate) struct Backend {
    pub(crate) addr: SocketAddr,
    pub(crate) in_flight: AtomicUsize,
    pub(crate) healthy: AtomicBool,
}

impl Backend {
    fn new(addr: SocketAddr) -> Arc<Self> {
        Arc::new(Self {
            addr,
            in_flight: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
        })
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

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

/// Request counters of one app; shared by successive pools of the app.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    requests: AtomicU64,
    responses: [AtomicU64; 4],
}

impl Counters {
    pub(crate) fn request(&self) {
        self.requests.fetch_add(1, Relaxed);
    }

    pub(crate) fn response(&self, status: StatusCode) {
        if let Some(class) = (status.as_u16() / 100).checked_sub(2).filter(|c| *c < 4) {
            self.responses[usize::from(class)].fetch_add(1, Relaxed);
        }
    }

    fn snapshot(&self) -> AppStats {
        let class = |i: usize| self.responses[i].load(Relaxed);
        AppStats {
            requests: self.requests.load(Relaxed),
            responses_2xx: class(0),
            responses_3xx: class(1),
            responses_4xx: class(2),
            responses_5xx: class(3),
        }
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

/// The backends of one app and its round-robin cursor.
#[derive(Debug)]
pub(crate) struct Pool {
    pub(crate) backends: Vec<Arc<Backend>>,
    cursor: AtomicUsize,
    pub(crate) counters: Arc<Counters>,
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

/// App name → pool, read without locks; writers are serialized by a mutex
/// that also keeps backends taken out of rotation while they drain.
#[derive(Debug, Default)]
pub(crate) struct Routes {
    table: ArcSwap<Table>,
    /// Backends no longer routed to, kept so `in_flight` can see them drain.
    retired: Mutex<Vec<Arc<Backend>>>,
}

impl Routes {
    pub(crate) fn pool(&self, app: &str) -> Option<Arc<Pool>> {
        self.table.load().get(app).cloned()
    }

    pub(crate) fn snapshot(&self) -> Arc<Table> {
        self.table.load_full()
    }

    pub(crate) fn stats(&self, app: &str) -> Option<AppStats> {
        self.table.load().get(app).map(|p| p.counters.snapshot())
    }

    pub(crate) fn set(&self, app: &str, addrs: Vec<SocketAddr>) {
        let mut retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        retired.retain(|b| b.in_flight.load(Relaxed) > 0);
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
                    let i = retired.iter().position(|b| b.addr == addr)?;
                    Some(retired.swap_remove(i))
                })
                .unwrap_or_else(|| Backend::new(addr));
            backends.push(backend);
        }
        if let Some(old) = old {
            retired.extend(
                old.backends
                    .iter()
                    .filter(|b| !backends.iter().any(|n| n.addr == b.addr))
                    .cloned(),
            );
        }
        let pool = Pool {
            backends,
            cursor: AtomicUsize::new(0),
            counters: old.map(|p| p.counters.clone()).unwrap_or_default(),
        };
        let mut table = Table::clone(&current);
        table.insert(app.to_owned(), Arc::new(pool));
        self.table.store(Arc::new(table));
    }

    pub(crate) fn remove(&self, app: &str) {
        let mut retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        retired.retain(|b| b.in_flight.load(Relaxed) > 0);
        let current = self.table.load_full();
        let Some(old) = current.get(app) else { return };
        retired.extend(old.backends.iter().cloned());
        let mut table = Table::clone(&current);
        table.remove(app);
        self.table.store(Arc::new(table));
    }

    pub(crate) fn in_flight(&self, addr: SocketAddr) -> usize {
        let table = self.table.load();
        let routed = table.values().flat_map(|p| p.backends.iter());
        let retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        routed
            .chain(retired.iter())
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
        let routes = Routes::default();
        routes.set("a", vec![addr(1), addr(2), addr(1)]);
        let pool = routes.pool("a").unwrap();
        assert_eq!(pool.backends.len(), 2);
        let _guard = pool.backends[0].begin();
        pool.counters.request();

        routes.set("a", vec![addr(1), addr(3)]);
        assert_eq!(routes.in_flight(addr(1)), 1);
        assert_eq!(routes.stats("a").unwrap().requests, 1);
        assert!(Arc::ptr_eq(
            &routes.pool("a").unwrap().backends[0],
            &pool.backends[0]
        ));
        assert!(routes.is_healthy(addr(3)));
        assert!(!routes.is_healthy(addr(2)), "unrouted addresses are not healthy");
    }

    #[test]
    fn removed_backends_stay_visible_while_draining() {
        let routes = Routes::default();
        routes.set("a", vec![addr(1)]);
        let guard = routes.pool("a").unwrap().backends[0].begin();
        routes.remove("a");
        assert!(routes.pool("a").is_none());
        assert_eq!(routes.in_flight(addr(1)), 1);
        drop(guard);
        assert_eq!(routes.in_flight(addr(1)), 0);
        routes.set("b", vec![addr(2)]);
        assert!(routes.retired.lock().unwrap().is_empty());
    }

    #[test]
    fn counters_classify_statuses() {
        let c = Counters::default();
        for s in [200, 204, 301, 404, 502, 101] {
            c.response(StatusCode::from_u16(s).unwrap());
        }
        let s = c.snapshot();
        assert_eq!(
            (s.responses_2xx, s.responses_3xx, s.responses_4xx, s.responses_5xx),
            (2, 1, 1, 1)
        );
    }

    #[test]
    fn rotation_is_round_robin() {
        let routes = Routes::default();
        routes.set("a", vec![addr(1), addr(2), addr(3)]);
        let pool = routes.pool("a").unwrap();
        let firsts: Vec<u16> = (0..4)
            .map(|_| pool.rotation().next().unwrap().addr.port())
            .collect();
        assert_eq!(firsts, [1, 2, 3, 1]);
    }
}
