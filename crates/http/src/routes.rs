//! The routes and their handlers.

use actix_web::http::header::{ContentType, HeaderName, HeaderValue, LOCATION, RETRY_AFTER};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use serde_json::json;
use tracing::Instrument;

use crate::HttpState;
use crate::auth::{Caller, require_caller};
use crate::binding::{BoundTicket, bind_ticket};
use crate::middleware::{RequestContext, catch_panic};
use crate::ratelimit::rate_limit;
use ticketd_domain::{
    CreateOutcome, CreateRequest, FieldError, IdempotencyKey, IncidentId, Operation, OperationId,
    OperationState, StoredAnswer,
};

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
const PREFER: HeaderName = HeaderName::from_static("prefer");
const PREFERENCE_APPLIED: HeaderName = HeaderName::from_static("preference-applied");
use crate::problem::ApiError;
use actix_web::middleware::from_fn;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    let only = |allow: &'static str| {
        web::to(move || async move { Err::<HttpResponse, _>(ApiError::MethodNotAllowed { allow }) })
    };
    cfg.service(resource("/healthz").route(web::get().to(healthz)))
        .service(resource("/readyz").route(web::get().to(crate::ops::readyz)))
        .service(resource("/metrics").route(web::get().to(crate::ops::metrics)))
        .service(
            web::scope("/api/v1")
                // Runs second: the caller is known when the limit is checked.
                .wrap(from_fn(rate_limit))
                .wrap(from_fn(require_caller))
                .service(
                    resource("/tickets")
                        .route(web::post().to(create_ticket))
                        .route(web::get().to(crate::reads::list_tickets))
                        .default_service(only("GET, POST")),
                )
                // Before `/tickets/{id}`, which would otherwise take "operations" for an id.
                .service(
                    resource("/tickets/operations/{id}")
                        .route(web::get().to(operation_status))
                        .default_service(only("GET")),
                )
                .service(
                    resource("/tickets/{id}")
                        .route(web::get().to(crate::reads::show_ticket))
                        .default_service(only("GET")),
                )
                .service(
                    resource("/tickets/{id}/comments")
                        .route(web::get().to(crate::reads::list_comments))
                        .route(web::post().to(crate::reads::add_comment))
                        .default_service(only("GET, POST")),
                )
                .service(
                    resource("/ticket-meta")
                        .route(web::get().to(crate::reads::ticket_meta))
                        .default_service(only("GET")),
                ),
        );
}

/// Every resource recovers from panics in its handlers.
fn resource(
    path: &str,
) -> actix_web::Resource<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<actix_web::body::BoxBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    web::resource(path).wrap(from_fn(catch_panic))
}

/// Liveness: the process serves requests. Deliberately checks nothing else.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub(crate) async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// `Idempotency-Key` (IETF httpapi draft): optional, 1 to 255 printable ASCII characters.
fn idempotency_key(req: &HttpRequest) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = req.headers().get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| {
        ApiError::invalid(vec![FieldError::new(
            "Idempotency-Key",
            "must be printable ASCII",
        )])
    })?;
    IdempotencyKey::parse(text)
        .map(Some)
        .map_err(|message| ApiError::invalid(vec![FieldError::new("Idempotency-Key", message)]))
}

/// `Prefer: respond-async` (RFC 7240), possibly among other preferences.
fn prefers_async(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(PREFER)
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',').any(|preference| {
                preference
                    .split(';')
                    .next()
                    .is_some_and(|p| p.trim().eq_ignore_ascii_case("respond-async"))
            })
        })
}

fn operation_location(id: OperationId) -> String {
    format!("/api/v1/tickets/operations/{id}")
}

/// The status resource of a create operation (for tickets accepted with `202`).
#[derive(Debug, Serialize)]
struct OperationStatus {
    id: String,
    /// `queued`, `in_progress`, `created` or `failed`.
    status: &'static str,
    inv_gate_id: Option<i64>,
    ticket: Option<String>,
    reason: Option<String>,
    created_at: String,
}

