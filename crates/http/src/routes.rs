//! The routes and their handlers.

use actix_web::http::header::LOCATION;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;
use tracing::Instrument;

use crate::HttpState;
use crate::auth::{Caller, require_caller};
use crate::binding::{BoundTicket, bind_ticket};
use crate::middleware::catch_panic;
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

#[tracing::instrument(name = "tickets.create", skip_all)]
async fn create_ticket(
    req: HttpRequest,
    payload: web::Payload,
    caller: Caller,
    state: web::Data<HttpState>,
) -> Result<HttpResponse, ApiError> {
    let BoundTicket { ticket, spooled } = bind_ticket(&req, payload, &state.limits)
        .instrument(tracing::info_span!("binding"))
        .await?;
    let created = state
        .service
        .create_ticket(&caller.email, ticket)
        .await
        .map_err(ApiError::from_create)?;
    // The spooled files are removed only now that InvGate has them.
    drop(spooled);
    Ok(HttpResponse::Created()
        .insert_header((LOCATION, format!("/api/v1/tickets/{}", created.inv_gate_id)))
        .json(created.response))
}
