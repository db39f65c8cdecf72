//! The create use case: resolve the caller in InvGate, create the incident, keep a local copy.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use serde_json::Value;
use uuid::Uuid;

use crate::caller::{EmailAddress, InvGateUserId};
use crate::error::JournalError;
use crate::error::StoreTicketError;
use crate::error::{CreateTicketError, GatewayError};
use crate::operation::{
    Begun, Fingerprint, IdempotencyKey, IncidentSummary, MarkerTemplate, NewOperation, Operation,
    OperationFailure, OperationId, OperationState, StoredAnswer, TicketSnapshot,
};
use crate::ports::{IncidentGateway, TicketRepository, TicketService};
use crate::spool::{RecordSpool, SpoolError, SpooledRecord};
use crate::ticket::{IncidentId, InvGateAnswer, NewTicket, StoredTicket};

/// Operations settled per reconciliation round.
const RECONCILE_BATCH: usize = 50;

/// How far back an attempt may have started for `incidents.last.hour` to prove its absence: an
/// hour, less a margin for clock skew between ticketd and InvGate.
const LAST_HOUR_COVERAGE: Duration = Duration::from_secs(55 * 60);

/// A ticket InvGate created.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedTicket {
    /// ticketd's own id for the local record.
    pub local_id: Uuid,
    pub operation_id: OperationId,
    pub inv_gate_id: IncidentId,
    /// The answer's body: InvGate's JSON, serialized once, so a replay is byte for byte the same.
    pub body: String,
}

/// What the driving adapter knows about the request besides the ticket.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CreateRequest {
    pub idempotency_key: Option<IdempotencyKey>,
    /// The request id, kept with the operation (a replayed error names the first request).
    pub request_id: String,
    /// `Prefer: respond-async`: when InvGate is unavailable, queue the ticket instead of failing.
    pub respond_async: bool,
}

/// How a create ended.
#[derive(Debug, Clone, PartialEq)]
pub enum CreateOutcome {
    /// Created now.
    Created(CreatedTicket),
    /// The key was used before for the same ticket: the first answer, to replay.
    Replayed {
        answer: StoredAnswer,
        request_id: String,
    },
    /// InvGate was unavailable and the caller accepts an asynchronous answer: the ticket is queued
    /// durably and will be created when InvGate is back.
    Queued { operation_id: OperationId },
}

/// Why an attempt to create an operation's incident did not end in a ticket.
enum Unfinished {
    /// InvGate was unavailable; the operation waits in the queue.
    Queued,
    Failed(CreateTicketError),
}

impl From<CreateTicketError> for Unfinished {
    fn from(err: CreateTicketError) -> Self {
        Self::Failed(err)
    }
}

/// InvGate is unreachable or refusing work for now; nothing was created, so the ticket can wait.
fn unavailable(err: &GatewayError) -> bool {
    matches!(
        err,
        GatewayError::NotSent(_)
            | GatewayError::RateLimited { .. }
            | GatewayError::CircuitOpen { .. }
    )
}

/// How long a queued ticket waits before the next try, when InvGate did not say.
const QUEUE_RETRY: Duration = Duration::from_secs(5);

/// Queued operations a worker takes per round.
const QUEUE_BATCH: usize = 20;

/// How long and how many `user.by` answers to remember. Only found users are remembered, so a user
/// provisioned in InvGate a moment ago can create tickets at once.
#[derive(Debug, Clone, Copy)]
pub struct UserCacheConfig {
    pub ttl: Duration,
    pub capacity: usize,
}

impl Default for UserCacheConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(300),
            capacity: 10_000,
        }
    }
}

/// The service's settings.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub user_cache: UserCacheConfig,
    pub marker: MarkerTemplate,
    /// How long one create may take, every attempt included: the operation's lease. After it, an
    /// unfinished operation counts as abandoned and the reconciler takes over.
    pub call_lease: Duration,
    /// What a client retrying a key whose first request is unfinished is told to wait.
    pub in_use_retry_after: Duration,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            user_cache: UserCacheConfig::default(),
            marker: MarkerTemplate::default(),
            call_lease: Duration::from_secs(60),
            in_use_retry_after: Duration::from_secs(5),
        }
    }
}

