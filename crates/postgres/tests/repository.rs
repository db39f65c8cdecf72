//! The repository against a real PostgreSQL, one fresh database per test.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use ticketd_domain::{
    Attachment, AttachmentName, EmailAddress, IncidentId, InvGateAnswer, InvGateUserId, NewTicket,
    OperationId, Sha256Hex, StoreTicketError, StoredTicket, TicketDraft,
};
use ticketd_pgtemp::{TestDatabase, test_database};
use ticketd_postgres::{
    PgTicketRepository, PoolConfig, TicketRepository, TicketRow, connect_pool, run_migrations,
};

async fn migrated_database() -> (TestDatabase, PgTicketRepository) {
    let db = test_database().await.expect("test database");
    run_migrations(db.url()).await.expect("migrations apply");
    let pool = connect_pool(db.url(), PoolConfig::default()).expect("pool");
    (db, PgTicketRepository::new(pool))
}

fn stored_ticket(inv_gate_id: i64) -> StoredTicket {
    let occurred = 1_700_000_000;
    let draft = TicketDraft {
        title: Some("Laptop won't boot".into()),
        description: Some("<p>Black screen</p>".into()),
        category_id: Some(12),
        priority_id: Some(4),
        type_id: Some(2),
        source_id: Some(8),
        location_id: Some(3),
        date_ocurred: Some(occurred),
        related_to: Some(vec![100, 101]),
    };
    let attachment = Attachment {
        name: AttachmentName::sanitize("photo 日本.png"),
        content_type: "image/png".into(),
        size: 2048,
        sha256: Sha256Hex::parse(&"ab".repeat(32)).expect("hex"),
        path: "/nonexistent".into(),
    };
    let ticket = NewTicket::parse(
        draft,
        vec![attachment],
        Utc::now(),
        chrono::Duration::seconds(60),
    )
    .expect("valid ticket");
    StoredTicket {
        id: uuid::Uuid::now_v7(),
        operation_id: None,
        inv_gate_id: IncidentId::parse(inv_gate_id).expect("id"),
        creator_email: EmailAddress::parse("alice@example.com").expect("email"),
        // Distinct, so that a column bound to the wrong field shows.
        creator_id: InvGateUserId::new(42),
        customer_id: InvGateUserId::new(43),
        ticket,
        invgate_response: InvGateAnswer::new(
            json!({"status": "OK", "info": "Creado", "request_id": inv_gate_id}),
        ),
        created_at: DateTime::<Utc>::from_timestamp(1_800_000_000, 123_000).expect("instant"),
    }
}

/// Every column holds its field of `ticket`.
fn assert_every_field(row: &TicketRow, ticket: &StoredTicket) {
    assert_eq!(row.id, ticket.id);
    assert_eq!(row.inv_gate_id, ticket.inv_gate_id.get());
    assert_eq!(row.creator_email, "alice@example.com");
    assert_eq!((row.creator_id, row.customer_id), (42, 43));
    assert_eq!((row.category_id, row.priority_id, row.type_id), (12, 4, 2));
    assert_eq!((row.source_id, row.location_id), (Some(8), Some(3)));
    assert_eq!(row.title, "Laptop won't boot");
    assert_eq!(row.description, "<p>Black screen</p>");
    assert_eq!(row.date_ocurred.map(|d| d.timestamp()), Some(1_700_000_000));
    assert_eq!(row.related_to, vec![100, 101]);
    assert_eq!(
        row.attachments,
        json!([{"name": "photo 日本.png", "size": 2048, "content_type": "image/png", "sha256": "ab".repeat(32)}])
    );
    assert_eq!(row.invgate_response["info"], "Creado");
    assert_eq!(row.created_at, ticket.created_at);
    assert_eq!(row.updated_at, ticket.created_at);
    assert_eq!(row.operation_id, ticket.operation_id.map(OperationId::get));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inserted_ticket_reads_back_with_every_field() {
    let (_db, repository) = migrated_database().await;
    let ticket = stored_ticket(1864);

    repository.insert(&ticket).await.expect("inserted");
    let row = repository
        .find_by_inv_gate_id(1864)
        .await
        .expect("query works")
        .expect("row exists");

    assert_every_field(&row, &ticket);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ticket_recorded_as_created_reads_back_with_every_field_and_a_replay_changes_nothing() {
    let (_db, repository) = migrated_database().await;
    let ticket = stored_ticket(1865);

    for _ in 0..2 {
        repository.record_created(&ticket).await.expect("recorded");
    }
    let row = repository
        .find_by_inv_gate_id(1865)
        .await
        .expect("query works")
        .expect("row exists");

    assert_every_field(&row, &ticket);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_record_for_the_same_invgate_id_is_a_duplicate() {
    let (_db, repository) = migrated_database().await;
    repository
        .insert(&stored_ticket(7))
        .await
        .expect("first insert");

    let err = repository
        .insert(&stored_ticket(7))
        .await
        .expect_err("duplicate");

    assert!(
        matches!(err, StoreTicketError::Duplicate { inv_gate_id: 7 }),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_database_is_an_unexpected_store_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let pool = connect_pool(
        &format!("postgres://postgres@127.0.0.1:{port}/nowhere"),
        PoolConfig {
            max_size: 1,
            timeout: Duration::from_secs(2),
            ..PoolConfig::default()
        },
    )
    .expect("pool builds lazily");

    let err = PgTicketRepository::new(pool)
        .insert(&stored_ticket(1))
        .await
        .expect_err("no database");

    assert!(matches!(err, StoreTicketError::Unexpected(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_apply_once_and_then_report_nothing_pending() {
    let db = test_database().await.expect("test database");
    let first = run_migrations(db.url()).await.expect("first run");
    let second = run_migrations(db.url()).await.expect("second run");
    assert!(!first.is_empty());
    assert!(second.is_empty(), "nothing left to apply: {second:?}");
}
