//! The read side's use cases: list the caller's tickets, show one with its state fresh from
//! InvGate (or the mirror's, marked stale, when InvGate cannot answer), and keep the mirror of
//! open tickets current in the background.

use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;

use crate::caller::EmailAddress;
use crate::ports::{IncidentGateway, TicketQueries, TicketReadStore};
use crate::reading::{PageCursor, ReadTicketsError, TicketDetail, TicketList, TicketPage};
use crate::ticket::IncidentId;

/// The read side over a gateway `G` and the local mirror `S`.
#[derive(Debug)]
pub struct TicketReader<G, S> {
    gateway: G,
    store: S,
}

impl<G: IncidentGateway, S: TicketReadStore> TicketReader<G, S> {
    pub fn new(gateway: G, store: S) -> Self {
        Self { gateway, store }
    }

    /// Refreshes the status of up to `limit` open tickets not synced for `min_age`: one InvGate
    /// call each, so `limit` per round bounds the call rate. Returns how many were refreshed.
    ///
    /// # Errors
    /// When the mirror cannot be read.
    pub async fn sync_open(&self, limit: usize, min_age: Duration) -> anyhow::Result<usize> {
        let age = chrono::Duration::from_std(min_age).unwrap_or(chrono::Duration::MAX);
        let due = self
            .store
            .due_for_sync(limit, Utc::now() - age)
            .await
            .map_err(|e| e.0)?;
        let mut refreshed = 0;
        for id in due {
            match self.gateway.incident_status(id).await {
                Ok(Some(status)) => {
                    self.store
                        .record_status(id, &status, Utc::now())
                        .await
                        .map_err(|e| e.0)?;
                    refreshed += 1;
                }
                Ok(None) => {
                    tracing::warn!(
                        invgate.request_id = id.get(),
                        "InvGate no longer knows a ticket of the mirror"
                    );
                }
                Err(err) => {
                    // InvGate is failing: the rest waits for the next round.
                    tracing::info!(error = %err, "status sync paused: InvGate did not answer");
                    break;
                }
            }
        }
        Ok(refreshed)
    }
}

#[async_trait]
impl<G: IncidentGateway, S: TicketReadStore> TicketQueries for TicketReader<G, S> {
    #[tracing::instrument(name = "tickets.list", skip_all)]
    async fn list_tickets(
        &self,
        caller: &EmailAddress,
        page: TicketPage,
    ) -> Result<TicketList, ReadTicketsError> {
        let mut tickets = self
            .store
            .tickets_of(caller, &page)
            .await
            .map_err(|e| ReadTicketsError::StoreUnavailable(e.0))?;
        let limit = page.limit as usize;
        // The store reads one more than asked: its presence says another page follows.
        let next = if tickets.len() > limit {
            tickets.truncate(limit);
            tickets.last().map(PageCursor::after)
        } else {
            None
        };
        Ok(TicketList { tickets, next })
    }

    #[tracing::instrument(name = "tickets.show", skip_all, fields(invgate.request_id = id.get()))]
    async fn ticket(
        &self,
        caller: &EmailAddress,
        id: IncidentId,
    ) -> Result<Option<TicketDetail>, ReadTicketsError> {
        let Some(mut ticket) = self
            .store
            .ticket_of(caller, id)
            .await
            .map_err(|e| ReadTicketsError::StoreUnavailable(e.0))?
        else {
            return Ok(None);
        };
        let stale = match self.gateway.incident_status(id).await {
            Ok(Some(status)) => {
                let now = Utc::now();
                if let Err(err) = self.store.record_status(id, &status, now).await {
                    // The caller still gets the fresh state; the mirror catches up later.
                    tracing::warn!(error = %err.0, "the refreshed status could not be stored");
                }
                ticket.status = status;
                ticket.status_synced_at = Some(now);
                false
            }
            Ok(None) => {
                tracing::warn!("InvGate does not know this ticket; showing the local copy");
                true
            }
            Err(err) => {
                tracing::info!(error = %err, "InvGate did not answer; showing the local copy as stale");
                true
            }
        };
        Ok(Some(TicketDetail { ticket, stale }))
    }
}
