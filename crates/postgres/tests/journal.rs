//! The operation journal against a real PostgreSQL, one fresh database per test.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use ticketd_domain::{
    Begun, EmailAddress, Fingerprint, IdempotencyKey, IncidentId, InvGateAnswer, InvGateUserId,
    NewOperation, NewTicket, OperationFailure, OperationId, OperationState, StoredAnswer,
    StoredTicket, TicketDraft, TicketSnapshot,
};
use ticketd_pgtemp::{TestDatabase, test_database};
use ticketd_postgres::{
    PgTicketRepository, PoolConfig, TicketRepository, connect_pool, run_migrations,
};

async fn journal() -> (TestDatabase, PgTicketRepository) {
    let db = test_database().await.expect("test database");
    run_migrations(db.url()).await.expect("migrations apply");
    let pool = connect_pool(db.url(), PoolConfig::default()).expect("pool");
    (db, PgTicketRepository::new(pool))
}

fn ticket(title: &str) -> NewTicket {
    let draft = TicketDraft {
        title: Some(title.into()),
        description: Some("d".into()),
        category_id: Some(1),
        priority_id: Some(1),
        type_id: Some(1),
        ..TicketDraft::default()
    };
    NewTicket::parse(draft, vec![], Utc::now(), chrono::Duration::seconds(60)).expect("valid")
}

fn operation(caller: &str, key: Option<&str>, title: &str) -> NewOperation {
    let t = ticket(title);
    NewOperation {
        id: OperationId::new(),
        caller: EmailAddress::parse(caller).expect("email"),
        key: key.map(|k| IdempotencyKey::parse(k).expect("key")),
        fingerprint: Fingerprint::of(&t),
        request_id: "req-1".into(),
        requester: Some(InvGateUserId::new(42)),
        ticket: TicketSnapshot::from(&t),
        lease: Duration::from_secs(60),
        state: OperationState::InFlight,
    }
}

