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
use utoipa::ToSchema;

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
    MethodNotAllowed { allow: String },
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
        self.problem_code().as_str()
    }

    /// The stable machine-readable code, as a value.
    #[must_use]
    pub fn problem_code(&self) -> ProblemCode {
        match self {
            Self::InvalidInput { .. } => ProblemCode::InvalidInput,
            Self::Unauthorized(_) => ProblemCode::Unauthorized,
            Self::PayloadTooLarge(_) => ProblemCode::PayloadTooLarge,
            Self::UnsupportedMediaType(_) => ProblemCode::UnsupportedMediaType,
            Self::UserNotProvisioned => ProblemCode::UserNotProvisioned,
            Self::UpstreamRejected(_) => ProblemCode::UpstreamRejected,
            Self::UpstreamAuth => ProblemCode::UpstreamAuth,
            Self::UpstreamBusy { .. } => ProblemCode::UpstreamBusy,
            Self::ExternalService => ProblemCode::ExternalServiceError,
            Self::UpstreamTimeout => ProblemCode::UpstreamTimeout,
            Self::NotFound => ProblemCode::NotFound,
            Self::MethodNotAllowed { .. } => ProblemCode::MethodNotAllowed,
            Self::UpstreamUnavailable { .. } => ProblemCode::UpstreamUnavailable,
            Self::IdempotencyKeyMismatch => ProblemCode::IdempotencyKeyMismatch,
            Self::IdempotencyKeyInUse { .. } => ProblemCode::IdempotencyKeyInUse,
            Self::StoreUnavailable => ProblemCode::StoreUnavailable,
            Self::RequestTimeout => ProblemCode::RequestTimeout,
            Self::RateLimited { .. } => ProblemCode::RateLimited,
            Self::HeadersTooLarge { .. } => ProblemCode::HeadersTooLarge,
            Self::CorsRejected(_) => ProblemCode::CorsRejected,
            Self::Internal => ProblemCode::InternalError,
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

/// The stable, machine-readable `code` of a problem: what programs should branch on. The
/// OpenAPI description's list of codes is derived from this enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProblemCode {
    InvalidInput,
    Unauthorized,
    PayloadTooLarge,
    UnsupportedMediaType,
    UserNotProvisioned,
    UpstreamRejected,
    UpstreamAuth,
    UpstreamBusy,
    ExternalServiceError,
    UpstreamTimeout,
    NotFound,
    MethodNotAllowed,
    UpstreamUnavailable,
    IdempotencyKeyMismatch,
    IdempotencyKeyInUse,
    StoreUnavailable,
    RequestTimeout,
    RateLimited,
    HeadersTooLarge,
    CorsRejected,
    InternalError,
}

impl ProblemCode {
    /// Every code, in declaration order.
    pub const ALL: [Self; 21] = [
        Self::InvalidInput,
        Self::Unauthorized,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::UserNotProvisioned,
        Self::UpstreamRejected,
        Self::UpstreamAuth,
        Self::UpstreamBusy,
        Self::ExternalServiceError,
        Self::UpstreamTimeout,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::UpstreamUnavailable,
        Self::IdempotencyKeyMismatch,
        Self::IdempotencyKeyInUse,
        Self::StoreUnavailable,
        Self::RequestTimeout,
        Self::RateLimited,
        Self::HeadersTooLarge,
        Self::CorsRejected,
        Self::InternalError,
    ];

    /// The HTTP status every problem with this code is answered with.
    #[must_use]
    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidInput => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::UserNotProvisioned => StatusCode::FORBIDDEN,
            Self::UpstreamRejected => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UpstreamAuth => StatusCode::BAD_GATEWAY,
            Self::UpstreamBusy => StatusCode::SERVICE_UNAVAILABLE,
            Self::ExternalServiceError => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::UpstreamUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::IdempotencyKeyMismatch => StatusCode::UNPROCESSABLE_ENTITY,
            Self::IdempotencyKeyInUse => StatusCode::CONFLICT,
            Self::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::CorsRejected => StatusCode::BAD_REQUEST,
            Self::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short summary of the kind of problem (the problem's `title`).
    #[must_use]
    pub fn title(self) -> &'static str {
        match self {
            Self::InvalidInput => "Invalid input",
            Self::Unauthorized => "Unauthorized",
            Self::PayloadTooLarge => "Payload too large",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::UserNotProvisioned => "User not provisioned",
            Self::UpstreamRejected => "Rejected by InvGate",
            Self::UpstreamAuth => "InvGate refused ticketd",
            Self::UpstreamBusy => "InvGate is busy",
            Self::ExternalServiceError => "InvGate failed",
            Self::UpstreamTimeout => "InvGate timed out",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::UpstreamUnavailable => "InvGate is unavailable",
            Self::IdempotencyKeyMismatch => "Idempotency key reused",
            Self::IdempotencyKeyInUse => "Idempotency key in use",
            Self::StoreUnavailable => "Ticket store unavailable",
            Self::RequestTimeout => "Request timeout",
            Self::RateLimited => "Too many requests",
            Self::HeadersTooLarge => "Request headers too large",
            Self::CorsRejected => "Cross-origin request refused",
            Self::InternalError => "Internal error",
        }
    }

    /// The code as it appears in a problem's `code` member.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidInput => "INVALID_INPUT",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Self::UserNotProvisioned => "USER_NOT_PROVISIONED",
            Self::UpstreamRejected => "UPSTREAM_REJECTED",
            Self::UpstreamAuth => "UPSTREAM_AUTH",
            Self::UpstreamBusy => "UPSTREAM_BUSY",
            Self::ExternalServiceError => "EXTERNAL_SERVICE_ERROR",
            Self::UpstreamTimeout => "UPSTREAM_TIMEOUT",
            Self::NotFound => "NOT_FOUND",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::UpstreamUnavailable => "UPSTREAM_UNAVAILABLE",
            Self::IdempotencyKeyMismatch => "IDEMPOTENCY_KEY_MISMATCH",
            Self::IdempotencyKeyInUse => "IDEMPOTENCY_KEY_IN_USE",
            Self::StoreUnavailable => "STORE_UNAVAILABLE",
            Self::RequestTimeout => "REQUEST_TIMEOUT",
            Self::RateLimited => "RATE_LIMITED",
            Self::HeadersTooLarge => "HEADERS_TOO_LARGE",
            Self::CorsRejected => "CORS_REJECTED",
            Self::InternalError => "INTERNAL_ERROR",
        }
    }
}

