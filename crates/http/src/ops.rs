//! For operators: `GET /readyz` (can this instance serve: database migrated, InvGate answering)
//! and `GET /metrics` (Prometheus text). `/healthz` stays a cheap liveness probe.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpResponse, web};
use async_trait::async_trait;
use serde::Serialize;

use crate::HttpState;

/// The outcome of one readiness check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    /// What was found, for the operator reading the probe.
    pub detail: String,
}

/// What the operator endpoints need from the application.
#[async_trait]
pub trait Operations: Send + Sync + 'static {
    /// Every readiness check, each answered within a short time.
    async fn readiness(&self) -> Vec<Check>;

    /// Brings the gauges read at scrape time (pool, journal, spool) up to date.
    async fn refresh_metrics(&self);
}

/// For tests and embeddings without dependencies: always ready, nothing to refresh.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysReady;

#[async_trait]
impl Operations for AlwaysReady {
    async fn readiness(&self) -> Vec<Check> {
        Vec::new()
    }

    async fn refresh_metrics(&self) {}
}

#[derive(Debug, Serialize)]
struct Readiness<'a> {
    status: &'static str,
    checks: &'a [Check],
}

/// `GET /readyz`: 200 when every check passes, else 503 saying which failed.
pub(crate) async fn readyz(state: web::Data<HttpState>) -> HttpResponse {
    let checks = state.ops.readiness().await;
    let ready = checks.iter().all(|c| c.ok);
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        checks: &checks,
    };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        for check in checks.iter().filter(|c| !c.ok) {
            tracing::warn!(check = check.name, detail = %check.detail, "not ready");
        }
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// `GET /metrics`: the Prometheus text exposition.
pub(crate) async fn metrics(state: web::Data<HttpState>) -> HttpResponse {
    state.ops.refresh_metrics().await;
    HttpResponse::Ok()
        .insert_header((
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ))
        .insert_header((CACHE_CONTROL, "no-store"))
        .body(ticketd_metrics::metrics().render())
}
