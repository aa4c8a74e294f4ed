//! `/metrics` in the Prometheus text format (version 0.0.4): request counters and latency
//! histograms kept here, the rest read from the recognizer's health report.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use whisper_steady::recognizer::{BreakerState, Health, LaneHealth};

use crate::storage::StorageUsage;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Counters kept by the HTTP layer.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// (endpoint, outcome) → count.
    requests: BTreeMap<(&'static str, &'static str), u64>,
    /// endpoint → latency.
    latency: BTreeMap<&'static str, Histogram>,
}

impl Metrics {
    /// Counts one finished request.
    pub fn record(&self, endpoint: &'static str, outcome: &'static str, elapsed: Duration) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *inner.requests.entry((endpoint, outcome)).or_default() += 1;
        let h = inner.latency.entry(endpoint).or_default();
        let secs = elapsed.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// The whole exposition.
    pub fn render(&self, health: &Health, storage: &StorageUsage) -> String {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        let o = &mut out;

        family(
            o,
            "recognizer_http_requests_total",
            "counter",
            "HTTP requests by endpoint and outcome.",
        );
        for ((endpoint, outcome), n) in &inner.requests {
            sample(
                o,
                "recognizer_http_requests_total",
                &[("endpoint", endpoint), ("outcome", outcome)],
                *n as f64,
            );
        }
        family(
            o,
            "recognizer_http_request_duration_seconds",
            "histogram",
            "HTTP request latency by endpoint.",
        );
        for (endpoint, h) in &inner.latency {
            for (bound, count) in BUCKETS.iter().zip(h.counts) {
                let le = format!("{bound}");
                sample(
                    o,
                    "recognizer_http_request_duration_seconds_bucket",
                    &[("endpoint", endpoint), ("le", &le)],
                    count as f64,
                );
            }
            sample(
                o,
                "recognizer_http_request_duration_seconds_bucket",
                &[("endpoint", endpoint), ("le", "+Inf")],
                h.count as f64,
            );
            sample(
                o,
                "recognizer_http_request_duration_seconds_sum",
                &[("endpoint", endpoint)],
                h.sum,
            );
            sample(
                o,
                "recognizer_http_request_duration_seconds_count",
                &[("endpoint", endpoint)],
                h.count as f64,
            );
        }
        drop(inner);

        let r = &health.requests;
        family(
            o,
            "recognizer_requests_total",
            "counter",
            "Recognition requests by outcome.",
        );
        for (outcome, n) in [
            ("submitted", r.submitted),
            ("rejected_overloaded", r.rejected_overloaded),
            ("completed", r.completed),
            ("failed", r.failed),
            ("deadline_exceeded", r.deadline_exceeded),
            ("cancelled", r.cancelled),
        ] {
            sample(
                o,
                "recognizer_requests_total",
                &[("outcome", outcome)],
                n as f64,
            );
        }
        family(
            o,
            "recognizer_queue_depth",
            "gauge",
            "Requests waiting for a worker.",
        );
        sample(o, "recognizer_queue_depth", &[], health.queue_depth as f64);
        family(
            o,
            "recognizer_queue_limit",
            "gauge",
            "Requests that may wait before 429.",
        );
        sample(o, "recognizer_queue_limit", &[], health.queue_limit as f64);
        // Every lane is labelled by its device: the GPU's index, or "cpu".
        let lanes: Vec<(&LaneHealth, String)> = health
            .lanes
            .iter()
            .map(|l| {
                (
                    l,
                    l.device.map_or_else(|| "cpu".to_owned(), |d| d.to_string()),
                )
            })
            .collect();
        family(
            o,
            "recognizer_workers",
            "gauge",
            "Worker states by backend, device and activity.",
        );
        for (lane, device) in &lanes {
            let backend = lane.backend.as_str();
            for (state, n) in [("busy", lane.busy), ("idle", lane.idle)] {
                sample(
                    o,
                    "recognizer_workers",
                    &[("backend", backend), ("device", device), ("state", state)],
                    n as f64,
                );
            }
        }
        family(
            o,
            "recognizer_lane_queue_depth",
            "gauge",
            "Requests waiting for one lane (device).",
        );
        for (lane, device) in &lanes {
            sample(
                o,
                "recognizer_lane_queue_depth",
                &[("backend", lane.backend.as_str()), ("device", device)],
                lane.queued as f64,
            );
        }
        family(
            o,
            "recognizer_lane_attempts_total",
            "counter",
            "Attempts by lane (device) and outcome (failed: whisper.cpp failed them).",
        );
        for (lane, device) in &lanes {
            for (outcome, n) in [("succeeded", lane.succeeded), ("failed", lane.failed)] {
                sample(
                    o,
                    "recognizer_lane_attempts_total",
                    &[
                        ("backend", lane.backend.as_str()),
                        ("device", device),
                        ("outcome", outcome),
                    ],
                    n as f64,
                );
            }
        }
        if lanes.iter().any(|(lane, _)| lane.breaker.is_some()) {
            family(
                o,
                "recognizer_lane_breaker_open",
                "gauge",
                "1 while this GPU's circuit breaker keeps requests off it.",
            );
        }
        for (lane, device) in &lanes {
            if let Some(breaker) = lane.breaker {
                let open = matches!(breaker, BreakerState::Open { .. });
                sample(
                    o,
                    "recognizer_lane_breaker_open",
                    &[("device", device)],
                    f64::from(u8::from(open)),
                );
            }
        }
        family(
            o,
            "recognizer_device_memory_bytes",
            "gauge",
            "Device memory as ggml reports it.",
        );
        for d in &health.devices {
            sample(
                o,
                "recognizer_device_memory_bytes",
                &[("device", &d.name), ("kind", d.kind), ("memory", "free")],
                d.memory_free as f64,
            );
            sample(
                o,
                "recognizer_device_memory_bytes",
                &[("device", &d.name), ("kind", d.kind), ("memory", "total")],
                d.memory_total as f64,
            );
        }
        let p = &health.pool;
        family(
            o,
            "recognizer_cuda_pool_available",
            "gauge",
            "1 when this build has the CUDA backend.",
        );
        sample(
            o,
            "recognizer_cuda_pool_available",
            &[],
            f64::from(u8::from(p.cuda_available)),
        );
        for (name, help, value) in [
            (
                "recognizer_cuda_pools",
                "CUDA memory pools alive (vmm and legacy).",
                (p.vmm_pools + p.legacy_pools) as f64,
            ),
            (
                "recognizer_cuda_pool_reserved_bytes",
                "Device memory the CUDA pools hold.",
                p.bytes_reserved as f64,
            ),
            (
                "recognizer_cuda_pool_in_use_bytes",
                "Bytes handed out by the CUDA pools.",
                p.bytes_in_use as f64,
            ),
            (
                "recognizer_cuda_pool_peak_in_use_bytes",
                "Highest bytes in use since start.",
                p.peak_bytes_in_use as f64,
            ),
            (
                "recognizer_cuda_pool_waiting_bytes",
                "Bytes in VMM pool holes, freed out of order and reused first.",
                p.bytes_waiting_reclaim as f64,
            ),
            (
                "recognizer_storage_uploads",
                "Uploads held in storage.",
                storage.uploads as f64,
            ),
            (
                "recognizer_storage_bytes",
                "Bytes the uploads hold (storage.max_bytes at most).",
                storage.bytes as f64,
            ),
            (
                "recognizer_storage_max_bytes",
                "The uploads' quota (storage.max_bytes).",
                storage.max_bytes as f64,
            ),
        ] {
            family(o, name, "gauge", help);
            sample(o, name, &[], value);
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
            family(o, name, "counter", help);
            sample(o, name, &[], value as f64);
        }
        family(
            o,
            "recognizer_cuda_pool_rejected_frees_by_kind_total",
            "counter",
            "Rejected frees by kind: unknown pointer, size mismatch, double free.",
        );
        for (kind, value) in [
            ("unknown", p.rejected_unknown_frees),
            ("size_mismatch", p.rejected_size_mismatch_frees),
            ("double", p.rejected_double_frees),
        ] {
            sample(
                o,
                "recognizer_cuda_pool_rejected_frees_by_kind_total",
                &[("kind", kind)],
                value as f64,
            );
        }
        family(
            o,
            "recognizer_breaker_open",
            "gauge",
            "1 while a GPU circuit breaker keeps requests off its GPU (per GPU: recognizer_lane_breaker_open).",
        );
        let open = matches!(f.breaker, BreakerState::Open { .. });
        sample(o, "recognizer_breaker_open", &[], f64::from(u8::from(open)));
        family(
            o,
            "recognizer_gpu_unavailable",
            "gauge",
            "1 when use_gpu is set but the server runs on the CPU.",
        );
        sample(
            o,
            "recognizer_gpu_unavailable",
            &[],
            f64::from(u8::from(f.gpu_unavailable.is_some())),
        );
        family(
            o,
            "recognizer_gpu_devices_unavailable",
            "gauge",
            "Configured GPUs left out because their context could not be created.",
        );
        sample(
            o,
            "recognizer_gpu_devices_unavailable",
            &[],
            f.unavailable_devices.len() as f64,
        );
        family(
            o,
            "recognizer_up",
            "gauge",
            "1 while the server takes requests.",
        );
        let up = health.status != whisper_steady::recognizer::HealthStatus::ShuttingDown;
        sample(o, "recognizer_up", &[], f64::from(u8::from(up)));
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value as the text format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape(v));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}