/// The one service holding ticket-creation logic, generic over its ports.
#[derive(Debug)]
pub struct TicketCreator<G, R, S> {
    gateway: G,
    repository: R,
    spool: S,
    users: UserCache,
    config: ServiceConfig,
}

impl<G, R, S> TicketCreator<G, R, S> {
    /// Hits and misses of the cache of InvGate user ids.
    pub fn user_cache_stats(&self) -> &CacheStats {
        &self.users.stats
    }
}

impl<G: IncidentGateway, R: TicketRepository, S: RecordSpool> TicketCreator<G, R, S> {
    pub fn new(gateway: G, repository: R, spool: S, config: ServiceConfig) -> Self {
        Self {
            gateway,
            repository,
            spool,
            users: UserCache::new(config.user_cache),
            config,
        }
    }

    /// Moves spooled records into the database, oldest first; stops at the first one the database
    /// refuses (it is probably still down). Returns how many were moved.
    ///
    /// # Errors
    /// When the spool cannot be read.
    #[tracing::instrument(name = "spool.replay", skip_all, fields(spool.replayed))]
    pub async fn replay_spool(&self) -> Result<usize, SpoolError> {
        let mut replayed = 0;
        for record in self.spool.list().await? {
            let stored = match record.to_stored() {
                Ok(stored) => stored,
                Err(problem) => {
                    tracing::error!(spool.local_id = %record.local_id, problem, "a spooled record is corrupt; left in the spool");
                    continue;
                }
            };
            if let Err(err) = self.repository.record_created(&stored).await {
                tracing::warn!(error = ?anyhow::Error::from(err), "the database still refuses spooled records");
                break;
            }
            self.spool.remove(record.local_id).await?;
            replayed += 1;
        }
        tracing::Span::current().record("spool.replayed", replayed);
        if replayed > 0 {
            tracing::info!(replayed, "moved spooled records into the database");
        }
        Ok(replayed)
    }

    /// Sends an operation's ticket to InvGate and settles the operation by the outcome. With
    /// `queue`, an unavailable InvGate queues it (storing its files when `store_files`).
    async fn attempt(
        &self,
        operation_id: OperationId,
        caller: &EmailAddress,
        requester: InvGateUserId,
        ticket: NewTicket,
        queue: bool,
        store_files: bool,
    ) -> Result<CreatedTicket, Unfinished> {
        // The incident carries the operation id, so it can be found if its answer gets lost.
        let mut marked = ticket.clone();
        marked.description = ticket
            .description
            .with_suffix(&self.config.marker.render(operation_id));
        let response = match self.gateway.create_incident(requester, &marked).await {
            Ok(response) => response,
            Err(err) if queue && unavailable(&err) => {
                let delay = match &err {
                    GatewayError::RateLimited {
                        retry_after: Some(after),
                    }
                    | GatewayError::CircuitOpen { retry_after: after } => *after,
                    _ => QUEUE_RETRY,
                };
                let files = store_files.then(|| ticket.attachments.clone());
                return match self
                    .enqueue(operation_id, files, delay, &err.to_string())
                    .await
                {
                    Ok(()) => Err(Unfinished::Queued),
                    Err(queue_err) => {
                        self.fail(
                            operation_id,
                            OperationFailure {
                                retryable: true,
                                answer: None,
                                reason: err.to_string(),
                            },
                        )
                        .await;
                        Err(Unfinished::Failed(queue_err))
                    }
                };
            }
            Err(err) => {
                if err.created_nothing() {
                    let answer = match &err {
                        GatewayError::Rejected { message } => Some(StoredAnswer::Rejected {
                            message: message.clone(),
                        }),
                        _ => None,
                    };
                    let retryable = answer.is_none();
                    self.fail(
                        operation_id,
                        OperationFailure {
                            retryable,
                            answer,
                            reason: err.to_string(),
                        },
                    )
                    .await;
                } else {
                    self.doubt(operation_id, &err.to_string()).await;
                }
                return Err(Unfinished::Failed(err.into()));
            }
        };
        let Some(inv_gate_id) = extract_incident_id(&response) else {
            self.doubt(operation_id, "InvGate answered success without an id")
                .await;
            return Err(Unfinished::Failed(CreateTicketError::UpstreamFailed(
                anyhow::anyhow!(
                    "InvGate answered success without a usable request_id, id or incident_id"
                ),
            )));
        };
        tracing::Span::current().record("invgate.request_id", inv_gate_id.get());

        let stored = StoredTicket {
            id: Uuid::now_v7(),
            operation_id: Some(operation_id),
            inv_gate_id,
            creator_email: caller.clone(),
            creator_id: requester,
            customer_id: requester,
            ticket,
            invgate_response: InvGateAnswer::new(response),
            created_at: Utc::now(),
        };
        if let Err(err) = self.repository.record_created(&stored).await {
            // The incident exists in InvGate and cannot be undone: the caller gets its ticket and
            // the record waits, durably, for the database.
            self.keep(&stored, err).await;
        }
        Ok(CreatedTicket {
            local_id: stored.id,
            operation_id,
            inv_gate_id,
            body: stored.invgate_response.text().to_owned(),
        })
    }