impl From<&Operation> for OperationStatus {
    fn from(op: &Operation) -> Self {
        let status = match op.state {
            OperationState::Queued => "queued",
            OperationState::InFlight | OperationState::InDoubt => "in_progress",
            OperationState::Succeeded => "created",
            OperationState::Failed => "failed",
        };
        let reason = match (&op.answer, op.state) {
            (Some(StoredAnswer::Rejected { message }), _) => Some(message.clone()),
            (_, OperationState::Failed | OperationState::Queued) => op.reason.clone(),
            _ => None,
        };
        let inv_gate_id = op.inv_gate_id.map(IncidentId::get);
        Self {
            id: op.id.to_string(),
            status,
            inv_gate_id,
            ticket: inv_gate_id.map(|id| format!("/api/v1/tickets/{id}")),
            reason,
            created_at: op.created_at.to_rfc3339(),
        }
    }
}

/// `GET /api/v1/tickets/operations/{id}`: the caller's own operations only (others are 404).
async fn operation_status(
    path: web::Path<String>,
    caller: Caller,
    state: web::Data<HttpState>,
) -> Result<HttpResponse, ApiError> {
    let id = uuid::Uuid::parse_str(&path.into_inner()).map_err(|_| ApiError::NotFound)?;
    let operation = state
        .service
        .operation(&caller.email, OperationId::from_uuid(id))
        .await
        .map_err(ApiError::from_create)?
        .ok_or(ApiError::NotFound)?;
    let status = OperationStatus::from(&operation);
    let mut response = HttpResponse::Ok();
    if status.status == "queued" || status.status == "in_progress" {
        response.insert_header((RETRY_AFTER, "5"));
    }
    Ok(response.json(status))
}

fn created(inv_gate_id: i64, body: String) -> HttpResponse {
    HttpResponse::Created()
        .insert_header((LOCATION, format!("/api/v1/tickets/{inv_gate_id}")))
        .content_type(ContentType::json())
        .body(body)
}

#[tracing::instrument(name = "tickets.create", skip_all)]
async fn create_ticket(
    req: HttpRequest,
    payload: web::Payload,
    caller: Caller,
    state: web::Data<HttpState>,
) -> Result<HttpResponse, ApiError> {
    // A bad key is refused before the body is read; validation failures are never journaled.
    let idempotency_key = idempotency_key(&req)?;
    let BoundTicket { ticket, spooled } = bind_ticket(&req, payload, &state.limits)
        .instrument(tracing::info_span!("binding"))
        .await?;
    let context = RequestContext::current();
    let request = CreateRequest {
        idempotency_key,
        request_id: context
            .as_ref()
            .map(|c| c.request_id.clone())
            .unwrap_or_default(),
        respond_async: prefers_async(&req),
    };
    let outcome = state
        .service
        .create_ticket(&caller.email, ticket, request)
        .await
        .map_err(ApiError::from_create)?;
    // The spooled files are removed only now that InvGate has them.
    drop(spooled);
    Ok(match outcome {
        CreateOutcome::Created(ticket) => created(ticket.inv_gate_id.get(), ticket.body),
        CreateOutcome::Queued { operation_id } => {
            let status = state
                .service
                .operation(&caller.email, operation_id)
                .await
                .map_err(ApiError::from_create)?
                .map(|operation| OperationStatus::from(&operation));
            HttpResponse::Accepted()
                .insert_header((LOCATION, operation_location(operation_id)))
                .insert_header((PREFERENCE_APPLIED, "respond-async"))
                .json(status)
        }
        CreateOutcome::Replayed { answer, request_id } => {
            let mut response = match answer {
                StoredAnswer::Created { inv_gate_id, body } => created(inv_gate_id, body),
                StoredAnswer::Rejected { message } => {
                    // Byte for byte the first answer: rendered as it was for the first request.
                    let first = RequestContext {
                        request_id,
                        path: req.path().to_owned(),
                    };
                    ApiError::UpstreamRejected(message).response_for(Some(&first))
                }
            };
            response
                .headers_mut()
                .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
            tracing::info!("answered with the idempotency key's first answer");
            response
        }
    })
}
