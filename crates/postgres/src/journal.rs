//! The operation journal on PostgreSQL: the `ticket_operations` table.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use ticketd_domain::{
    Begun, Fingerprint, IncidentId, InvGateUserId, JournalError, NewOperation, Operation,
    OperationFailure, OperationId, OperationState, StoreTicketError, StoredAnswer, StoredTicket,
    TicketSnapshot,
};
use uuid::Uuid;

use crate::json::JsonText;
use crate::repository::NewTicketRow;
use crate::schema::{operation_file_chunks, ticket_operations, tickets};

fn lease_end(lease: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX)
}

#[derive(Insertable)]
#[diesel(table_name = ticket_operations)]
// NULL for `None`, not DEFAULT (the same here: these columns have no default), so that the SQL
// is the same for every row and diesel-async prepares the statement once per connection.
#[diesel(treat_none_as_default_value = false)]
struct NewOperationRow<'a> {
    id: Uuid,
    caller: String,
    idempotency_key: Option<&'a str>,
    fingerprint: &'a str,
    state: &'static str,
    requester_id: Option<i64>,
    request_id: &'a str,
    ticket: JsonText,
    lease_until: DateTime<Utc>,
}

/// A row of `ticket_operations`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = ticket_operations)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct OperationRow {
    pub id: Uuid,
    pub caller: String,
    pub idempotency_key: Option<String>,
    pub fingerprint: String,
    pub state: String,
    pub retryable: bool,
    pub requester_id: Option<i64>,
    pub request_id: String,
    pub ticket: Value,
    pub inv_gate_id: Option<i64>,
    pub answer: Option<Value>,
    pub reason: Option<String>,
    pub was_queued: bool,
    pub attempts: i32,
    pub attempt_started_at: DateTime<Utc>,
    pub lease_until: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<OperationRow> for Operation {
    type Error = anyhow::Error;

    fn try_from(row: OperationRow) -> Result<Self, Self::Error> {
        Ok(Self {
            id: OperationId::from_uuid(row.id),
            state: OperationState::parse(&row.state)
                .map_err(|s| anyhow::anyhow!("unknown operation state {s:?}"))?,
            fingerprint: Fingerprint::from_stored(row.fingerprint),
            retryable: row.retryable,
            answer: row
                .answer
                .map(serde_json::from_value::<StoredAnswer>)
                .transpose()
                .context("reading a stored answer")?,
            request_id: row.request_id,
            requester: row.requester_id.map(InvGateUserId::new),
            caller: row.caller,
            ticket: serde_json::from_value::<TicketSnapshot>(row.ticket)
                .context("reading a ticket snapshot")?,
            inv_gate_id: row.inv_gate_id.and_then(|id| IncidentId::parse(id).ok()),
            reason: row.reason,
            was_queued: row.was_queued,
            created_at: row.created_at,
            attempt_started_at: row.attempt_started_at,
        })
    }
}

fn journal_error(context: &'static str) -> impl FnOnce(diesel::result::Error) -> JournalError {
    move |e| JournalError(anyhow::Error::new(e).context(context))
}

