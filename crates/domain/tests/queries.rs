//! The read side over mocked ports: pages, own tickets only, fresh state merged, stale fallback.

use chrono::{DateTime, Utc};
use serde_json::json;
use ticketd_domain::ports::{MockIncidentGateway, MockTicketReadStore};
use ticketd_domain::{
    EmailAddress, GatewayError, IncidentId, IncidentStatus, TicketPage, TicketQueries,
    TicketReader, TicketView,
};

fn alice() -> EmailAddress {
    EmailAddress::parse("alice@example.com").expect("email")
}

fn view(id: i64, created: i64) -> TicketView {
    TicketView {
        id: uuid::Uuid::now_v7(),
        inv_gate_id: IncidentId::parse(id).expect("id"),
        title: format!("ticket {id}"),
        description: "d".into(),
        category_id: 1,
        priority_id: 2,
        type_id: 1,
        source_id: None,
        location_id: None,
        date_ocurred: None,
        related_to: vec![],
        attachments: json!([]),
        created_at: DateTime::<Utc>::from_timestamp(created, 0).expect("instant"),
        status: IncidentStatus {
            status_id: Some(1),
            ..IncidentStatus::default()
        },
        status_synced_at: None,
    }
}

#[tokio::test]
async fn a_full_page_points_at_the_next_and_a_short_one_does_not() {
    let mut store = MockTicketReadStore::new();
    store.expect_tickets_of().returning(|_, page| {
        Ok((0..=page.limit as i64)
            .map(|i| view(100 - i, 1000 - i))
            .collect())
    });
    let reader = TicketReader::new(MockIncidentGateway::new(), store);
    let page = TicketPage::new(Some(3), None, None).expect("page");
    let list = reader.list_tickets(&alice(), page).await.expect("listed");
    assert_eq!(list.tickets.len(), 3);
    let next = list.next.expect("another page");
    assert_eq!(next.inv_gate_id, 98);

    let mut store = MockTicketReadStore::new();
    store
        .expect_tickets_of()
        .returning(|_, _| Ok(vec![view(5, 5)]));
    let reader = TicketReader::new(MockIncidentGateway::new(), store);
    let list = reader
        .list_tickets(
            &alice(),
            TicketPage::new(Some(3), None, None).expect("page"),
        )
        .await
        .expect("listed");
    assert_eq!((list.tickets.len(), list.next), (1, None));
}

#[tokio::test]
async fn another_callers_ticket_is_not_found_and_invgate_is_not_asked() {
    let mut store = MockTicketReadStore::new();
    store.expect_ticket_of().returning(|_, _| Ok(None));
    let mut gateway = MockIncidentGateway::new();
    gateway.expect_incident_status().never();
    let reader = TicketReader::new(gateway, store);
    let found = reader
        .ticket(&alice(), IncidentId::parse(7).expect("id"))
        .await
        .expect("read");
    assert!(found.is_none());
}

#[tokio::test]
async fn invgates_fresh_state_is_merged_and_stored() {
    let mut store = MockTicketReadStore::new();
    store
        .expect_ticket_of()
        .returning(|_, _| Ok(Some(view(7, 7))));
    store
        .expect_record_status()
        .withf(|id, status, _| id.get() == 7 && status.status_id == Some(5))
        .times(1)
        .returning(|_, _, _| Ok(()));
    let mut gateway = MockIncidentGateway::new();
    gateway.expect_incident_status().returning(|_| {
        Ok(Some(IncidentStatus {
            status_id: Some(5),
            ..IncidentStatus::default()
        }))
    });
    let reader = TicketReader::new(gateway, store);
    let detail = reader
        .ticket(&alice(), IncidentId::parse(7).expect("id"))
        .await
        .expect("read")
        .expect("found");
    assert!(!detail.stale);
    assert_eq!(detail.ticket.status.status_id, Some(5));
    assert!(detail.ticket.status_synced_at.is_some());
}

#[tokio::test]
async fn when_invgate_fails_the_local_copy_is_shown_as_stale() {
    let mut store = MockTicketReadStore::new();
    store
        .expect_ticket_of()
        .returning(|_, _| Ok(Some(view(7, 7))));
    store.expect_record_status().never();
    let mut gateway = MockIncidentGateway::new();
    gateway
        .expect_incident_status()
        .returning(|_| Err(GatewayError::Timeout));
    let reader = TicketReader::new(gateway, store);
    let detail = reader
        .ticket(&alice(), IncidentId::parse(7).expect("id"))
        .await
        .expect("read")
        .expect("found");
    assert!(detail.stale);
    assert_eq!(detail.ticket.status.status_id, Some(1));
}

#[tokio::test]
async fn the_sync_refreshes_due_tickets_and_stops_when_invgate_fails() {
    let mut store = MockTicketReadStore::new();
    store.expect_due_for_sync().returning(|_, _| {
        Ok([1, 2, 3]
            .into_iter()
            .map(|i| IncidentId::parse(i).expect("id"))
            .collect())
    });
    store
        .expect_record_status()
        .times(1)
        .returning(|_, _, _| Ok(()));
    let mut gateway = MockIncidentGateway::new();
    let mut calls = 0;
    gateway
        .expect_incident_status()
        .times(2)
        .returning(move |_| {
            calls += 1;
            if calls == 1 {
                Ok(Some(IncidentStatus::default()))
            } else {
                Err(GatewayError::Timeout)
            }
        });
    let reader = TicketReader::new(gateway, store);
    let refreshed = reader
        .sync_open(10, std::time::Duration::from_secs(60))
        .await
        .expect("synced");
    assert_eq!(refreshed, 1);
}

