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
