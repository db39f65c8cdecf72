//! For operators: `GET /readyz` (can this instance serve: database migrated, InvGate answering)
//! and `GET /metrics` (Prometheus text). `/healthz` stays a cheap liveness probe.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpResponse, web};
use async_trait::async_trait;
use serde::Serialize;

use crate::HttpState;

/// The outcome of one readiness check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Check {
    /// `database` or `invgate`.
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

/// Whether this instance can serve, and each check's outcome.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Readiness<'a> {
    #[schema(value_type = String, pattern = "^(ready|not_ready)$")]
    status: &'static str,
    checks: &'a [Check],
}

/// `GET /readyz`: 200 when every check passes, else 503 saying which failed.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "Readiness probe",
    description = "The database is reachable with every migration applied, and InvGate answers (`sd.version`, cached for 10 s).",
    responses(
        (status = 200, description = "Ready.", body = Readiness),
        (status = 503, description = "Not ready; the failed checks say why.", body = Readiness),
    ),
)]
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
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    description = "Requests, InvGate calls, the database pool, the journal and spool, and caches, in the OpenMetrics text format (see docs/operations.md).",
    responses((status = 200, description = "The exposition.", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String)),
)]
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