    async fn enqueue(
        &self,
        operation_id: OperationId,
        files: Option<Vec<crate::attachment::Attachment>>,
        delay: Duration,
        reason: &str,
    ) -> Result<(), CreateTicketError> {
        self.repository
            .queue_operation(operation_id, files, delay, reason)
            .await
            .map_err(CreateTicketError::StoreUnavailable)?;
        tracing::info!(operation.id = %operation_id, retry_in_ms = delay.as_millis() as u64, "ticket queued until InvGate is available");
        Ok(())
    }

    /// Creates queued tickets, oldest first, while InvGate takes them. Returns how many were
    /// created.
    ///
    /// # Errors
    /// When the journal cannot be read.
    #[tracing::instrument(name = "queue", skip_all, fields(queue.claimed, queue.created))]
    pub async fn process_queue(&self) -> Result<usize, JournalError> {
        let claimed = self
            .repository
            .claim_queued(QUEUE_BATCH, self.config.call_lease)
            .await?;
        tracing::Span::current().record("queue.claimed", claimed.len());
        let mut created = 0;
        let mut claimed = claimed.into_iter();
        for operation in claimed.by_ref() {
            match self.work_off(&operation).await {
                Ok(()) => created += 1,
                Err(Unfinished::Queued) => {
                    // InvGate is unavailable again: the rest of this batch waits too.
                    break;
                }
                Err(Unfinished::Failed(err)) => {
                    tracing::warn!(error = ?anyhow::Error::from(err), operation.id = %operation.id, "a queued ticket failed");
                }
            }
        }
        for rest in claimed {
            if let Err(err) = self
                .repository
                .queue_operation(rest.id, None, QUEUE_RETRY, "InvGate unavailable")
                .await
            {
                tracing::warn!(error = ?err, operation.id = %rest.id, "could not put a ticket back in the queue; its lease will");
            }
        }
        tracing::Span::current().record("queue.created", created);
        Ok(created)
    }