/// Journals a new operation. Takes a shared connection: this statement is pipelined with other
/// requests' (see `PgPool::pipelined`).
pub(crate) async fn begin(
    mut conn: &AsyncPgConnection,
    op: &NewOperation,
) -> Result<Begun, JournalError> {
    let caller = op.caller.normalized();
    let row = NewOperationRow {
        id: op.id.get(),
        caller: caller.clone(),
        idempotency_key: op.key.as_ref().map(|k| k.as_str()),
        fingerprint: op.fingerprint.as_str(),
        state: op.state.as_str(),
        requester_id: op.requester.map(InvGateUserId::get),
        request_id: &op.request_id,
        ticket: JsonText::of(&op.ticket).map_err(|e| JournalError(e.into()))?,
        lease_until: lease_end(op.lease),
    };
    let inserted = diesel::insert_into(ticket_operations::table)
        .values(&row)
        .on_conflict((
            ticket_operations::caller,
            ticket_operations::idempotency_key,
        ))
        .do_nothing()
        .execute(&mut conn)
        .await
        .map_err(journal_error("journaling an operation"))?;
    if inserted == 1 {
        return Ok(Begun::Started);
    }
    let key = op
        .key
        .as_ref()
        .map(|k| k.as_str().to_owned())
        .unwrap_or_default();
    let existing: OperationRow = ticket_operations::table
        .filter(ticket_operations::caller.eq(&caller))
        .filter(ticket_operations::idempotency_key.eq(&key))
        .select(OperationRow::as_select())
        .first(&mut conn)
        .await
        .map_err(journal_error("reading the key's operation"))?;
    Ok(Begun::Existing(Box::new(
        existing.try_into().map_err(JournalError)?,
    )))
}

pub(crate) async fn retake(
    conn: &mut AsyncPgConnection,
    id: OperationId,
    lease: Duration,
    request_id: &str,
) -> Result<bool, JournalError> {
    let updated = diesel::update(
        ticket_operations::table
            .filter(ticket_operations::id.eq(id.get()))
            .filter(ticket_operations::state.eq(OperationState::Failed.as_str()))
            .filter(ticket_operations::retryable.eq(true)),
    )
    .set((
        ticket_operations::state.eq(OperationState::InFlight.as_str()),
        ticket_operations::retryable.eq(false),
        ticket_operations::reason.eq(None::<String>),
        ticket_operations::request_id.eq(request_id),
        ticket_operations::lease_until.eq(lease_end(lease)),
        ticket_operations::attempts.eq(ticket_operations::attempts + 1),
        ticket_operations::attempt_started_at.eq(Utc::now()),
        ticket_operations::updated_at.eq(Utc::now()),
    ))
    .execute(conn)
    .await
    .map_err(journal_error("retaking an operation"))?;
    Ok(updated == 1)
}

/// The one statement that records a created ticket: the ticket row, the operation settled with
/// its answer, and the operation's stored files dropped.
///
/// A statement is atomic on its own, where a transaction around three statements costs two more
/// round trips (BEGIN, COMMIT). diesel's builder cannot put data-modifying statements in a WITH,
/// so the WITH part is written out and followed by diesel's own insert of the row (`insert`).
/// Being a type of its own with fixed SQL, it is prepared once per connection and reused
/// (`sql_query` would be parsed, and closed, on every call).
///
/// The data-modifying CTEs always run to completion, whether or not the insert finds the ticket
/// already there. Idempotent: a replay of the same record (from the spool, or a reconciler that
/// adopted the incident first) finds the ticket and the settled operation, and changes nothing.
/// Without an operation, the CTEs match no row.
struct RecordCreated<'a, I> {
    insert: I,
    inv_gate_id: i64,
    operation: Option<Uuid>,
    succeeded: &'static str,
    answer: &'a JsonText,
    now: DateTime<Utc>,
}

/// [`RecordCreated`]'s statement-cache key. `record_created` is its only user, so there is one
/// insert type, and one SQL text, behind it.
struct RecordCreatedStatement;

impl<I> QueryId for RecordCreated<'_, I> {
    type QueryId = RecordCreatedStatement;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<I: QueryFragment<Pg>> QueryFragment<Pg> for RecordCreated<'_, I> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
        out.push_sql("WITH settle AS (UPDATE ticket_operations SET state = ");
        out.push_bind_param::<Text, _>(&self.succeeded)?;
        out.push_sql(", retryable = false, inv_gate_id = ");
        out.push_bind_param::<BigInt, _>(&self.inv_gate_id)?;
        out.push_sql(", answer = ");
        out.push_bind_param::<Jsonb, _>(self.answer)?;
        out.push_sql(", reason = NULL, updated_at = ");
        out.push_bind_param::<Timestamptz, _>(&self.now)?;
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<Nullable<SqlUuid>, _>(&self.operation)?;
        out.push_sql(" AND state <> ");
        out.push_bind_param::<Text, _>(&self.succeeded)?;
        out.push_sql("), forget_files AS (DELETE FROM operation_file_chunks WHERE operation_id = ");
        out.push_bind_param::<Nullable<SqlUuid>, _>(&self.operation)?;
        out.push_sql(") ");
        self.insert.walk_ast(out.reborrow())
    }
}