fn comment(id: i64, visible: bool) -> ticketd_domain::Comment {
    ticketd_domain::Comment {
        id,
        author_id: Some(42),
        comment: format!("comment {id}"),
        created_at: None,
        is_solution: false,
        attachments: vec![],
        customer_visible: visible,
    }
}

#[tokio::test]
async fn the_service_desks_internal_notes_are_not_shown_to_the_caller() {
    let mut store = MockTicketReadStore::new();
    store
        .expect_ticket_of()
        .returning(|_, _| Ok(Some(view(7, 7))));
    let mut gateway = MockIncidentGateway::new();
    gateway.expect_comments_of().returning(|_| {
        Ok(Some(vec![
            comment(1, true),
            comment(2, false),
            comment(3, true),
        ]))
    });
    let reader = TicketReader::new(gateway, store);
    let comments = reader
        .comments(&alice(), IncidentId::parse(7).expect("id"))
        .await
        .expect("read")
        .expect("found");
    assert_eq!(comments.iter().map(|c| c.id).collect::<Vec<_>>(), [1, 3]);
}

#[tokio::test]
async fn nobody_comments_on_someone_elses_ticket() {
    let mut store = MockTicketReadStore::new();
    store.expect_ticket_of().returning(|_, _| Ok(None));
    let mut gateway = MockIncidentGateway::new();
    gateway.expect_add_comment().never();
    gateway.expect_comments_of().never();
    let reader = TicketReader::new(gateway, store);
    let text = ticketd_domain::CommentText::parse("hello").expect("text");
    let added = reader
        .add_comment(
            &alice(),
            IncidentId::parse(7).expect("id"),
            ticketd_domain::NewComment {
                text,
                attachments: vec![],
            },
        )
        .await
        .expect("answered");
    assert!(added.is_none());
    assert!(
        reader
            .comments(&alice(), IncidentId::parse(7).expect("id"))
            .await
            .expect("answered")
            .is_none()
    );
}

#[tokio::test]
async fn a_comment_is_written_as_the_callers_invgate_user() {
    let mut store = MockTicketReadStore::new();
    store
        .expect_ticket_of()
        .returning(|_, _| Ok(Some(view(7, 7))));
    let mut gateway = MockIncidentGateway::new();
    gateway
        .expect_find_user_id_by_email()
        .returning(|_| Ok(Some(ticketd_domain::InvGateUserId::new(42))));
    gateway
        .expect_add_comment()
        .withf(|id, author, comment| {
            id.get() == 7 && author.get() == 42 && comment.text.as_str() == "hello"
        })
        .times(1)
        .returning(|_, _, _| Ok(json!({"status": "OK"})));
    let reader = TicketReader::new(gateway, store);
    let added = reader
        .add_comment(
            &alice(),
            IncidentId::parse(7).expect("id"),
            ticketd_domain::NewComment {
                text: ticketd_domain::CommentText::parse("hello").expect("text"),
                attachments: vec![],
            },
        )
        .await
        .expect("added");
    assert_eq!(added, Some(json!({"status": "OK"})));
}

fn reference(id: i64) -> ticketd_domain::Reference {
    ticketd_domain::Reference {
        id,
        name: format!("r{id}"),
        parent_id: None,
    }
}

#[tokio::test]
async fn reference_data_is_cached_and_an_old_copy_beats_an_error() {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = calls.clone();
    let mut gateway = MockIncidentGateway::new();
    gateway.expect_reference_list().returning(move |_| {
        // The first round of five lists succeeds; everything after fails.
        if counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 5 {
            Ok(vec![reference(1)])
        } else {
            Err(GatewayError::Timeout)
        }
    });
    let cached = TicketReader::with_meta_cache(
        gateway,
        MockTicketReadStore::new(),
        ticketd_domain::MetaCacheConfig {
            ttl: std::time::Duration::ZERO,
        },
    );
    let first = cached.ticket_meta().await.expect("fetched");
    assert_eq!(first.categories, [reference(1)]);
    // Expired (TTL 0) and InvGate failing: the old copy is served.
    let second = cached.ticket_meta().await.expect("served from cache");
    assert_eq!(second, first);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 6);

    let mut failing = MockIncidentGateway::new();
    failing
        .expect_reference_list()
        .returning(|_| Err(GatewayError::Timeout));
    let empty = TicketReader::new(failing, MockTicketReadStore::new());
    assert!(empty.ticket_meta().await.is_err());
}

#[tokio::test]
async fn fresh_reference_data_is_fetched_once_per_ttl() {
    let mut gateway = MockIncidentGateway::new();
    gateway
        .expect_reference_list()
        .times(5)
        .returning(|_| Ok(vec![reference(2)]));
    let reader = TicketReader::new(gateway, MockTicketReadStore::new());
    for _ in 0..3 {
        assert_eq!(
            reader.ticket_meta().await.expect("meta").priorities,
            [reference(2)]
        );
    }
}