    async fn work_off(&self, operation: &Operation) -> Result<(), Unfinished> {
        let caller = EmailAddress::parse(&operation.caller).map_err(|e| {
            CreateTicketError::Unexpected(anyhow::anyhow!("a queued operation's caller: {e}"))
        })?;
        let requester = match operation.requester {
            Some(requester) => requester,
            None => match self.resolve_user(&caller).await {
                Ok(requester) => {
                    self.repository
                        .set_requester(operation.id, requester)
                        .await
                        .map_err(CreateTicketError::StoreUnavailable)?;
                    requester
                }
                Err(CreateTicketError::UpstreamUnavailable { retry_after }) => {
                    self.enqueue(operation.id, None, retry_after, "InvGate unavailable")
                        .await?;
                    return Err(Unfinished::Queued);
                }
                Err(CreateTicketError::UpstreamBusy { retry_after }) => {
                    self.enqueue(
                        operation.id,
                        None,
                        retry_after.unwrap_or(QUEUE_RETRY),
                        "InvGate busy",
                    )
                    .await?;
                    return Err(Unfinished::Queued);
                }
                Err(err) => {
                    // Not provisioned, or anything else that is no outage: nothing was created.
                    self.fail(
                        operation.id,
                        OperationFailure {
                            retryable: true,
                            answer: None,
                            reason: err.to_string(),
                        },
                    )
                    .await;
                    return Err(Unfinished::Failed(err));
                }
            },
        };
        let mut ticket = operation.ticket.to_ticket().map_err(|e| {
            CreateTicketError::Unexpected(anyhow::anyhow!("a queued ticket is corrupt: {e}"))
        })?;
        let files = self
            .repository
            .load_files(operation.id, &ticket)
            .await
            .map_err(CreateTicketError::StoreUnavailable)?;
        ticket.attachments.clone_from(&files.attachments);
        let result = self
            .attempt(operation.id, &caller, requester, ticket, true, false)
            .await;
        // The files are removed only after InvGate had them.
        drop(files);
        result.map(|created| {
            tracing::info!(operation.id = %operation.id, invgate.request_id = created.inv_gate_id.get(), "created a queued ticket");
        })
    }

    /// Settles operations whose owner stopped caring: in doubt after a lost answer, or left in
    /// flight by a crash. Each is looked for in InvGate by its marker: found, it is adopted (the
    /// local record is written and the key's answer becomes a 201); proven absent, it fails
    /// without blame, so its key may be used again. Returns how many were settled.
    ///
    /// # Errors
    /// When the journal cannot be read.
    #[tracing::instrument(name = "reconcile", skip_all, fields(reconcile.claimed, reconcile.settled))]
    pub async fn reconcile(&self) -> Result<usize, JournalError> {
        let claimed = self
            .repository
            .claim_unsettled(RECONCILE_BATCH, self.config.call_lease)
            .await?;
        tracing::Span::current().record("reconcile.claimed", claimed.len());
        if claimed.is_empty() {
            return Ok(0);
        }
        // One listing serves every claimed operation.
        let last_hour = match self.gateway.incidents_created_last_hour().await {
            Ok(list) => Some(list),
            Err(err) => {
                tracing::warn!(error = ?anyhow::Error::from(err), "cannot list InvGate's recent incidents; retrying later");
                None
            }
        };
        let mut settled = 0;
        for operation in claimed {
            if self.settle(&operation, last_hour.as_deref()).await {
                settled += 1;
            }
        }
        tracing::Span::current().record("reconcile.settled", settled);
        Ok(settled)
    }

    async fn settle(&self, operation: &Operation, last_hour: Option<&[IncidentSummary]>) -> bool {
        let marked = |list: &[IncidentSummary]| {
            list.iter()
                .find(|incident| {
                    self.config
                        .marker
                        .is_in(&incident.description, operation.id)
                })
                .map(|incident| incident.id)
        };
        if let Some(id) = last_hour.and_then(marked) {
            return self.adopt(operation, id).await;
        }
        // `incidents.last.hour` lists everything created in the last hour: when the attempt
        // started well inside that window, not being listed proves InvGate never created it.
        let age = Utc::now().signed_duration_since(operation.attempt_started_at);
        let covered =
            chrono::Duration::from_std(LAST_HOUR_COVERAGE).is_ok_and(|coverage| age < coverage);
        if last_hour.is_some() && covered && operation.was_queued {
            // Accepted with a 202: the promise was to create it, so it goes back to the queue.
            return match self
                .repository
                .queue_operation(
                    operation.id,
                    None,
                    Duration::ZERO,
                    "retrying after an interrupted attempt",
                )
                .await
            {
                Ok(()) => true,
                Err(err) => {
                    tracing::warn!(error = ?err, operation.id = %operation.id, "could not requeue an operation");
                    false
                }
            };
        }
        if last_hour.is_some() && covered {
            let failure = OperationFailure {
                retryable: true,
                answer: None,
                reason: "InvGate has no incident for this operation; nothing was created".into(),
            };
            return match self.repository.record_failure(operation.id, &failure).await {
                Ok(()) => {
                    tracing::info!(operation.id = %operation.id, "an operation in doubt created nothing; its key is free again");
                    true
                }
                Err(err) => {
                    tracing::warn!(error = ?err, operation.id = %operation.id, "could not settle an operation");
                    false
                }
            };
        }
        // Too old for the last hour's list: an incident still open can be found by its customer.
        let Some(requester) = operation.requester else {
            return false;
        };
        match self.gateway.open_incidents_of(requester).await {
            Ok(open) => match marked(&open) {
                Some(id) => self.adopt(operation, id).await,
                None => {
                    tracing::error!(
                        operation.id = %operation.id,
                        operation.started = %operation.attempt_started_at,
                        "an operation stays in doubt: it is too old to prove absent and no open incident carries its marker; an operator must check InvGate"
                    );
                    false
                }
            },
            Err(err) => {
                tracing::warn!(error = ?anyhow::Error::from(err), "cannot list a customer's incidents; retrying later");
                false
            }
        }
    }

