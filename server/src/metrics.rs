//! `/metrics` in the Prometheus text format (version 0.0.4), written by the `prometheus-client`
//! crate. One middleware (`track`, on every route) counts each request and its latency into
//! [`Metrics`]; the recognizer's and storage's figures are read from their reports at each
//! scrape (docs/server.md, "Metrics", lists every family).
//!
//! Names are written here as they are exposed: the library adds `_total` to counters itself,
//! so it is taken off before a counter's name is handed over.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    prometheus_text, DescriptorEncoder, EncodeLabelSet, EncodeMetric,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use whisper_steady::recognizer::{BreakerState, Health, HealthStatus};

use crate::storage::StorageUsage;
use crate::AppState;

/// The `Content-Type` of `/metrics`.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// `recognizer_http_requests_total`'s labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    outcome: &'static str,
}

/// `recognizer_http_request_duration_seconds`'s label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EndpointLabel {
    endpoint: &'static str,
}

/// The HTTP layer's request counters and latency histograms.
#[derive(Debug)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<EndpointLabel, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(|| Histogram::new(BUCKETS)),
        }
    }
}

impl Metrics {
    /// Counts one finished request.
    pub fn record(&self, endpoint: &'static str, outcome: &'static str, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels { endpoint, outcome })
            .inc();
        self.latency
            .get_or_create(&EndpointLabel { endpoint })
            .observe(elapsed.as_secs_f64());
    }

    /// The whole exposition: the HTTP counters, then `health` and `storage`.
    pub fn render(&self, health: &Health, storage: &StorageUsage) -> String {
        self.render_with_keys(
            Some(health),
            storage,
            KeysReport::default(),
            ModelsReport::default(),
        )
    }

    /// [`render`](Self::render) and the per-key families.
    pub(crate) fn render_with_keys(
        &self,
        health: Option<&Health>,
        storage: &StorageUsage,
        keys: KeysReport,
        models: ModelsReport,
    ) -> String {
        let mut registry = Registry::default();
        // The library ends every registered help text with a full stop.
        registry.register(
            counter_name("recognizer_http_requests_total"),
            "HTTP requests by endpoint and outcome",
            self.requests.clone(),
        );
        registry.register(
            "recognizer_http_request_duration_seconds",
            "HTTP request latency by endpoint",
            self.latency.clone(),
        );
        // Without a loaded model there is no recognizer to report on (models are still listed).
        if let Some(health) = health {
            registry.register_collector(Box::new(Report {
                health: health.clone(),
                storage: *storage,
            }));
        }
        registry.register_collector(Box::new(keys));
        registry.register_collector(Box::new(models));
        let mut out = String::new();
        // The encoder fails only when its writer does, and a String's does not.
        prometheus_text::encode(&mut out, &registry).expect("writing to a String");
        out
    }
}

/// The outcome label of a response, by its status.
pub(crate) fn outcome(status: StatusCode) -> &'static str {
    match status {
        StatusCode::TOO_MANY_REQUESTS => "overloaded",
        StatusCode::GATEWAY_TIMEOUT => "timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        StatusCode::INSUFFICIENT_STORAGE => "storage_full",
        s if s.is_client_error() => "client_error",
        s if s.is_server_error() => "server_error",
        // 2xx, and 101 for a WebSocket upgrade
        _ => "ok",
    }
}

/// The middleware that records every routed request: its endpoint label (from the matched
/// route, [`crate::endpoint_label`]), its outcome (from the status) and the time until the
/// response began. Streamed responses (Server-Sent Events, a WebSocket) count when they
/// start. Unknown paths (the fallback) are not counted.
pub(crate) async fn track(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|route| crate::endpoint_label(route.as_str()));
    let started = Instant::now();
    let response = next.run(request).await;
    if let Some(endpoint) = endpoint {
        state
            .metrics
            .record(endpoint, outcome(response.status()), started.elapsed());
    }
    response
}

/// A counter's name as the library takes it: without `_total`, which it adds.
fn counter_name(exposed: &str) -> &str {
    exposed
        .strip_suffix("_total")
        .expect("a counter's name ends with _total")
}

