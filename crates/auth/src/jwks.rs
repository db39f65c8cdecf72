//! Keys published by an identity provider as a JWKS: fetched once at start, kept for a TTL,
//! refetched early when a token names an unknown `kid` (key rotation) but at most once per
//! interval, and kept as they were when a fetch fails.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jsonwebtoken::jwk::Jwk;
use serde_json::Value;

use crate::keys::VerifyingKey;

/// A JWKS larger than this is not one any provider publishes.
const MAX_JWKS_BYTES: usize = 512 * 1024;

/// Where a JWKS comes from: the port, so the cache can be tested without a network.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait JwksSource: Send + Sync + 'static {
    /// Fetches the current key set (the raw JSON document).
    async fn fetch(&self) -> anyhow::Result<Value>;
}

/// Fetches a JWKS over HTTPS (or plain HTTP to a loopback address, for tests and sidecars).
#[derive(Debug)]
pub struct HttpJwksSource {
    client: reqwest::Client,
    url: reqwest::Url,
}

impl HttpJwksSource {
    /// Checks a JWKS URL without building anything (for configuration checks).
    ///
    /// # Errors
    /// When the URL is not `https://` (or `http://` to a loopback host) or holds credentials.
    pub fn check_url(url: &str) -> anyhow::Result<reqwest::Url> {
        let url = reqwest::Url::parse(url)?;
        let host = url.host_str().unwrap_or_default();
        let loopback = host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !(url.scheme() == "https" || (url.scheme() == "http" && loopback)) {
            anyhow::bail!("must be an https:// URL (http:// only to a loopback address)");
        }
        if !url.username().is_empty() || url.password().is_some() {
            anyhow::bail!("must not hold credentials");
        }
        Ok(url)
    }

    /// # Errors
    /// When the URL is not `https://` (or `http://` to a loopback host) or the client cannot be
    /// built.
    pub fn new(url: &str, timeout: Duration) -> anyhow::Result<Self> {
        let url = Self::check_url(url)?;
        // reqwest is built without a default TLS provider (no C build); ring is the one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .user_agent(concat!("ticketd/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { client, url })
    }
}

#[async_trait]
impl JwksSource for HttpJwksSource {
    async fn fetch(&self) -> anyhow::Result<Value> {
        let mut response = self
            .client
            .get(self.url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await?;
        if !response.status().is_success() {
            anyhow::bail!("the JWKS URL answered {}", response.status());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                anyhow::bail!("the JWKS is larger than {MAX_JWKS_BYTES} bytes");
            }
            body.extend_from_slice(&chunk);
        }
        Ok(serde_json::from_slice(&body)?)
    }
}

/// How long keys are kept and how often they may be refetched.
#[derive(Debug, Clone, Copy)]
pub struct JwksPolicy {
    /// Keys older than this are refetched before use.
    pub ttl: Duration,
    /// Fetches (for an unknown `kid` or after a failure) are at least this far apart, so tokens
    /// with made-up `kid`s cannot make ticketd hammer the provider.
    pub min_refetch_interval: Duration,
}

impl Default for JwksPolicy {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(300),
            min_refetch_interval: Duration::from_secs(30),
        }
    }
}

#[derive(Default)]
struct State {
    keys: Arc<Vec<VerifyingKey>>,
    fetched_at: Option<Instant>,
    attempted_at: Option<Instant>,
}