    /// Writes the local record of an incident found by its marker and settles its operation.
    async fn adopt(&self, operation: &Operation, inv_gate_id: IncidentId) -> bool {
        let ticket = match operation.ticket.to_ticket() {
            Ok(ticket) => ticket,
            Err(err) => {
                tracing::error!(error = %err, operation.id = %operation.id, "an operation's ticket snapshot is corrupt");
                return false;
            }
        };
        let (Ok(creator_email), Some(requester)) =
            (EmailAddress::parse(&operation.caller), operation.requester)
        else {
            tracing::error!(operation.id = %operation.id, "an operation in doubt lacks its caller or InvGate user");
            return false;
        };
        // InvGate's own answer was lost; this one has its documented shape.
        let response = serde_json::json!({
            "status": "OK",
            "info": "Request created (answer recovered by ticketd)",
            "request_id": inv_gate_id.get(),
        });
        let stored = StoredTicket {
            id: Uuid::now_v7(),
            operation_id: Some(operation.id),
            inv_gate_id,
            creator_email,
            creator_id: requester,
            customer_id: requester,
            ticket,
            invgate_response: InvGateAnswer::new(response),
            created_at: Utc::now(),
        };
        match self.repository.record_created(&stored).await {
            Ok(()) => {
                tracing::info!(operation.id = %operation.id, invgate.request_id = inv_gate_id.get(), "adopted an incident whose answer was lost");
                true
            }
            Err(err) => {
                tracing::warn!(error = ?anyhow::Error::from(err), operation.id = %operation.id, "could not adopt an incident; retrying later");
                false
            }
        }
    }

    /// Keeps the record of a ticket InvGate created when the database would not take it.
    async fn keep(&self, stored: &StoredTicket, err: StoreTicketError) {
        let record = SpooledRecord::new(stored);
        match self.spool.put(&record).await {
            Ok(()) => tracing::warn!(
                error = ?anyhow::Error::from(err),
                ticket.local_id = %stored.id,
                invgate.request_id = stored.inv_gate_id.get(),
                "the database refused a created ticket; its record is spooled and will be replayed"
            ),
            Err(spool_err) => {
                // Both stores failed: the log is the last place the record can go.
                tracing::error!(
                    error = ?anyhow::Error::from(err),
                    spool.error = ?anyhow::Error::from(spool_err),
                    record = %serde_json::to_string(&record).unwrap_or_default(),
                    "InvGate created the ticket but neither the database nor the spool could keep its record"
                );
            }
        }
    }

    async fn resolve_user(&self, email: &EmailAddress) -> Result<InvGateUserId, CreateTicketError> {
        if let Some(id) = self.users.get(email) {
            return Ok(id);
        }
        let found = self
            .gateway
            .find_user_id_by_email(email)
            .await
            .map_err(|err| match err {
                // A refused lookup says nothing about the ticket; report it as InvGate failing.
                GatewayError::Rejected { message } => CreateTicketError::UpstreamFailed(
                    anyhow::anyhow!("user.by rejected: {message}"),
                ),
                other => other.into(),
            })?;
        match found {
            Some(id) => {
                self.users.put(email, id);
                Ok(id)
            }
            None => Err(CreateTicketError::UserNotProvisioned {
                email: email.to_string(),
            }),
        }
    }

