//! Who may call the server and how much: API keys with per-key limits, admin keys, and, without
//! keys, an optional limit per client address.
//!
//! Keys come from `auth.keys`, `auth.keys_file` (re-read on SIGHUP: [`Auth::reload`]) and the
//! environment variable `RECOGNIZER_API_KEYS`. Each is kept as its sha256 only; a presented key
//! is hashed and compared with every known hash in constant time (the `subtle` crate), so
//! neither the comparison nor the log reveals a key. Limits are token buckets from `governor`
//! (a maintained crate for exactly this: GCRA, lock-free, with the wait until the next cell for
//! `Retry-After`): requests per minute (checked when the request arrives), audio seconds per
//! hour (charged once the audio is decoded, or per utterance on a live connection) and
//! concurrent requests (a semaphore held until the response's body ends, or the live session
//! does).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{ApiKey, AuthConfig};
use crate::error::{ApiError, Style};
use crate::AppState;

/// The environment variable with more keys: a JSON list as `auth.keys`, or comma-separated
/// `name:key` pairs.
pub const KEYS_VARIABLE: &str = "RECOGNIZER_API_KEYS";

/// The WebSocket subprotocol prefix that carries a key, as OpenAI's browser clients send it
/// (browsers cannot set an `Authorization` header on a WebSocket).
pub const KEY_SUBPROTOCOL: &str = "openai-insecure-api-key.";

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Anyone (`/health`, the page).
    Open,
    /// A user key, when keys are configured.
    User,
    /// An admin key, when keys are configured.
    Admin,
}

/// Why a request was refused, for the per-key counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Limit {
    /// `requests_per_minute` (or the per-address limit).
    Requests,
    /// `audio_seconds_per_hour`.
    Audio,
    /// `max_concurrent`.
    Concurrent,
}

impl Limit {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Limit::Requests => "requests_per_minute",
            Limit::Audio => "audio_seconds_per_hour",
            Limit::Concurrent => "max_concurrent",
        }
    }
}

/// One key with its limits.
pub(crate) struct Key {
    pub(crate) name: String,
    digest: [u8; 32],
    admin: bool,
    requests: Option<DefaultDirectRateLimiter>,
    audio: Option<(DefaultDirectRateLimiter, u32)>,
    concurrent: Option<Arc<Semaphore>>,
}

/// What a key has done, by name (kept across reloads), for `/metrics`.
#[derive(Debug, Default, Clone)]
pub(crate) struct KeyUsage {
    pub(crate) requests: u64,
    pub(crate) audio_seconds: f64,
    pub(crate) rejected: HashMap<&'static str, u64>,
}

/// The keys in force and where they come from.
pub(crate) struct Auth {
    config: AuthConfig,
    keys: RwLock<Arc<Vec<Arc<Key>>>>,
    per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    usage: Mutex<HashMap<String, KeyUsage>>,
    /// Requests refused for a missing, unknown or insufficient key, by reason.
    refused: Mutex<HashMap<&'static str, u64>>,
}

