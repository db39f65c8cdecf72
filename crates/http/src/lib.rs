//! The HTTP adapter: actix-web routes for ticketd, the JWT auth middleware, JSON and multipart
//! binding with streamed attachments, request ids, access logs, panic recovery, and the one
//! [`ApiError`] that turns every failure into RFC 9457 `application/problem+json`.
//!
//! Handlers talk to the domain's [`TicketService`] port only, so tests run them over a mock.

mod auth;
mod binding;
mod middleware;
mod problem;
mod routes;

use std::path::PathBuf;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, web};
use ticketd_domain::TicketService;

pub use auth::{AuthError, Caller, JwtVerifier, mint_hs256_token};
pub use problem::ApiError;

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
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_attachments: 10,
            max_attachment_bytes: 20 * 1024 * 1024,
            max_json_bytes: 1024 * 1024,
            leeway: chrono::Duration::seconds(60),
            upload_dir: None,
        }
    }
}

/// Everything the handlers need, shared by all workers.
#[derive(Clone)]
pub struct HttpState {
    pub service: Arc<dyn TicketService>,
    pub verifier: Arc<JwtVerifier>,
    pub limits: Limits,
}

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpState")
            .field("limits", &self.limits)
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
    App::new()
        .app_data(web::Data::new(state.clone()))
        .app_data(web::Data::from(state.verifier.clone()))
        .configure(routes::configure)
        .default_service(web::to(routes::not_found))
        .wrap(actix_web::middleware::from_fn(middleware::request_context))
}