/// The cached key set of one JWKS URL.
pub struct JwksCache {
    source: Arc<dyn JwksSource>,
    policy: JwksPolicy,
    state: RwLock<State>,
    /// One fetch at a time; the others wait and then use its result.
    fetching: tokio::sync::Mutex<()>,
    /// A background refresh is under way.
    refreshing: AtomicBool,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl JwksCache {
    #[must_use]
    pub fn new(source: Arc<dyn JwksSource>, policy: JwksPolicy) -> Self {
        Self {
            source,
            policy,
            state: RwLock::new(State::default()),
            fetching: tokio::sync::Mutex::new(()),
            refreshing: AtomicBool::new(false),
        }
    }

    fn snapshot(&self) -> (Arc<Vec<VerifyingKey>>, Option<Instant>, Option<Instant>) {
        let state = self
            .state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (state.keys.clone(), state.fetched_at, state.attempted_at)
    }

    fn may_fetch(&self, attempted_at: Option<Instant>) -> bool {
        attempted_at.is_none_or(|at| at.elapsed() >= self.policy.min_refetch_interval)
    }

    /// The current keys. Keys older than the TTL are refetched in the background while the
    /// current ones keep serving, so no request waits for the provider; only with no keys at
    /// all does the caller wait for the fetch.
    pub async fn keys(self: &Arc<Self>) -> Arc<Vec<VerifyingKey>> {
        let (keys, fetched_at, attempted_at) = self.snapshot();
        let expired = fetched_at.is_none_or(|at| at.elapsed() >= self.policy.ttl);
        if !expired || !self.may_fetch(attempted_at) {
            return keys;
        }
        if keys.is_empty() {
            return self.refresh(attempted_at).await;
        }
        if !self.refreshing.swap(true, Ordering::AcqRel) {
            let cache = self.clone();
            tokio::spawn(async move {
                cache.refresh(attempted_at).await;
                cache.refreshing.store(false, Ordering::Release);
            });
        }
        keys
    }

    /// The keys after a token named a `kid` none of them has: refetched if allowed by now.
    pub async fn keys_after_miss(&self, kid: &str) -> Arc<Vec<VerifyingKey>> {
        let (keys, _, attempted_at) = self.snapshot();
        if keys.iter().any(|k| k.kid() == Some(kid)) || !self.may_fetch(attempted_at) {
            return keys;
        }
        // Debug formatting: the kid is the caller's text, and must not forge log lines.
        tracing::info!(jwt.kid = ?kid, "a token names an unknown key id; refetching the JWKS");
        self.refresh(attempted_at).await
    }

    /// Fetches now (start-up). Returns whether keys are available.
    pub async fn warm_up(&self) -> bool {
        let (_, _, attempted_at) = self.snapshot();
        !self.refresh(attempted_at).await.is_empty()
    }

    async fn refresh(&self, seen_attempt: Option<Instant>) -> Arc<Vec<VerifyingKey>> {
        let _guard = self.fetching.lock().await;
        let (keys, _, attempted_at) = self.snapshot();
        if attempted_at != seen_attempt {
            // Another request fetched while this one waited: use its result.
            return keys;
        }
        let now = Instant::now();
        let fetched = self.source.fetch().await.and_then(|doc| parse_jwks(&doc));
        let mut state = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.attempted_at = Some(now);
        match fetched {
            Ok(fresh) => {
                tracing::info!(jwks.keys = fresh.len(), "JWKS fetched");
                state.keys = Arc::new(fresh);
                state.fetched_at = Some(now);
            }
            Err(err) => {
                tracing::warn!(error = %err, jwks.kept = state.keys.len(), "the JWKS cannot be fetched; keeping the last good keys");
            }
        }
        state.keys.clone()
    }
}

/// The usable keys of a JWKS document; unusable ones are skipped (and logged), not fatal, so a
/// provider adding an encryption key does not lock everyone out.
///
/// # Errors
/// When the document is not a JWKS at all.
pub fn parse_jwks(document: &Value) -> anyhow::Result<Vec<VerifyingKey>> {
    let Some(entries) = document.get("keys").and_then(Value::as_array) else {
        anyhow::bail!("the document has no \"keys\" array");
    };
    let mut keys = Vec::with_capacity(entries.len());
    for entry in entries {
        let parsed = serde_json::from_value::<Jwk>(entry.clone())
            .map_err(anyhow::Error::from)
            .and_then(|jwk| VerifyingKey::from_jwk(&jwk).map_err(anyhow::Error::from));
        match parsed {
            Ok(key) => keys.push(key),
            Err(err) => tracing::warn!(error = %err, "skipping a JWKS key"),
        }
    }
    Ok(keys)
}
