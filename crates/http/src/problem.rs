//! [`ApiError`]: the one place where failures become HTTP answers, as RFC 9457 problem details.
//!
//! Besides the standard members, every problem carries `code` (stable, for programs), `error`
//! (the detail again, for clients of the Go service this replaces) and `request_id`; a 400 also
//! lists `errors: [{field, message}]`. 5xx answers never describe internals.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use ticketd_domain::{CreateTicketError, FieldError};

use crate::middleware::RequestContext;

/// How long clients are told to wait when InvGate rate limits without saying for how long.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);

/// How long clients are told to wait when the database is unreachable.
const STORE_RETRY_AFTER_SECS: u64 = 5;

/// Which `WWW-Authenticate` challenge a 401 carries (RFC 6750 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// No credentials were sent.
    Missing,
    /// A token was sent and refused.
    InvalidToken,
}

/// Every failure an endpoint can answer with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    InvalidInput {
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("authentication required")]
    Unauthorized(Challenge),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("no InvGate user has the caller's e-mail address")]
    UserNotProvisioned,
    #[error("InvGate rejected the ticket: {0}")]
    UpstreamRejected(String),
    #[error("InvGate refused ticketd's credentials")]
    UpstreamAuth,
    #[error("InvGate is busy")]
    UpstreamBusy { retry_after: Duration },
    #[error("InvGate failed")]
    ExternalService,
    #[error("InvGate did not answer in time")]
    UpstreamTimeout,
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    #[error("InvGate is unavailable")]
    UpstreamUnavailable { retry_after: Duration },
    #[error("the idempotency key was used for another request")]
    IdempotencyKeyMismatch,
    #[error("the idempotency key's first request is unfinished")]
    IdempotencyKeyInUse { retry_after: Duration },
    #[error("the ticket store is unavailable")]
    StoreUnavailable,
    #[error("the request body stalled")]
    RequestTimeout,
    #[error("too many requests")]
    RateLimited { retry_after: Duration },
    #[error("the request headers are too large")]
    HeadersTooLarge { limit: usize },
    #[error("{0}")]
    CorsRejected(String),
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// A 400 for a body that could not be read at all (not JSON, broken multipart, …).
    pub fn malformed(field: &str, message: impl Into<String>) -> Self {
        let error = FieldError::new(field, message);
        Self::InvalidInput {
            detail: format!(
                "the request is malformed: {} {}",
                error.field, error.message
            ),
            errors: vec![error],
        }
    }

    /// A 400 listing every invalid field.
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{} {}", one.field, one.message),
            many => format!(
                "{} fields are invalid: {}",
                many.len(),
                many.iter()
                    .map(|e| e.field.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        Self::InvalidInput { detail, errors }
    }

    /// Maps a create failure, logging it once, here, where it is handled.
    pub fn from_create(err: CreateTicketError) -> Self {
        match err {
            CreateTicketError::UserNotProvisioned { .. } => {
                tracing::info!("the caller has no InvGate user");
                Self::UserNotProvisioned
            }
            CreateTicketError::UpstreamRejected { message } => {
                tracing::info!(invgate.message = %message, "InvGate rejected the ticket");
                Self::UpstreamRejected(message)
            }
            CreateTicketError::UpstreamAuth(cause) => {
                tracing::error!(error = %cause, "configuration error: InvGate refused ticketd's credentials; check INVGATE_USERNAME and INVGATE_PASSWORD");
                Self::UpstreamAuth
            }
            CreateTicketError::UpstreamBusy { retry_after } => {
                tracing::warn!(
                    retry_after_secs = retry_after.map(|d| d.as_secs()),
                    "InvGate is rate limiting"
                );
                Self::UpstreamBusy {
                    retry_after: retry_after.unwrap_or(DEFAULT_RETRY_AFTER),
                }
            }
            CreateTicketError::UpstreamTimeout => {
                tracing::error!("InvGate did not answer in time; the ticket may exist there");
                Self::UpstreamTimeout
            }
            CreateTicketError::UpstreamFailed(cause) => {
                tracing::error!(error = ?cause, "InvGate failed");
                Self::ExternalService
            }
            CreateTicketError::UpstreamUnavailable { retry_after } => {
                tracing::warn!(
                    retry_after_secs = retry_after.as_secs(),
                    "InvGate calls are suspended"
                );
                Self::UpstreamUnavailable { retry_after }
            }
            CreateTicketError::IdempotencyKeyMismatch => {
                tracing::info!("an idempotency key was reused for another request");
                Self::IdempotencyKeyMismatch
            }
            CreateTicketError::IdempotencyKeyInUse { retry_after } => {
                tracing::info!("an idempotency key's first request is unfinished");
                Self::IdempotencyKeyInUse { retry_after }
            }
            CreateTicketError::StoreUnavailable(cause) => {
                tracing::error!(error = ?cause, "the operation journal is unavailable; no ticket was sent to InvGate");
                Self::StoreUnavailable
            }
            CreateTicketError::Unexpected(cause) => {
                tracing::error!(error = ?cause, "creating a ticket failed unexpectedly");
                Self::Internal
            }
        }
    }

    /// The stable machine-readable code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidInput { .. } => "INVALID_INPUT",
            Self::Unauthorized(_) => "UNAUTHORIZED",
            Self::PayloadTooLarge(_) => "PAYLOAD_TOO_LARGE",
            Self::UnsupportedMediaType(_) => "UNSUPPORTED_MEDIA_TYPE",
            Self::UserNotProvisioned => "USER_NOT_PROVISIONED",
            Self::UpstreamRejected(_) => "UPSTREAM_REJECTED",
            Self::UpstreamAuth => "UPSTREAM_AUTH",
            Self::UpstreamBusy { .. } => "UPSTREAM_BUSY",
            Self::ExternalService => "EXTERNAL_SERVICE_ERROR",
            Self::UpstreamTimeout => "UPSTREAM_TIMEOUT",
            Self::NotFound => "NOT_FOUND",
            Self::MethodNotAllowed { .. } => "METHOD_NOT_ALLOWED",
            Self::UpstreamUnavailable { .. } => "UPSTREAM_UNAVAILABLE",
            Self::IdempotencyKeyMismatch => "IDEMPOTENCY_KEY_MISMATCH",
            Self::IdempotencyKeyInUse { .. } => "IDEMPOTENCY_KEY_IN_USE",
            Self::StoreUnavailable => "STORE_UNAVAILABLE",
            Self::RequestTimeout => "REQUEST_TIMEOUT",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::HeadersTooLarge { .. } => "HEADERS_TOO_LARGE",
            Self::CorsRejected(_) => "CORS_REJECTED",
            Self::Internal => "INTERNAL_ERROR",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Self::InvalidInput { .. } => "Invalid input",
            Self::Unauthorized(_) => "Unauthorized",
            Self::PayloadTooLarge(_) => "Payload too large",
            Self::UnsupportedMediaType(_) => "Unsupported media type",
            Self::UserNotProvisioned => "User not provisioned",
            Self::UpstreamRejected(_) => "Rejected by InvGate",
            Self::UpstreamAuth => "InvGate refused ticketd",
            Self::UpstreamBusy { .. } => "InvGate is busy",
            Self::ExternalService => "InvGate failed",
            Self::UpstreamTimeout => "InvGate timed out",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed { .. } => "Method not allowed",
            Self::UpstreamUnavailable { .. } => "InvGate is unavailable",
            Self::IdempotencyKeyMismatch => "Idempotency key reused",
            Self::IdempotencyKeyInUse { .. } => "Idempotency key in use",
            Self::StoreUnavailable => "Ticket store unavailable",
            Self::RequestTimeout => "Request timeout",
            Self::RateLimited { .. } => "Too many requests",
            Self::HeadersTooLarge { .. } => "Request headers too large",
            Self::CorsRejected(_) => "Cross-origin request refused",
            Self::Internal => "Internal error",
        }
    }

    /// What the client reads. Written for the client: never a cause chain or a secret.
    fn detail(&self) -> String {
        match self {
            Self::InvalidInput { detail, .. } => detail.clone(),
            Self::Unauthorized(Challenge::Missing) => {
                "send a token as Authorization: Bearer <JWT>".to_owned()
            }
            Self::Unauthorized(Challenge::InvalidToken) => {
                "the bearer token is invalid or expired".to_owned()
            }
            Self::PayloadTooLarge(detail)
            | Self::UnsupportedMediaType(detail)
            | Self::CorsRejected(detail) => detail.clone(),
            Self::UserNotProvisioned => {
                "the caller's e-mail address has no user in InvGate; ask the service desk to create one".to_owned()
            }
            Self::UpstreamRejected(message) => message.clone(),
            Self::UpstreamAuth => "the service desk refused ticketd's credentials; nothing was created".to_owned(),
            Self::UpstreamBusy { .. } => "the service desk is rate limiting; retry later".to_owned(),
            Self::ExternalService => "the service desk failed or answered unexpectedly".to_owned(),
            Self::UpstreamTimeout => {
                "the service desk did not answer in time; the ticket or comment may have been recorded".to_owned()
            }
            Self::NotFound => "no such resource".to_owned(),
            Self::MethodNotAllowed { allow } => format!("allowed: {allow}"),
            Self::UpstreamUnavailable { .. } => {
                "the service desk is failing; calls are suspended for a while, retry later".to_owned()
            }
            Self::IdempotencyKeyMismatch => {
                "this Idempotency-Key was already used with a different ticket; use a new key".to_owned()
            }
            Self::IdempotencyKeyInUse { .. } => {
                "the first request with this Idempotency-Key is still being processed; retry later for its answer".to_owned()
            }
            Self::StoreUnavailable => "the ticket store is unavailable; nothing was created, retry later".to_owned(),
            Self::RequestTimeout => {
                "the request body stopped arriving; nothing was created, send it again".to_owned()
            }
            Self::RateLimited { retry_after } => format!(
                "too many requests from this caller; retry in {} s",
                retry_after.as_secs().max(1)
            ),
            Self::HeadersTooLarge { limit } => {
                format!("the request headers are larger than {limit} bytes together")
            }
            Self::Internal => "an internal error occurred".to_owned(),
        }
    }
}

