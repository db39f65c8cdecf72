//! The operation journal on PostgreSQL: the `ticket_operations` table.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use ticketd_domain::{
    Begun, Fingerprint, IncidentId, InvGateUserId, JournalError, NewOperation, Operation,
    OperationFailure, OperationId, OperationState, StoreTicketError, StoredAnswer, StoredTicket,
    TicketSnapshot,
};
use uuid::Uuid;

use crate::repository::NewTicketRow;
use crate::schema::{ticket_operations, tickets};

fn lease_end(lease: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX)
}

#[derive(Insertable)]
#[diesel(table_name = ticket_operations)]
struct NewOperationRow<'a> {
    id: Uuid,
    caller: String,
    idempotency_key: Option<&'a str>,
    fingerprint: &'a str,
    state: &'static str,
    requester_id: i64,
    request_id: &'a str,
    ticket: Value,
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
    pub requester_id: i64,
    pub request_id: String,
    pub ticket: Value,
    pub inv_gate_id: Option<i64>,
    pub answer: Option<Value>,
    pub reason: Option<String>,
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
            requester: InvGateUserId::new(row.requester_id),
            caller: row.caller,
            ticket: serde_json::from_value::<TicketSnapshot>(row.ticket)
                .context("reading a ticket snapshot")?,
            inv_gate_id: row.inv_gate_id.and_then(|id| IncidentId::parse(id).ok()),
            reason: row.reason,
            created_at: row.created_at,
            attempt_started_at: row.attempt_started_at,
        })
    }
}

fn journal_error(context: &'static str) -> impl FnOnce(diesel::result::Error) -> JournalError {
    move |e| JournalError(anyhow::Error::new(e).context(context))
}

pub(crate) async fn begin(
    conn: &mut AsyncPgConnection,
    op: &NewOperation,
) -> Result<Begun, JournalError> {
    let caller = op.caller.normalized();
    let row = NewOperationRow {
        id: op.id.get(),
        caller: caller.clone(),
        idempotency_key: op.key.as_ref().map(|k| k.as_str()),
        fingerprint: op.fingerprint.as_str(),
        state: op.state.as_str(),
        requester_id: op.requester.get(),
        request_id: &op.request_id,
        ticket: serde_json::to_value(&op.ticket).map_err(|e| JournalError(e.into()))?,
        lease_until: lease_end(op.lease),
    };
    let inserted = diesel::insert_into(ticket_operations::table)
        .values(&row)
        .on_conflict((
            ticket_operations::caller,
            ticket_operations::idempotency_key,
        ))
        .do_nothing()
        .execute(conn)
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
        .first(conn)
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

pub(crate) async fn record_created(
    conn: &mut AsyncPgConnection,
    ticket: &StoredTicket,
    body: &str,
) -> Result<(), StoreTicketError> {
    let row = NewTicketRow::from_domain(ticket)?;
    let answer = serde_json::to_value(StoredAnswer::Created {
        inv_gate_id: ticket.inv_gate_id.get(),
        body: body.to_owned(),
    })
    .context("serializing the answer")?;
    let operation = ticket.operation_id.map(OperationId::get);
    let answer = &answer;
    let row = &row;
    conn.transaction::<_, diesel::result::Error, _>(async move |conn| {
        {
            // Idempotent: a replay of the same record (from the spool, or a reconciler that
            // adopted the incident first) finds it there and changes nothing.
            diesel::insert_into(tickets::table)
                .values(row)
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
            if let Some(operation) = operation {
                diesel::update(
                    ticket_operations::table
                        .filter(ticket_operations::id.eq(operation))
                        .filter(ticket_operations::state.ne(OperationState::Succeeded.as_str())),
                )
                .set((
                    ticket_operations::state.eq(OperationState::Succeeded.as_str()),
                    ticket_operations::retryable.eq(false),
                    ticket_operations::inv_gate_id.eq(row.inv_gate_id),
                    ticket_operations::answer.eq(answer),
                    ticket_operations::reason.eq(None::<String>),
                    ticket_operations::updated_at.eq(Utc::now()),
                ))
                .execute(conn)
                .await?;
            }
            Ok(())
        }
    })
    .await
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
