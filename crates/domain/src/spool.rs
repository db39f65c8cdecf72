//! The spool: where the record of a ticket InvGate created waits when the database cannot take it,
//! until it can. Nothing InvGate created may be lost because the local write failed.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::caller::{EmailAddress, InvGateUserId};
use crate::operation::{OperationId, TicketSnapshot};
use crate::ticket::{IncidentId, InvGateAnswer, StoredTicket};

/// A ticket record waiting for the database: everything [`StoredTicket`] holds. InvGate's answer
/// is kept twice, as a value and as its text (`answer_body`), as records have always been
/// written; the text is what is read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpooledRecord {
    pub local_id: Uuid,
    pub operation_id: Option<OperationId>,
    pub inv_gate_id: i64,
    pub creator_email: String,
    pub requester: i64,
    pub ticket: TicketSnapshot,
    pub invgate_response: Value,
    pub answer_body: String,
    pub created_at: DateTime<Utc>,
}

impl SpooledRecord {
    #[must_use]
    pub fn new(stored: &StoredTicket) -> Self {
        Self {
            local_id: stored.id,
            operation_id: stored.operation_id,
            inv_gate_id: stored.inv_gate_id.get(),
            creator_email: stored.creator_email.as_str().to_owned(),
            requester: stored.creator_id.get(),
            ticket: TicketSnapshot::from(&stored.ticket),
            invgate_response: stored.invgate_response.value().clone(),
            answer_body: stored.invgate_response.text().to_owned(),
            created_at: stored.created_at,
        }
    }

    /// The stored ticket again.
    ///
    /// # Errors
    /// A description of what is corrupt, for a record that no longer parses.
    pub fn to_stored(&self) -> Result<StoredTicket, String> {
        Ok(StoredTicket {
            id: self.local_id,
            operation_id: self.operation_id,
            inv_gate_id: IncidentId::parse(self.inv_gate_id)?,
            creator_email: EmailAddress::parse(&self.creator_email).map_err(|e| e.to_string())?,
            creator_id: InvGateUserId::new(self.requester),
            customer_id: InvGateUserId::new(self.requester),
            ticket: self.ticket.to_ticket().map_err(|e| e.to_string())?,
            invgate_response: InvGateAnswer::parse(self.answer_body.clone())
                .map_err(|e| format!("answer_body: {e}"))?,
            created_at: self.created_at,
        })
    }
}

/// The spool could not be written or read.
#[derive(Debug, thiserror::Error)]
#[error("the local spool failed")]
pub struct SpoolError(#[source] pub anyhow::Error);

/// A durable local queue of records.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait RecordSpool: Send + Sync + 'static {
    /// Stores `record` durably (on disk, synced) before returning.
    ///
    /// # Errors
    /// [`SpoolError`] when it could not be made durable.
    async fn put(&self, record: &SpooledRecord) -> Result<(), SpoolError>;

    /// Every waiting record, oldest first.
    ///
    /// # Errors
    /// [`SpoolError`] when the spool cannot be read.
    async fn list(&self) -> Result<Vec<SpooledRecord>, SpoolError>;

    /// Removes a record once the database has it.
    ///
    /// # Errors
    /// [`SpoolError`] when it cannot be removed (it will be replayed again, harmlessly).
    async fn remove(&self, local_id: Uuid) -> Result<(), SpoolError>;
}