#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance: Option<&'a str>,
    code: &'static str,
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::InvalidInput { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::UserNotProvisioned => StatusCode::FORBIDDEN,
            Self::UpstreamRejected(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UpstreamAuth | Self::ExternalService => StatusCode::BAD_GATEWAY,
            Self::UpstreamBusy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::UpstreamUnavailable { .. } | Self::StoreUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::IdempotencyKeyMismatch => StatusCode::UNPROCESSABLE_ENTITY,
            Self::IdempotencyKeyInUse { .. } => StatusCode::CONFLICT,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::CorsRejected(_) => StatusCode::BAD_REQUEST,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        self.response_for(RequestContext::current().as_ref())
    }
}

impl ApiError {
    /// The answer as it would be given in `context` (the current request's, or a replayed one's).
    pub(crate) fn response_for(&self, context: Option<&RequestContext>) -> HttpResponse {
        let status = self.status_code();
        let detail = self.detail();
        let body = ProblemBody {
            kind: format!(
                "urn:ticketd:problem:{}",
                self.code().to_ascii_lowercase().replace('_', "-")
            ),
            title: self.title(),
            status: status.as_u16(),
            detail: &detail,
            instance: context.map(|c| c.path.as_str()),
            code: self.code(),
            error: &detail,
            errors: match self {
                Self::InvalidInput { errors, .. } => Some(errors),
                _ => None,
            },
            request_id: context.map(|c| c.request_id.as_str()),
        };
        let mut response = HttpResponse::build(status);
        response.content_type("application/problem+json");
        match self {
            Self::Unauthorized(Challenge::Missing) => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            Self::Unauthorized(Challenge::InvalidToken) => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#));
            }
            Self::UpstreamBusy { retry_after }
            | Self::UpstreamUnavailable { retry_after }
            | Self::IdempotencyKeyInUse { retry_after }
            | Self::RateLimited { retry_after } => {
                response.insert_header((
                    header::RETRY_AFTER,
                    retry_after.as_secs().max(1).to_string(),
                ));
            }
            Self::StoreUnavailable => {
                response.insert_header((header::RETRY_AFTER, STORE_RETRY_AFTER_SECS.to_string()));
            }
            Self::MethodNotAllowed { allow } => {
                response.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
            }
            Self::RequestTimeout => {
                // The rest of the body will not be read; the connection cannot be reused.
                response.insert_header((header::CONNECTION, "close"));
            }
            _ => {}
        }
        match serde_json::to_vec(&body) {
            Ok(bytes) => response.body(bytes),
            Err(_) => response.finish(),
        }
    }
}
