//! Errors as HTTP responses, all through one type, [`ApiError`]: what a handler refuses, what
//! its extractors reject (a bad query, JSON, multipart body, path or WebSocket handshake) and
//! unknown paths. The original API answers `{"success": false, "error": ...}`, the
//! OpenAI-compatible one `{"error": {"message": ..., "type": ...}}`.

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use whisper_steady::recognizer::{Health, RecognizeError};

use crate::storage::StorageError;
use whisper_steady::audio::DecodeError;

/// Which API's error shape to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Original,
    OpenAi,
}

/// An error response.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
    pub(crate) retry_after: Option<u64>,
    pub(crate) style: Style,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
            style: Style::Original,
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn style(mut self, style: Style) -> Self {
        self.style = style;
        self
    }

    /// Maps a recognizer error; `health` estimates `Retry-After` for overload.
    pub(crate) fn from_recognize(e: RecognizeError, health: impl FnOnce() -> Health) -> Self {
        let status = match &e {
            RecognizeError::Overloaded { .. } => StatusCode::TOO_MANY_REQUESTS,
            RecognizeError::DeadlineExceeded { .. } => StatusCode::GATEWAY_TIMEOUT,
            RecognizeError::InvalidAudio(_) | RecognizeError::InvalidOptions(_) => {
                StatusCode::BAD_REQUEST
            }
            RecognizeError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            // A cancelled request has no client left to answer.
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut err = ApiError::new(status, e.to_string());
        if matches!(e, RecognizeError::Overloaded { .. }) {
            let h = health();
            let workers: usize = h.lanes.iter().map(|l| l.workers).sum::<usize>().max(1);
            err.retry_after = Some((1 + h.queue_depth / workers) as u64);
        }
        err
    }
}

/// An extractor's rejection as an error of the original API's shape (`.style(...)` for the
/// other): its status and its message.
macro_rules! from_rejection {
    ($($rejection:ty),+) => {$(
        impl From<$rejection> for ApiError {
            fn from(e: $rejection) -> Self {
                ApiError::new(e.status(), e.body_text())
            }
        }
    )+};
}

from_rejection!(
    BytesRejection,
    JsonRejection,
    PathRejection,
    QueryRejection,
    WebSocketUpgradeRejection
);

impl From<DecodeError> for ApiError {
    fn from(e: DecodeError) -> Self {
        ApiError::bad_request(e.0)
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        let status = match e {
            StorageError::Forbidden(_) => StatusCode::FORBIDDEN,
            StorageError::BadName(_) | StorageError::TooSmall { .. } => StatusCode::BAD_REQUEST,
            StorageError::NotFound(_) => StatusCode::NOT_FOUND,
            StorageError::QuotaFull { .. } | StorageError::DiskFull(_) => {
                StatusCode::INSUFFICIENT_STORAGE
            }
            StorageError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl ApiError {
    /// The body, in its API's shape (also sent as the last event of a stream that fails).
    pub(crate) fn body(&self) -> serde_json::Value {
        match self.style {
            Style::Original => json!({"success": false, "error": self.message}),
            Style::OpenAi => json!({"error": {
                "message": self.message,
                "type": if self.status.is_client_error() { "invalid_request_error" } else { "server_error" },
                "param": null,
                "code": self.status.as_u16(),
            }}),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Only faults are logged: 503, 504 and 507 are load a client can cause at will (each
        // is counted in /metrics), and logging them would let clients fill the log.
        if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            log::warn!("{} {}", self.status, self.message);
        }
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl Style {
    /// The error shape of the API a path belongs to.
    pub(crate) fn of_path(path: &str) -> Style {
        if path.starts_with("/v1/") {
            Style::OpenAi
        } else {
            Style::Original
        }
    }
}

/// Answers 413 at once to a request whose `Content-Length` is over `server.max_upload_bytes`,
/// before any of its body is read (a body without a declared length is cut off at the limit
/// by the extractors).
pub(crate) async fn refuse_declared_overlong_body(
    axum::extract::State(state): axum::extract::State<std::sync::Arc<crate::AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let limit = state.config.server.max_upload_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(length) if length > limit => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body declares {length} bytes; the limit is {limit} \
                 (server.max_upload_bytes)"
            ),
        )
        .style(Style::of_path(request.uri().path()))
        .into_response(),
        _ => next.run(request).await,
    }
}

/// Unknown paths.
pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint")
}
