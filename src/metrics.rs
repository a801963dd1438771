//! Prometheus metrics of one Trove instance.
//!
//! Each instance has its own registry, so two instances in one process (as in the tests)
//! never mix their counts. Hot-path series (claims, HTTP requests, WebSocket traffic) are
//! recorded as they happen; gauges, and the counters other modules already keep as atomics
//! (Redis errors, fail-open decisions), are sampled when `/metrics` is scraped, so requests
//! pay nothing for them. Labels are bounded: shard index, route template, method, status
//! class, outcome, close reason — never a player id or a zone name.

use std::ops::Deref;
use std::sync::Arc;

use prometheus::core::{Atomic, AtomicF64, AtomicU64, Collector, GenericCounterVec};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// Resolves the 1–50 ms a claim takes, with a tail for the slow ones.
const CLAIM_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The metrics of one instance. Cheap to clone.
#[derive(Clone)]
pub struct Metrics(Arc<Series>);

/// The series recorded as things happen.
pub struct Series {
    registry: Registry,
    /// `trove_claims_total{outcome, shard}`: every claim request that reached the engine or
    /// was refused by the rate limiter.
    pub claims: IntCounterVec,
    /// `trove_claim_duration_seconds{shard}`: the claim statement's round trip, all outcomes.
    pub claim_seconds: HistogramVec,
    /// `trove_synthetic_claims_total{outcome, shard}`: claims in synthetic (fairness probe)
    /// zones, kept apart so the probe never shows up on the real claim dashboards.
    pub synthetic_claims: IntCounterVec,
    /// `trove_http_requests_total{route, method, status_class}`.
    pub http_requests: IntCounterVec,
    /// `trove_http_request_duration_seconds{route, method}`.
    pub http_seconds: HistogramVec,
    /// `trove_ws_messages_sent_total`: frames written to WebSocket clients.
    pub ws_messages_sent: prometheus::IntCounter,
    /// `trove_ws_clients_lagged_total`: times a client's queue overflowed.
    pub ws_lagged: prometheus::IntCounter,
    /// `trove_ws_clients_closed_total{reason}`.
    pub ws_closed: IntCounterVec,
    /// `trove_realtime_listener_reconnects_total{shard}`: ledger tails that lost their
    /// connection and reconnected.
    pub listener_reconnects: IntCounterVec,
}

