//! The outermost layer around every request: a request id (the client's when sane, else a new
//! one) echoed as `X-Request-Id`, a tracing span carrying it, one access-log line per request, and
//! recovery from panics in handlers (a 500 problem; the server keeps serving).

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use actix_web::ResponseError;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;
use futures_util::FutureExt;
use tracing::Instrument;

use crate::HttpState;
use crate::problem::ApiError;

pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What error answers need to know about the request they answer.
#[derive(Debug, Clone)]
pub(crate) struct RequestContext {
    pub request_id: String,
    pub path: String,
}

tokio::task_local! {
    static CONTEXT: RequestContext;
}

impl RequestContext {
    /// The context of the request being handled on this task, if any.
    pub(crate) fn current() -> Option<Self> {
        CONTEXT.try_with(Clone::clone).ok()
    }
}

/// A client-sent id is kept only when it is short and plain, so it is safe in logs and headers.
fn sane_request_id(value: &HeaderValue) -> Option<String> {
    let s = value.to_str().ok()?;
    let plain = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    plain.then(|| s.to_owned())
}

pub(crate) async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(sane_request_id)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let method = req.method().clone();
    let path = req.path().to_owned();
    let span = tracing::info_span!(
        crate::steps::REQUEST_SPAN,
        request_id = %request_id,
        http.method = %method,
        http.path = %path,
    );
    let context = RequestContext {
        request_id: request_id.clone(),
        path: path.clone(),
    };

    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    let max_header_bytes = req
        .app_data::<web::Data<HttpState>>()
        .map_or(usize::MAX, |state| state.limits.max_header_bytes);

    // Panics are caught next to the handlers (`catch_panic`); this one only guards middleware.
    let outcome = if header_bytes > max_header_bytes {
        let response = CONTEXT.sync_scope(context, || {
            req.error_response(ApiError::HeadersTooLarge {
                limit: max_header_bytes,
            })
        });
        span.in_scope(|| tracing::info!(header_bytes, "request headers too large"));
        Ok(response)
    } else {
        CONTEXT
            .scope(context, AssertUnwindSafe(next.call(req)).catch_unwind())
            .instrument(span.clone())
            .await
            .map(|outcome| outcome.map(ServiceResponse::map_into_boxed_body))
            .unwrap_or_else(|panic| {
                span.in_scope(
                    || tracing::error!(panic = %panic_message(&*panic), "a middleware panicked"),
                );
                Err(ApiError::Internal.into())
            })
    };

    let status = match &outcome {
        Ok(response) => response.status(),
        Err(error) => error.as_response_error().status_code(),
    };
    // Route patterns, not paths, and only standard methods: the label sets stay few whatever
    // clients send.
    let route = match &outcome {
        Ok(response) => response
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned()),
        Err(_) => "unmatched".to_owned(),
    };
    let method_label = match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    };
    ticketd_metrics::metrics().http_request(
        route,
        method_label,
        status.as_u16(),
        started.elapsed().as_secs_f64(),
    );
    crate::steps::log_access(
        &span,
        &request_id,
        method.as_str(),
        &path,
        status.as_u16(),
        started.elapsed(),
    );
    // Every error is turned into a response before it gets here (see `require_caller` and the
    // handlers), so only a panicking middleware leaves without the request id header.
    let mut response = outcome?.map_into_boxed_body();
    // actix-cors answers refused preflights in plain text; clients get a problem like any other.
    let cors_refusal = response
        .response()
        .error()
        .and_then(|e| e.as_error::<actix_cors::CorsError>())
        .map(ToString::to_string);
    if let Some(reason) = cors_refusal {
        let (request, _) = response.into_parts();
        let context = RequestContext {
            request_id: request_id.clone(),
            path: path.clone(),
        };
        let problem = ApiError::CorsRejected(format!("cross-origin request refused: {reason}"))
            .response_for(Some(&context));
        response = ServiceResponse::new(request, problem);
    }
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert(REQUEST_ID, value);
    }
    // Answers are data about people's tickets: never sniffed into something else, never kept
    // by shared caches.
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(response)
}

/// Turns a panic in a handler into a 500 problem. It wraps each resource rather than the whole
/// app because only after routing may the request be shared, which building the 500 needs.
pub(crate) async fn catch_panic(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let request = req.request().clone();
    match AssertUnwindSafe(next.call(req)).catch_unwind().await {
        Ok(outcome) => outcome.map(ServiceResponse::map_into_boxed_body),
        Err(panic) => {
            tracing::error!(panic = %panic_message(&*panic), "a handler panicked; answered 500");
            Ok(ServiceResponse::new(
                request,
                ApiError::Internal.error_response(),
            ))
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_request_ids_are_kept_and_odd_ones_are_not() {
        let keep = HeaderValue::from_static("abc-123_x.y:z");
        assert_eq!(sane_request_id(&keep).as_deref(), Some("abc-123_x.y:z"));
        for odd in ["", "has space", "semi;colon", "quote\""] {
            let value = HeaderValue::from_str(odd).expect("header value");
            assert_eq!(sane_request_id(&value), None, "{odd:?}");
        }
        let long = HeaderValue::from_str(&"a".repeat(129)).expect("header value");
        assert_eq!(sane_request_id(&long), None);
    }
}
