//! The auth middleware: every request under `/api/v1` carries a bearer token that
//! [`ticketd_auth::Verifier`] accepts, or is answered 401 without saying which check failed.

use std::future::{Ready, ready};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::AUTHORIZATION;
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use ticketd_auth::{AuthError, Verifier};
use ticketd_domain::EmailAddress;
use tracing::Instrument;

use crate::problem::{ApiError, Challenge};

/// The authenticated caller, put into the request by the auth middleware.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub email: EmailAddress,
}

/// The auth middleware: no valid token, no entry.
pub(crate) async fn require_caller(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let verifier = req.app_data::<web::Data<Verifier>>().cloned();
    let Some(verifier) = verifier else {
        tracing::error!("no Verifier in the app data: refusing every request");
        return Ok(req.error_response(ApiError::Internal));
    };
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""));
    let outcome = verifier
        .authenticate(header)
        .instrument(tracing::info_span!("auth"))
        .await;
    match outcome {
        Ok(identity) => {
            req.extensions_mut().insert(Caller {
                email: identity.email,
            });
            next.call(req)
                .await
                .map(ServiceResponse::map_into_boxed_body)
        }
        Err(AuthError::Missing) => {
            tracing::info!("request without a bearer token");
            Ok(req.error_response(ApiError::Unauthorized(Challenge::Missing)))
        }
        Err(AuthError::Invalid(reason)) => {
            // The reason is for operators; the client only learns `invalid_token`.
            tracing::info!(reason = %reason, "bearer token refused");
            Ok(req.error_response(ApiError::Unauthorized(Challenge::InvalidToken)))
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Present whenever the route sits behind `require_caller`; refuse rather than guess.
        ready(
            req.extensions()
                .get::<Caller>()
                .cloned()
                .ok_or(ApiError::Unauthorized(Challenge::Missing)),
        )
    }
}
