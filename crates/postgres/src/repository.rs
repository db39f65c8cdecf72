use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use serde_json::Value;
use std::time::Duration as StdDuration;
use ticketd_domain::ports::TicketRepository;

use ticketd_domain::{
    Attachment, Begun, InvGateUserId, JournalError, LoadedFiles, NewOperation, NewTicket,
    Operation, OperationFailure, OperationId, StoreTicketError, StoredTicket,
};
use uuid::Uuid;

use crate::json::{JsonStr, JsonText};
use crate::pool::PgPool;
use crate::schema::tickets;

/// The [`TicketRepository`] on PostgreSQL.
#[derive(Clone)]
pub struct PgTicketRepository {
    pool: PgPool,
}

impl std::fmt::Debug for PgTicketRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTicketRepository")
            .field("pool", &self.pool.status())
            .finish()
    }
}

/// The metadata of one file, as stored in `tickets.attachments`.
#[derive(Debug, Serialize)]
struct AttachmentRecord<'a> {
    name: &'a str,
    size: u64,
    content_type: &'a str,
    sha256: &'a str,
}

impl<'a> From<&'a Attachment> for AttachmentRecord<'a> {
    fn from(a: &'a Attachment) -> Self {
        Self {
            name: a.name.as_str(),
            size: a.size,
            content_type: &a.content_type,
            sha256: a.sha256.as_str(),
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = tickets)]
// NULL for `None`, not DEFAULT (the same here: these columns have no default), so that the SQL
// is the same for every row and diesel-async prepares the statement once per connection.
#[diesel(treat_none_as_default_value = false)]
pub(crate) struct NewTicketRow<'a> {
    id: Uuid,
    pub(crate) inv_gate_id: i64,
    creator_email: &'a str,
    creator_id: i64,
    customer_id: i64,
    category_id: i64,
    priority_id: i16,
    type_id: i16,
    source_id: Option<i64>,
    location_id: Option<i64>,
    title: &'a str,
    description: &'a str,
    date_ocurred: Option<DateTime<Utc>>,
    related_to: Vec<i64>,
    attachments: JsonText,
    invgate_response: JsonStr<'a>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    operation_id: Option<Uuid>,
}

impl<'a> NewTicketRow<'a> {
    pub(crate) fn from_domain(stored: &'a StoredTicket) -> anyhow::Result<Self> {
        let t = &stored.ticket;
        let attachments: Vec<AttachmentRecord<'_>> = t.attachments.iter().map(Into::into).collect();
        Ok(Self {
            id: stored.id,
            inv_gate_id: stored.inv_gate_id.get(),
            creator_email: stored.creator_email.as_str(),
            creator_id: stored.creator_id.get(),
            customer_id: stored.customer_id.get(),
            category_id: t.category_id.get(),
            priority_id: i16::from(t.priority_id.get()),
            type_id: i16::from(t.type_id.get()),
            source_id: t.source_id.map(|s| s.get()),
            location_id: t.location_id.map(|l| l.get()),
            title: t.title.as_str(),
            description: t.description.as_str(),
            date_ocurred: t.date_ocurred.map(|d| d.get()),
            related_to: t.related_to.iter().map(|r| r.get()).collect(),
            attachments: JsonText::of(&attachments).context("serializing attachment metadata")?,
            invgate_response: JsonStr::answer(&stored.invgate_response),
            created_at: stored.created_at,
            updated_at: stored.created_at,
            operation_id: stored.operation_id.map(OperationId::get),
        })
    }
}

/// A row of `tickets`, as read back.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = tickets)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct TicketRow {
    pub id: Uuid,
    pub inv_gate_id: i64,
    pub creator_email: String,
    pub creator_id: i64,
    pub customer_id: i64,
    pub category_id: i64,
    pub priority_id: i16,
    pub type_id: i16,
    pub source_id: Option<i64>,
    pub location_id: Option<i64>,
    pub title: String,
    pub description: String,
    pub date_ocurred: Option<DateTime<Utc>>,
    pub related_to: Vec<i64>,
    pub attachments: Value,
    pub invgate_response: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub operation_id: Option<Uuid>,
}