/// Records a created ticket. Takes a shared connection: this statement is pipelined with other
/// requests' (see `PgPool::pipelined`).
pub(crate) async fn record_created(
    mut conn: &AsyncPgConnection,
    ticket: &StoredTicket,
) -> Result<(), StoreTicketError> {
    let row = NewTicketRow::from_domain(ticket)?;
    let answer = JsonText::of(&StoredAnswer::Created {
        inv_gate_id: ticket.inv_gate_id.get(),
        body: ticket.invgate_response.text().to_owned(),
    })
    .context("serializing the answer")?;
    RecordCreated {
        insert: diesel::insert_into(tickets::table)
            .values(&row)
            .on_conflict_do_nothing(),
        inv_gate_id: row.inv_gate_id,
        operation: ticket.operation_id.map(OperationId::get),
        succeeded: OperationState::Succeeded.as_str(),
        answer: &answer,
        now: Utc::now(),
    }
    .execute(&mut conn)
    .await
    .map(drop)
    .map_err(|e| {
        StoreTicketError::Unexpected(anyhow::Error::new(e).context("storing a created ticket"))
    })
}

pub(crate) async fn record_failure(
    conn: &mut AsyncPgConnection,
    id: OperationId,
    failure: &OperationFailure,
) -> Result<(), JournalError> {
    let answer = failure
        .answer
        .as_ref()
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| JournalError(e.into()))?;
    diesel::update(
        ticket_operations::table
            .filter(ticket_operations::id.eq(id.get()))
            .filter(ticket_operations::state.ne(OperationState::Succeeded.as_str())),
    )
    .set((
        ticket_operations::state.eq(OperationState::Failed.as_str()),
        ticket_operations::retryable.eq(failure.retryable),
        ticket_operations::answer.eq(answer),
        ticket_operations::reason.eq(&failure.reason),
        ticket_operations::updated_at.eq(Utc::now()),
    ))
    .execute(conn)
    .await
    .map_err(journal_error("recording a failed operation"))?;
    // A failed operation will not be sent again: its queued files can go.
    diesel::delete(
        operation_file_chunks::table.filter(operation_file_chunks::operation_id.eq(id.get())),
    )
    .execute(conn)
    .await
    .map_err(journal_error("removing a failed operation's files"))?;
    Ok(())
}

pub(crate) async fn record_in_doubt(
    conn: &mut AsyncPgConnection,
    id: OperationId,
    lease: Duration,
    reason: &str,
) -> Result<(), JournalError> {
    diesel::update(
        ticket_operations::table
            .filter(ticket_operations::id.eq(id.get()))
            .filter(ticket_operations::state.eq(OperationState::InFlight.as_str())),
    )
    .set((
        ticket_operations::state.eq(OperationState::InDoubt.as_str()),
        ticket_operations::reason.eq(reason),
        ticket_operations::lease_until.eq(lease_end(lease)),
        ticket_operations::updated_at.eq(Utc::now()),
    ))
    .execute(conn)
    .await
    .map_err(journal_error("recording an operation in doubt"))?;
    Ok(())
}

pub(crate) async fn find(
    conn: &mut AsyncPgConnection,
    caller: &str,
    id: OperationId,
) -> Result<Option<Operation>, JournalError> {
    let row: Option<OperationRow> = ticket_operations::table
        .filter(ticket_operations::id.eq(id.get()))
        .filter(ticket_operations::caller.eq(caller.to_lowercase()))
        .select(OperationRow::as_select())
        .first(conn)
        .await
        .optional()
        .map_err(journal_error("reading an operation"))?;
    row.map(Operation::try_from)
        .transpose()
        .map_err(JournalError)
}