/// One family with its samples, left out when it has none (as the library does).
fn family<M: EncodeMetric, L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, M)>,
) -> std::fmt::Result {
    let mut samples = samples.into_iter().peekable();
    let Some((_, first)) = samples.peek() else {
        return Ok(());
    };
    let kind = first.metric_type();
    let name = if kind == MetricType::Counter {
        counter_name(name)
    } else {
        name
    };
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, sample) in samples {
        sample.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A gauge without labels.
fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> std::fmt::Result {
    family(encoder, name, help, [(NO_LABELS, ConstGauge::new(value))])
}

/// A counter without labels.
fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> std::fmt::Result {
    family(encoder, name, help, [(NO_LABELS, ConstCounter::new(value))])
}

/// A counter family with one label, a sample per value of it.
fn counters_by<const N: usize>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    samples: [(&str, u64); N],
) -> std::fmt::Result {
    family(
        encoder,
        name,
        help,
        samples.map(|(value, n)| ([(label, value)], ConstCounter::new(n))),
    )
}

/// Every model's state and the process's resident memory, for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct ModelsReport {
    pub(crate) models: Vec<crate::models::ModelStatus>,
    pub(crate) resident_bytes: Option<u64>,
}

impl Collector for ModelsReport {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let o = &mut encoder;
        let by_model = |value: fn(&crate::models::ModelStatus) -> u64| {
            self.models
                .iter()
                .map(move |m| ([("model", m.name.as_str())], ConstGauge::new(value(m))))
        };
        family(
            o,
            "recognizer_model_loaded",
            "1 while the model is loaded.",
            by_model(|m| u64::from(m.loaded)),
        )?;
        family(
            o,
            "recognizer_model_bytes",
            "The size of the model's file.",
            by_model(|m| m.bytes),
        )?;
        family(
            o,
            "recognizer_model_in_flight",
            "Requests and sessions using the model now.",
            by_model(|m| m.in_flight as u64),
        )?;
        family(
            o,
            "recognizer_model_requests_total",
            "Requests for the model.",
            self.models
                .iter()
                .map(|m| ([("model", m.name.as_str())], ConstCounter::new(m.requests))),
        )?;
        family(
            o,
            "recognizer_model_load_seconds",
            "How long the model's last load took.",
            self.models.iter().filter_map(|m| {
                Some((
                    [("model", m.name.as_str())],
                    ConstGauge::new(m.load_seconds?),
                ))
            }),
        )?;
        family(
            o,
            "recognizer_model_idle_seconds",
            "Seconds since the model was last used.",
            self.models.iter().map(|m| {
                (
                    [("model", m.name.as_str())],
                    ConstGauge::new(m.idle_seconds),
                )
            }),
        )?;
        if let Some(bytes) = self.resident_bytes {
            gauge(
                o,
                "recognizer_process_resident_bytes",
                "The server process's resident memory.",
                bytes,
            )?;
        }
        Ok(())
    }
}

/// What the API keys did, for `/metrics` (empty without keys).
#[derive(Debug, Default)]
pub(crate) struct KeysReport {
    /// By key name.
    pub(crate) keys: Vec<(String, crate::auth::KeyUsage)>,
    /// Requests refused before a key was known, by reason.
    pub(crate) refused: Vec<(&'static str, u64)>,
}

impl Collector for KeysReport {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let o = &mut encoder;
        family(
            o,
            "recognizer_api_key_requests_total",
            "Requests let through, by API key.",
            self.keys
                .iter()
                .map(|(key, u)| ([("key", key.as_str())], ConstCounter::new(u.requests))),
        )?;
        family(
            o,
            "recognizer_api_key_audio_seconds_total",
            "Seconds of audio charged, by API key.",
            self.keys
                .iter()
                .map(|(key, u)| ([("key", key.as_str())], ConstCounter::new(u.audio_seconds))),
        )?;
        family(
            o,
            "recognizer_api_key_rejected_total",
            "Requests refused (429) by an API key's limit.",
            self.keys.iter().flat_map(|(key, u)| {
                let mut limits: Vec<_> = u.rejected.iter().collect();
                limits.sort();
                limits.into_iter().map(move |(limit, n)| {
                    (
                        [("key", key.as_str()), ("limit", *limit)],
                        ConstCounter::new(*n),
                    )
                })
            }),
        )?;
        family(
            o,
            "recognizer_auth_refused_total",
            "Requests refused before a key's limits: missing or invalid key (401), a user key \
             on an admin endpoint (403), the per-address limit (429).",
            self.refused
                .iter()
                .map(|(reason, n)| ([("reason", *reason)], ConstCounter::new(*n))),
        )
    }
}

/// The empty label set.
const NO_LABELS: [(&str, &str); 0] = [];

/// What the recognizer and storage report at one scrape.
#[derive(Debug)]
struct Report {
    health: Health,
    storage: StorageUsage,
}

