//! The ports: what the domain needs from the outside world (driven ports) and what it offers to it
//! (the driving port, [`TicketService`]). Adapters implement them; tests mock them.

use async_trait::async_trait;
use serde_json::Value;

use crate::caller::{EmailAddress, InvGateUserId};
use std::time::Duration;

use crate::attachment::Attachment;
use crate::comments::{Comment, CommentsError, NewComment, Reference, ReferenceList, TicketMeta};
use crate::error::{CreateTicketError, GatewayError, JournalError, StoreTicketError};
use crate::operation::{
    Begun, IncidentSummary, LoadedFiles, NewOperation, Operation, OperationFailure, OperationId,
};
use crate::reading::{
    IncidentStatus, ReadStoreError, ReadTicketsError, TicketDetail, TicketList, TicketPage,
    TicketView,
};
use crate::service::{CreateOutcome, CreateRequest};
use crate::ticket::{IncidentId, NewTicket, StoredTicket};
use chrono::{DateTime, Utc};

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

    /// Every incident created in the last hour (`incidents.last.hour`, all pages).
    ///
    /// # Errors
    /// [`GatewayError`] when the list cannot be read completely.
    async fn incidents_created_last_hour(&self) -> Result<Vec<IncidentSummary>, GatewayError>;

    /// The open incidents of a customer (`incidents.by.customer`, all pages).
    ///
    /// # Errors
    /// [`GatewayError`] when the list cannot be read completely.
    async fn open_incidents_of(
        &self,
        customer: InvGateUserId,
    ) -> Result<Vec<IncidentSummary>, GatewayError>;

    /// Where an incident stands now (`GET incident`); `None` when InvGate does not know it.
    async fn incident_status(&self, id: IncidentId)
    -> Result<Option<IncidentStatus>, GatewayError>;

    /// Every comment on an incident (`GET incident.comment`), internal ones included; `None` when
    /// InvGate does not know the incident.
    async fn comments_of(&self, id: IncidentId) -> Result<Option<Vec<Comment>>, GatewayError>;

    /// Adds a customer-visible comment by `author` (`POST incident.comment`), files included.
    async fn add_comment(
        &self,
        id: IncidentId,
        author: InvGateUserId,
        comment: &NewComment,
    ) -> Result<Value, GatewayError>;

    /// One of InvGate's reference lists.
    async fn reference_list(&self, list: ReferenceList) -> Result<Vec<Reference>, GatewayError>;
}

/// The local mirror of tickets, as the read side needs it.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait TicketReadStore: Send + Sync + 'static {
    /// A page of `creator`'s tickets, newest first (one more than the limit, to know whether
    /// another page follows).
    async fn tickets_of(
        &self,
        creator: &EmailAddress,
        page: &TicketPage,
    ) -> Result<Vec<TicketView>, ReadStoreError>;

    /// `creator`'s ticket with InvGate id `id`; `None` for anyone else's or an unknown one.
    async fn ticket_of(
        &self,
        creator: &EmailAddress,
        id: IncidentId,
    ) -> Result<Option<TicketView>, ReadStoreError>;

    /// Stores InvGate's current view of a ticket, read at `synced_at`.
    async fn record_status(
        &self,
        id: IncidentId,
        status: &IncidentStatus,
        synced_at: DateTime<Utc>,
    ) -> Result<(), ReadStoreError>;

    /// Open tickets whose status was last read before `synced_before` (or never), least
    /// recently synced first.
    async fn due_for_sync(
        &self,
        limit: usize,
        synced_before: DateTime<Utc>,
    ) -> Result<Vec<IncidentId>, ReadStoreError>;
}

