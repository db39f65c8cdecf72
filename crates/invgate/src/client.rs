use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use thread_local::ThreadLocal;
use ticketd_domain::ports::IncidentGateway;
use ticketd_domain::{
    Comment, EmailAddress, GatewayError, IncidentId, IncidentStatus, IncidentSummary,
    InvGateUserId, NewComment, NewTicket, Reference, ReferenceList,
};
use tokio::sync::Semaphore;

use crate::answer::{as_id, error_message, reports_error, retry_after, truthy};
use crate::form::{FinishedBody, MultipartBody};

/// Largest answer we read from InvGate. Its answers are small JSON documents; anything bigger is
/// not an answer we understand, and reading it whole would let a broken upstream eat our memory.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Connection settings for one InvGate instance.
pub struct InvGateConfig {
    /// e.g. `https://acme.sd.cloud.invgate.net/api/v1` (a trailing `/` is optional).
    pub base_url: String,
    pub username: String,
    pub password: SecretString,
    /// Whole-call limit: connecting, sending (files included) and reading the answer, every
    /// retry included.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// Calls in flight at once over the whole process; more wait for a slot (within their
    /// deadline), so a burst of tickets cannot overrun InvGate.
    pub max_concurrent_calls: usize,
}

/// Which failed calls are tried again, and how patiently. Only calls that certainly did not reach
/// InvGate (connection refused, DNS, TLS handshake) and 429/503 answers are retried, plus 5xx for
/// reads; never a create whose fate is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The backoff before the second attempt; it doubles each time (with full jitter).
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// Never retry.
    pub const NONE: Self = Self {
        max_attempts: 1,
        base_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
    };

    /// Full jitter: a random delay between zero and the exponential backoff for this attempt.
    fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.max_delay);
        let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(random_u64() % nanos)
    }
}

/// A random number from the standard library's randomly keyed hasher: jitter needs no more.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

impl std::fmt::Debug for InvGateConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvGateConfig")
            .field("base_url", &self.base_url)
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

