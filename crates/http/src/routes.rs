//! The routes and their handlers.

use actix_web::http::header::{ContentType, HeaderName, HeaderValue, LOCATION};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;
use tracing::Instrument;

use crate::HttpState;
use crate::auth::{Caller, require_caller};
use crate::binding::{BoundTicket, bind_ticket};
use crate::middleware::{RequestContext, catch_panic};
use ticketd_domain::{CreateOutcome, CreateRequest, FieldError, IdempotencyKey, StoredAnswer};

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
use crate::problem::ApiError;
use actix_web::middleware::from_fn;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/healthz").route(web::get().to(healthz)))
        .service(
            web::scope("/api/v1").wrap(from_fn(require_caller)).service(
                resource("/tickets")
                    .route(web::post().to(create_ticket))
                    .default_service(web::to(|| async {
                        Err::<HttpResponse, _>(ApiError::MethodNotAllowed { allow: "POST" })
                    })),
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
