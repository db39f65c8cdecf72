//! The ticket service over mocked ports: creating (with idempotency keys, the spool and the
//! respond-async queue), reconciling operations in doubt, and working off the queue.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use ticketd_domain::ports::{MockIncidentGateway, MockTicketRepository};
use ticketd_domain::spool::MockRecordSpool;
use ticketd_domain::{
    Begun, CreateOutcome, CreateRequest, CreateTicketError, EmailAddress, Fingerprint,
    GatewayError, IdempotencyKey, InvGateAnswer, InvGateUserId, JournalError, NewTicket, Operation,
    OperationState, ServiceConfig, SpoolError, SpooledRecord, StoreTicketError, StoredAnswer,
    StoredTicket, TicketCreator, TicketDraft, TicketService, TicketSnapshot, UserCacheConfig,
};

fn alice() -> EmailAddress {
    EmailAddress::parse("alice@example.com").expect("valid address")
}

fn ticket() -> NewTicket {
    let draft = TicketDraft {
        title: Some("VPN down".into()),
        description: Some("Since 9am".into()),
        category_id: Some(4),
        priority_id: Some(3),
        type_id: Some(1),
        related_to: Some(vec![10, 11]),
        ..TicketDraft::default()
    };
    NewTicket::parse(draft, vec![], Utc::now(), chrono::Duration::seconds(60))
        .expect("valid ticket")
}

fn keyed(key: &str) -> CreateRequest {
    CreateRequest {
        idempotency_key: Some(IdempotencyKey::parse(key).expect("key")),
        request_id: "req-2".into(),
        respond_async: false,
    }
}

fn gateway_knowing_alice_as(id: i64) -> MockIncidentGateway {
    let mut gateway = MockIncidentGateway::new();
    gateway
        .expect_find_user_id_by_email()
        .withf(|email| email.as_str() == "alice@example.com")
        .returning(move |_| Ok(Some(InvGateUserId::new(id))));
    gateway
}

/// A repository whose journal starts every operation and accepts every outcome.
fn journal_accepting_all() -> MockTicketRepository {
    let mut repository = MockTicketRepository::new();
    repository
        .expect_begin_operation()
        .returning(|_| Ok(Begun::Started));
    repository.expect_record_created().returning(|_| Ok(()));
    repository.expect_record_failure().returning(|_, _| Ok(()));
    repository
        .expect_record_in_doubt()
        .returning(|_, _, _| Ok(()));
    repository
}

type Creator = TicketCreator<MockIncidentGateway, MockTicketRepository, MockRecordSpool>;

/// A spool that must not be used.
fn unused_spool() -> MockRecordSpool {
    let mut spool = MockRecordSpool::new();
    spool.expect_put().never();
    spool
}

fn creator(gateway: MockIncidentGateway, repository: MockTicketRepository) -> Creator {
    TicketCreator::new(
        gateway,
        repository,
        unused_spool(),
        ServiceConfig::default(),
    )
}

fn existing(
    state: OperationState,
    answer: Option<StoredAnswer>,
    fingerprint: Fingerprint,
    retryable: bool,
) -> Operation {
    Operation {
        id: ticketd_domain::OperationId::new(),
        state,
        fingerprint,
        retryable,
        answer,
        request_id: "req-1".into(),
        requester: Some(InvGateUserId::new(42)),
        caller: "alice@example.com".into(),
        ticket: TicketSnapshot::from(&ticket()),
        inv_gate_id: None,
        reason: None,
        was_queued: false,
        created_at: Utc::now(),
        attempt_started_at: Utc::now(),
    }
}

async fn create(
    service: &impl TicketService,
    request: CreateRequest,
) -> Result<CreateOutcome, CreateTicketError> {
    service.create_ticket(&alice(), ticket(), request).await
}