pub(crate) async fn claim_unsettled(
    conn: &mut AsyncPgConnection,
    limit: usize,
    lease: Duration,
) -> Result<Vec<Operation>, JournalError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = conn
        .transaction::<_, diesel::result::Error, _>(async move |conn| {
            // SKIP LOCKED: instances working side by side each take different operations.
            let ids: Vec<Uuid> = ticket_operations::table
                .filter(ticket_operations::state.eq_any([
                    OperationState::InFlight.as_str(),
                    OperationState::InDoubt.as_str(),
                ]))
                .filter(ticket_operations::lease_until.lt(Utc::now()))
                .order(ticket_operations::lease_until.asc())
                .limit(limit)
                .select(ticket_operations::id)
                .for_update()
                .skip_locked()
                .load(conn)
                .await?;
            diesel::update(ticket_operations::table.filter(ticket_operations::id.eq_any(&ids)))
                .set((
                    ticket_operations::lease_until.eq(lease_end(lease)),
                    ticket_operations::updated_at.eq(Utc::now()),
                ))
                .returning(OperationRow::as_returning())
                .get_results(conn)
                .await
        })
        .await
        .map_err(journal_error("claiming unsettled operations"))?;
    rows.into_iter()
        .map(Operation::try_from)
        .collect::<Result<_, _>>()
        .map_err(JournalError)
}

/// Files are stored and read back in pieces of this size, so memory never holds a whole file.
const CHUNK_BYTES: usize = 1024 * 1024;

