//! The ports: what the domain needs from the outside world (driven ports) and what it offers to it
//! (the driving port, [`TicketService`]). Adapters implement them; tests mock them.

use async_trait::async_trait;
use serde_json::Value;

use crate::caller::{EmailAddress, InvGateUserId};
use crate::error::{CreateTicketError, GatewayError, StoreTicketError};
use crate::service::CreatedTicket;
use crate::ticket::{NewTicket, StoredTicket};

/// InvGate, as the create use case sees it.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait IncidentGateway: Send + Sync + 'static {
    /// Looks up the InvGate user owning `email`. `Ok(None)` means InvGate answered and has no
    /// such (active) user.
    ///
    /// # Errors
    /// [`GatewayError`] when InvGate could not say either way.
    async fn find_user_id_by_email(
        &self,
        email: &EmailAddress,
    ) -> Result<Option<InvGateUserId>, GatewayError>;

    /// Creates an incident for `requester` (as creator and customer), files included, and returns
    /// InvGate's answer as it came. Implementations must **never** retry this call blindly:
    /// InvGate has no idempotency key, so a resent request is a second incident.
    ///
    /// # Errors
    /// - [`GatewayError::Rejected`]: InvGate refused the ticket (its answer says why).
    /// - [`GatewayError::Unauthorized`]: our credentials were refused.
    /// - [`GatewayError::RateLimited`]: try later.
    /// - [`GatewayError::Timeout`]: no answer in time; the incident may exist.
    /// - [`GatewayError::Unavailable`]: InvGate failed or answered outside its documented shape.
    async fn create_incident(
        &self,
        requester: InvGateUserId,
        ticket: &NewTicket,
    ) -> Result<Value, GatewayError>;
}

/// Where ticketd keeps its own record of every ticket.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait TicketRepository: Send + Sync + 'static {
    /// Stores `ticket`.
    ///
    /// # Errors
    /// - [`StoreTicketError::Duplicate`]: this InvGate id is already stored.
    /// - [`StoreTicketError::Unexpected`]: the store failed (unreachable, full, …).
    async fn insert(&self, ticket: &StoredTicket) -> Result<(), StoreTicketError>;
}

/// The driving port: what the HTTP adapter calls.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait TicketService: Send + Sync + 'static {
    /// Creates `ticket` in InvGate on behalf of the caller with e-mail `caller`, keeps a local
    /// copy, and returns InvGate's answer.
    ///
    /// # Errors
    /// Every variant of [`CreateTicketError`]; see there.
    async fn create_ticket(
        &self,
        caller: &EmailAddress,
        ticket: NewTicket,
    ) -> Result<CreatedTicket, CreateTicketError>;
}
