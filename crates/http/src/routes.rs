//! The routes and their handlers.

use actix_web::dev::HttpServiceFactory;
use actix_web::http::Method;
use actix_web::http::header::{ContentType, HeaderName, HeaderValue, LOCATION, RETRY_AFTER};
use actix_web::{FromRequest, Handler, HttpRequest, HttpResponse, Responder, web};
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

/// Where the authenticated API lives.
pub(crate) const API_PREFIX: &str = "/api/v1";

/// A path and the handler of each method it answers. The server registers exactly the endpoints
/// of [`public_endpoints`] and [`api_endpoints`], and a test checks that the OpenAPI document
/// describes each of them and nothing else.
pub(crate) struct Endpoint {
    pub(crate) path: &'static str,
    pub(crate) routes: Vec<(Method, actix_web::Route)>,
}

impl Endpoint {
    fn new(path: &'static str) -> Self {
        Self {
            path,
            routes: Vec::new(),
        }
    }

    fn on<F, Args>(mut self, method: Method, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.routes
            .push((method.clone(), web::method(method).to(handler)));
        self
    }

    fn get<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.on(Method::GET, handler)
    }

    fn post<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.on(Method::POST, handler)
    }

    /// The methods, as an `Allow` header lists them.
    pub(crate) fn allow(&self) -> String {
        self.routes
            .iter()
            .map(|(method, _)| method.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The resource: its routes, 405 with `Allow` for any other method, panics recovered.
    fn into_resource(self) -> impl HttpServiceFactory {
        let allow = self.allow();
        let mut resource = resource(self.path);
        for (_, route) in self.routes {
            resource = resource.route(route);
        }
        resource.default_service(web::to(move || {
            let allow = allow.clone();
            async move { Err::<HttpResponse, _>(ApiError::MethodNotAllowed { allow }) }
        }))
    }
}

/// Probes, metrics and the API description: no authentication.
pub(crate) fn public_endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::new("/healthz").get(healthz),
        Endpoint::new("/readyz").get(crate::ops::readyz),
        Endpoint::new("/metrics").get(crate::ops::metrics),
        Endpoint::new("/openapi.json").get(crate::openapi::document),
    ]
}