/// Where ticketd keeps its own record of every ticket, and the journal of create operations.
/// The store decides idempotency, so it holds across instances sharing it.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait TicketRepository: Send + Sync + 'static {
    /// Stores `ticket` on its own (no operation).
    ///
    /// # Errors
    /// - [`StoreTicketError::Duplicate`]: this InvGate id is already stored.
    /// - [`StoreTicketError::Unexpected`]: the store failed (unreachable, full, …).
    async fn insert(&self, ticket: &StoredTicket) -> Result<(), StoreTicketError>;

    /// Records a new operation, unless the caller already used its idempotency key, in which case
    /// the existing operation is returned and nothing is written.
    ///
    /// # Errors
    /// [`JournalError`] when the journal cannot be written.
    async fn begin_operation(&self, operation: &NewOperation) -> Result<Begun, JournalError>;

    /// Takes over an operation that failed without creating anything, for a new attempt under the
    /// same key. `false` when another request took it first or it is no longer retryable.
    ///
    /// # Errors
    /// [`JournalError`] when the journal cannot be written.
    async fn retake_operation(
        &self,
        id: OperationId,
        lease: Duration,
        request_id: &str,
    ) -> Result<bool, JournalError>;

    /// Stores the ticket and marks its operation succeeded with InvGate's answer (its text), in
    /// one transaction. Idempotent: storing the same operation's ticket twice changes nothing.
    ///
    /// # Errors
    /// [`StoreTicketError`] when the transaction fails; then nothing was written.
    async fn record_created(&self, ticket: &StoredTicket) -> Result<(), StoreTicketError>;

    /// Marks an operation failed.
    ///
    /// # Errors
    /// [`JournalError`] when the journal cannot be written.
    async fn record_failure(
        &self,
        id: OperationId,
        failure: &OperationFailure,
    ) -> Result<(), JournalError>;

    /// Marks an operation in doubt: the reconciler will look for its incident after `lease`.
    ///
    /// # Errors
    /// [`JournalError`] when the journal cannot be written.
    async fn record_in_doubt(
        &self,
        id: OperationId,
        lease: Duration,
        reason: &str,
    ) -> Result<(), JournalError>;

    /// Claims up to `limit` operations whose owner's lease ran out while they were in flight or in
    /// doubt, extending their lease by `lease` so no other instance works on them meanwhile.
    ///
    /// # Errors
    /// [`JournalError`] when the journal cannot be read or written.
    async fn claim_unsettled(
        &self,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Operation>, JournalError>;

    /// Moves an operation to the queue, for a worker to create when InvGate is back, not before
    /// `delay` has passed. With `files`, their contents are stored with it (the spooled copies are
    /// temporary); without, those stored earlier stay.
    ///
    /// # Errors
    /// [`JournalError`] when the queue cannot be written; then the operation is unchanged.
    async fn queue_operation(
        &self,
        id: OperationId,
        files: Option<Vec<Attachment>>,
        delay: Duration,
        reason: &str,
    ) -> Result<(), JournalError>;

    /// Claims up to `limit` queued operations that are due, oldest first, and marks them in
    /// flight with a lease of `lease`.
    ///
    /// # Errors
    /// [`JournalError`] when the journal cannot be read or written.
    async fn claim_queued(
        &self,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Operation>, JournalError>;

    /// Records the InvGate user an operation is for, once known.
    ///
    /// # Errors
    /// [`JournalError`] when the journal cannot be written.
    async fn set_requester(
        &self,
        id: OperationId,
        requester: InvGateUserId,
    ) -> Result<(), JournalError>;

    /// Brings a queued operation's files back to local disk.
    ///
    /// # Errors
    /// [`JournalError`] when they cannot be read.
    async fn load_files(
        &self,
        id: OperationId,
        ticket: &NewTicket,
    ) -> Result<LoadedFiles, JournalError>;

    /// Reads one operation of `caller`.
    ///
    /// # Errors
    /// [`JournalError`] when the journal cannot be read.
    async fn find_operation(
        &self,
        caller: &str,
        id: OperationId,
    ) -> Result<Option<Operation>, JournalError>;
}

/// The driving port: what the HTTP adapter calls.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait TicketService: Send + Sync + 'static {
    /// Creates `ticket` in InvGate on behalf of the caller with e-mail `caller`, exactly once per
    /// idempotency key, keeps a local copy, and returns InvGate's answer (or the first answer,
    /// replayed, when the key was used before for the same ticket).
    ///
    /// # Errors
    /// Every variant of [`CreateTicketError`]; see there.
    async fn create_ticket(
        &self,
        caller: &EmailAddress,
        ticket: NewTicket,
        request: CreateRequest,
    ) -> Result<CreateOutcome, CreateTicketError>;

    /// An operation of the caller's, for the status resource of a queued ticket.
    ///
    /// # Errors
    /// [`CreateTicketError::StoreUnavailable`] when the journal cannot be read.
    async fn operation(
        &self,
        caller: &EmailAddress,
        id: OperationId,
    ) -> Result<Option<Operation>, CreateTicketError>;
}

/// The driving port of the read side.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait TicketQueries: Send + Sync + 'static {
    /// A page of the caller's tickets, newest first.
    ///
    /// # Errors
    /// [`ReadTicketsError::StoreUnavailable`].
    async fn list_tickets(
        &self,
        caller: &EmailAddress,
        page: TicketPage,
    ) -> Result<TicketList, ReadTicketsError>;

    /// The caller's ticket with InvGate id `id`, its status refreshed from InvGate when it
    /// answers (else marked stale); `None` for another caller's ticket or an unknown id.
    ///
    /// # Errors
    /// [`ReadTicketsError::StoreUnavailable`].
    async fn ticket(
        &self,
        caller: &EmailAddress,
        id: IncidentId,
    ) -> Result<Option<TicketDetail>, ReadTicketsError>;

    /// The comments on the caller's ticket `id` the caller may see (no internal notes); `None`
    /// for another caller's ticket or an unknown id.
    ///
    /// # Errors
    /// See [`CommentsError`].
    async fn comments(
        &self,
        caller: &EmailAddress,
        id: IncidentId,
    ) -> Result<Option<Vec<Comment>>, CommentsError>;

    /// Adds a comment to the caller's ticket `id` as the caller's InvGate user; InvGate's answer,
    /// or `None` for another caller's ticket or an unknown id.
    ///
    /// # Errors
    /// See [`CommentsError`].
    async fn add_comment(
        &self,
        caller: &EmailAddress,
        id: IncidentId,
        comment: NewComment,
    ) -> Result<Option<Value>, CommentsError>;

    /// Priorities, types, statuses, sources and categories, cached.
    ///
    /// # Errors
    /// [`CommentsError::Upstream`] when InvGate cannot answer and nothing is cached.
    async fn ticket_meta(&self) -> Result<TicketMeta, CommentsError>;
}
