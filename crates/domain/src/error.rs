//! One error type per operation, each saying what the caller can do about it.

use std::time::Duration;

use serde::Serialize;

/// One problem with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    #[must_use]
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A ticket that breaks one or more rules; lists every broken rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the ticket is invalid: {}", summary(.errors))]
pub struct InvalidTicket {
    errors: Vec<FieldError>,
}

fn summary(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{} {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl InvalidTicket {
    #[must_use]
    pub fn new(errors: Vec<FieldError>) -> Self {
        Self { errors }
    }

    #[must_use]
    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }

    #[must_use]
    pub fn into_errors(self) -> Vec<FieldError> {
        self.errors
    }
}

/// How a call to InvGate failed, classified by what it means for the caller (the port's error; the
/// gateway adapter translates its transport's failures into these at its edge).
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// InvGate understood the request and refused it (4xx other than auth/rate, or `status: ERROR`).
    /// `message` is InvGate's own, possibly localized: shown to the client, never matched on.
    #[error("InvGate rejected the request: {message}")]
    Rejected { message: String },
    /// InvGate refused our credentials (401/403): a configuration error on our side.
    #[error("InvGate refused ticketd's credentials (HTTP {status})")]
    Unauthorized { status: u16 },
    /// InvGate asked us to come back later (429, or 503): nothing was created.
    #[error("InvGate is rate limiting ticketd or temporarily unavailable")]
    RateLimited { retry_after: Option<Duration> },
    /// The request certainly never reached InvGate (connection refused, DNS, TLS handshake):
    /// nothing was created.
    #[error("InvGate could not be reached")]
    NotSent(#[source] anyhow::Error),
    /// Too many recent failures: calls are refused at once for a while, without reaching InvGate.
    #[error("InvGate calls are suspended after repeated failures")]
    CircuitOpen { retry_after: Duration },
    /// No complete answer within the configured time. For a create, the incident may exist.
    #[error("InvGate did not answer in time")]
    Timeout,
    /// Anything else: 5xx, a reset connection, an answer that is not what the API documents.
    /// For a create, the incident may exist.
    #[error("InvGate failed")]
    Unavailable(#[source] anyhow::Error),
}

impl GatewayError {
    /// Whether the failed call certainly created nothing in InvGate.
    #[must_use]
    pub fn created_nothing(&self) -> bool {
        matches!(
            self,
            Self::Rejected { .. }
                | Self::Unauthorized { .. }
                | Self::RateLimited { .. }
                | Self::NotSent(_)
                | Self::CircuitOpen { .. }
        )
    }
}

/// The operation journal could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("the operation journal is unavailable")]
pub struct JournalError(#[source] pub anyhow::Error);

/// Why the local copy of a ticket could not be written.
#[derive(Debug, thiserror::Error)]
pub enum StoreTicketError {
    /// A ticket with this InvGate id is already stored.
    #[error("a ticket with InvGate id {inv_gate_id} is already stored")]
    Duplicate { inv_gate_id: i64 },
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why a ticket could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateTicketError {
    /// The caller's e-mail has no InvGate user: they must be provisioned there first.
    #[error("no InvGate user has the e-mail address {email}")]
    UserNotProvisioned { email: String },
    /// InvGate refused the ticket; `message` is InvGate's explanation.
    #[error("InvGate rejected the ticket: {message}")]
    UpstreamRejected { message: String },
    /// InvGate refused ticketd's own credentials.
    #[error("InvGate refused ticketd's credentials")]
    UpstreamAuth(#[source] GatewayError),
    /// InvGate is rate limiting; try again after `retry_after` when known.
    #[error("InvGate is busy")]
    UpstreamBusy { retry_after: Option<Duration> },
    /// InvGate did not answer in time. The ticket may or may not exist there.
    #[error("InvGate did not answer in time")]
    UpstreamTimeout,
    /// InvGate failed or answered something unusable.
    #[error("InvGate failed")]
    UpstreamFailed(#[source] anyhow::Error),
    /// InvGate calls are suspended after repeated failures.
    #[error("InvGate is unavailable")]
    UpstreamUnavailable { retry_after: Duration },
    /// The idempotency key was used before for a different ticket.
    #[error("the idempotency key was used for a different request")]
    IdempotencyKeyMismatch,
    /// The idempotency key's first request is still running or in doubt.
    #[error("the idempotency key's first request is not finished")]
    IdempotencyKeyInUse { retry_after: Duration },
    /// The journal cannot be written, so no create may start (an untracked incident could not be
    /// recovered).
    #[error("the ticket store is unavailable")]
    StoreUnavailable(#[source] JournalError),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<GatewayError> for CreateTicketError {
    fn from(err: GatewayError) -> Self {
        match err {
            GatewayError::Rejected { message } => Self::UpstreamRejected { message },
            err @ GatewayError::Unauthorized { .. } => Self::UpstreamAuth(err),
            GatewayError::RateLimited { retry_after } => Self::UpstreamBusy { retry_after },
            GatewayError::Timeout => Self::UpstreamTimeout,
            GatewayError::Unavailable(cause) | GatewayError::NotSent(cause) => {
                Self::UpstreamFailed(cause)
            }
            GatewayError::CircuitOpen { retry_after } => Self::UpstreamUnavailable { retry_after },
        }
    }
}