impl PgTicketRepository {
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Runs `statement` on this thread's pipelined connection. A failure makes the pool stop
    /// handing that connection out, in case the connection is what failed.
    async fn pipelined<T, E, F>(
        &self,
        no_connection: impl FnOnce(anyhow::Error) -> E,
        statement: F,
    ) -> Result<T, E>
    where
        F: AsyncFnOnce(&AsyncPgConnection) -> Result<T, E>,
    {
        let conn = self.pool.pipelined().await.map_err(|e| {
            no_connection(anyhow::Error::new(e).context("getting a database connection"))
        })?;
        let outcome = statement(conn.connection()).await;
        if outcome.is_err() {
            self.pool.forget_pipelined(&conn);
        }
        outcome
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn journal_connection(
        &self,
    ) -> Result<diesel_async::pooled_connection::deadpool::Object<AsyncPgConnection>, JournalError>
    {
        self.pool.get().await.map_err(|e| {
            JournalError(anyhow::Error::new(e).context("getting a database connection"))
        })
    }

    /// Reads one stored ticket by InvGate id.
    ///
    /// # Errors
    /// When the database cannot be reached or the query fails.
    pub async fn find_by_inv_gate_id(&self, inv_gate_id: i64) -> anyhow::Result<Option<TicketRow>> {
        let mut conn = self
            .pool
            .get()
            .await
            .context("getting a database connection")?;
        tickets::table
            .filter(tickets::inv_gate_id.eq(inv_gate_id))
            .select(TicketRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .context("reading a ticket")
    }
}

#[async_trait]
impl TicketRepository for PgTicketRepository {
    #[tracing::instrument(name = "db.tickets.insert", skip_all, fields(invgate.request_id = ticket.inv_gate_id.get()))]
    async fn insert(&self, ticket: &StoredTicket) -> Result<(), StoreTicketError> {
        let row = NewTicketRow::from_domain(ticket)?;
        let mut conn = self
            .pool
            .get()
            .await
            .context("getting a database connection")?;
        diesel::insert_into(tickets::table)
            .values(&row)
            .execute(&mut conn)
            .await
            .map_err(|err| match err {
                DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info)
                    if info.constraint_name() == Some("tickets_inv_gate_id_key") =>
                {
                    StoreTicketError::Duplicate {
                        inv_gate_id: row.inv_gate_id,
                    }
                }
                other => StoreTicketError::Unexpected(
                    anyhow::Error::new(other).context("inserting a ticket"),
                ),
            })?;
        Ok(())
    }

    async fn begin_operation(&self, operation: &NewOperation) -> Result<Begun, JournalError> {
        self.pipelined(JournalError, async |conn| {
            crate::journal::begin(conn, operation).await
        })
        .await
    }

    async fn retake_operation(
        &self,
        id: OperationId,
        lease: StdDuration,
        request_id: &str,
    ) -> Result<bool, JournalError> {
        crate::journal::retake(
            &mut *self.journal_connection().await?,
            id,
            lease,
            request_id,
        )
        .await
    }

    #[tracing::instrument(name = "db.tickets.record_created", skip_all, fields(invgate.request_id = ticket.inv_gate_id.get()))]
    async fn record_created(&self, ticket: &StoredTicket) -> Result<(), StoreTicketError> {
        self.pipelined(StoreTicketError::Unexpected, async |conn| {
            crate::journal::record_created(conn, ticket).await
        })
        .await
    }

    async fn record_failure(
        &self,
        id: OperationId,
        failure: &OperationFailure,
    ) -> Result<(), JournalError> {
        crate::journal::record_failure(&mut *self.journal_connection().await?, id, failure).await
    }

    async fn record_in_doubt(
        &self,
        id: OperationId,
        lease: StdDuration,
        reason: &str,
    ) -> Result<(), JournalError> {
        crate::journal::record_in_doubt(&mut *self.journal_connection().await?, id, lease, reason)
            .await
    }

    async fn queue_operation(
        &self,
        id: OperationId,
        files: Option<Vec<Attachment>>,
        delay: StdDuration,
        reason: &str,
    ) -> Result<(), JournalError> {
        crate::journal::queue(
            &mut *self.journal_connection().await?,
            id,
            files,
            delay,
            reason,
        )
        .await
    }

    async fn claim_queued(
        &self,
        limit: usize,
        lease: StdDuration,
    ) -> Result<Vec<Operation>, JournalError> {
        crate::journal::claim_queued(&mut *self.journal_connection().await?, limit, lease).await
    }

    async fn set_requester(
        &self,
        id: OperationId,
        requester: InvGateUserId,
    ) -> Result<(), JournalError> {
        crate::journal::set_requester(&mut *self.journal_connection().await?, id, requester).await
    }

    async fn load_files(
        &self,
        id: OperationId,
        ticket: &NewTicket,
    ) -> Result<LoadedFiles, JournalError> {
        crate::journal::load_files(&mut *self.journal_connection().await?, id, ticket).await
    }

    async fn claim_unsettled(
        &self,
        limit: usize,
        lease: StdDuration,
    ) -> Result<Vec<Operation>, JournalError> {
        crate::journal::claim_unsettled(&mut *self.journal_connection().await?, limit, lease).await
    }

    async fn find_operation(
        &self,
        caller: &str,
        id: OperationId,
    ) -> Result<Option<Operation>, JournalError> {
        crate::journal::find(&mut *self.journal_connection().await?, caller, id).await
    }
}