fn stored(op: &NewOperation, inv_gate_id: i64) -> StoredTicket {
    StoredTicket {
        id: uuid::Uuid::now_v7(),
        operation_id: Some(op.id),
        inv_gate_id: IncidentId::parse(inv_gate_id).expect("id"),
        creator_email: op.caller.clone(),
        creator_id: InvGateUserId::new(42),
        customer_id: InvGateUserId::new(42),
        ticket: op.ticket.to_ticket().expect("snapshot is valid"),
        invgate_response: InvGateAnswer::new(json!({"request_id": inv_gate_id})),
        created_at: DateTime::<Utc>::from_timestamp(1_800_000_000, 0).expect("instant"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn operations_without_a_key_never_conflict() {
    let (_db, journal) = journal().await;
    for _ in 0..2 {
        let begun = journal
            .begin_operation(&operation("a@example.com", None, "t"))
            .await
            .expect("journaled");
        assert_eq!(begun, Begun::Started);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_is_scoped_to_its_caller_and_a_second_use_finds_the_first_operation() {
    let (_db, journal) = journal().await;
    let first = operation("Alice@Example.com", Some("k-1"), "first");
    assert_eq!(
        journal.begin_operation(&first).await.expect("journaled"),
        Begun::Started
    );
    assert_eq!(
        journal
            .begin_operation(&operation("bob@example.com", Some("k-1"), "bob's"))
            .await
            .expect("journaled"),
        Begun::Started,
        "another caller's key is another key"
    );

    let again = journal
        .begin_operation(&operation("alice@example.com", Some("k-1"), "second"))
        .await
        .expect("read");

    let Begun::Existing(existing) = again else {
        panic!("expected the first operation")
    };
    assert_eq!(existing.id, first.id);
    assert_eq!(existing.state, OperationState::InFlight);
    assert_eq!(existing.fingerprint, first.fingerprint);
    assert_eq!(existing.ticket.title, "first");
    assert_eq!(existing.request_id, "req-1");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_first_uses_of_a_key_start_exactly_one_operation() {
    let (_db, journal) = journal().await;
    // Collected first: spawning lazily while awaiting would run them one after the other.
    let attempts: Vec<_> = (0..12)
        .map(|_| {
            let journal = journal.clone();
            tokio::spawn(async move {
                journal
                    .begin_operation(&operation("a@example.com", Some("race"), "t"))
                    .await
            })
        })
        .collect();
    let mut started = 0;
    for attempt in attempts {
        if attempt.await.expect("task").expect("journal works") == Begun::Started {
            started += 1;
        }
    }
    assert_eq!(started, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_created_ticket_and_its_operations_outcome_are_stored_together_and_idempotently() {
    let (_db, journal) = journal().await;
    let op = operation("a@example.com", Some("k"), "t");
    journal.begin_operation(&op).await.expect("journaled");
    let ticket = stored(&op, 1864);

    journal.record_created(&ticket).await.expect("stored");
    journal
        .record_created(&ticket)
        .await
        .expect("a replay changes nothing");

    let row = journal
        .find_by_inv_gate_id(1864)
        .await
        .expect("query")
        .expect("row");
    assert_eq!(row.operation_id, Some(op.id.get()));
    let settled = journal
        .find_operation("a@example.com", op.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(settled.state, OperationState::Succeeded);
    assert_eq!(settled.inv_gate_id.map(IncidentId::get), Some(1864));
    assert_eq!(
        settled.answer,
        Some(StoredAnswer::Created {
            inv_gate_id: 1864,
            body: r#"{"request_id":1864}"#.into()
        })
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_that_created_nothing_can_be_retaken_once() {
    let (_db, journal) = journal().await;
    let op = operation("a@example.com", Some("k"), "t");
    journal.begin_operation(&op).await.expect("journaled");
    let failure = OperationFailure {
        retryable: true,
        answer: None,
        reason: "429".into(),
    };
    journal
        .record_failure(op.id, &failure)
        .await
        .expect("recorded");

    assert!(
        journal
            .retake_operation(op.id, Duration::from_secs(60), "req-2")
            .await
            .expect("works")
    );
    assert!(
        !journal
            .retake_operation(op.id, Duration::from_secs(60), "req-3")
            .await
            .expect("works"),
        "already taken"
    );
    let taken = journal
        .find_operation("a@example.com", op.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        (taken.state, taken.request_id.as_str()),
        (OperationState::InFlight, "req-2")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_final_failure_keeps_its_answer_and_cannot_be_retaken() {
    let (_db, journal) = journal().await;
    let op = operation("a@example.com", Some("k"), "t");
    journal.begin_operation(&op).await.expect("journaled");
    let answer = StoredAnswer::Rejected {
        message: "Categoría inválida".into(),
    };
    journal
        .record_failure(
            op.id,
            &OperationFailure {
                retryable: false,
                answer: Some(answer.clone()),
                reason: "428".into(),
            },
        )
        .await
        .expect("recorded");

    assert!(
        !journal
            .retake_operation(op.id, Duration::from_secs(60), "req-2")
            .await
            .expect("works")
    );
    let failed = journal
        .find_operation("a@example.com", op.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        (failed.state, failed.answer),
        (OperationState::Failed, Some(answer))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operation_in_doubt_is_marked_so_and_only_its_caller_sees_it() {
    let (_db, journal) = journal().await;
    let op = operation("a@example.com", None, "t");
    journal.begin_operation(&op).await.expect("journaled");

    journal
        .record_in_doubt(op.id, Duration::from_secs(30), "timeout")
        .await
        .expect("recorded");

    let doubtful = journal
        .find_operation("a@example.com", op.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        (doubtful.state, doubtful.reason.as_deref()),
        (OperationState::InDoubt, Some("timeout"))
    );
    assert!(
        journal
            .find_operation("mallory@example.com", op.id)
            .await
            .expect("read")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn only_operations_whose_lease_ran_out_are_claimed_and_a_claim_takes_them_for_a_while() {
    let (_db, journal) = journal().await;
    let fresh = operation("a@example.com", None, "fresh");
    let mut abandoned = operation("a@example.com", None, "abandoned");
    abandoned.lease = Duration::ZERO;
    let mut settled = operation("a@example.com", None, "settled");
    settled.lease = Duration::ZERO;
    for op in [&fresh, &abandoned, &settled] {
        journal.begin_operation(op).await.expect("journaled");
    }
    journal
        .record_created(&stored(&settled, 5))
        .await
        .expect("settled");

    let claimed = journal
        .claim_unsettled(10, Duration::from_secs(60))
        .await
        .expect("claims");

    assert_eq!(
        claimed.iter().map(|o| o.id).collect::<Vec<_>>(),
        [abandoned.id]
    );
    assert_eq!(claimed[0].ticket.title, "abandoned");
    assert!(
        journal
            .claim_unsettled(10, Duration::from_secs(60))
            .await
            .expect("claims")
            .is_empty(),
        "leased again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_claims_never_take_the_same_operation() {
    let (_db, journal) = journal().await;
    for i in 0..20 {
        let mut op = operation("a@example.com", None, &format!("t{i}"));
        op.lease = Duration::ZERO;
        journal.begin_operation(&op).await.expect("journaled");
    }

    let claims: Vec<_> = (0..4)
        .map(|_| {
            let journal = journal.clone();
            tokio::spawn(async move { journal.claim_unsettled(7, Duration::from_secs(60)).await })
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    for claim in claims {
        for op in claim.await.expect("task").expect("claims") {
            assert!(seen.insert(op.id), "claimed twice: {}", op.id);
            total += 1;
        }
    }
    assert_eq!(total, 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queued_operations_files_are_stored_in_chunks_and_come_back_byte_for_byte() {
    let (_db, journal) = journal().await;
    let bytes: Vec<u8> = (0..2_600_000u32).map(|i| (i % 241) as u8).collect();
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), &bytes).expect("written");
    let attachment = ticketd_domain::Attachment {
        name: ticketd_domain::AttachmentName::sanitize("dump.bin"),
        content_type: "application/octet-stream".into(),
        size: bytes.len() as u64,
        sha256: ticketd_domain::Sha256Hex::parse(&"a".repeat(64)).expect("hex"),
        path: file.path().to_path_buf(),
    };
    let mut op = operation("a@example.com", None, "queued");
    let mut with_file = op.ticket.to_ticket().expect("ticket");
    with_file.attachments = vec![attachment.clone()];
    op.ticket = TicketSnapshot::from(&with_file);
    journal.begin_operation(&op).await.expect("journaled");

    journal
        .queue_operation(
            op.id,
            Some(vec![attachment]),
            Duration::ZERO,
            "InvGate down",
        )
        .await
        .expect("queued");
    let queued = journal
        .find_operation("a@example.com", op.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(queued.state, OperationState::Queued);
    let claimed = journal
        .claim_queued(10, Duration::from_secs(60))
        .await
        .expect("claims");
    assert_eq!(claimed.iter().map(|o| o.id).collect::<Vec<_>>(), [op.id]);
    assert_eq!(claimed[0].state, OperationState::InFlight);
    assert!(
        journal
            .claim_queued(10, Duration::from_secs(60))
            .await
            .expect("claims")
            .is_empty()
    );

    let loaded = journal.load_files(op.id, &with_file).await.expect("loads");

    assert_eq!(loaded.attachments.len(), 1);
    assert_eq!(
        std::fs::read(&loaded.attachments[0].path).expect("file"),
        bytes
    );
    assert_eq!(loaded.attachments[0].name.as_str(), "dump.bin");

    // Once the ticket is recorded as created, its stored files are dropped.
    journal
        .record_created(&stored(&op, 77))
        .await
        .expect("recorded");
    assert!(
        journal.load_files(op.id, &with_file).await.is_err(),
        "the files are gone"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn queued_operations_are_claimed_oldest_first_once_due() {
    let (_db, journal) = journal().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let op = operation("a@example.com", None, &format!("q{i}"));
        journal.begin_operation(&op).await.expect("journaled");
        ids.push(op.id);
    }
    for id in ids.iter().rev() {
        journal
            .queue_operation(*id, None, Duration::ZERO, "down")
            .await
            .expect("queued");
    }
    let later = operation("a@example.com", None, "later");
    journal.begin_operation(&later).await.expect("journaled");
    journal
        .queue_operation(later.id, None, Duration::from_secs(3600), "down")
        .await
        .expect("queued");

    let claimed: Vec<_> = journal
        .claim_queued(10, Duration::from_secs(60))
        .await
        .expect("claims")
        .iter()
        .map(|o| o.id)
        .collect();

    assert_eq!(claimed, ids, "oldest first, and not the one due in an hour");
}

#[tokio::test(flavor = "multi_thread")]
async fn files_that_do_not_come_back_whole_are_refused() {
    let (_db, journal) = journal().await;
    let mut op = operation("a@example.com", None, "queued");
    let mut with_file = op.ticket.to_ticket().expect("ticket");
    with_file.attachments = vec![ticketd_domain::Attachment {
        name: ticketd_domain::AttachmentName::sanitize("lost.bin"),
        content_type: "application/octet-stream".into(),
        size: 10,
        sha256: ticketd_domain::Sha256Hex::parse(&"b".repeat(64)).expect("hex"),
        path: std::path::PathBuf::new(),
    }];
    op.ticket = TicketSnapshot::from(&with_file);
    journal.begin_operation(&op).await.expect("journaled");

    // Queued without its file: nothing to load back.
    journal
        .queue_operation(op.id, None, Duration::ZERO, "down")
        .await
        .expect("queued");

    assert!(journal.load_files(op.id, &with_file).await.is_err());
    let queued = journal
        .find_operation("a@example.com", op.id)
        .await
        .expect("read")
        .expect("exists");
    assert!(queued.was_queued);
}
