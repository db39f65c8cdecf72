//! The read side of the mirror against a real PostgreSQL: own tickets only, keyset pages, the
//! status filter, and the sync's bookkeeping.

use chrono::{DateTime, Utc};
use serde_json::json;
use ticketd_domain::{
    EmailAddress, IncidentId, IncidentStatus, InvGateAnswer, InvGateUserId, NewTicket, PageCursor,
    StoredTicket, TicketDraft, TicketPage, TicketReadStore,
};
use ticketd_pgtemp::{TestDatabase, test_database};
use ticketd_postgres::{
    PgTicketRepository, PoolConfig, TicketRepository, connect_pool, run_migrations,
};

async fn migrated() -> (TestDatabase, PgTicketRepository) {
    let db = test_database().await.expect("test database");
    run_migrations(db.url()).await.expect("migrations apply");
    let pool = connect_pool(db.url(), PoolConfig::default()).expect("pool");
    (db, PgTicketRepository::new(pool))
}

fn email(raw: &str) -> EmailAddress {
    EmailAddress::parse(raw).expect("email")
}

fn ticket(inv_gate_id: i64, creator: &str, created: i64) -> StoredTicket {
    let draft = TicketDraft {
        title: Some(format!("ticket {inv_gate_id}")),
        description: Some("d".into()),
        category_id: Some(1),
        priority_id: Some(2),
        type_id: Some(1),
        ..TicketDraft::default()
    };
    StoredTicket {
        id: uuid::Uuid::now_v7(),
        operation_id: None,
        inv_gate_id: IncidentId::parse(inv_gate_id).expect("id"),
        creator_email: email(creator),
        creator_id: InvGateUserId::new(42),
        customer_id: InvGateUserId::new(42),
        ticket: NewTicket::parse(draft, vec![], Utc::now(), chrono::Duration::seconds(60))
            .expect("valid"),
        invgate_response: InvGateAnswer::new(json!({"request_id": inv_gate_id})),
        created_at: DateTime::<Utc>::from_timestamp(created, 0).expect("instant"),
    }
}

fn id(n: i64) -> IncidentId {
    IncidentId::parse(n).expect("id")
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_hold_only_the_callers_tickets_newest_first_without_gaps_or_repeats() {
    let (_db, repo) = migrated().await;
    // Two tickets share a creation instant: the id breaks the tie.
    for (n, created) in [(1, 100), (2, 200), (3, 300), (4, 300), (5, 500)] {
        repo.insert(&ticket(n, "Alice@Example.com", created))
            .await
            .expect("insert");
    }
    repo.insert(&ticket(6, "bob@example.com", 600))
        .await
        .expect("insert");

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = TicketPage::new(Some(2), after, None).expect("page");
        let rows = repo
            .tickets_of(&email("alice@example.com"), &page)
            .await
            .expect("page");
        // The store reads one extra to tell whether another page follows.
        let more = rows.len() > 2;
        let shown: Vec<_> = rows.into_iter().take(2).collect();
        seen.extend(shown.iter().map(|t| t.inv_gate_id.get()));
        if !more {
            break;
        }
        after = shown.last().map(PageCursor::after);
    }
    assert_eq!(seen, [5, 4, 3, 2, 1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ticket_is_found_only_for_its_creator() {
    let (_db, repo) = migrated().await;
    repo.insert(&ticket(7, "alice@example.com", 100))
        .await
        .expect("insert");
    assert!(
        repo.ticket_of(&email("ALICE@example.com"), id(7))
            .await
            .expect("read")
            .is_some()
    );
    assert!(
        repo.ticket_of(&email("bob@example.com"), id(7))
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        repo.ticket_of(&email("alice@example.com"), id(8))
            .await
            .expect("read")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recorded_status_is_read_back_filters_the_list_and_closes_the_ticket_for_the_sync() {
    let (_db, repo) = migrated().await;
    for n in [1, 2, 3] {
        repo.insert(&ticket(n, "alice@example.com", n * 100))
            .await
            .expect("insert");
    }
    let now = Utc::now();
    let closed = IncidentStatus {
        status_id: Some(6),
        last_update: DateTime::<Utc>::from_timestamp(1_700_000_000, 0),
        solved_at: DateTime::<Utc>::from_timestamp(1_700_000_000, 0),
        closed_at: DateTime::<Utc>::from_timestamp(1_700_000_100, 0),
    };
    repo.record_status(id(2), &closed, now)
        .await
        .expect("recorded");
    let open = IncidentStatus {
        status_id: Some(1),
        ..IncidentStatus::default()
    };
    repo.record_status(id(3), &open, now)
        .await
        .expect("recorded");

    let two = repo
        .ticket_of(&email("alice@example.com"), id(2))
        .await
        .expect("read")
        .expect("found");
    assert_eq!(two.status, closed);
    assert!(two.status_synced_at.is_some());

    let page = TicketPage::new(Some(10), None, Some(6)).expect("page");
    let filtered = repo
        .tickets_of(&email("alice@example.com"), &page)
        .await
        .expect("list");
    assert_eq!(
        filtered
            .iter()
            .map(|t| t.inv_gate_id.get())
            .collect::<Vec<_>>(),
        [2]
    );

    // Never synced first, then the least recently synced; closed tickets never.
    let due = repo
        .due_for_sync(10, now + chrono::Duration::seconds(1))
        .await
        .expect("due");
    assert_eq!(due.iter().map(|i| i.get()).collect::<Vec<_>>(), [1, 3]);
    let due = repo.due_for_sync(10, now).await.expect("due");
    assert_eq!(due.iter().map(|i| i.get()).collect::<Vec<_>>(), [1]);
}