/// Why an [`InvGateConfig`] cannot make a client.
#[derive(Debug, thiserror::Error)]
pub enum InvGateConfigError {
    #[error("the InvGate base URL {0:?} is not an absolute http(s) URL")]
    BadBaseUrl(String),
    #[error("the InvGate timeout must be more than zero")]
    ZeroTimeout,
    #[error("the HTTP client could not be built: {0}")]
    Client(#[source] reqwest::Error),
}

/// The [`IncidentGateway`] over InvGate's HTTP API.
#[derive(Clone)]
pub struct ReqwestInvGateClient {
    /// One HTTP client per thread. hyper drives each connection on the runtime that opened it;
    /// with one client shared by the actix-web workers, a call would often travel through a
    /// connection driven on another worker's thread and cross threads twice. See
    /// docs/performance.md.
    http: Arc<ThreadLocal<reqwest::Client>>,
    /// The client built first, used where a thread's own cannot be built (it is built the same
    /// way, so that does not happen in practice).
    shared: reqwest::Client,
    connect_timeout: Duration,
    base: Url,
    /// The URLs of the endpoints called by name, joined to `base` once rather than parsed per
    /// call (parsing was about 2% of the CPU of a ticket).
    endpoints: Arc<[(&'static str, Url)]>,
    username: String,
    password: SecretString,
    timeout: Duration,
    retry: RetryPolicy,
    slots: Arc<Semaphore>,
}

impl std::fmt::Debug for ReqwestInvGateClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReqwestInvGateClient")
            .field("base", &self.base.as_str())
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The endpoints ticketd calls by a fixed name (the reference lists are named by the caller).
const ENDPOINTS: [&str; 6] = [
    "incident",
    "user.by",
    "sd.version",
    "incidents.last.hour",
    "incidents.by.customer",
    "incident.comment",
];

/// The HTTP client of one thread: keep-alive connections to InvGate are reused between calls.
///
/// Redirects are not followed: InvGate's API answers where it is asked, a create's body (files
/// streamed from disk) cannot be sent twice, and a 301/302 would turn the `POST` into a `GET`.
/// A 3xx is an unexpected answer like any other. Following them also cost a parse of each
/// request's URL (reqwest's redirect layer), half a percent of a ticket's CPU.
fn http_client(connect_timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("ticketd/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

impl ReqwestInvGateClient {
    /// Builds the client; one per process, shared (with a connection pool per thread), so
    /// connections to InvGate are reused.
    ///
    /// # Errors
    /// [`InvGateConfigError`] for an unusable base URL or timeout.
    pub fn new(config: InvGateConfig) -> Result<Self, InvGateConfigError> {
        install_crypto_provider();

        let base = parse_base_url(&config.base_url)?;
        if config.timeout.is_zero() {
            return Err(InvGateConfigError::ZeroTimeout);
        }
        let connect_timeout = config.timeout.min(Duration::from_secs(10));
        let shared = http_client(connect_timeout).map_err(InvGateConfigError::Client)?;
        let endpoints = ENDPOINTS
            .iter()
            .filter_map(|name| base.join(name).ok().map(|url| (*name, url)))
            .collect();
        Ok(Self {
            http: Arc::new(ThreadLocal::new()),
            shared,
            connect_timeout,
            endpoints,
            base,
            username: config.username,
            password: config.password,
            timeout: config.timeout,
            retry: config.retry,
            slots: Arc::new(Semaphore::new(config.max_concurrent_calls.max(1))),
        })
    }

    /// Runs `call` until it succeeds, fails in a way `retry_on` does not accept, runs out of
    /// attempts, or the next wait would pass the deadline. Each attempt gets the time left.
    async fn with_retries<T, F, Fut>(
        &self,
        retry_on: fn(&GatewayError) -> bool,
        mut call: F,
    ) -> Result<T, GatewayError>
    where
        F: FnMut(Duration) -> Fut,
        Fut: std::future::Future<Output = Result<T, GatewayError>>,
    {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut attempt = 1;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining.is_zero() {
                return Err(GatewayError::Timeout);
            }
            // A slot is held for one attempt only, not across the backoff.
            let Ok(Ok(slot)) = tokio::time::timeout(remaining, self.slots.acquire()).await else {
                return Err(no_slot());
            };
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining.is_zero() {
                return Err(no_slot());
            }
            let outcome = call(remaining).await;
            drop(slot);
            let err = match outcome {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            if attempt >= self.retry.max_attempts || !retry_on(&err) {
                return Err(err);
            }
            let asked = match &err {
                GatewayError::RateLimited { retry_after } => retry_after.unwrap_or_default(),
                _ => Duration::ZERO,
            };
            // Capped: a Retry-After of years must not overflow the clock arithmetic below.
            let wait = asked.max(self.retry.backoff(attempt)).min(self.timeout);
            if tokio::time::Instant::now() + wait >= deadline {
                return Err(err);
            }
            tracing::info!(attempt, wait_ms = wait.as_millis() as u64, error = %err, "retrying an InvGate call that did nothing");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    fn request(&self, method: Method, endpoint: &str, timeout: Duration) -> RequestBuilder {
        let url = self
            .endpoints
            .iter()
            .find(|(name, _)| *name == endpoint)
            .map(|(_, url)| url.clone())
            .unwrap_or_else(|| {
                self.base
                    .join(endpoint)
                    .unwrap_or_else(|_| self.base.clone())
            });
        self.http
            .get_or(|| http_client(self.connect_timeout).unwrap_or_else(|_| self.shared.clone()))
            .request(method, url)
            .basic_auth(&self.username, Some(self.password.expose_secret()))
            .timeout(timeout)
    }

    async fn comment_form(
        &self,
        id: IncidentId,
        author: InvGateUserId,
        comment: &NewComment,
    ) -> Result<FinishedBody, GatewayError> {
        let mut form = MultipartBody::new()
            .text("request_id", &id.to_string())
            .text("author_id", &author.to_string())
            .text("comment", comment.text.as_str())
            // Written by the customer, for the customer's eyes too.
            .text("customer_visible", "1")
            .text("is_solution", "0");
        for attachment in &comment.attachments {
            form = form.spooled_file("attachments[]", attachment).await?;
        }
        Ok(form.finish())
    }

    /// InvGate's version (`GET sd.version`): the cheapest authenticated call, for readiness.
    /// One attempt, no retries: a probe must answer quickly.
    ///
    /// # Errors
    /// When InvGate does not answer in time, refuses the credentials or answers garbage.
    pub async fn version(&self, timeout: Duration) -> Result<String, GatewayError> {
        let answer = send(
            "sd.version",
            self.request(Method::GET, "sd.version", timeout.min(self.timeout)),
        )
        .await?;
        if !answer.status.is_success() {
            return Err(failure(&answer));
        }
        let body: Value = serde_json::from_slice(&answer.body).map_err(|e| {
            GatewayError::Unavailable(anyhow::Error::new(e).context("sd.version is not JSON"))
        })?;
        Ok(match body.get("version") {
            Some(Value::String(v)) => v.clone(),
            Some(other) => other.to_string(),
            None => body.to_string(),
        })
    }
}

/// reqwest is built without a bundled TLS crypto provider (that one needs a C build); this installs
/// ring's for the process. Needed before building any reqwest client; repeated calls are harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Checks and normalizes an InvGate base URL (absolute http(s), no credentials, query or
/// fragment) to end with `/`, so endpoint names join onto it.
///
/// # Errors
/// [`InvGateConfigError::BadBaseUrl`] naming the rejected input.
pub fn parse_base_url(raw: &str) -> Result<Url, InvGateConfigError> {
    let bad = || InvGateConfigError::BadBaseUrl(raw.to_owned());
    let trimmed = raw.trim();
    // Endpoints are joined relative to the base, which only works when it ends with a slash.
    let with_slash = if trimmed.ends_with('/') {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/")
    };
    let url = Url::parse(&with_slash).map_err(|_| bad())?;
    let usable = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some()
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    if usable { Ok(url) } else { Err(bad()) }
}

/// Waiting for a call slot ran out the deadline: nothing was sent, so this is safe to retry.
fn no_slot() -> GatewayError {
    GatewayError::NotSent(anyhow::anyhow!(
        "every InvGate call slot stayed busy until the deadline"
    ))
}

/// The `POST incident` body of a ticket: its fields, and its spooled files (small ones read into
/// the body, large ones streamed from disk). Public for the benchmarks in `benches/`.
///
/// # Errors
/// When a spooled file cannot be opened or changed size.
#[doc(hidden)]
pub async fn incident_form(
    requester: InvGateUserId,
    ticket: &NewTicket,
) -> Result<FinishedBody, GatewayError> {
    let requester = requester.to_string();
    let mut form = MultipartBody::new()
        .text("creator_id", &requester)
        .text("customer_id", &requester)
        .text("category_id", &ticket.category_id.to_string())
        .text("priority_id", &ticket.priority_id.to_string())
        .text("type_id", &ticket.type_id.to_string())
        .text("title", ticket.title.as_str())
        .text("description", ticket.description.as_str());
    if let Some(source) = ticket.source_id {
        form = form.text("source_id", &source.to_string());
    }
    if let Some(location) = ticket.location_id {
        form = form.text("location_id", &location.to_string());
    }
    if let Some(date) = ticket.date_ocurred {
        form = form.text("date", &date.epoch_seconds().to_string());
    }
    for related in &ticket.related_to {
        form = form.text("related_to[]", &related.to_string());
    }
    for attachment in &ticket.attachments {
        form = form.spooled_file("attachments[]", attachment).await?;
    }
    Ok(form.finish())
}

/// The answer of one call: its status, `Retry-After`, and at most [`MAX_ANSWER_BYTES`] of body.
struct Answer {
    status: StatusCode,
    retry_after: Option<Duration>,
    body: Vec<u8>,
}

/// One attempt of a call to `endpoint`, measured: its duration and outcome go to the metrics.
async fn send(endpoint: &'static str, request: RequestBuilder) -> Result<Answer, GatewayError> {
    let started = std::time::Instant::now();
    let answer = send_unmeasured(request).await;
    let outcome = match &answer {
        Ok(answer) => match answer.status.as_u16() {
            200..=299 => "ok",
            401 | 403 => "unauthorized",
            429 | 503 => "rate_limited",
            400..=499 => "rejected",
            _ => "failed",
        },
        Err(GatewayError::Timeout) => "timeout",
        Err(GatewayError::NotSent(_)) => "not_sent",
        Err(_) => "failed",
    };
    ticketd_metrics::metrics().invgate_call(endpoint, outcome, started.elapsed().as_secs_f64());
    answer
}

async fn send_unmeasured(request: RequestBuilder) -> Result<Answer, GatewayError> {
    let mut response: Response = request.send().await.map_err(transport_error)?;
    let status = response.status();
    let retry_after = retry_after(
        response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()),
    );
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(GatewayError::Unavailable(anyhow::anyhow!(
                "InvGate answered HTTP {status} with more than {MAX_ANSWER_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer {
        status,
        retry_after,
        body,
    })
}

fn transport_error(err: reqwest::Error) -> GatewayError {
    if err.is_timeout() {
        GatewayError::Timeout
    } else if err.is_connect() {
        // Refused, unresolvable, or the TLS handshake failed: the request never left.
        GatewayError::NotSent(
            anyhow::Error::new(err.without_url()).context("connecting to InvGate"),
        )
    } else {
        // `without_url` keeps the query (an e-mail address) out of messages and logs.
        GatewayError::Unavailable(anyhow::Error::new(err.without_url()).context("calling InvGate"))
    }
}

/// The classification shared by every endpoint for non-2xx answers.
fn failure(answer: &Answer) -> GatewayError {
    let status = answer.status;
    match status.as_u16() {
        401 | 403 => GatewayError::Unauthorized {
            status: status.as_u16(),
        },
        // 503 is InvGate (or its proxy) asking to come back later, like 429: nothing was done.
        429 | 503 => GatewayError::RateLimited {
            retry_after: answer.retry_after,
        },
        400 | 404 | 409 | 412 | 422 | 428 => GatewayError::Rejected {
            message: error_message(&answer.body),
        },
        _ => GatewayError::Unavailable(anyhow::anyhow!("InvGate answered HTTP {status}")),
    }
}

/// The entries of a reference list: `[{id, name}]` (categories add `parent_category_id`), as an
/// array or an object keyed by id.
fn references(body: &Value) -> Vec<Reference> {
    values_of(Some(body))
        .into_iter()
        .filter_map(|entry| {
            Some(Reference {
                id: entry.get("id").and_then(as_id)?,
                name: entry
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                parent_id: entry
                    .get("parent_category_id")
                    .and_then(as_id)
                    .filter(|id| *id > 0),
            })
        })
        .collect()
}

/// A successful create's answer: JSON that does not report an error (InvGate says `ERROR` with
/// HTTP 200 too).
fn created(answer: &Answer) -> Result<Value, GatewayError> {
    let body: Value = serde_json::from_slice(&answer.body).map_err(|e| {
        GatewayError::Unavailable(anyhow::Error::new(e).context(format!(
            "InvGate answered HTTP {} without JSON",
            answer.status
        )))
    })?;
    if reports_error(&body) {
        return Err(GatewayError::Rejected {
            message: error_message(&answer.body),
        });
    }
    Ok(body)
}

/// Entry points into the reading of InvGate's answers, for the fuzz targets in `fuzz/`: the same
/// code the client runs, without a network.
#[doc(hidden)]
pub mod fuzzing {
    use super::{Answer, StatusCode, Value, created, failure, pick_user, summary, values_of};
    use crate::answer::retry_after;
    use ticketd_domain::{EmailAddress, GatewayError, IncidentSummary};

    /// How a create's answer is read: `failure` for an error status, else `created`.
    ///
    /// # Errors
    /// What the client would report.
    pub fn read_create_answer(
        status: u16,
        retry_after_header: Option<&str>,
        body: &[u8],
    ) -> Result<Value, GatewayError> {
        let answer = Answer {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
            retry_after: retry_after(retry_after_header),
            body: body.to_vec(),
        };
        if answer.status.is_success() {
            created(&answer)
        } else {
            Err(failure(&answer))
        }
    }

    /// How a `user.by` answer is read.
    #[must_use]
    pub fn read_user_answer(body: &[u8], email: &EmailAddress) -> Option<i64> {
        let body: Value = serde_json::from_slice(body).ok()?;
        pick_user(&body, email)
    }

    /// How a page of `incidents.last.hour` or `incidents.by.customer` is read.
    #[must_use]
    pub fn read_incident_page(body: &[u8]) -> Vec<IncidentSummary> {
        let Ok(page) = serde_json::from_slice::<Value>(body) else {
            return Vec::new();
        };
        ["data", "requests"]
            .into_iter()
            .flat_map(|key| values_of(page.get(key)))
            .filter_map(summary)
            .collect()
    }
}

#[async_trait]
impl IncidentGateway for ReqwestInvGateClient {
    #[tracing::instrument(name = "invgate.user_by", skip_all, fields(http.status_code))]
    async fn find_user_id_by_email(
        &self,
        email: &EmailAddress,
    ) -> Result<Option<InvGateUserId>, GatewayError> {
        // A read: safe to repeat after anything transient, server errors included.
        let answer = self
            .with_retries(
                |e| {
                    matches!(
                        e,
                        GatewayError::NotSent(_)
                            | GatewayError::RateLimited { .. }
                            | GatewayError::Unavailable(_)
                    )
                },
                |timeout| async move {
                    let answer = send(
                        "user.by",
                        self.request(Method::GET, "user.by", timeout)
                            .query(&[("email", email.as_str())]),
                    )
                    .await?;
                    if answer.status.is_server_error() {
                        return Err(failure(&answer));
                    }
                    Ok(answer)
                },
            )
            .await?;
        tracing::Span::current().record("http.status_code", answer.status.as_u16());
        if !answer.status.is_success() {
            // InvGate does not document "no such user"; instances answer 404 or a 4xx with
            // `status: ERROR`. Either way the user cannot be used.
            return match failure(&answer) {
                GatewayError::Rejected { message } => {
                    tracing::debug!(reason = %message, "user.by found no user");
                    Ok(None)
                }
                other => Err(other),
            };
        }
        if answer.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let body: Value = serde_json::from_slice(&answer.body).map_err(|e| {
            GatewayError::Unavailable(
                anyhow::Error::new(e).context("user.by answered something that is not JSON"),
            )
        })?;
        Ok(pick_user(&body, email).map(InvGateUserId::new))
    }

    #[tracing::instrument(
        name = "invgate.create_incident",
        skip_all,
        fields(http.status_code, invgate.attachments = ticket.attachments.len())
    )]
    async fn create_incident(
        &self,
        requester: InvGateUserId,
        ticket: &NewTicket,
    ) -> Result<Value, GatewayError> {
        let answer = self
            .post_write("incident", || incident_form(requester, ticket))
            .await?;
        tracing::Span::current().record("http.status_code", answer.status.as_u16());
        created(&answer)
    }

    #[tracing::instrument(name = "invgate.incidents_last_hour", skip_all)]
    async fn incidents_created_last_hour(&self) -> Result<Vec<IncidentSummary>, GatewayError> {
        self.all_pages("incidents.last.hour", &[], |page| {
            values_of(page.get("data"))
        })
        .await
    }

    #[tracing::instrument(name = "invgate.incidents_by_customer", skip_all)]
    async fn open_incidents_of(
        &self,
        customer: InvGateUserId,
    ) -> Result<Vec<IncidentSummary>, GatewayError> {
        self.all_pages(
            "incidents.by.customer",
            &[("id", customer.to_string())],
            |page| values_of(page.get("requests")),
        )
        .await
    }

    #[tracing::instrument(name = "invgate.incident", skip_all, fields(invgate.request_id = id.get()))]
    async fn incident_status(
        &self,
        id: IncidentId,
    ) -> Result<Option<IncidentStatus>, GatewayError> {
        // InvGate's answer for an unknown id is undocumented: a 404, or an ERROR body.
        match self.get_json("incident", &[("id", id.to_string())]).await {
            Ok(body) if reports_error(&body) || !body.is_object() => Ok(None),
            Ok(body) => Ok(Some(IncidentStatus::from_incident(&body))),
            Err(GatewayError::Rejected { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    #[tracing::instrument(name = "invgate.comments", skip_all, fields(invgate.request_id = id.get()))]
    async fn comments_of(&self, id: IncidentId) -> Result<Option<Vec<Comment>>, GatewayError> {
        match self
            .get_json("incident.comment", &[("request_id", id.to_string())])
            .await
        {
            Ok(body) if reports_error(&body) => Ok(None),
            Ok(body) => Ok(Some(
                values_of(Some(&body))
                    .into_iter()
                    .filter_map(Comment::from_invgate)
                    .collect(),
            )),
            Err(GatewayError::Rejected { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    #[tracing::instrument(name = "invgate.add_comment", skip_all, fields(invgate.request_id = id.get()))]
    async fn add_comment(
        &self,
        id: IncidentId,
        author: InvGateUserId,
        comment: &NewComment,
    ) -> Result<Value, GatewayError> {
        let answer = self
            .post_write("incident.comment", || {
                self.comment_form(id, author, comment)
            })
            .await?;
        created(&answer)
    }

    #[tracing::instrument(name = "invgate.reference", skip_all, fields(list = ?list))]
    async fn reference_list(&self, list: ReferenceList) -> Result<Vec<Reference>, GatewayError> {
        let endpoint = match list {
            ReferenceList::Priorities => "incident.attributes.priority",
            ReferenceList::Types => "incident.attributes.type",
            ReferenceList::Statuses => "incident.attributes.status",
            ReferenceList::Sources => "incident.attributes.source",
            ReferenceList::Categories => "categories",
        };
        if list != ReferenceList::Categories {
            let body = self.get_json(endpoint, &[]).await?;
            return Ok(references(&body));
        }
        // Categories come in pages of at most 500.
        let mut all = Vec::new();
        for page in 1..=MAX_PAGES {
            let body = self
                .get_json(
                    endpoint,
                    &[("page", page.to_string()), ("page_size", "500".into())],
                )
                .await?;
            let found = references(&body);
            let last = found.len() < 500;
            all.extend(found);
            if last {
                break;
            }
        }
        Ok(all)
    }
}

/// Pages read at most from a paged list, so a misbehaving upstream cannot keep us looping.
const MAX_PAGES: usize = 200;

/// A write (a create, a comment): InvGate cannot deduplicate, so it is resent only when it
/// certainly did nothing; a resent create is a second incident.
fn write_is_retryable(err: &GatewayError) -> bool {
    matches!(
        err,
        GatewayError::NotSent(_) | GatewayError::RateLimited { .. }
    )
}

/// A read: safe to repeat after anything transient, server errors included.
fn read_is_retryable(err: &GatewayError) -> bool {
    matches!(
        err,
        GatewayError::NotSent(_) | GatewayError::RateLimited { .. } | GatewayError::Unavailable(_)
    )
}

impl ReqwestInvGateClient {
    /// POSTs the multipart body `form` builds (afresh for each attempt: large files are
    /// streams) to `endpoint`, retrying as writes may; a non-2xx answer is an error.
    async fn post_write<F, Fut>(
        &self,
        endpoint: &'static str,
        form: F,
    ) -> Result<Answer, GatewayError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<FinishedBody, GatewayError>>,
    {
        self.with_retries(write_is_retryable, |timeout| {
            let form = &form;
            async move {
                let form = form().await?;
                let answer = send(
                    endpoint,
                    form.attach(self.request(Method::POST, endpoint, timeout)),
                )
                .await?;
                if answer.status.is_success() {
                    Ok(answer)
                } else {
                    Err(failure(&answer))
                }
            }
        })
        .await
    }

    /// GETs `endpoint` with `query` as JSON, retrying as reads may.
    async fn get_json(
        &self,
        endpoint: &'static str,
        query: &[(&str, String)],
    ) -> Result<Value, GatewayError> {
        let answer = self
            .with_retries(read_is_retryable, |timeout| async move {
                let answer = send(
                    endpoint,
                    self.request(Method::GET, endpoint, timeout).query(query),
                )
                .await?;
                if answer.status.is_success() {
                    Ok(answer)
                } else {
                    Err(failure(&answer))
                }
            })
            .await?;
        serde_json::from_slice(&answer.body).map_err(|e| {
            GatewayError::Unavailable(
                anyhow::Error::new(e)
                    .context(format!("{endpoint} answered something that is not JSON")),
            )
        })
    }

    /// Follows `next_page_key` through a paged list, collecting what `items` finds on each page.
    async fn all_pages(
        &self,
        endpoint: &'static str,
        query: &[(&str, String)],
        items: fn(&Value) -> Vec<&Value>,
    ) -> Result<Vec<IncidentSummary>, GatewayError> {
        let mut found = Vec::new();
        let mut page_key: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut page_query = query.to_vec();
            if let Some(key) = &page_key {
                page_query.push(("page_key", key.clone()));
            }
            let page = self.get_json(endpoint, &page_query).await?;
            if reports_error(&page) {
                return Err(GatewayError::Rejected {
                    message: error_message(page.to_string().as_bytes()),
                });
            }
            found.extend(items(&page).into_iter().filter_map(summary));
            page_key = match page.get("next_page_key") {
                Some(Value::String(key)) if !key.is_empty() => Some(key.clone()),
                Some(Value::Number(key)) => Some(key.to_string()),
                _ => return Ok(found),
            };
        }
        Err(GatewayError::Unavailable(anyhow::anyhow!(
            "{endpoint} has more than {MAX_PAGES} pages"
        )))
    }
}

/// Reads `{id, description}` from one incident of a list.
fn summary(incident: &Value) -> Option<IncidentSummary> {
    Some(IncidentSummary {
        id: IncidentId::parse(incident.get("id").and_then(as_id)?).ok()?,
        description: incident
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    })
}

/// The incidents of a list page: an array, or an object keyed by id.
fn values_of(list: Option<&Value>) -> Vec<&Value> {
    match list {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(Value::Object(items)) => items.values().collect(),
        _ => Vec::new(),
    }
}

/// The id of the active user matching `email` in a `user.by` answer (an object, or on some
/// instances a list of them).
fn pick_user(body: &Value, email: &EmailAddress) -> Option<i64> {
    let usable = |user: &Value| -> Option<i64> {
        if reports_error(user) || truthy(user.get("is_deleted")) || truthy(user.get("is_disabled"))
        {
            return None;
        }
        user.get("id").and_then(as_id)
    };
    match body {
        Value::Object(_) => usable(body),
        Value::Array(users) => users
            .iter()
            .filter(|u| {
                u.get("email")
                    .and_then(Value::as_str)
                    .is_none_or(|e| e.eq_ignore_ascii_case(email.as_str()))
            })
            .find_map(usable),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_get_a_trailing_slash_and_must_be_http() {
        assert_eq!(
            parse_base_url("https://acme.sd.cloud.invgate.net/api/v1")
                .map(|u| u.to_string())
                .ok(),
            Some("https://acme.sd.cloud.invgate.net/api/v1/".to_owned())
        );
        assert!(parse_base_url("https://acme.example/api/v1/").is_ok());
        for bad in [
            "",
            "acme.example/api",
            "ftp://acme.example/",
            "https://u:p@acme.example/",
            "https://acme.example/?x=1",
        ] {
            assert!(parse_base_url(bad).is_err(), "{bad:?}");
        }
    }
}