/// The API under [`API_PREFIX`]: authenticated, rate limited.
pub(crate) fn api_endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::new("/tickets")
            .get(crate::reads::list_tickets)
            .post(create_ticket),
        // Before `/tickets/{id}`, which would otherwise take "operations" for an id.
        Endpoint::new("/tickets/operations/{id}").get(operation_status),
        Endpoint::new("/tickets/{id}").get(crate::reads::show_ticket),
        Endpoint::new("/tickets/{id}/comments")
            .get(crate::reads::list_comments)
            .post(crate::reads::add_comment),
        Endpoint::new("/ticket-meta").get(crate::reads::ticket_meta),
    ]
}

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    for endpoint in public_endpoints() {
        cfg.service(endpoint.into_resource());
    }
    crate::openapi::configure_docs(cfg);
    let mut api = web::scope(API_PREFIX)
        // Runs second: the caller is known when the limit is checked.
        .wrap(from_fn(rate_limit))
        .wrap(from_fn(require_caller));
    for endpoint in api_endpoints() {
        api = api.service(endpoint.into_resource());
    }
    cfg.service(api);
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
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Liveness probe",
    description = "200 while the process serves requests; checks nothing else.",
    responses((status = 200, description = "Alive.", body = crate::openapi::HealthDoc)),
)]
pub(crate) async fn healthz() -> HttpResponse {
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
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Operation)]
pub(crate) struct OperationStatus {
    #[schema(format = Uuid)]
    id: String,
    #[schema(value_type = String, pattern = "^(queued|in_progress|created|failed)$", example = "queued")]
    status: &'static str,
    /// InvGate's id, once created.
    inv_gate_id: Option<i64>,
    /// The ticket's path, once created.
    #[schema(example = "/api/v1/tickets/1042")]
    ticket: Option<String>,
    /// Why it failed, or why it is still queued.
    reason: Option<String>,
    #[schema(format = DateTime)]
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
#[utoipa::path(
    get,
    path = "/api/v1/tickets/operations/{id}",
    tag = "tickets",
    summary = "The state of a ticket accepted with 202",
    params(("id" = String, Path, format = Uuid, description = "The operation's id, from the `Location` of the 202.")),
    responses(
        (status = 200, description = "The operation. `Retry-After` is set while it is `queued` or `in_progress`.", body = OperationStatus,
            headers(("Retry-After" = String, description = "Seconds before asking again, while unfinished."))),
        (status = 404, description = "`NOT_FOUND`: no such operation of the caller's.", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "`STORE_UNAVAILABLE`: the database is unreachable.", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn operation_status(
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

#[utoipa::path(
    post,
    path = "/api/v1/tickets",
    tag = "tickets",
    summary = "Create a ticket in InvGate",
    description = "Creates the ticket as an InvGate incident, attachments included, records it, and answers with InvGate's payload. The caller's e-mail (from the token) names the InvGate user it is created for. With `Idempotency-Key`, a retry of the same request gets the first answer again instead of a second ticket.",
    params(
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[\\x20-\\x7E]+$", description = "1 to 255 printable ASCII characters. Repeating a request with the same key and body answers with the first answer (`Idempotent-Replayed: true`); the same key with another body is `IDEMPOTENCY_KEY_MISMATCH`."),
        ("Prefer" = Option<String>, Header, description = "`respond-async` to be answered 202 at once with an operation to poll, instead of waiting for InvGate."),
    ),
    request_body(
        description = "The ticket as JSON, or as multipart with files.",
        content(
            (crate::openapi::TicketRequestDoc = "application/json"),
            (crate::openapi::TicketFormDoc = "multipart/form-data"),
        ),
    ),
    responses(
        (status = 201, description = "Created in InvGate and recorded: InvGate's answer.", body = crate::openapi::InvGateAnswerDoc,
            headers(
                ("Location" = String, description = "`/api/v1/tickets/{InvGate id}`."),
                ("Idempotent-Replayed" = String, description = "`true` when this is the first answer to an earlier request with the same `Idempotency-Key`."),
            )),
        (status = 202, description = "Accepted (`Prefer: respond-async`, or InvGate unreachable and the ticket queued): poll the operation.", body = OperationStatus,
            headers(
                ("Location" = String, description = "`/api/v1/tickets/operations/{id}`."),
                ("Preference-Applied" = String, description = "`respond-async`."),
            )),
        (status = 400, description = "`INVALID_INPUT`: malformed body or invalid fields, each listed in `errors`; or a bad `Idempotency-Key`.", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "`USER_NOT_PROVISIONED`: InvGate has no user with the caller's e-mail.", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 408, description = "`REQUEST_TIMEOUT`: the body stalled or trickled.", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "`IDEMPOTENCY_KEY_IN_USE`: the key's first request is still running; retry after `Retry-After`.", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "`PAYLOAD_TOO_LARGE`: too many files, a file too large, or JSON too large.", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "`UNSUPPORTED_MEDIA_TYPE`: a body that is neither JSON nor multipart, or a refused file (executable, script, a type outside the allow-list, a type lie).", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "`UPSTREAM_REJECTED`: InvGate refused the ticket (its message in `detail`); or `IDEMPOTENCY_KEY_MISMATCH`: the key was used with another request.", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 502, description = "`UPSTREAM_AUTH`: InvGate refused ticketd's credentials; or `EXTERNAL_SERVICE_ERROR`: InvGate failed or answered unexpectedly.", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "`UPSTREAM_BUSY` (InvGate rate limits), `UPSTREAM_UNAVAILABLE` (calls to InvGate suspended after failures) or `STORE_UNAVAILABLE` (database unreachable; nothing sent): retry after `Retry-After`.", body = crate::problem::ProblemBody, content_type = "application/problem+json",
            headers(("Retry-After" = String, description = "Seconds to wait."))),
        (status = 504, description = "`UPSTREAM_TIMEOUT`: InvGate did not answer in time; the ticket may exist there. Retry with the same `Idempotency-Key`.", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
    ),
)]
#[tracing::instrument(name = "tickets.create", skip_all)]
pub(crate) async fn create_ticket(
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