#[tokio::test]
async fn a_ticket_is_journaled_created_with_its_marker_and_stored_with_invgates_id() {
    let mut gateway = gateway_knowing_alice_as(42);
    gateway
        .expect_create_incident()
        .withf(|requester, sent| {
            *requester == InvGateUserId::new(42)
                && sent.title.as_str() == "VPN down"
                && sent.description.as_str().starts_with("Since 9am")
                && sent.description.as_str().contains("[ticketd:")
        })
        .times(1)
        .returning(|_, _| Ok(json!({"status": "OK", "info": "created", "request_id": 1864})));
    let mut repository = MockTicketRepository::new();
    repository
        .expect_begin_operation()
        .withf(|op| {
            op.state == OperationState::InFlight
                && op.key.is_none()
                && op.request_id == "req-1"
                && op.fingerprint == Fingerprint::of(&ticket())
        })
        .times(1)
        .returning(|_| Ok(Begun::Started));
    repository
        .expect_record_created()
        .withf(|stored| {
            let body = stored.invgate_response.text();
            stored.inv_gate_id.get() == 1864
                && stored.operation_id.is_some()
                && stored.creator_id == InvGateUserId::new(42)
                && stored.customer_id == InvGateUserId::new(42)
                && stored.creator_email.as_str() == "alice@example.com"
                && stored.ticket.description.as_str() == "Since 9am"
                && body == r#"{"status":"OK","info":"created","request_id":1864}"#
        })
        .times(1)
        .returning(|_| Ok(()));

    let outcome = creator(gateway, repository)
        .create_ticket(
            &alice(),
            ticket(),
            CreateRequest {
                idempotency_key: None,
                request_id: "req-1".into(),
                respond_async: false,
            },
        )
        .await
        .expect("created");

    let CreateOutcome::Created(created) = outcome else {
        panic!("expected a new ticket")
    };
    assert_eq!(created.inv_gate_id.get(), 1864);
    assert_eq!(
        created.body,
        r#"{"status":"OK","info":"created","request_id":1864}"#
    );
}

#[tokio::test]
async fn a_repeated_key_with_the_same_ticket_replays_the_first_answer_without_calling_invgate() {
    let mut gateway = gateway_knowing_alice_as(42);
    gateway.expect_create_incident().never();
    let mut repository = MockTicketRepository::new();
    let answer = StoredAnswer::Created {
        inv_gate_id: 7,
        body: r#"{"request_id":7}"#.into(),
    };
    let first = existing(
        OperationState::Succeeded,
        Some(answer.clone()),
        Fingerprint::of(&ticket()),
        false,
    );
    repository
        .expect_begin_operation()
        .returning(move |_| Ok(Begun::Existing(Box::new(first.clone()))));

    let outcome = create(&creator(gateway, repository), keyed("k1"))
        .await
        .expect("replayed");

    assert_eq!(
        outcome,
        CreateOutcome::Replayed {
            answer,
            request_id: "req-1".into()
        }
    );
}