/// The caller of a request that passed: its key (none when no keys are configured) and the
/// concurrency slot it holds, which a live session keeps for as long as it runs.
#[derive(Clone)]
pub(crate) struct Caller {
    pub(crate) key: Option<Arc<Key>>,
    /// Held, not read: the slot is free again when the last clone goes.
    pub(crate) _slot: Option<Arc<OwnedSemaphorePermit>>,
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn hex_digest(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn nonzero(n: u32, what: &str, name: &str) -> Result<NonZeroU32, String> {
    NonZeroU32::new(n).ok_or_else(|| format!("key {name:?}: {what} must be at least 1"))
}

impl Key {
    fn build(entry: &ApiKey, admin: bool) -> Result<Key, String> {
        let name = entry.name.trim();
        if name.is_empty() {
            return Err("every key needs a `name`".into());
        }
        let digest = match (&entry.key, &entry.key_sha256) {
            (Some(key), None) if key.len() >= 8 => sha256(key.as_bytes()),
            (Some(_), None) => return Err(format!("key {name:?}: the key is under 8 characters")),
            (None, Some(hex)) => hex_digest(hex)
                .ok_or_else(|| format!("key {name:?}: key_sha256 is not 64 hexadecimal digits"))?,
            _ => {
                return Err(format!(
                    "key {name:?}: give `key` or `key_sha256`, one of them"
                ))
            }
        };
        let requests = entry
            .requests_per_minute
            .map(|n| nonzero(n, "requests_per_minute", name))
            .transpose()?
            .map(|n| RateLimiter::direct(Quota::per_minute(n)));
        let audio = entry
            .audio_seconds_per_hour
            .map(|n| nonzero(n, "audio_seconds_per_hour", name))
            .transpose()?
            .map(|n| (RateLimiter::direct(Quota::per_hour(n)), n.get()));
        let concurrent = entry
            .max_concurrent
            .map(|n| nonzero(n, "max_concurrent", name))
            .transpose()?
            .map(|n| Arc::new(Semaphore::new(n.get() as usize)));
        Ok(Key {
            name: name.to_owned(),
            digest,
            admin,
            requests,
            audio,
            concurrent,
        })
    }
}

/// Keys from `RECOGNIZER_API_KEYS`: a JSON list, or `name:key` pairs separated by commas.
fn keys_from_variable(value: &str) -> Result<Vec<ApiKey>, String> {
    let value = value.trim();
    if value.starts_with('[') {
        return serde_json::from_str(value)
            .map_err(|e| format!("{KEYS_VARIABLE} is not a JSON list of keys: {e}"));
    }
    value
        .split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once(':') {
            Some((name, key)) => Ok(ApiKey {
                name: name.trim().to_owned(),
                key: Some(key.trim().to_owned()),
                ..ApiKey::default()
            }),
            None => Err(format!(
                "{KEYS_VARIABLE}: each entry is name:key (or give a JSON list)"
            )),
        })
        .collect()
}

fn keys_from_file(path: &PathBuf) -> Result<Vec<ApiKey>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read auth.keys_file {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "auth.keys_file {}: not a JSON list of keys: {e}",
            path.display()
        )
    })
}

impl Auth {
    /// Reads every source of keys; the message says what is wrong (never showing a key).
    pub(crate) fn new(config: &AuthConfig) -> Result<Auth, String> {
        let keys = Self::load(config)?;
        let per_address = match (keys.is_empty(), config.per_address_requests_per_minute) {
            (true, Some(n)) => Some(RateLimiter::keyed(Quota::per_minute(nonzero(
                n,
                "per_address_requests_per_minute",
                "auth",
            )?))),
            _ => None,
        };
        Ok(Auth {
            config: config.clone(),
            keys: RwLock::new(Arc::new(keys)),
            per_address,
            usage: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashMap::new()),
        })
    }

    fn load(config: &AuthConfig) -> Result<Vec<Arc<Key>>, String> {
        let mut entries: Vec<(ApiKey, bool)> =
            config.keys.iter().map(|k| (k.clone(), false)).collect();
        if let Some(path) = &config.keys_file {
            entries.extend(keys_from_file(path)?.into_iter().map(|k| (k, false)));
        }
        if let Ok(value) = std::env::var(KEYS_VARIABLE) {
            entries.extend(keys_from_variable(&value)?.into_iter().map(|k| (k, false)));
        }
        entries.extend(config.admin_keys.iter().map(|k| (k.clone(), true)));
        let mut keys: Vec<Arc<Key>> = Vec::with_capacity(entries.len());
        for (entry, admin) in &entries {
            let key = Key::build(entry, *admin)?;
            if keys.iter().any(|k| k.name == key.name) {
                return Err(format!("two keys are named {:?}", key.name));
            }
            if keys.iter().any(|k| bool::from(k.digest.ct_eq(&key.digest))) {
                return Err(format!("key {:?} is the same as another key", key.name));
            }
            keys.push(Arc::new(key));
        }
        Ok(keys)
    }

    /// Reads the keys again (SIGHUP): `auth.keys_file` and the environment. Keys whose entry
    /// is unchanged keep their limits' state. On an error the keys in force stay.
    pub(crate) fn reload(&self) -> Result<usize, String> {
        let fresh = Self::load(&self.config)?;
        let old = self.keys.read().unwrap_or_else(|p| p.into_inner()).clone();
        let merged: Vec<Arc<Key>> = fresh
            .into_iter()
            .map(|key| {
                old.iter()
                    .find(|o| o.name == key.name && o.digest == key.digest && o.admin == key.admin)
                    .cloned()
                    .unwrap_or(key)
            })
            .collect();
        let count = merged.len();
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(merged);
        Ok(count)
    }

    /// Whether any key is configured (then the API needs one).
    pub(crate) fn enabled(&self) -> bool {
        !self
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// The key whose hash matches `presented`'s, compared with every key in constant time.
    fn find(&self, presented: &str) -> Option<Arc<Key>> {
        let digest = sha256(presented.as_bytes());
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner()).clone();
        let mut found = None;
        for key in keys.iter() {
            if bool::from(key.digest.ct_eq(&digest)) {
                found = Some(Arc::clone(key));
            }
        }
        found
    }

    fn count_refused(&self, reason: &'static str) {
        *self
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(reason)
            .or_default() += 1;
    }

    fn with_usage(&self, name: &str, f: impl FnOnce(&mut KeyUsage)) {
        let mut usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        f(usage.entry(name.to_owned()).or_default());
    }

    /// What the keys have done so far, for `/metrics`.
    pub(crate) fn report(&self) -> crate::metrics::KeysReport {
        let usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        let mut keys: Vec<(String, KeyUsage)> =
            usage.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        let refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        let mut refused: Vec<(&'static str, u64)> = refused.iter().map(|(r, n)| (*r, *n)).collect();
        refused.sort();
        crate::metrics::KeysReport { keys, refused }
    }

    /// Charges `seconds` of audio to the caller's key; 429 when its hourly budget is spent.
    pub(crate) fn charge_audio(
        &self,
        caller: Option<&Caller>,
        seconds: f64,
        style: Style,
    ) -> Result<(), ApiError> {
        let Some(key) = caller.and_then(|c| c.key.as_ref()) else {
            return Ok(());
        };
        if let Some((limiter, per_hour)) = &key.audio {
            let cells = NonZeroU32::new(seconds.ceil().max(1.0) as u32).unwrap_or(NonZeroU32::MIN);
            match limiter.check_n(cells) {
                Ok(Ok(())) => {}
                Ok(Err(not_until)) => {
                    self.reject(key, Limit::Audio);
                    let wait = not_until.wait_time_from(DefaultClock::default().now());
                    return Err(too_many(
                        format!(
                            "the key {:?} has used its {per_hour} seconds of audio for this \
                             hour (audio_seconds_per_hour)",
                            key.name
                        ),
                        wait,
                        style,
                    ));
                }
                Err(_) => {
                    self.reject(key, Limit::Audio);
                    return Err(too_many(
                        format!(
                            "{seconds:.0} s of audio is more than the key {:?} may send in an \
                             hour ({per_hour} s, audio_seconds_per_hour)",
                            key.name
                        ),
                        Duration::from_secs(3600),
                        style,
                    ));
                }
            }
        }
        self.with_usage(&key.name, |u| u.audio_seconds += seconds);
        Ok(())
    }

    fn reject(&self, key: &Key, limit: Limit) {
        self.with_usage(&key.name, |u| {
            *u.rejected.entry(limit.as_str()).or_default() += 1
        });
    }
}

