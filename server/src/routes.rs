//! The routes: one table of path, `/metrics` label and handlers; the layers every request
//! passes (body limit, auth, metrics, CORS); the web page.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware;
use axum::routing::{delete, get, post, MethodRouter};
use axum::Router;
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer};

use crate::{
    admin, auth, error, health, live, metrics, openai, original, realtime, AppState, Config,
};

/// `GET /`: the web page (one file in the binary, no build step, nothing from elsewhere):
/// upload or drop a file and see the transcript with timestamps; record from the microphone and
/// see live text over `/v1/live`; links to `/health` and `/metrics`.
async fn page() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("page.html"))
}

/// Builds one route's handlers.
type Route = fn() -> MethodRouter<Arc<AppState>>;

/// Every route: its path, its `endpoint` label in `/metrics`, and its handlers.
const ENDPOINTS: &[(&str, &str, Route)] = &[
    ("/", "page", || get(page)),
    ("/health", "health", || get(health::health)),
    ("/metrics", "metrics", || get(health::metrics)),
    ("/api/upload", "upload", || post(original::upload)),
    ("/api/upload/{id}", "delete_upload", || {
        delete(original::delete_upload)
    }),
    ("/api/recognize", "recognize", || post(original::recognize)),
    ("/v1/audio/transcriptions", "transcriptions", || {
        post(openai::transcriptions)
    }),
    ("/v1/audio/translations", "translations", || {
        post(openai::translations)
    }),
    ("/v1/models", "models", || get(openai::models)),
    ("/v1/models/{id}", "models", || get(openai::model)),
    ("/v1/live", "live", || get(live::live)),
    ("/v1/realtime", "realtime", || get(realtime::realtime)),
    ("/admin/trim", "admin_trim", || post(admin::trim)),
    ("/admin/models/{name}/load", "admin_model_load", || {
        post(admin::load_model)
    }),
    ("/admin/models/{name}/unload", "admin_model_unload", || {
        post(admin::unload_model)
    }),
];

/// The routes, with CORS and the body limit (a declared length over it is refused before the
/// body is read; a body without one is cut off there). The pace of bodies and the connection
/// timeouts are the accept loop's ([`serve`]).
pub fn router(state: Arc<AppState>) -> Router {
    let limit = usize::try_from(state.config.server.max_upload_bytes).unwrap_or(usize::MAX);
    let mut app = ENDPOINTS
        .iter()
        .fold(Router::new(), |app, &(path, _, route)| {
            app.route(path, route())
        })
        .fallback(error::not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            error::refuse_declared_overlong_body,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::guard,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            metrics::track,
        ));
    if let Some(cors) = cors_layer(&state.config) {
        app = app.layer(cors);
    }
    app.with_state(state)
}

/// The `endpoint` label of `/metrics` for a route of [`router`]; `None` for none of them.
pub(crate) fn endpoint_label(route: &str) -> Option<&'static str> {
    ENDPOINTS
        .iter()
        .find(|&&(path, _, _)| path == route)
        .map(|&(_, label, _)| label)
}

fn cors_layer(config: &Config) -> Option<CorsLayer> {
    let cors = &config.server.cors;
    let origin = cors.allow_origin.trim();
    if origin.is_empty() {
        return None;
    }
    let origin = if origin == "*" {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origin
                .split(',')
                .filter_map(|o| HeaderValue::from_str(o.trim()).ok()),
        )
    };
    let methods: Vec<Method> = cors
        .allow_methods
        .items()
        .iter()
        .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
        .collect();
    let headers: Vec<HeaderName> = cors
        .allow_headers
        .items()
        .iter()
        .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods(AllowMethods::list(methods))
            .allow_headers(AllowHeaders::list(headers))
            .max_age(Duration::from_secs(600)),
    )
}

#[cfg(test)]
mod tests {
    use super::{endpoint_label, ENDPOINTS};

    #[test]
    fn every_route_has_one_row_and_a_label() {
        for (i, &(path, label, _)) in ENDPOINTS.iter().enumerate() {
            assert!(!label.is_empty(), "{path} has no label");
            assert!(
                ENDPOINTS[i + 1..].iter().all(|&(p, _, _)| p != path),
                "{path} is listed twice"
            );
            assert_eq!(endpoint_label(path), Some(label));
        }
        assert_eq!(endpoint_label("/v1/models/{id}"), Some("models"));
        assert_eq!(endpoint_label("/nowhere"), None);
    }
}