#[tokio::test]
async fn a_repeated_key_with_another_ticket_is_a_mismatch() {
    let mut gateway = gateway_knowing_alice_as(42);
    gateway.expect_create_incident().never();
    let mut repository = MockTicketRepository::new();
    let other = existing(
        OperationState::Succeeded,
        None,
        Fingerprint::from_stored("other".into()),
        false,
    );
    repository
        .expect_begin_operation()
        .returning(move |_| Ok(Begun::Existing(Box::new(other.clone()))));

    let err = create(&creator(gateway, repository), keyed("k1"))
        .await
        .expect_err("mismatch");

    assert!(
        matches!(err, CreateTicketError::IdempotencyKeyMismatch),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_repeated_key_whose_first_request_is_unfinished_is_in_use() {
    for state in [
        OperationState::InFlight,
        OperationState::InDoubt,
        OperationState::Queued,
    ] {
        let mut gateway = gateway_knowing_alice_as(42);
        gateway.expect_create_incident().never();
        let mut repository = MockTicketRepository::new();
        let first = existing(state, None, Fingerprint::of(&ticket()), false);
        repository
            .expect_begin_operation()
            .returning(move |_| Ok(Begun::Existing(Box::new(first.clone()))));

        let err = create(&creator(gateway, repository), keyed("k1"))
            .await
            .expect_err("in use");

        assert!(
            matches!(err, CreateTicketError::IdempotencyKeyInUse { retry_after } if retry_after > Duration::ZERO),
            "{state:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn a_key_whose_first_request_created_nothing_is_taken_over_for_a_new_attempt() {
    let mut gateway = gateway_knowing_alice_as(42);
    gateway
        .expect_create_incident()
        .times(1)
        .returning(|_, _| Ok(json!({"request_id": 9})));
    let mut repository = MockTicketRepository::new();
    let first = existing(
        OperationState::Failed,
        None,
        Fingerprint::of(&ticket()),
        true,
    );
    let first_id = first.id;
    repository
        .expect_begin_operation()
        .returning(move |_| Ok(Begun::Existing(Box::new(first.clone()))));
    repository
        .expect_retake_operation()
        .withf(move |id, _, request_id| *id == first_id && request_id == "req-2")
        .times(1)
        .returning(|_, _, _| Ok(true));
    repository
        .expect_record_created()
        .withf(move |stored| stored.operation_id == Some(first_id))
        .times(1)
        .returning(|_| Ok(()));

    let outcome = create(&creator(gateway, repository), keyed("k1"))
        .await
        .expect("created");

    assert!(matches!(outcome, CreateOutcome::Created(c) if c.operation_id == first_id));
}

#[tokio::test]
async fn without_a_journal_nothing_is_sent_to_invgate() {
    let mut gateway = gateway_knowing_alice_as(42);
    gateway.expect_create_incident().never();
    let mut repository = MockTicketRepository::new();
    repository
        .expect_begin_operation()
        .returning(|_| Err(JournalError(anyhow::anyhow!("connection refused"))));

    let err = create(&creator(gateway, repository), CreateRequest::default())
        .await
        .expect_err("no journal");

    assert!(
        matches!(err, CreateTicketError::StoreUnavailable(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_caller_unknown_to_invgate_is_not_provisioned_and_nothing_is_journaled() {
    let mut gateway = MockIncidentGateway::new();
    gateway
        .expect_find_user_id_by_email()
        .returning(|_| Ok(None));
    gateway.expect_create_incident().never();
    let mut repository = MockTicketRepository::new();
    repository.expect_begin_operation().never();

    let err = create(&creator(gateway, repository), CreateRequest::default())
        .await
        .expect_err("not provisioned");

    assert!(
        matches!(err, CreateTicketError::UserNotProvisioned { email } if email == "alice@example.com")
    );
}

#[tokio::test]
async fn the_user_lookup_is_cached_between_tickets() {
    let mut gateway = MockIncidentGateway::new();
    gateway
        .expect_find_user_id_by_email()
        .times(1)
        .returning(|_| Ok(Some(InvGateUserId::new(42))));
    gateway
        .expect_create_incident()
        .times(2)
        .returning(|_, _| Ok(json!({"request_id": 1})));
    let service = creator(gateway, journal_accepting_all());

    for _ in 0..2 {
        create(&service, CreateRequest::default())
            .await
            .expect("created");
    }
}

#[tokio::test]
async fn an_expired_cache_entry_is_looked_up_again() {
    let mut gateway = MockIncidentGateway::new();
    gateway
        .expect_find_user_id_by_email()
        .times(2)
        .returning(|_| Ok(Some(InvGateUserId::new(42))));
    gateway
        .expect_create_incident()
        .times(2)
        .returning(|_, _| Ok(json!({"request_id": 1})));
    let config = ServiceConfig {
        user_cache: UserCacheConfig {
            ttl: Duration::ZERO,
            capacity: 10,
        },
        ..ServiceConfig::default()
    };
    let service = TicketCreator::new(gateway, journal_accepting_all(), unused_spool(), config);

    for _ in 0..2 {
        create(&service, CreateRequest::default())
            .await
            .expect("created");
    }
}

fn repository_refusing_created_tickets() -> MockTicketRepository {
    let mut repository = MockTicketRepository::new();
    repository
        .expect_begin_operation()
        .returning(|_| Ok(Begun::Started));
    repository.expect_record_created().times(1).returning(|_| {
        Err(StoreTicketError::Unexpected(anyhow::anyhow!(
            "connection refused"
        )))
    });
    repository
}

#[tokio::test]
async fn a_ticket_the_database_refuses_is_spooled_and_still_returned() {
    let mut gateway = gateway_knowing_alice_as(42);
    gateway
        .expect_create_incident()
        .returning(|_, _| Ok(json!({"request_id": 77})));
    let mut spool = MockRecordSpool::new();
    spool
        .expect_put()
        .withf(|record| {
            record.inv_gate_id == 77
                && record.answer_body == r#"{"request_id":77}"#
                && record.operation_id.is_some()
        })
        .times(1)
        .returning(|_| Ok(()));
    let service = TicketCreator::new(
        gateway,
        repository_refusing_created_tickets(),
        spool,
        ServiceConfig::default(),
    );

    let outcome = create(&service, CreateRequest::default())
        .await
        .expect("InvGate created it, so the caller gets it");

    assert!(matches!(outcome, CreateOutcome::Created(c) if c.inv_gate_id.get() == 77));
}

#[tokio::test]
async fn when_the_spool_fails_too_the_ticket_is_still_returned() {
    let mut gateway = gateway_knowing_alice_as(42);
    gateway
        .expect_create_incident()
        .returning(|_, _| Ok(json!({"request_id": 78})));
    let mut spool = MockRecordSpool::new();
    spool
        .expect_put()
        .times(1)
        .returning(|_| Err(SpoolError(anyhow::anyhow!("disk full"))));
    let service = TicketCreator::new(
        gateway,
        repository_refusing_created_tickets(),
        spool,
        ServiceConfig::default(),
    );

    let outcome = create(&service, CreateRequest::default())
        .await
        .expect("created");

    assert!(matches!(outcome, CreateOutcome::Created(c) if c.inv_gate_id.get() == 78));
}

fn spooled(inv_gate_id: i64) -> SpooledRecord {
    let stored = StoredTicket {
        id: uuid::Uuid::now_v7(),
        operation_id: Some(ticketd_domain::OperationId::new()),
        inv_gate_id: ticketd_domain::IncidentId::parse(inv_gate_id).expect("id"),
        creator_email: alice(),
        creator_id: InvGateUserId::new(42),
        customer_id: InvGateUserId::new(42),
        ticket: ticket(),
        invgate_response: InvGateAnswer::new(json!({"request_id": inv_gate_id})),
        created_at: Utc::now(),
    };
    SpooledRecord::new(&stored)
}

#[tokio::test]
async fn spooled_records_are_replayed_in_order_until_the_database_refuses_one() {
    let records = vec![spooled(1), spooled(2), spooled(3)];
    let (first, second) = (records[0].local_id, records[1].local_id);
    let mut spool = MockRecordSpool::new();
    spool
        .expect_list()
        .times(1)
        .returning(move || Ok(records.clone()));
    spool
        .expect_remove()
        .withf(move |id| *id == first)
        .times(1)
        .returning(|_| Ok(()));
    let mut repository = MockTicketRepository::new();
    repository
        .expect_record_created()
        .withf(|stored| {
            stored.inv_gate_id.get() == 1 && stored.invgate_response.text() == r#"{"request_id":1}"#
        })
        .times(1)
        .returning(|_| Ok(()));
    repository
        .expect_record_created()
        .withf(|stored| stored.inv_gate_id.get() == 2)
        .times(1)
        .returning(|_| Err(StoreTicketError::Unexpected(anyhow::anyhow!("still down"))));
    let service = TicketCreator::new(
        MockIncidentGateway::new(),
        repository,
        spool,
        ServiceConfig::default(),
    );

    let replayed = service.replay_spool().await.expect("spool readable");

    assert_eq!(replayed, 1, "record {second} stays for the next round");
}

#[tokio::test]
async fn a_rejection_is_a_final_failure_whose_answer_is_kept_for_replay() {
    let mut gateway = gateway_knowing_alice_as(42);
    gateway.expect_create_incident().returning(|_, _| {
        Err(GatewayError::Rejected {
            message: "categoría inválida".into(),
        })
    });
    let mut repository = MockTicketRepository::new();
    repository
        .expect_begin_operation()
        .returning(|_| Ok(Begun::Started));
    repository
        .expect_record_failure()
        .withf(|_, failure| {
            !failure.retryable
                && failure.answer
                    == Some(StoredAnswer::Rejected {
                        message: "categoría inválida".into(),
                    })
        })
        .times(1)
        .returning(|_, _| Ok(()));

    let err = create(&creator(gateway, repository), keyed("k"))
        .await
        .expect_err("rejected");

    assert!(
        matches!(err, CreateTicketError::UpstreamRejected { message } if message == "categoría inválida")
    );
}

#[tokio::test]
async fn failures_that_created_nothing_free_the_key_and_uncertain_ones_put_the_operation_in_doubt()
{
    type Make = fn() -> GatewayError;
    let created_nothing: Vec<Make> = vec![
        || GatewayError::Unauthorized { status: 401 },
        || GatewayError::RateLimited {
            retry_after: Some(Duration::from_secs(3)),
        },
        || GatewayError::NotSent(anyhow::anyhow!("connection refused")),
        || GatewayError::CircuitOpen {
            retry_after: Duration::from_secs(30),
        },
    ];
    for failure in created_nothing {
        let mut gateway = gateway_knowing_alice_as(42);
        gateway
            .expect_create_incident()
            .times(1)
            .returning(move |_, _| Err(failure()));
        let mut repository = MockTicketRepository::new();
        repository
            .expect_begin_operation()
            .returning(|_| Ok(Begun::Started));
        repository
            .expect_record_failure()
            .withf(|_, f| f.retryable && f.answer.is_none())
            .times(1)
            .returning(|_, _| Ok(()));
        repository.expect_record_in_doubt().never();
        assert!(
            create(&creator(gateway, repository), keyed("k"))
                .await
                .is_err()
        );
    }

    type Check = fn(&CreateTicketError) -> bool;
    let uncertain: Vec<(Make, Check)> = vec![
        (
            || GatewayError::Timeout,
            |e| matches!(e, CreateTicketError::UpstreamTimeout),
        ),
        (
            || GatewayError::Unavailable(anyhow::anyhow!("HTTP 500")),
            |e| matches!(e, CreateTicketError::UpstreamFailed(_)),
        ),
    ];
    for (failure, expected) in uncertain {
        let mut gateway = gateway_knowing_alice_as(42);
        gateway
            .expect_create_incident()
            .times(1)
            .returning(move |_, _| Err(failure()));
        let mut repository = MockTicketRepository::new();
        repository
            .expect_begin_operation()
            .returning(|_| Ok(Begun::Started));
        repository.expect_record_failure().never();
        repository
            .expect_record_in_doubt()
            .times(1)
            .returning(|_, _, _| Ok(()));
        let err = create(&creator(gateway, repository), keyed("k"))
            .await
            .expect_err("failed");
        assert!(expected(&err), "{err:?}");
    }
}

#[tokio::test]
async fn a_success_answer_without_an_id_puts_the_operation_in_doubt() {
    let mut gateway = gateway_knowing_alice_as(42);
    gateway
        .expect_create_incident()
        .returning(|_, _| Ok(json!({"status": "OK", "info": "done"})));
    let mut repository = MockTicketRepository::new();
    repository
        .expect_begin_operation()
        .returning(|_| Ok(Begun::Started));
    repository.expect_record_created().never();
    repository
        .expect_record_in_doubt()
        .times(1)
        .returning(|_, _, _| Ok(()));

    let err = create(&creator(gateway, repository), CreateRequest::default())
        .await
        .expect_err("no id");

    assert!(
        matches!(err, CreateTicketError::UpstreamFailed(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_failed_user_lookup_is_reported_as_upstream_trouble_not_as_a_missing_user() {
    let mut gateway = MockIncidentGateway::new();
    gateway
        .expect_find_user_id_by_email()
        .returning(|_| Err(GatewayError::Timeout));
    gateway.expect_create_incident().never();

    let err = create(
        &creator(gateway, MockTicketRepository::new()),
        CreateRequest::default(),
    )
    .await
    .expect_err("lookup failed");

    assert!(matches!(err, CreateTicketError::UpstreamTimeout), "{err:?}");
}

#[test]
fn the_fingerprint_covers_fields_and_file_digests_but_not_identity() {
    let base = ticket();
    assert_eq!(Fingerprint::of(&base), Fingerprint::of(&ticket()));
    let mut other_title = ticket();
    other_title.title = ticketd_domain::TicketTitle::parse("Other").expect("title");
    assert_ne!(Fingerprint::of(&base), Fingerprint::of(&other_title));
}

fn summary(id: i64, description: &str) -> ticketd_domain::IncidentSummary {
    ticketd_domain::IncidentSummary {
        id: ticketd_domain::IncidentId::parse(id).expect("id"),
        description: description.into(),
    }
}

fn claimed(started_minutes_ago: i64) -> Operation {
    let mut operation = existing(
        OperationState::InDoubt,
        None,
        Fingerprint::of(&ticket()),
        false,
    );
    operation.attempt_started_at = Utc::now() - chrono::Duration::minutes(started_minutes_ago);
    operation
}

fn reconciling(
    operation: &Operation,
    gateway: MockIncidentGateway,
    mut repository: MockTicketRepository,
) -> Creator {
    let operation = operation.clone();
    repository
        .expect_claim_unsettled()
        .times(1)
        .returning(move |_, _| Ok(vec![operation.clone()]));
    creator(gateway, repository)
}

#[tokio::test]
async fn an_incident_found_by_its_marker_is_adopted_with_a_recovered_answer() {
    let operation = claimed(2);
    let marker = format!("Since 9am\n\n[ticketd:{}]", operation.id);
    let mut gateway = MockIncidentGateway::new();
    gateway
        .expect_incidents_created_last_hour()
        .returning(move || Ok(vec![summary(5, "unrelated"), summary(6, &marker)]));
    let mut repository = MockTicketRepository::new();
    let id = operation.id;
    repository
        .expect_record_created()
        .withf(move |stored| {
            let body = stored.invgate_response.text();
            stored.inv_gate_id.get() == 6
                && stored.operation_id == Some(id)
                && stored.creator_email.as_str() == "alice@example.com"
                && stored.ticket.title.as_str() == "VPN down"
                && body.contains(r#""request_id":6"#)
        })
        .times(1)
        .returning(|_| Ok(()));

    let settled = reconciling(&operation, gateway, repository)
        .reconcile()
        .await
        .expect("journal works");

    assert_eq!(settled, 1);
}

#[tokio::test]
async fn a_recent_operation_missing_from_the_last_hour_created_nothing_and_frees_its_key() {
    let operation = claimed(5);
    let mut gateway = MockIncidentGateway::new();
    gateway
        .expect_incidents_created_last_hour()
        .returning(|| Ok(vec![summary(5, "other")]));
    gateway.expect_open_incidents_of().never();
    let mut repository = MockTicketRepository::new();
    repository
        .expect_record_failure()
        .withf(|_, failure| failure.retryable && failure.answer.is_none())
        .times(1)
        .returning(|_, _| Ok(()));

    let settled = reconciling(&operation, gateway, repository)
        .reconcile()
        .await
        .expect("journal works");

    assert_eq!(settled, 1);
}

#[tokio::test]
async fn an_old_operation_is_looked_for_among_open_incidents_and_otherwise_stays_in_doubt() {
    let operation = claimed(90);
    let mut gateway = MockIncidentGateway::new();
    gateway
        .expect_incidents_created_last_hour()
        .returning(|| Ok(vec![]));
    gateway
        .expect_open_incidents_of()
        .withf(|customer| *customer == InvGateUserId::new(42))
        .times(1)
        .returning(|_| Ok(vec![summary(8, "no marker here")]));
    let mut repository = MockTicketRepository::new();
    repository.expect_record_failure().never();
    repository.expect_record_created().never();

    let settled = reconciling(&operation, gateway, repository)
        .reconcile()
        .await
        .expect("journal works");

    assert_eq!(settled, 0, "absence cannot be proven after an hour");
}

#[tokio::test]
async fn when_invgate_cannot_be_listed_nothing_is_decided() {
    let operation = claimed(1);
    let mut gateway = MockIncidentGateway::new();
    gateway
        .expect_incidents_created_last_hour()
        .returning(|| Err(GatewayError::Unavailable(anyhow::anyhow!("HTTP 500"))));
    gateway
        .expect_open_incidents_of()
        .returning(|_| Err(GatewayError::Timeout));
    let mut repository = MockTicketRepository::new();
    repository.expect_record_failure().never();
    repository.expect_record_created().never();

    let settled = reconciling(&operation, gateway, repository)
        .reconcile()
        .await
        .expect("journal works");

    assert_eq!(settled, 0);
}

fn async_request() -> CreateRequest {
    CreateRequest {
        idempotency_key: None,
        request_id: "req-async".into(),
        respond_async: true,
    }
}

#[tokio::test]
async fn with_respond_async_an_unreachable_invgate_queues_the_ticket_with_its_files() {
    let mut gateway = gateway_knowing_alice_as(42);
    gateway
        .expect_create_incident()
        .times(1)
        .returning(|_, _| Err(GatewayError::NotSent(anyhow::anyhow!("connection refused"))));
    let mut repository = MockTicketRepository::new();
    repository
        .expect_begin_operation()
        .returning(|_| Ok(Begun::Started));
    repository
        .expect_queue_operation()
        .withf(|_, files, _, _| files.is_some())
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    repository.expect_record_failure().never();

    let outcome = create(&creator(gateway, repository), async_request())
        .await
        .expect("accepted");

    assert!(
        matches!(outcome, CreateOutcome::Queued { .. }),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn with_respond_async_a_caller_invgate_cannot_look_up_now_is_queued_without_calling_create() {
    let mut gateway = MockIncidentGateway::new();
    gateway.expect_find_user_id_by_email().returning(|_| {
        Err(GatewayError::CircuitOpen {
            retry_after: Duration::from_secs(9),
        })
    });
    gateway.expect_create_incident().never();
    let mut repository = MockTicketRepository::new();
    repository
        .expect_begin_operation()
        .withf(|op| op.requester.is_none())
        .returning(|_| Ok(Begun::Started));
    repository
        .expect_queue_operation()
        .times(1)
        .returning(|_, _, _, _| Ok(()));

    let outcome = create(&creator(gateway, repository), async_request())
        .await
        .expect("accepted");

    assert!(
        matches!(outcome, CreateOutcome::Queued { .. }),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn without_respond_async_an_unreachable_invgate_is_an_error_that_frees_the_key() {
    let mut gateway = gateway_knowing_alice_as(42);
    gateway.expect_create_incident().returning(|_, _| {
        Err(GatewayError::CircuitOpen {
            retry_after: Duration::from_secs(9),
        })
    });
    let mut repository = MockTicketRepository::new();
    repository
        .expect_begin_operation()
        .returning(|_| Ok(Begun::Started));
    repository.expect_queue_operation().never();
    repository
        .expect_record_failure()
        .withf(|_, f| f.retryable)
        .times(1)
        .returning(|_, _| Ok(()));

    let err = create(&creator(gateway, repository), CreateRequest::default())
        .await
        .expect_err("unavailable");

    assert!(
        matches!(err, CreateTicketError::UpstreamUnavailable { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_queue_worker_looks_up_the_caller_and_creates_the_queued_ticket() {
    let mut queued = existing(
        OperationState::InFlight,
        None,
        Fingerprint::of(&ticket()),
        false,
    );
    queued.requester = None;
    let id = queued.id;
    let mut gateway = gateway_knowing_alice_as(42);
    gateway
        .expect_create_incident()
        .withf(|requester, _| *requester == InvGateUserId::new(42))
        .times(1)
        .returning(|_, _| Ok(json!({"request_id": 31})));
    let mut repository = MockTicketRepository::new();
    repository
        .expect_claim_queued()
        .times(1)
        .returning(move |_, _| Ok(vec![queued.clone()]));
    repository
        .expect_set_requester()
        .withf(move |op, requester| *op == id && *requester == InvGateUserId::new(42))
        .times(1)
        .returning(|_, _| Ok(()));
    repository.expect_load_files().times(1).returning(|_, _| {
        Ok(ticketd_domain::LoadedFiles {
            attachments: vec![],
            guard: Box::new(()),
        })
    });
    repository
        .expect_record_created()
        .withf(move |stored| stored.operation_id == Some(id) && stored.inv_gate_id.get() == 31)
        .times(1)
        .returning(|_| Ok(()));

    let created = creator(gateway, repository)
        .process_queue()
        .await
        .expect("journal works");

    assert_eq!(created, 1);
}

#[tokio::test]
async fn the_queue_worker_puts_tickets_back_while_invgate_is_still_unavailable() {
    let queued: Vec<Operation> = (0..3)
        .map(|_| {
            existing(
                OperationState::InFlight,
                None,
                Fingerprint::of(&ticket()),
                false,
            )
        })
        .collect();
    let mut gateway = gateway_knowing_alice_as(42);
    gateway.expect_create_incident().times(1).returning(|_, _| {
        Err(GatewayError::RateLimited {
            retry_after: Some(Duration::from_secs(20)),
        })
    });
    let mut repository = MockTicketRepository::new();
    repository
        .expect_claim_queued()
        .returning(move |_, _| Ok(queued.clone()));
    repository.expect_set_requester().returning(|_, _| Ok(()));
    repository.expect_load_files().returning(|_, _| {
        Ok(ticketd_domain::LoadedFiles {
            attachments: vec![],
            guard: Box::new(()),
        })
    });
    repository
        .expect_queue_operation()
        .withf(|_, files, _, _| files.is_none())
        .times(3)
        .returning(|_, _, _, _| Ok(()));

    let created = creator(gateway, repository)
        .process_queue()
        .await
        .expect("journal works");

    assert_eq!(created, 0, "one call, then the rest of the batch waits");
}

#[tokio::test]
async fn an_accepted_ticket_whose_attempt_was_interrupted_goes_back_to_the_queue_instead_of_failing()
 {
    let mut operation = claimed(3);
    operation.was_queued = true;
    let mut gateway = MockIncidentGateway::new();
    gateway
        .expect_incidents_created_last_hour()
        .returning(|| Ok(vec![]));
    let mut repository = MockTicketRepository::new();
    repository.expect_record_failure().never();
    repository
        .expect_queue_operation()
        .withf(|_, files, delay, _| files.is_none() && delay.is_zero())
        .times(1)
        .returning(|_, _, _, _| Ok(()));

    let settled = reconciling(&operation, gateway, repository)
        .reconcile()
        .await
        .expect("journal works");

    assert_eq!(settled, 1);
}