impl Collector for Report {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let (health, storage) = (&self.health, &self.storage);
        let o = &mut encoder;
        let r = &health.requests;
        counters_by(
            o,
            "recognizer_requests_total",
            "Recognition requests by outcome.",
            "outcome",
            [
                ("submitted", r.submitted),
                ("rejected_overloaded", r.rejected_overloaded),
                ("completed", r.completed),
                ("failed", r.failed),
                ("invalid", r.invalid),
                ("deadline_exceeded", r.deadline_exceeded),
                ("cancelled", r.cancelled),
            ],
        )?;
        gauge(
            o,
            "recognizer_queue_depth",
            "Requests waiting for a worker.",
            health.queue_depth as u64,
        )?;
        gauge(
            o,
            "recognizer_queue_reserved",
            "Places in the queue held by uploads being decoded (they count against the limit).",
            health.queue_reserved as u64,
        )?;
        gauge(
            o,
            "recognizer_queue_limit",
            "Requests that may wait before 429.",
            health.queue_limit as u64,
        )?;
        // Every lane is labelled by its device: the GPU's index, or "cpu".
        let lanes: Vec<_> = health
            .lanes
            .iter()
            .map(|l| {
                let device = l.device.map_or_else(|| "cpu".to_owned(), |d| d.to_string());
                (l, l.backend.as_str(), device)
            })
            .collect();
        family(
            o,
            "recognizer_workers",
            "Worker states by backend, device and activity.",
            lanes.iter().flat_map(|(lane, backend, device)| {
                [("busy", lane.busy), ("idle", lane.idle)].map(|(state, n)| {
                    (
                        [
                            ("backend", *backend),
                            ("device", device.as_str()),
                            ("state", state),
                        ],
                        ConstGauge::new(n as u64),
                    )
                })
            }),
        )?;
        family(
            o,
            "recognizer_lane_queue_depth",
            "Requests waiting for one lane (device).",
            lanes.iter().map(|(lane, backend, device)| {
                (
                    [("backend", *backend), ("device", device.as_str())],
                    ConstGauge::new(lane.queued as u64),
                )
            }),
        )?;
        family(
            o,
            "recognizer_lane_attempts_total",
            "Attempts by lane (device) and outcome (failed: whisper.cpp failed them).",
            lanes.iter().flat_map(|(lane, backend, device)| {
                [("succeeded", lane.succeeded), ("failed", lane.failed)].map(|(outcome, n)| {
                    (
                        [
                            ("backend", *backend),
                            ("device", device.as_str()),
                            ("outcome", outcome),
                        ],
                        ConstCounter::new(n),
                    )
                })
            }),
        )?;
        // Only isolated lanes have a worker process: the families are left out without one.
        family(
            o,
            "recognizer_worker_process_up",
            "1 while this lane's worker process runs (isolation: process).",
            lanes.iter().filter_map(|(lane, backend, device)| {
                let p = lane.process.as_ref()?;
                Some((
                    [("backend", *backend), ("device", device.as_str())],
                    ConstGauge::new(u64::from(p.state == "running")),
                ))
            }),
        )?;
        family(
            o,
            "recognizer_worker_process_deaths_total",
            "Times this lane's worker process died (killed, aborted, crashed) and was restarted.",
            lanes.iter().filter_map(|(lane, backend, device)| {
                let p = lane.process.as_ref()?;
                Some((
                    [("backend", *backend), ("device", device.as_str())],
                    ConstCounter::new(p.deaths),
                ))
            }),
        )?;
        // Only GPU lanes have a breaker: the family is left out without one.
        family(
            o,
            "recognizer_lane_breaker_open",
            "1 while this GPU's circuit breaker keeps requests off it.",
            lanes.iter().filter_map(|(lane, _, device)| {
                let open = matches!(lane.breaker?, BreakerState::Open { .. });
                Some((
                    [("device", device.as_str())],
                    ConstGauge::new(u64::from(open)),
                ))
            }),
        )?;
        family(
            o,
            "recognizer_device_memory_bytes",
            "Device memory as ggml reports it.",
            health.devices.iter().flat_map(|d| {
                [("free", d.memory_free), ("total", d.memory_total)].map(|(memory, bytes)| {
                    (
                        [
                            ("device", d.name.as_str()),
                            ("kind", d.kind),
                            ("memory", memory),
                        ],
                        ConstGauge::new(bytes),
                    )
                })
            }),
        )?;
        let p = &health.pool;
        for (name, help, value) in [
            (
                "recognizer_cuda_pool_available",
                "1 when this build has the CUDA backend.",
                u64::from(p.cuda_available),
            ),
            (
                "recognizer_cuda_pools",
                "CUDA memory pools alive (vmm and legacy).",
                p.vmm_pools + p.legacy_pools,
            ),
            (
                "recognizer_cuda_pool_reserved_bytes",
                "Device memory the CUDA pools hold.",
                p.bytes_reserved,
            ),
            (
                "recognizer_cuda_pool_in_use_bytes",
                "Bytes handed out by the CUDA pools.",
                p.bytes_in_use,
            ),
            (
                "recognizer_cuda_pool_peak_in_use_bytes",
                "Highest bytes in use since start.",
                p.peak_bytes_in_use,
            ),
            (
                "recognizer_cuda_pool_waiting_bytes",
                "Bytes in VMM pool holes, freed out of order and reused first.",
                p.bytes_waiting_reclaim,
            ),
            (
                "recognizer_storage_uploads",
                "Uploads held in storage.",
                storage.uploads,
            ),
            (
                "recognizer_storage_bytes",
                "Bytes the uploads hold (storage.max_bytes at most).",
                storage.bytes,
            ),
            (
                "recognizer_storage_max_bytes",
                "The uploads' quota (storage.max_bytes).",
                storage.max_bytes,
            ),
        ] {
            gauge(o, name, help, value)?;
        }
        let f = &health.failover;
        for (name, help, value) in [
            (
                "recognizer_cuda_pool_out_of_order_frees_total",
                "Frees not on top of a VMM pool's stack (shared state).",
                p.out_of_order_frees,
            ),
            (
                "recognizer_cuda_pool_rejected_frees_total",
                "Frees of unknown or already freed blocks.",
                p.rejected_frees,
            ),
            (
                "recognizer_cuda_pool_trims_total",
                "Trims run (by hand or after idle time).",
                health.cleanup.trims,
            ),
            (
                "recognizer_cuda_pool_trimmed_bytes_total",
                "Device memory the trims returned to the driver.",
                health.cleanup.bytes_released,
            ),
            (
                "recognizer_gpu_failures_total",
                "GPU attempts that failed.",
                f.gpu_failures,
            ),
            (
                "recognizer_failovers_total",
                "Requests retried on the CPU after a GPU failure.",
                f.retried_on_cpu,
            ),
            (
                "recognizer_retried_on_other_gpu_total",
                "Requests retried on another GPU after a failure on one.",
                f.retried_on_other_gpu,
            ),
            (
                "recognizer_diverted_to_cpu_total",
                "Requests sent to the CPU while every GPU's breaker was open.",
                f.diverted_to_cpu,
            ),
            (
                "recognizer_breaker_trips_total",
                "Times a GPU circuit breaker opened (all GPUs).",
                f.breaker_trips,
            ),
            (
                "recognizer_storage_evicted_total",
                "Uploads deleted because they expired.",
                storage.evicted,
            ),
        ] {
            counter(o, name, help, value)?;
        }
        counters_by(
            o,
            "recognizer_cuda_pool_rejected_frees_by_kind_total",
            "Rejected frees by kind: unknown pointer, size mismatch, double free.",
            "kind",
            [
                ("unknown", p.rejected_unknown_frees),
                ("size_mismatch", p.rejected_size_mismatch_frees),
                ("double", p.rejected_double_frees),
            ],
        )?;
        gauge(
            o,
            "recognizer_breaker_open",
            "1 while a GPU circuit breaker keeps requests off its GPU (per GPU: recognizer_lane_breaker_open).",
            u64::from(matches!(f.breaker, BreakerState::Open { .. })),
        )?;
        gauge(
            o,
            "recognizer_gpu_unavailable",
            "1 when use_gpu is set but the server runs on the CPU.",
            u64::from(f.gpu_unavailable.is_some()),
        )?;
        gauge(
            o,
            "recognizer_gpu_devices_unavailable",
            "Configured GPUs left out because their context could not be created.",
            f.unavailable_devices.len() as u64,
        )?;
        gauge(
            o,
            "recognizer_up",
            "1 while the server takes requests.",
            u64::from(health.status != HealthStatus::ShuttingDown),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_the_status() {
        for (status, label) in [
            (StatusCode::OK, "ok"),
            (StatusCode::SWITCHING_PROTOCOLS, "ok"),
            (StatusCode::BAD_REQUEST, "client_error"),
            (StatusCode::NOT_FOUND, "client_error"),
            (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            (StatusCode::TOO_MANY_REQUESTS, "overloaded"),
            (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            (StatusCode::INSUFFICIENT_STORAGE, "storage_full"),
        ] {
            assert_eq!(outcome(status), label, "{status}");
        }
    }

    #[test]
    fn counter_names_are_handed_over_without_total() {
        assert_eq!(
            counter_name("recognizer_http_requests_total"),
            "recognizer_http_requests"
        );
    }
}
