//! The InvGate Service Management client: a reqwest adapter implementing the domain's
//! [`IncidentGateway`] port over InvGate's v1 HTTP API (dotted RPC endpoint names under
//! `…/api/v1/`, HTTP Basic auth, PHP-style arrays).
//!
//! Every failure is classified here, at the adapter's edge, into a [`GatewayError`]; nothing of
//! reqwest leaks past this crate. The create call is never retried: InvGate cannot deduplicate.

mod answer;
mod client;
mod form;

pub use client::{
    InvGateConfig, InvGateConfigError, ReqwestInvGateClient, RetryPolicy, install_crypto_provider,
    parse_base_url,
};
pub use client::{fuzzing, incident_form};
#[doc(hidden)]
pub use form::{FinishedBody, MultipartBody};
pub use ticketd_domain::GatewayError;
pub use ticketd_domain::ports::IncidentGateway;