/// An RFC 9457 problem, with ticketd's extension members.
#[derive(Serialize, ToSchema)]
#[schema(as = Problem)]
pub(crate) struct ProblemBody<'a> {
    /// A URN naming the kind of problem: `urn:ticketd:problem:<code in kebab case>`.
    #[serde(rename = "type")]
    kind: String,
    /// A short summary of the kind of problem.
    title: &'static str,
    /// The HTTP status code.
    status: u16,
    /// What happened, for a person to read.
    detail: &'a str,
    /// The path of the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    instance: Option<&'a str>,
    code: ProblemCode,
    /// The detail again, for clients of the Go service ticketd replaces.
    error: &'a str,
    /// Every invalid field, on a 400.
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<Vec<InvalidField<'a>>>,
    /// The request's id, also in the `X-Request-Id` header and in ticketd's logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

/// One invalid field of a request and what is wrong with it.
#[derive(Serialize, ToSchema)]
pub(crate) struct InvalidField<'a> {
    /// The field's name (`title`, `attachments[]`, `Idempotency-Key`, …).
    field: &'a str,
    message: &'a str,
}

impl<'a> From<&'a FieldError> for InvalidField<'a> {
    fn from(e: &'a FieldError) -> Self {
        Self {
            field: &e.field,
            message: &e.message,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.problem_code().status()
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
            title: self.problem_code().title(),
            status: status.as_u16(),
            detail: &detail,
            instance: context.map(|c| c.path.as_str()),
            code: self.problem_code(),
            error: &detail,
            errors: match self {
                Self::InvalidInput { errors, .. } => Some(errors.iter().map(Into::into).collect()),
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
                if let Ok(allow) = HeaderValue::from_str(allow) {
                    response.insert_header((header::ALLOW, allow));
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_problem_code_serializes_as_the_string_it_is_documented_as() {
        for code in ProblemCode::ALL {
            assert_eq!(
                serde_json::to_value(code).expect("serializes"),
                serde_json::Value::from(code.as_str())
            );
        }
    }

    #[test]
    fn every_problem_code_is_listed_once_in_all() {
        let mut codes: Vec<&str> = ProblemCode::ALL.iter().map(|c| c.as_str()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), ProblemCode::ALL.len());
    }
}
