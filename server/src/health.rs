//! `GET /health` and `GET /metrics`: reads only; nothing here touches a device.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use whisper_steady::recognizer::{BreakerState, Health, HealthStatus};

use crate::{AppState, Timer};

/// The health report as JSON.
pub(crate) fn health_json(h: &Health) -> Value {
    let breaker = match h.failover.breaker {
        BreakerState::Closed => json!({"state": "closed"}),
        BreakerState::HalfOpen => json!({"state": "half_open"}),
        BreakerState::Open { remaining } => {
            json!({"state": "open", "remaining_seconds": remaining.as_secs_f64()})
        }
    };
    let p = &h.pool;
    json!({
        "status": h.status.as_str(),
        "model": h.model,
        "version": h.version,
        "whisper_cpp_version": h.whisper_cpp_version,
        "uptime_seconds": h.uptime.as_secs_f64(),
        "backend": h.main_backend.as_str(),
        "devices": h.devices.iter().map(|d| json!({
            "name": d.name,
            "description": d.description,
            "type": d.kind,
            "memory_free_bytes": d.memory_free,
            "memory_total_bytes": d.memory_total,
        })).collect::<Vec<_>>(),
        "pool": {
            "cuda_available": p.cuda_available,
            "vmm_pools": p.vmm_pools,
            "legacy_pools": p.legacy_pools,
            "bytes_reserved": p.bytes_reserved,
            "bytes_in_use": p.bytes_in_use,
            "peak_bytes_in_use": p.peak_bytes_in_use,
            "out_of_order_frees": p.out_of_order_frees,
            "bytes_waiting_reclaim": p.bytes_waiting_reclaim,
            "rejected_frees": p.rejected_frees,
        },
        "workers": h.lanes.iter().map(|l| json!({
            "backend": l.backend.as_str(),
            "states": l.workers,
            "busy": l.busy,
            "idle": l.idle,
            "queued": l.queued,
            "succeeded": l.succeeded,
            "failed": l.failed,
        })).collect::<Vec<_>>(),
        "queue": {"depth": h.queue_depth, "limit": h.queue_limit},
        "failover": {
            "use_gpu": h.failover.use_gpu,
            "fallback_to_cpu": h.failover.fallback_to_cpu,
            "gpu_unavailable": h.failover.gpu_unavailable,
            "breaker": breaker,
            "consecutive_gpu_failures": h.failover.consecutive_gpu_failures,
            "gpu_failures": h.failover.gpu_failures,
            "retried_on_cpu": h.failover.retried_on_cpu,
            "diverted_to_cpu": h.failover.diverted_to_cpu,
            "breaker_trips": h.failover.breaker_trips,
        },
        "requests": {
            "submitted": h.requests.submitted,
            "rejected_overloaded": h.requests.rejected_overloaded,
            "completed": h.requests.completed,
            "failed": h.requests.failed,
            "deadline_exceeded": h.requests.deadline_exceeded,
            "cancelled": h.requests.cancelled,
        },
    })
}

/// `GET /health`: 200 while serving (`ok` or `degraded`), 503 while shutting down.
pub(crate) async fn health(State(state): State<Arc<AppState>>) -> Response {
    let timer = Timer::start("health");
    let h = state.recognizer.health();
    let status = if h.status == HealthStatus::ShuttingDown {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    timer.finish(&state, "ok");
    (status, Json(health_json(&h))).into_response()
}

/// `GET /metrics`: Prometheus text.
pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let timer = Timer::start("metrics");
    let body = state.metrics.render(&state.recognizer.health());
    timer.finish(&state, "ok");
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