    /// Journals the operation, or finds the key's earlier one: `Ok(Ok(id))` is the operation to
    /// work on (new, or retaken after a failure that created nothing), `Ok(Err(replay))` the key's
    /// first answer.
    async fn begin(
        &self,
        operation: &NewOperation,
    ) -> Result<Result<OperationId, CreateOutcome>, CreateTicketError> {
        let existing = match self.repository.begin_operation(operation).await {
            Ok(Begun::Started) => return Ok(Ok(operation.id)),
            Ok(Begun::Existing(existing)) => *existing,
            Err(err) => return Err(CreateTicketError::StoreUnavailable(err)),
        };
        if existing.fingerprint != operation.fingerprint {
            return Err(CreateTicketError::IdempotencyKeyMismatch);
        }
        if let Some(answer) = existing.answer {
            return Ok(Err(CreateOutcome::Replayed {
                answer,
                request_id: existing.request_id,
            }));
        }
        let retryable = existing.state == OperationState::Failed && existing.retryable;
        if retryable
            && self
                .repository
                .retake_operation(existing.id, self.config.call_lease, &operation.request_id)
                .await
                .map_err(CreateTicketError::StoreUnavailable)?
        {
            return Ok(Ok(existing.id));
        }
        Err(CreateTicketError::IdempotencyKeyInUse {
            retry_after: self.config.in_use_retry_after,
        })
    }

    async fn fail(&self, id: OperationId, failure: OperationFailure) {
        if let Err(err) = self.repository.record_failure(id, &failure).await {
            // The lease runs out and the reconciler settles the operation from InvGate's side.
            tracing::warn!(error = ?err, operation.id = %id, "could not record a failed operation");
        }
    }

    async fn doubt(&self, id: OperationId, reason: &str) {
        if let Err(err) = self
            .repository
            .record_in_doubt(id, self.config.call_lease, reason)
            .await
        {
            tracing::warn!(error = ?err, operation.id = %id, "could not record an operation in doubt");
        }
    }
}

#[async_trait]
impl<G: IncidentGateway, R: TicketRepository, S: RecordSpool> TicketService
    for TicketCreator<G, R, S>
{
    #[tracing::instrument(
        name = "ticket.create",
        skip_all,
        fields(operation.id, invgate.user_id, invgate.request_id, ticket.attachments = ticket.attachments.len())
    )]
    async fn create_ticket(
        &self,
        caller: &EmailAddress,
        ticket: NewTicket,
        request: CreateRequest,
    ) -> Result<CreateOutcome, CreateTicketError> {
        let requester = match self.resolve_user(caller).await {
            Ok(requester) => Some(requester),
            // Queued, the ticket can wait for InvGate to tell who the caller is.
            Err(
                CreateTicketError::UpstreamUnavailable { .. }
                | CreateTicketError::UpstreamBusy { .. },
            ) if request.respond_async => None,
            Err(err) => return Err(err),
        };
        if let Some(requester) = requester {
            tracing::Span::current().record("invgate.user_id", requester.get());
        }

        let operation = NewOperation {
            id: OperationId::new(),
            caller: caller.clone(),
            key: request.idempotency_key,
            fingerprint: Fingerprint::of(&ticket),
            request_id: request.request_id,
            requester,
            ticket: TicketSnapshot::from(&ticket),
            lease: self.config.call_lease,
            state: OperationState::InFlight,
        };
        let operation_id = match self.begin(&operation).await? {
            Ok(id) => id,
            Err(replay) => return Ok(replay),
        };
        tracing::Span::current().record("operation.id", tracing::field::display(operation_id));

        let Some(requester) = requester else {
            return match self
                .enqueue(
                    operation_id,
                    Some(ticket.attachments),
                    QUEUE_RETRY,
                    "InvGate unavailable",
                )
                .await
            {
                Ok(()) => Ok(CreateOutcome::Queued { operation_id }),
                Err(err) => Err(err),
            };
        };
        match self
            .attempt(
                operation_id,
                caller,
                requester,
                ticket,
                request.respond_async,
                true,
            )
            .await
        {
            Ok(created) => Ok(CreateOutcome::Created(created)),
            Err(Unfinished::Queued) => Ok(CreateOutcome::Queued { operation_id }),
            Err(Unfinished::Failed(err)) => Err(err),
        }
    }

    async fn operation(
        &self,
        caller: &EmailAddress,
        id: OperationId,
    ) -> Result<Option<Operation>, CreateTicketError> {
        self.repository
            .find_operation(&caller.normalized(), id)
            .await
            .map_err(CreateTicketError::StoreUnavailable)
    }
}

