//! The HTTP adapter: actix-web routes for ticketd, the JWT auth middleware, JSON and multipart
//! binding with streamed attachments, request ids, access logs, panic recovery, and the one
//! [`ApiError`] that turns every failure into RFC 9457 `application/problem+json`.
//!
//! Handlers talk to the domain's [`TicketService`] port only, so tests run them over a mock.

mod auth;
mod binding;
mod files;
mod middleware;
mod openapi;
mod ops;
mod problem;
mod ratelimit;
mod reads;
mod routes;
mod steps;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, web};
use ticketd_domain::{TicketQueries, TicketService};

pub use auth::Caller;
pub use files::{AttachmentPolicy, Category, Refusal, Vetted, sniff, vet};
pub use openapi::openapi_json;
pub use ops::{AlwaysReady, Check, Operations};
pub use problem::{ApiError, ProblemCode};
pub use ratelimit::{Decision, RateLimit, RateLimiter};
pub use steps::{Step, StepDurations, StepTimes, log_access};
pub use ticketd_auth::{AuthError, Verifier, mint_hs256_token};

/// Request size limits and binding rules.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Files per ticket.
    pub max_attachments: usize,
    /// Bytes per file.
    pub max_attachment_bytes: u64,
    /// Bytes of a JSON body, or of all text parts of a multipart body together.
    pub max_json_bytes: usize,
    /// Clock skew allowed when checking that `date_ocurred` is not in the future.
    pub leeway: chrono::Duration,
    /// Where uploads wait on disk while a request runs; the system's temp dir when `None`.
    pub upload_dir: Option<PathBuf>,
    /// The families of files a ticket may carry.
    pub attachment_policy: AttachmentPolicy,
    /// How long the body may stall between two chunks before the request fails with 408.
    pub body_idle_timeout: Duration,
    /// Bytes of all request headers together; more is answered 431.
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_attachments: 10,
            max_attachment_bytes: 20 * 1024 * 1024,
            max_json_bytes: 1024 * 1024,
            leeway: chrono::Duration::seconds(60),
            upload_dir: None,
            attachment_policy: AttachmentPolicy::default(),
            body_idle_timeout: Duration::from_secs(15),
            max_header_bytes: 16 * 1024,
        }
    }
}

/// Everything the handlers need, shared by all workers.
#[derive(Clone)]
pub struct HttpState {
    pub service: Arc<dyn TicketService>,
    /// The read side: the caller's tickets.
    pub queries: Arc<dyn TicketQueries>,
    /// Readiness checks and scrape-time metrics.
    pub ops: Arc<dyn Operations>,
    pub verifier: Arc<Verifier>,
    pub limits: Limits,
    /// Per-caller limit on `/api/v1`; none when `None`.
    pub rate_limiter: Option<Arc<RateLimiter>>,
    /// Origins browsers may call from (CORS); `*` for any, without credentials. Empty: no CORS.
    pub cors_origins: Vec<String>,
}

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpState")
            .field("limits", &self.limits)
            .field("rate_limiter", &self.rate_limiter)
            .field("cors_origins", &self.cors_origins)
            .finish_non_exhaustive()
    }
}

/// The complete ticketd application, ready for `HttpServer::new` or `actix_web::test`.
pub fn app(
    state: HttpState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let cors = cors(&state.cors_origins);
    let mut app = App::new()
        .app_data(web::Data::new(state.clone()))
        .app_data(web::Data::from(state.verifier.clone()));
    if let Some(limiter) = &state.rate_limiter {
        app = app.app_data(web::Data::from(limiter.clone()));
    }
    app.configure(routes::configure)
        .default_service(web::to(routes::not_found))
        .wrap(actix_web::middleware::Condition::new(
            !state.cors_origins.is_empty(),
            cors,
        ))
        .wrap(actix_web::middleware::from_fn(middleware::request_context))
}

/// CORS for the configured origins only. Credentials (cookies) are never allowed: callers
/// authenticate with a bearer token, which a browser sends only when the page's script does.
fn cors(origins: &[String]) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST"])
        .allowed_headers([
            "authorization",
            "content-type",
            "idempotency-key",
            "prefer",
            "x-request-id",
        ])
        .expose_headers([
            "location",
            "retry-after",
            "x-request-id",
            "idempotent-replayed",
            "preference-applied",
            "ratelimit-limit",
            "ratelimit-remaining",
            "ratelimit-reset",
            "ratelimit-policy",
        ])
        .max_age(600);
    if origins.iter().any(|o| o == "*") {
        cors = cors.allow_any_origin().send_wildcard();
    } else {
        for origin in origins {
            cors = cors.allowed_origin(origin);
        }
    }
    cors
}

/// Entry points into request binding for the fuzz targets in `fuzz/`: the code a request runs
/// through, without a server.
#[doc(hidden)]
pub mod fuzzing {
    use actix_web::FromRequest;
    use actix_web::test::TestRequest;
    use actix_web::web;
    use bytes::Bytes;
    use ticketd_domain::NewTicket;

    use crate::{ApiError, Limits};

    /// Binds a create request with this `Content-Type` and body, spooled files included.
    ///
    /// # Errors
    /// The problem the client would be answered with.
    pub async fn bind(
        content_type: &str,
        body: Bytes,
        limits: &Limits,
    ) -> Result<NewTicket, ApiError> {
        let (request, mut payload) = TestRequest::post()
            .uri("/api/v1/tickets")
            .insert_header(("content-type", content_type))
            .set_payload(body)
            .to_http_parts();
        let payload = web::Payload::from_request(&request, &mut payload)
            .await
            .map_err(|_| ApiError::Internal)?;
        crate::binding::bind_ticket(&request, payload, limits)
            .await
            .map(|bound| bound.ticket)
    }
}