pub(crate) async fn queue(
    conn: &mut AsyncPgConnection,
    id: OperationId,
    files: Option<Vec<ticketd_domain::Attachment>>,
    delay: Duration,
    reason: &str,
) -> Result<(), JournalError> {
    let reason = reason.to_owned();
    conn.transaction::<_, anyhow::Error, _>(async move |conn| {
        if let Some(files) = files {
            diesel::delete(
                operation_file_chunks::table
                    .filter(operation_file_chunks::operation_id.eq(id.get())),
            )
            .execute(conn)
            .await?;
            for (position, file) in files.iter().enumerate() {
                store_file(conn, id, i32::try_from(position)?, &file.path).await?;
            }
        }
        diesel::update(
            ticket_operations::table
                .filter(ticket_operations::id.eq(id.get()))
                .filter(ticket_operations::state.eq_any([
                    OperationState::InFlight.as_str(),
                    OperationState::Queued.as_str(),
                ])),
        )
        .set((
            ticket_operations::state.eq(OperationState::Queued.as_str()),
            ticket_operations::was_queued.eq(true),
            ticket_operations::reason.eq(&reason),
            ticket_operations::lease_until.eq(lease_end(delay)),
            ticket_operations::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
        Ok(())
    })
    .await
    .map_err(|e| JournalError(e.context("queueing an operation")))
}

async fn store_file(
    conn: &mut AsyncPgConnection,
    id: OperationId,
    position: i32,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    use tokio::io::AsyncReadExt;
    let mut file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    let mut chunk = 0i32;
    loop {
        let mut data = Vec::with_capacity(CHUNK_BYTES);
        (&mut file)
            .take(CHUNK_BYTES as u64)
            .read_to_end(&mut data)
            .await?;
        if data.is_empty() && chunk > 0 {
            return Ok(());
        }
        let last = data.len() < CHUNK_BYTES;
        diesel::insert_into(operation_file_chunks::table)
            .values((
                operation_file_chunks::operation_id.eq(id.get()),
                operation_file_chunks::position.eq(position),
                operation_file_chunks::chunk.eq(chunk),
                operation_file_chunks::data.eq(data),
            ))
            .execute(conn)
            .await?;
        if last {
            return Ok(());
        }
        chunk += 1;
    }
}

pub(crate) async fn claim_queued(
    conn: &mut AsyncPgConnection,
    limit: usize,
    lease: Duration,
) -> Result<Vec<Operation>, JournalError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = conn
        .transaction::<_, diesel::result::Error, _>(async move |conn| {
            let ids: Vec<Uuid> = ticket_operations::table
                .filter(ticket_operations::state.eq(OperationState::Queued.as_str()))
                .filter(ticket_operations::lease_until.le(Utc::now()))
                .order(ticket_operations::created_at.asc())
                .limit(limit)
                .select(ticket_operations::id)
                .for_update()
                .skip_locked()
                .load(conn)
                .await?;
            let now = Utc::now();
            let mut rows: Vec<OperationRow> =
                diesel::update(ticket_operations::table.filter(ticket_operations::id.eq_any(&ids)))
                    .set((
                        ticket_operations::state.eq(OperationState::InFlight.as_str()),
                        ticket_operations::lease_until.eq(lease_end(lease)),
                        ticket_operations::attempt_started_at.eq(now),
                        ticket_operations::attempts.eq(ticket_operations::attempts + 1),
                        ticket_operations::updated_at.eq(now),
                    ))
                    .returning(OperationRow::as_returning())
                    .get_results(conn)
                    .await?;
            rows.sort_by_key(|r| r.created_at);
            Ok(rows)
        })
        .await
        .map_err(journal_error("claiming queued operations"))?;
    rows.into_iter()
        .map(Operation::try_from)
        .collect::<Result<_, _>>()
        .map_err(JournalError)
}

pub(crate) async fn set_requester(
    conn: &mut AsyncPgConnection,
    id: OperationId,
    requester: InvGateUserId,
) -> Result<(), JournalError> {
    diesel::update(ticket_operations::table.filter(ticket_operations::id.eq(id.get())))
        .set((
            ticket_operations::requester_id.eq(requester.get()),
            ticket_operations::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await
        .map_err(journal_error("recording an operation's InvGate user"))?;
    Ok(())
}

pub(crate) async fn load_files(
    conn: &mut AsyncPgConnection,
    id: OperationId,
    ticket: &ticketd_domain::NewTicket,
) -> Result<ticketd_domain::LoadedFiles, JournalError> {
    use tokio::io::AsyncWriteExt;
    let load = async {
        let dir = tempfile::Builder::new()
            .prefix("ticketd-queued-")
            .tempdir()?;
        let mut attachments = Vec::with_capacity(ticket.attachments.len());
        for (position, attachment) in ticket.attachments.iter().enumerate() {
            let position = i32::try_from(position)?;
            let path = dir.path().join(format!("{position}"));
            let mut file = tokio::fs::File::create(&path).await?;
            for chunk in 0.. {
                let data: Option<Vec<u8>> = operation_file_chunks::table
                    .filter(operation_file_chunks::operation_id.eq(id.get()))
                    .filter(operation_file_chunks::position.eq(position))
                    .filter(operation_file_chunks::chunk.eq(chunk))
                    .select(operation_file_chunks::data)
                    .first(conn)
                    .await
                    .optional()?;
                let Some(data) = data else { break };
                file.write_all(&data).await?;
            }
            file.flush().await?;
            let written = tokio::fs::metadata(&path).await?.len();
            // Never send a file that did not come back whole.
            anyhow::ensure!(
                written == attachment.size,
                "file {position} of the queued ticket has {written} of its {} bytes",
                attachment.size
            );
            let mut attachment = attachment.clone();
            attachment.path = path;
            attachments.push(attachment);
        }
        anyhow::Ok(ticketd_domain::LoadedFiles {
            attachments,
            guard: Box::new(dir),
        })
    };
    load.await
        .map_err(|e| JournalError(e.context("loading a queued ticket's files")))
}