/// InvGate's id for a created incident: `request_id` (what InvGate documents), else `id`, else
/// `incident_id` (what proxies and older instances were seen to send); a number or a numeric string.
#[must_use]
pub fn extract_incident_id(response: &Value) -> Option<IncidentId> {
    ["request_id", "id", "incident_id"]
        .into_iter()
        .find_map(|key| response.get(key).and_then(as_positive_id))
}

fn as_positive_id(value: &Value) -> Option<IncidentId> {
    let raw = match value {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    IncidentId::parse(raw).ok()
}

/// How often a cache answered (hits) or had to ask (misses); read by the metrics.
#[derive(Debug, Default)]
pub struct CacheStats {
    hits: std::sync::atomic::AtomicU64,
    misses: std::sync::atomic::AtomicU64,
}

impl CacheStats {
    pub fn record(&self, hit: bool) {
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// `(hits, misses)` so far.
    #[must_use]
    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.hits.load(std::sync::atomic::Ordering::Relaxed),
            self.misses.load(std::sync::atomic::Ordering::Relaxed),
        )
    }
}

/// Found users by normalized e-mail, each with when it was learnt.
#[derive(Debug)]
struct UserCache {
    config: UserCacheConfig,
    entries: Mutex<HashMap<String, (InvGateUserId, Instant)>>,
    stats: CacheStats,
}

impl UserCache {
    fn new(config: UserCacheConfig) -> Self {
        Self {
            config,
            entries: Mutex::new(HashMap::new()),
            stats: CacheStats::default(),
        }
    }

    fn get(&self, email: &EmailAddress) -> Option<InvGateUserId> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let found = entries
            .get(&email.normalized())
            .filter(|(_, learnt)| learnt.elapsed() < self.config.ttl)
            .map(|(id, _)| *id);
        self.stats.record(found.is_some());
        found
    }

    fn put(&self, email: &EmailAddress, id: InvGateUserId) {
        if self.config.capacity == 0 || self.config.ttl.is_zero() {
            return;
        }
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= self.config.capacity {
            let ttl = self.config.ttl;
            entries.retain(|_, (_, learnt)| learnt.elapsed() < ttl);
            if entries.len() >= self.config.capacity {
                // Still full of live entries: start over rather than grow without bound.
                entries.clear();
            }
        }
        entries.insert(email.normalized(), (id, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_id_is_taken_from_request_id_first() {
        let id = extract_incident_id(&json!({"request_id": 7, "id": 8, "incident_id": 9}));
        assert_eq!(id.map(IncidentId::get), Some(7));
    }

    #[test]
    fn the_id_falls_back_to_id_then_incident_id() {
        assert_eq!(
            extract_incident_id(&json!({"id": 8, "incident_id": 9})).map(IncidentId::get),
            Some(8)
        );
        assert_eq!(
            extract_incident_id(&json!({"incident_id": "9"})).map(IncidentId::get),
            Some(9)
        );
    }

    #[test]
    fn unusable_ids_are_skipped_and_none_means_none() {
        assert_eq!(
            extract_incident_id(&json!({"request_id": null, "id": " 12 "})).map(IncidentId::get),
            Some(12)
        );
        assert_eq!(extract_incident_id(&json!({"request_id": "abc"})), None);
        assert_eq!(extract_incident_id(&json!({"request_id": 0})), None);
        assert_eq!(extract_incident_id(&json!({"request_id": 1.5})), None);
        assert_eq!(extract_incident_id(&json!([1, 2])), None);
        assert_eq!(extract_incident_id(&json!({"status": "OK"})), None);
    }
}
