//! The admin endpoints (an admin key when keys are configured; otherwise loopback addresses
//! only, unless `server.admin_from_any_address`): `POST /admin/trim` returns the CUDA pools'
//! unused memory to the driver; `POST /admin/models/{name}/load` loads a model, or loads it
//! again from its file beside the one serving (a swap: requests in flight finish on the old
//! one); `POST /admin/models/{name}/unload` unloads one once its requests are done.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{Extensions, StatusCode};
use axum::Json;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::AppState;

/// Refuses an admin request from an address that may not make one (403).
fn check_peer(state: &AppState, extensions: &Extensions) -> Result<(), ApiError> {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    // With API keys, the auth guard has asked for an admin key already, from every address.
    if !state.auth.enabled() && !admin_allowed(state.config.server.admin_from_any_address, peer) {
        let message = "the admin endpoints answer loopback addresses only (set \
                       server.admin_from_any_address to open them)";
        return Err(ApiError::new(StatusCode::FORBIDDEN, message));
    }
    Ok(())
}

/// `POST /admin/trim`: returns the CUDA pools' unused memory to the driver
/// ([`Recognizer::trim`](whisper_steady::recognizer::Recognizer::trim)) and answers what was
/// freed. Only from a loopback address unless `server.admin_from_any_address` is set (403
/// otherwise, and when the peer's address is unknown).
pub(crate) async fn trim(
    State(state): State<Arc<AppState>>,
    extensions: Extensions,
) -> Result<Json<Value>, ApiError> {
    check_peer(&state, &extensions)?;
    // Every model's pools (the trim is the process's); counted by a loaded recognizer.
    let recognizer = state.recognizer();
    let report = tokio::task::spawn_blocking(move || match recognizer {
        Some(recognizer) => recognizer.trim(),
        None => whisper_steady::cuda::trim(),
    })
    .await
    .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the trim panicked"))?;
    let note = if !report.cuda_available {
        "this build has no CUDA backend: nothing to trim"
    } else if report.refused_cuda_graphs {
        "refused: this build uses CUDA graphs, which replay pool addresses (set \
         GGML_CUDA_DISABLE_GRAPHS=1 to allow trims)"
    } else if report.pools_failed > 0 {
        "some pools could not wait for their GPU work or give memory back and kept it"
    } else {
        "unused CUDA pool memory returned to the driver after the GPU work queued on it finished"
    };
    Ok(Json(json!({
        "success": true,
        "cuda_available": report.cuda_available,
        "refused_cuda_graphs": report.refused_cuda_graphs,
        "pools": report.pools,
        "bytes_released": report.bytes_released,
        "pools_waited": report.pools_waited,
        "pools_failed": report.pools_failed,
        "note": note,
    })))
}

/// `POST /admin/models/{name}/load`: loads the model, or, when it is loaded, loads it again
/// from its file (replaced on disk, say) beside the one serving, which takes over when ready.
/// → `{"success": true, "model", "reloaded", "load_seconds"}`.
pub(crate) async fn load_model(
    State(state): State<Arc<AppState>>,
    extensions: Extensions,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    check_peer(&state, &extensions)?;
    let Path(name) = name?;
    let model = state.models.find(Some(&name))?;
    let reloaded = state.models.load(&model.name).await?;
    Ok(Json(json!({
        "success": true,
        "model": model.name,
        "reloaded": reloaded,
        "load_seconds": model.load_seconds(),
    })))
}

/// `POST /admin/models/{name}/unload`: unloads the model once its requests are done (409 for
/// the default model). → `{"success": true, "model", "was_loaded"}`.
pub(crate) async fn unload_model(
    State(state): State<Arc<AppState>>,
    extensions: Extensions,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    check_peer(&state, &extensions)?;
    let Path(name) = name?;
    let model = state.models.find(Some(&name))?;
    let was_loaded = state.models.unload_named(&model.name).await?;
    Ok(Json(
        json!({"success": true, "model": model.name, "was_loaded": was_loaded}),
    ))
}

/// Whether an admin request from `peer` (unknown: `None`) is answered.
fn admin_allowed(from_any_address: bool, peer: Option<IpAddr>) -> bool {
    from_any_address || peer.is_some_and(|ip| ip.to_canonical().is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_requests_come_from_loopback_unless_opened() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        for loopback in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            assert!(admin_allowed(false, ip(loopback)), "{loopback}");
        }
        for remote in [
            "10.0.0.5",
            "192.168.1.1",
            "::ffff:10.0.0.5",
            "2001:db8::1",
            "0.0.0.0",
        ] {
            assert!(!admin_allowed(false, ip(remote)), "{remote}");
            assert!(admin_allowed(true, ip(remote)), "{remote}");
        }
        assert!(!admin_allowed(false, None));
    }
}