impl Deref for Metrics {
    type Target = Series;
    fn deref(&self) -> &Series {
        &self.0
    }
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: &[f64]| {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                labels,
            )?;
            registry.register(Box::new(h.clone()))?;
            Ok::<_, prometheus::Error>(h)
        };
        let claims = counter(
            "trove_claims_total",
            "Claim requests by outcome and shard.",
            &["outcome", "shard"],
        )?;
        let claim_seconds = histogram(
            "trove_claim_duration_seconds",
            "Time to run a claim on its shard, in seconds.",
            &["shard"],
            CLAIM_BUCKETS,
        )?;
        let synthetic_claims = counter(
            "trove_synthetic_claims_total",
            "Claim requests in synthetic (fairness probe) zones, by outcome and shard.",
            &["outcome", "shard"],
        )?;
        let http_requests = counter(
            "trove_http_requests_total",
            "HTTP requests by route template, method and status class.",
            &["route", "method", "status_class"],
        )?;
        let http_seconds = histogram(
            "trove_http_request_duration_seconds",
            "HTTP request latency by route template and method, in seconds.",
            &["route", "method"],
            HTTP_BUCKETS,
        )?;
        let ws_messages_sent = counter(
            "trove_ws_messages_sent_total",
            "Messages written to WebSocket clients.",
            &[],
        )?
        .with_label_values(&[] as &[&str]);
        let ws_lagged = counter(
            "trove_ws_clients_lagged_total",
            "Times a WebSocket client's queue overflowed and it was sent `lagged`.",
            &[],
        )?
        .with_label_values(&[] as &[&str]);
        let ws_closed = counter(
            "trove_ws_clients_closed_total",
            "WebSocket connections closed, by reason.",
            &["reason"],
        )?;
        let listener_reconnects = counter(
            "trove_realtime_listener_reconnects_total",
            "Times a shard's ledger tail lost its connection and reconnected.",
            &["shard"],
        )?;
        Ok(Metrics(Arc::new(Series {
            registry,
            claims,
            claim_seconds,
            synthetic_claims,
            http_requests,
            http_seconds,
            ws_messages_sent,
            ws_lagged,
            ws_closed,
            listener_reconnects,
        })))
    }

    /// Counts one claim request; `synthetic` ones (probe zones) only in their own counter.
    pub fn claim(&self, outcome: &str, shard: usize, seconds: Option<f64>, synthetic: bool) {
        let shard = shard.to_string();
        if synthetic {
            self.synthetic_claims
                .with_label_values(&[outcome, &shard])
                .inc();
            return;
        }
        self.claims.with_label_values(&[outcome, &shard]).inc();
        if let Some(s) = seconds {
            self.claim_seconds.with_label_values(&[&shard]).observe(s);
        }
    }

    /// The Prometheus text format of the recorded series plus the `sampled` ones.
    pub fn render(&self, sampled: Sample) -> Result<String, prometheus::Error> {
        let mut families = self.registry.gather();
        families.extend(sampled.families);
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut out = Vec::new();
        TextEncoder::new().encode(&families, &mut out)?;
        String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

/// Series read from the instance's state at scrape time.
#[derive(Default)]
pub struct Sample {
    families: Vec<MetricFamily>,
}

impl Sample {
    /// A gauge with one value per set of label values.
    pub fn gauge(
        &mut self,
        name: &str,
        help: &str,
        labels: &[&str],
        values: Vec<(Vec<String>, f64)>,
    ) -> Result<(), prometheus::Error> {
        let g = GaugeVec::new(Opts::new(name, help), labels)?;
        for (label_values, v) in values {
            let label_values: Vec<&str> = label_values.iter().map(String::as_str).collect();
            g.get_metric_with_label_values(&label_values)?.set(v);
        }
        self.push_nonempty(g.collect());
        Ok(())
    }

    /// Labelled counters whose running totals another module keeps.
    pub fn counters(
        &mut self,
        name: &str,
        help: &str,
        labels: &[&str],
        values: Vec<(Vec<String>, u64)>,
    ) -> Result<(), prometheus::Error> {
        self.labelled::<AtomicU64>(name, help, labels, values)
    }

    /// Labelled counters of seconds (running totals another module keeps).
    pub fn seconds(
        &mut self,
        name: &str,
        help: &str,
        labels: &[&str],
        values: Vec<(Vec<String>, f64)>,
    ) -> Result<(), prometheus::Error> {
        self.labelled::<AtomicF64>(name, help, labels, values)
    }

    fn labelled<P: Atomic>(
        &mut self,
        name: &str,
        help: &str,
        labels: &[&str],
        values: Vec<(Vec<String>, P::T)>,
    ) -> Result<(), prometheus::Error> {
        let c = GenericCounterVec::<P>::new(Opts::new(name, help), labels)?;
        for (label_values, v) in values {
            let label_values: Vec<&str> = label_values.iter().map(String::as_str).collect();
            c.get_metric_with_label_values(&label_values)?.inc_by(v);
        }
        self.push_nonempty(c.collect());
        Ok(())
    }

    /// A family without a series (no replicated shard, say) is left out: the text format
    /// has no way to say it, and the encoder refuses it.
    fn push_nonempty(&mut self, families: Vec<MetricFamily>) {
        self.families
            .extend(families.into_iter().filter(|f| !f.get_metric().is_empty()));
    }

    /// A counter whose running total another module keeps (an atomic that only grows).
    pub fn counter(&mut self, name: &str, help: &str, total: u64) -> Result<(), prometheus::Error> {
        let c = prometheus::IntCounter::with_opts(Opts::new(name, help))?;
        c.inc_by(total);
        self.families.extend(c.collect());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_recorded_and_sampled_series_in_text_format() {
        let m = Metrics::new().expect("metrics");
        m.claim("opened", 1, Some(0.004), false);
        m.claim("zone_exhausted", 0, None, false);
        m.claim("opened", 0, Some(0.004), true);
        let mut s = Sample::default();
        s.gauge(
            "trove_shard_up",
            "Shard up.",
            &["shard"],
            vec![(vec!["0".into()], 1.0)],
        )
        .expect("gauge");
        s.counter("trove_redis_errors_total", "Redis errors.", 3)
            .expect("counter");
        // No replicated shard: families without a series are left out, not an error.
        s.gauge("trove_shard_synchronous", "Sync.", &["shard"], vec![])
            .expect("empty gauge");
        s.counters(
            "trove_shard_degraded_total",
            "Degraded.",
            &["shard"],
            vec![],
        )
        .expect("empty counters");
        let text = m.render(s).expect("render");
        assert!(!text.contains("trove_shard_synchronous"));
        assert!(text.contains("trove_claims_total{outcome=\"opened\",shard=\"1\"} 1"));
        assert!(text.contains("trove_claims_total{outcome=\"zone_exhausted\",shard=\"0\"} 1"));
        // The probe's claim is counted apart: not in trove_claims_total, not in the latency.
        assert!(!text.contains("trove_claims_total{outcome=\"opened\",shard=\"0\"}"));
        assert!(text.contains("trove_synthetic_claims_total{outcome=\"opened\",shard=\"0\"} 1"));
        assert!(!text.contains("trove_claim_duration_seconds_count{shard=\"0\"}"));
        assert!(text.contains("trove_claim_duration_seconds_bucket{shard=\"1\",le=\"0.005\"} 1"));
        assert!(text.contains("trove_claim_duration_seconds_bucket{shard=\"1\",le=\"0.003\"} 0"));
        assert!(text.contains("trove_shard_up{shard=\"0\"} 1"));
        assert!(text.contains("# TYPE trove_redis_errors_total counter"));
        assert!(text.contains("trove_redis_errors_total 3"));
    }
}
