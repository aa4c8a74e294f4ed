//! `GET /health` and `GET /metrics`: reads only (the admin endpoints are `admin`'s).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use whisper_steady::recognizer::{BreakerState, Health, HealthStatus};

use crate::storage::StorageUsage;
use crate::AppState;

/// The health report as JSON, with what storage holds.
pub(crate) fn health_json(h: &Health, st: &StorageUsage) -> Value {
    let breaker = |b: BreakerState| match b {
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
            "rejected_frees_by_kind": {
                "unknown": p.rejected_unknown_frees,
                "size_mismatch": p.rejected_size_mismatch_frees,
                "double": p.rejected_double_frees,
            },
        },
        "storage": {
            "uploads": st.uploads,
            "bytes": st.bytes,
            "max_bytes": st.max_bytes,
            "retention_seconds": st.retention.as_secs_f64(),
            "evicted": st.evicted,
            "evicted_bytes": st.evicted_bytes,
        },
        "cleanup": {
            "trims": h.cleanup.trims,
            "idle_trims": h.cleanup.idle_trims,
            "bytes_released": h.cleanup.bytes_released,
            "idle_trim_seconds": h.cleanup.idle_trim_after.map(|d| d.as_secs_f64()),
        },
        "workers": h.lanes.iter().map(|l| json!({
            "backend": l.backend.as_str(),
            "device": l.device,
            "breaker": l.breaker.map(breaker),
            "consecutive_failures": l.consecutive_failures,
            "states": l.workers,
            "busy": l.busy,
            "idle": l.idle,
            "queued": l.queued,
            "succeeded": l.succeeded,
            "failed": l.failed,
            "process": l.process.as_ref().map(|p| json!({
                "pid": p.pid,
                "state": p.state,
                "starts": p.starts,
                "restarts": p.starts.saturating_sub(1),
                "deaths": p.deaths,
                "recent_deaths": p.recent_deaths,
                "last_cause": p.last_cause,
            })),
        })).collect::<Vec<_>>(),
        "isolation": h.isolation.as_str(),
        "queue": {"depth": h.queue_depth, "reserved": h.queue_reserved, "limit": h.queue_limit},
        "failover": {
            "use_gpu": h.failover.use_gpu,
            "require_gpu": h.failover.require_gpu,
            "fallback_to_cpu": h.failover.fallback_to_cpu,
            "gpu_unavailable": h.failover.gpu_unavailable,
            "unavailable_devices": h.failover.unavailable_devices.iter().map(|d| json!({
                "device": d.device,
                "reason": d.reason,
            })).collect::<Vec<_>>(),
            "breaker": breaker(h.failover.breaker),
            "consecutive_gpu_failures": h.failover.consecutive_gpu_failures,
            "gpu_failures": h.failover.gpu_failures,
            "retried_on_cpu": h.failover.retried_on_cpu,
            "retried_on_other_gpu": h.failover.retried_on_other_gpu,
            "diverted_to_cpu": h.failover.diverted_to_cpu,
            "breaker_trips": h.failover.breaker_trips,
        },
        "requests": {
            "submitted": h.requests.submitted,
            "rejected_overloaded": h.requests.rejected_overloaded,
            "completed": h.requests.completed,
            "failed": h.requests.failed,
            "invalid": h.requests.invalid,
            "deadline_exceeded": h.requests.deadline_exceeded,
            "cancelled": h.requests.cancelled,
        },
    })
}

/// `GET /health`: 200 while serving (`ok` or `degraded`), 503 while shutting down.
pub(crate) async fn health(State(state): State<Arc<AppState>>) -> Response {
    let (status, mut body) = match state.recognizer() {
        Some(recognizer) => {
            let h = recognizer.health();
            let status = if h.status == HealthStatus::ShuttingDown {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            (status, health_json(&h, &state.storage.usage()))
        }
        // Every model unloaded (`model_cache.pin_default` false): the next request loads one.
        None => (
            StatusCode::OK,
            json!({"status": "ok", "note": "no model is loaded: the next request loads its model"}),
        ),
    };
    body["process"] = json!({"resident_bytes": crate::models::resident_bytes()});
    // The report above is the default model's; every model's state besides.
    body["models"] = state
        .models
        .status()
        .into_iter()
        .map(|m| {
            json!({
                "name": m.name,
                "default": m.default,
                "loaded": m.loaded,
                "bytes": m.bytes,
                "requests": m.requests,
                "loads": m.loads,
                "in_flight": m.in_flight,
                "load_seconds": m.load_seconds,
                "idle_seconds": m.idle_seconds,
            })
        })
        .collect();
    (status, Json(body)).into_response()
}

/// `GET /metrics`: Prometheus text.
pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let body = state.metrics.render_with_keys(
        state.recognizer().map(|r| r.health()).as_ref(),
        &state.storage.usage(),
        state.auth.report(),
        crate::metrics::ModelsReport {
            models: state.models.status(),
            resident_bytes: crate::models::resident_bytes(),
        },
    );
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response()
}