/// A 429 with `Retry-After` (whole seconds, at least 1).
fn too_many(message: String, wait: Duration, style: Style) -> ApiError {
    let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, message).style(style);
    e.retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
    e
}

/// What `path` needs.
fn access(path: &str, config: &AuthConfig) -> Access {
    match path {
        "/" | "/health" => Access::Open,
        "/metrics" if config.protect_metrics => Access::Admin,
        "/metrics" => Access::Open,
        p if p.starts_with("/admin/") => Access::Admin,
        _ => Access::User,
    }
}

/// The key a request presents: `Authorization: Bearer KEY`, or on a WebSocket handshake the
/// subprotocol `openai-insecure-api-key.KEY`. Never the query string (it ends up in logs).
fn presented(method: &Method, headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?.trim();
        let (scheme, key) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| key.trim().to_owned());
    }
    if method == Method::GET {
        for value in headers.get_all(header::SEC_WEBSOCKET_PROTOCOL) {
            for protocol in value.to_str().ok()?.split(',') {
                if let Some(key) = protocol.trim().strip_prefix(KEY_SUBPROTOCOL) {
                    return Some(key.to_owned());
                }
            }
        }
    }
    None
}

/// A 401 in the API's shape, with `WWW-Authenticate`.
fn unauthorized(message: &str, style: Style) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message)
        .style(style)
        .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

