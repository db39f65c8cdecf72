//! The read side's use cases: list the caller's tickets, show one with its state fresh from
//! InvGate (or the mirror's, marked stale, when InvGate cannot answer), and keep the mirror of
//! open tickets current in the background.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use serde_json::Value;

use crate::caller::EmailAddress;
use crate::comments::{Comment, CommentsError, NewComment, ReferenceList, TicketMeta};
use crate::error::GatewayError;
use crate::ports::{IncidentGateway, TicketQueries, TicketReadStore};
use crate::reading::{PageCursor, ReadTicketsError, TicketDetail, TicketList, TicketPage};
use crate::service::CacheStats;
use crate::ticket::IncidentId;

/// How long InvGate's reference lists are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaCacheConfig {
    pub ttl: Duration,
}

impl Default for MetaCacheConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(600),
        }
    }
}

/// The read side over a gateway `G` and the local mirror `S`.
#[derive(Debug)]
pub struct TicketReader<G, S> {
    gateway: G,
    store: S,
    meta_config: MetaCacheConfig,
    meta: RwLock<Option<(Instant, Arc<TicketMeta>)>>,
    meta_stats: CacheStats,
}

impl<G, S> TicketReader<G, S> {
    /// Hits and misses of the reference-data cache.
    pub fn meta_cache_stats(&self) -> &CacheStats {
        &self.meta_stats
    }
}

impl<G: IncidentGateway, S: TicketReadStore> TicketReader<G, S> {
    pub fn new(gateway: G, store: S) -> Self {
        Self::with_meta_cache(gateway, store, MetaCacheConfig::default())
    }

    pub fn with_meta_cache(gateway: G, store: S, meta_config: MetaCacheConfig) -> Self {
        Self {
            gateway,
            store,
            meta_config,
            meta: RwLock::new(None),
            meta_stats: CacheStats::default(),
        }
    }

    /// Whether `caller` created ticket `id` (the gate of every per-ticket read and write).
    async fn owns(&self, caller: &EmailAddress, id: IncidentId) -> Result<bool, CommentsError> {
        self.store
            .ticket_of(caller, id)
            .await
            .map(|t| t.is_some())
            .map_err(|e| CommentsError::StoreUnavailable(e.0))
    }

    async fn fetch_meta(&self) -> Result<TicketMeta, GatewayError> {
        Ok(TicketMeta {
            priorities: self
                .gateway
                .reference_list(ReferenceList::Priorities)
                .await?,
            types: self.gateway.reference_list(ReferenceList::Types).await?,
            statuses: self.gateway.reference_list(ReferenceList::Statuses).await?,
            sources: self.gateway.reference_list(ReferenceList::Sources).await?,
            categories: self
                .gateway
                .reference_list(ReferenceList::Categories)
                .await?,
        })
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

    #[tracing::instrument(name = "tickets.comments", skip_all, fields(invgate.request_id = id.get()))]
    async fn comments(
        &self,
        caller: &EmailAddress,
        id: IncidentId,
    ) -> Result<Option<Vec<Comment>>, CommentsError> {
        if !self.owns(caller, id).await? {
            return Ok(None);
        }
        let Some(comments) = self.gateway.comments_of(id).await? else {
            tracing::warn!("InvGate does not know this ticket");
            return Ok(None);
        };
        // The service desk's internal notes stay internal.
        Ok(Some(
            comments
                .into_iter()
                .filter(|c| c.customer_visible)
                .collect(),
        ))
    }

    #[tracing::instrument(name = "tickets.comment", skip_all, fields(invgate.request_id = id.get()))]
    async fn add_comment(
        &self,
        caller: &EmailAddress,
        id: IncidentId,
        comment: NewComment,
    ) -> Result<Option<Value>, CommentsError> {
        if !self.owns(caller, id).await? {
            return Ok(None);
        }
        let author = self
            .gateway
            .find_user_id_by_email(caller)
            .await?
            .ok_or(CommentsError::UserNotProvisioned)?;
        Ok(Some(self.gateway.add_comment(id, author, &comment).await?))
    }

    #[tracing::instrument(name = "tickets.meta", skip_all)]
    async fn ticket_meta(&self) -> Result<TicketMeta, CommentsError> {
        let cached = self
            .meta
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some((at, meta)) = &cached
            && at.elapsed() < self.meta_config.ttl
        {
            self.meta_stats.record(true);
            return Ok(TicketMeta::clone(meta));
        }
        self.meta_stats.record(false);
        match self.fetch_meta().await {
            Ok(meta) => {
                *self
                    .meta
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some((Instant::now(), Arc::new(meta.clone())));
                Ok(meta)
            }
            // Reference data changes rarely: an old copy beats an error.
            Err(err) => match cached {
                Some((_, meta)) => {
                    tracing::warn!(error = %err, "InvGate's reference data cannot be refreshed; serving the cached copy");
                    Ok(TicketMeta::clone(&meta))
                }
                None => Err(err.into()),
            },
        }
    }
}
