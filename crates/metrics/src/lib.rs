//! ticketd's Prometheus metrics.
//!
//! One process-wide registry ([`metrics`]) holds every family; adapters record into it where the
//! work happens (the HTTP middleware, the InvGate client), and values that live elsewhere (pool
//! use, journal depths, cache counts) are read when `/metrics` is scraped. The domain crate knows
//! nothing of it.

use std::sync::{Arc, Mutex, OnceLock};

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

type Labels<const N: usize> = [(&'static str, String); N];

/// Labels whose values are all known at compile time (an endpoint, an outcome), so recording
/// one allocates nothing: a request records four metrics, and each label value a `String` was
/// one allocation more per request.
type StaticLabels<const N: usize> = [(&'static str, &'static str); N];

/// `route`, `method`, `status` of an answered request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

/// `route`, `method`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    route: String,
    method: &'static str,
}

/// Latency buckets from 1 ms to ~16 s.
fn latency_buckets() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.001, 2.0, 15,
    ))
}

/// Cache counters whose values live elsewhere (atomics of the domain), read at each scrape:
/// `(cache, hits, misses)`.
type CacheSource = Box<dyn Fn() -> Vec<(&'static str, u64, u64)> + Send + Sync>;

/// The collector of cache lookups; its source is replaced when an application is (re)built.
#[derive(Clone, Default)]
struct CacheCounters {
    source: Arc<Mutex<Option<CacheSource>>>,
}

impl std::fmt::Debug for CacheCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheCounters").finish_non_exhaustive()
    }
}

impl prometheus_client::collector::Collector for CacheCounters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let source = self
            .source
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(source) = source.as_ref() else {
            return Ok(());
        };
        let mut metric = encoder.encode_descriptor(
            "cache_lookups",
            "Cache lookups by cache (invgate_user, ticket_meta) and result (hit, miss)",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (cache, hits, misses) in source() {
            for (result, value) in [("hit", hits), ("miss", misses)] {
                let labels: Labels<2> =
                    [("cache", cache.to_owned()), ("result", result.to_owned())];
                let family = metric.encode_family(&labels)?;
                ConstCounter::new(value).encode(family)?;
            }
        }
        Ok(())
    }
}

/// Every metric family ticketd exposes.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    /// `route` (the pattern, e.g. `/api/v1/tickets/{id}`), `method`, `status`.
    pub http_requests: Family<RequestLabels, Counter>,
    /// `route`, `method`.
    pub http_duration: Family<RouteLabels, Histogram>,
    /// `endpoint` (InvGate's, e.g. `incident`), `outcome` (`ok`, `rejected`, `rate_limited`,
    /// `unauthorized`, `failed`, `timeout`, `not_sent`).
    pub invgate_calls: Family<StaticLabels<2>, Counter>,
    /// `endpoint`.
    pub invgate_duration: Family<StaticLabels<1>, Histogram>,
    /// `state`: connections `in_use` and `idle`, callers `waiting`.
    pub db_pool: Family<Labels<1>, Gauge>,
    /// `state` of journal operations: `in_flight`, `in_doubt`, `queued`.
    pub journal_operations: Family<Labels<1>, Gauge>,
    /// Seconds since the oldest operation in doubt began; 0 when none is.
    pub oldest_in_doubt_seconds: Gauge<f64, AtomicU64>,
    /// Records waiting in the local spool.
    pub spool_records: Gauge,
    caches: CacheCounters,
}

impl Metrics {
    fn new() -> Self {
        let http_requests = Family::<RequestLabels, Counter>::default();
        let http_duration =
            Family::<RouteLabels, Histogram>::new_with_constructor(latency_buckets as fn() -> _);
        let invgate_calls = Family::<StaticLabels<2>, Counter>::default();
        let invgate_duration = Family::<StaticLabels<1>, Histogram>::new_with_constructor(
            latency_buckets as fn() -> _,
        );
        let db_pool = Family::<Labels<1>, Gauge>::default();
        let journal_operations = Family::<Labels<1>, Gauge>::default();
        let oldest_in_doubt_seconds = Gauge::<f64, AtomicU64>::default();
        let spool_records = Gauge::default();
        let caches = CacheCounters::default();
        let mut registry = Registry::with_prefix("ticketd");
        registry.register_collector(Box::new(caches.clone()));
        registry.register(
            "http_requests",
            "HTTP requests answered, by route pattern, method and status",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests, by route pattern and method",
            http_duration.clone(),
        );
        registry.register(
            "invgate_calls",
            "Calls to InvGate (each attempt), by endpoint and outcome",
            invgate_calls.clone(),
        );
        registry.register(
            "invgate_call_duration_seconds",
            "Time of calls to InvGate (each attempt), by endpoint",
            invgate_duration.clone(),
        );
        registry.register(
            "db_pool_connections",
            "Database pool: connections in use and idle, and callers waiting for one",
            db_pool.clone(),
        );
        registry.register(
            "journal_operations",
            "Create operations not settled yet, by state",
            journal_operations.clone(),
        );
        registry.register(
            "journal_oldest_in_doubt_seconds",
            "Age of the oldest create operation whose outcome is in doubt (0: none)",
            oldest_in_doubt_seconds.clone(),
        );
        registry.register(
            "spool_records",
            "Ticket records waiting in the local spool for the database",
            spool_records.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            http_requests,
            http_duration,
            invgate_calls,
            invgate_duration,
            db_pool,
            journal_operations,
            oldest_in_doubt_seconds,
            spool_records,
            caches,
        }
    }

    /// Records one answered HTTP request.
    pub fn http_request(&self, route: String, method: &'static str, status: u16, seconds: f64) {
        let duration = RouteLabels {
            route: route.clone(),
            method,
        };
        self.http_requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
        self.http_duration.get_or_create(&duration).observe(seconds);
    }

    /// Records one attempt of an InvGate call.
    pub fn invgate_call(&self, endpoint: &'static str, outcome: &'static str, seconds: f64) {
        self.invgate_calls
            .get_or_create(&[("endpoint", endpoint), ("outcome", outcome)])
            .inc();
        self.invgate_duration
            .get_or_create(&[("endpoint", endpoint)])
            .observe(seconds);
    }

    /// Where cache hits and misses are read at each scrape: `(cache, hits, misses)` per cache.
    /// Replaces the previous source (one application per process serves the metrics).
    pub fn set_cache_source(
        &self,
        source: impl Fn() -> Vec<(&'static str, u64, u64)> + Send + Sync + 'static,
    ) {
        *self
            .caches
            .source
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Box::new(source));
    }

    /// The text exposition format (OpenMetrics text, which Prometheus reads).
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_values_appear_in_the_exposition_with_their_labels() {
        let m = Metrics::new();
        m.http_request("/api/v1/tickets".to_owned(), "POST", 201, 0.012);
        m.invgate_call("incident", "ok", 0.2);
        m.spool_records.set(3);
        m.set_cache_source(|| vec![("invgate_user", 7, 2)]);
        let text = m.render();
        assert!(
            text.contains(
                r#"ticketd_http_requests_total{route="/api/v1/tickets",method="POST",status="201"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"ticketd_invgate_calls_total{endpoint="incident",outcome="ok"} 1"#)
        );
        assert!(text.contains("ticketd_spool_records 3"));
        assert!(
            text.contains(r#"ticketd_cache_lookups_total{cache="invgate_user",result="hit"} 7"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ticketd_cache_lookups_total{cache="invgate_user",result="miss"} 2"#)
        );
        assert!(text.contains("ticketd_http_request_duration_seconds_bucket"));
    }
}
