//! The read side of the mirror: a caller's tickets by keyset pages, one ticket, and the status
//! fields the sync keeps current.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;
use serde_json::Value;
use ticketd_domain::{
    EmailAddress, IncidentId, IncidentStatus, ReadStoreError, TicketPage, TicketReadStore,
    TicketView,
};
use uuid::Uuid;

use crate::repository::PgTicketRepository;
use crate::schema::tickets;

#[diesel::declare_sql_function]
extern "SQL" {
    fn lower(x: Text) -> Text;
}

/// The columns a [`TicketView`] is made of.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = tickets, check_for_backend(diesel::pg::Pg))]
struct ViewRow {
    id: Uuid,
    inv_gate_id: i64,
    title: String,
    description: String,
    category_id: i64,
    priority_id: i16,
    type_id: i16,
    source_id: Option<i64>,
    location_id: Option<i64>,
    date_ocurred: Option<DateTime<Utc>>,
    related_to: Vec<i64>,
    attachments: Value,
    created_at: DateTime<Utc>,
    status_id: Option<i64>,
    last_update: Option<DateTime<Utc>>,
    solved_at: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
    status_synced_at: Option<DateTime<Utc>>,
}

impl ViewRow {
    fn into_view(self) -> Result<TicketView, ReadStoreError> {
        Ok(TicketView {
            id: self.id,
            inv_gate_id: IncidentId::parse(self.inv_gate_id).map_err(|e| {
                ReadStoreError(anyhow::anyhow!("a stored InvGate id is invalid: {e}"))
            })?,
            title: self.title,
            description: self.description,
            category_id: self.category_id,
            priority_id: i64::from(self.priority_id),
            type_id: i64::from(self.type_id),
            source_id: self.source_id,
            location_id: self.location_id,
            date_ocurred: self.date_ocurred,
            related_to: self.related_to,
            attachments: self.attachments,
            created_at: self.created_at,
            status: IncidentStatus {
                status_id: self.status_id,
                last_update: self.last_update,
                solved_at: self.solved_at,
                closed_at: self.closed_at,
            },
            status_synced_at: self.status_synced_at,
        })
    }
}

fn store_error(context: &'static str) -> impl Fn(diesel::result::Error) -> ReadStoreError {
    move |e| ReadStoreError(anyhow::Error::new(e).context(context))
}

impl PgTicketRepository {
    async fn read_connection(
        &self,
    ) -> Result<
        diesel_async::pooled_connection::deadpool::Object<diesel_async::AsyncPgConnection>,
        ReadStoreError,
    > {
        self.pool().get().await.map_err(|e| {
            ReadStoreError(anyhow::Error::new(e).context("getting a database connection"))
        })
    }
}

#[async_trait]
impl TicketReadStore for PgTicketRepository {
    #[tracing::instrument(name = "db.tickets.list", skip_all)]
    async fn tickets_of(
        &self,
        creator: &EmailAddress,
        page: &TicketPage,
    ) -> Result<Vec<TicketView>, ReadStoreError> {
        let mut conn = self.read_connection().await?;
        let mut query = tickets::table
            .filter(lower(tickets::creator_email).eq(creator.normalized()))
            .select(ViewRow::as_select())
            .order((tickets::created_at.desc(), tickets::inv_gate_id.desc()))
            .limit(i64::from(page.limit) + 1)
            .into_boxed();
        if let Some(status_id) = page.status_id {
            query = query.filter(tickets::status_id.eq(status_id));
        }
        if let Some(after) = page.after {
            // Keyset paging: strictly older, or as old with a smaller id.
            query = query.filter(
                tickets::created_at
                    .lt(after.created_at)
                    .or(tickets::created_at
                        .eq(after.created_at)
                        .and(tickets::inv_gate_id.lt(after.inv_gate_id))),
            );
        }
        let rows: Vec<ViewRow> = query
            .load(&mut conn)
            .await
            .map_err(store_error("listing tickets"))?;
        rows.into_iter().map(ViewRow::into_view).collect()
    }

    #[tracing::instrument(name = "db.tickets.get", skip_all)]
    async fn ticket_of(
        &self,
        creator: &EmailAddress,
        id: IncidentId,
    ) -> Result<Option<TicketView>, ReadStoreError> {
        let mut conn = self.read_connection().await?;
        let row: Option<ViewRow> = tickets::table
            .filter(tickets::inv_gate_id.eq(id.get()))
            .filter(lower(tickets::creator_email).eq(creator.normalized()))
            .select(ViewRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(store_error("reading a ticket"))?;
        row.map(ViewRow::into_view).transpose()
    }

    #[tracing::instrument(name = "db.tickets.record_status", skip_all)]
    async fn record_status(
        &self,
        id: IncidentId,
        status: &IncidentStatus,
        synced_at: DateTime<Utc>,
    ) -> Result<(), ReadStoreError> {
        let mut conn = self.read_connection().await?;
        diesel::update(tickets::table.filter(tickets::inv_gate_id.eq(id.get())))
            .set((
                tickets::status_id.eq(status.status_id),
                tickets::last_update.eq(status.last_update),
                tickets::solved_at.eq(status.solved_at),
                tickets::closed_at.eq(status.closed_at),
                tickets::status_synced_at.eq(Some(synced_at)),
                tickets::updated_at.eq(diesel::dsl::now),
            ))
            .execute(&mut conn)
            .await
            .map_err(store_error("recording a ticket's status"))?;
        Ok(())
    }

    #[tracing::instrument(name = "db.tickets.due_for_sync", skip_all)]
    async fn due_for_sync(
        &self,
        limit: usize,
        synced_before: DateTime<Utc>,
    ) -> Result<Vec<IncidentId>, ReadStoreError> {
        let mut conn = self.read_connection().await?;
        let ids: Vec<i64> = tickets::table
            .filter(tickets::closed_at.is_null())
            .filter(
                tickets::status_synced_at
                    .is_null()
                    .or(tickets::status_synced_at.lt(synced_before)),
            )
            .order(tickets::status_synced_at.asc().nulls_first())
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .select(tickets::inv_gate_id)
            .load(&mut conn)
            .await
            .map_err(store_error("finding tickets to sync"))?;
        Ok(ids
            .into_iter()
            .filter_map(|id| IncidentId::parse(id).ok())
            .collect())
    }
}