/// The middleware in front of every route: keys, admin keys, request rate and concurrency.
pub(crate) async fn guard(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let auth = &state.auth;
    let path = request.uri().path().to_owned();
    let style = Style::of_path(&path);
    let need = access(&path, &auth.config);
    if need == Access::Open {
        return next.run(request).await;
    }
    if !auth.enabled() {
        // No keys: the per-address limit, if any; admin routes keep their address rule.
        if let (Some(limiter), Access::User) = (&auth.per_address, need) {
            let peer = request
                .extensions()
                .get::<ConnectInfo<std::net::SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip());
            if let Some(ip) = peer {
                if let Err(not_until) = limiter.check_key(&ip) {
                    auth.count_refused("per_address_rate");
                    let wait = not_until.wait_time_from(DefaultClock::default().now());
                    return too_many(
                        format!(
                            "more than {} requests a minute from this address \
                             (auth.per_address_requests_per_minute)",
                            auth.config.per_address_requests_per_minute.unwrap_or(0)
                        ),
                        wait,
                        style,
                    )
                    .into_response();
                }
            }
        }
        request.extensions_mut().insert(Caller {
            key: None,
            _slot: None,
        });
        return next.run(request).await;
    }
    let Some(presented) = presented(request.method(), request.headers()) else {
        auth.count_refused("missing");
        return unauthorized(
            "this server needs an API key: send `Authorization: Bearer KEY`",
            style,
        );
    };
    let Some(key) = auth.find(&presented) else {
        auth.count_refused("invalid");
        return unauthorized("the API key is not valid", style);
    };
    if need == Access::Admin && !key.admin {
        auth.count_refused("not_admin");
        return ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "the key {:?} is not an admin key (auth.admin_keys)",
                key.name
            ),
        )
        .style(style)
        .into_response();
    }
    if let Some(limiter) = &key.requests {
        if let Err(not_until) = limiter.check() {
            auth.reject(&key, Limit::Requests);
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return too_many(
                format!(
                    "the key {:?} is over its requests_per_minute; retry later",
                    key.name
                ),
                wait,
                style,
            )
            .into_response();
        }
    }
    let slot = match &key.concurrent {
        Some(semaphore) => match Arc::clone(semaphore).try_acquire_owned() {
            Ok(permit) => Some(Arc::new(permit)),
            Err(_) => {
                auth.reject(&key, Limit::Concurrent);
                return too_many(
                    format!(
                        "the key {:?} has its max_concurrent requests running; retry when one \
                         is done",
                        key.name
                    ),
                    Duration::from_secs(1),
                    style,
                )
                .into_response();
            }
        },
        None => None,
    };
    auth.with_usage(&key.name, |u| u.requests += 1);
    request.extensions_mut().insert(Caller {
        key: Some(key),
        _slot: slot.clone(),
    });
    let response = next.run(request).await;
    match slot {
        // The slot is held until the response's body ends (a stream runs past its head).
        Some(slot) => response.map(|body| Body::new(Holding { body, _slot: slot })),
        None => response,
    }
}

/// A response body holding a concurrency slot until it ends.
struct Holding {
    body: Body,
    _slot: Arc<OwnedSemaphorePermit>,
}

impl http_body::Body for Holding {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_the_variable_and_their_checks() {
        let keys = keys_from_variable("alice:sk-alice-123, bob:sk-bob-4567").unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[1].name, "bob");
        assert_eq!(keys[1].key.as_deref(), Some("sk-bob-4567"));
        let keys =
            keys_from_variable(r#"[{"name": "c", "key": "sk-carol-1", "max_concurrent": 2}]"#)
                .unwrap();
        assert_eq!(keys[0].max_concurrent, Some(2));
        assert!(keys_from_variable("just-a-key").is_err());

        let entry = |key: Option<&str>, sha: Option<&str>| ApiKey {
            name: "k".into(),
            key: key.map(str::to_owned),
            key_sha256: sha.map(str::to_owned),
            ..ApiKey::default()
        };
        assert!(Key::build(&entry(Some("short"), None), false).is_err());
        assert!(Key::build(&entry(None, Some("abc")), false).is_err());
        assert!(Key::build(&entry(None, None), false).is_err());
        let hex = "8d969eef6ecad3c29a3a629280e686cf0c3f5d5a86aff3ca12020c923adc6c92";
        let by_hash = Key::build(&entry(None, Some(hex)), false).unwrap();
        assert_eq!(by_hash.digest, sha256(b"123456"));
        // The secret never shows in Debug.
        let shown = format!("{:?}", entry(Some("sk-very-secret"), None));
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn keys_are_read_from_headers_and_subprotocols_only() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "Bearer sk-1234".parse().unwrap());
        assert_eq!(
            presented(&Method::POST, &headers).as_deref(),
            Some("sk-1234")
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            "realtime, openai-insecure-api-key.sk-5678".parse().unwrap(),
        );
        assert_eq!(
            presented(&Method::GET, &headers).as_deref(),
            Some("sk-5678")
        );
        assert_eq!(presented(&Method::POST, &headers), None);
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "Basic eDp5".parse().unwrap());
        assert_eq!(presented(&Method::GET, &headers), None);
    }
}
