//! The create use case over mocked ports.

use std::time::Duration;

use chrono::Utc;
use mockall::predicate::eq;
use serde_json::json;
use ticketd_domain::ports::{MockIncidentGateway, MockTicketRepository};
use ticketd_domain::{
    CreateTicketError, EmailAddress, GatewayError, InvGateUserId, NewTicket, StoreTicketError,
    TicketCreator, TicketDraft, TicketService, UserCacheConfig,
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

fn gateway_knowing_alice_as(id: i64) -> MockIncidentGateway {
    let mut gateway = MockIncidentGateway::new();
    gateway
        .expect_find_user_id_by_email()
        .withf(|email| email.as_str() == "alice@example.com")
        .returning(move |_| Ok(Some(InvGateUserId::new(id))));
    gateway
}

fn repository_accepting_all() -> MockTicketRepository {
    let mut repository = MockTicketRepository::new();
    repository.expect_insert().returning(|_| Ok(()));
    repository
}

fn creator(
    gateway: MockIncidentGateway,
    repository: MockTicketRepository,
) -> TicketCreator<MockIncidentGateway, MockTicketRepository> {
    TicketCreator::new(gateway, repository, UserCacheConfig::default())
}

#[tokio::test]
async fn a_ticket_is_created_for_the_caller_and_stored_with_invgates_id() {
    let mut gateway = gateway_knowing_alice_as(42);
    gateway
        .expect_create_incident()
        .with(eq(InvGateUserId::new(42)), eq(ticket()))
        .times(1)
        .returning(|_, _| Ok(json!({"status": "OK", "info": "created", "request_id": 1864})));
    let mut repository = MockTicketRepository::new();
    repository
        .expect_insert()
        .withf(|stored| {
            stored.inv_gate_id.get() == 1864
                && stored.creator_id == InvGateUserId::new(42)
                && stored.customer_id == InvGateUserId::new(42)
                && stored.creator_email.as_str() == "alice@example.com"
                && stored.ticket.title.as_str() == "VPN down"
                && stored.invgate_response["info"] == "created"
        })
        .times(1)
        .returning(|_| Ok(()));

    let created = creator(gateway, repository)
        .create_ticket(&alice(), ticket())
        .await
        .expect("created");

    assert_eq!(created.inv_gate_id.get(), 1864);
    assert_eq!(
        created.response,
        json!({"status": "OK", "info": "created", "request_id": 1864})
    );
}

#[tokio::test]
async fn a_caller_unknown_to_invgate_is_not_provisioned_and_nothing_is_created() {
    let mut gateway = MockIncidentGateway::new();
    gateway
        .expect_find_user_id_by_email()
        .returning(|_| Ok(None));
    gateway.expect_create_incident().never();
    let mut repository = MockTicketRepository::new();
    repository.expect_insert().never();

    let err = creator(gateway, repository)
        .create_ticket(&alice(), ticket())
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
    let service = creator(gateway, repository_accepting_all());

    for _ in 0..2 {
        service
            .create_ticket(&alice(), ticket())
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
    let no_cache = UserCacheConfig {
        ttl: Duration::ZERO,
        capacity: 10,
    };
    let service = TicketCreator::new(gateway, repository_accepting_all(), no_cache);

    for _ in 0..2 {
        service
            .create_ticket(&alice(), ticket())
            .await
            .expect("created");
    }
}

#[tokio::test]
async fn a_failed_local_store_still_returns_the_created_ticket() {
    let mut gateway = gateway_knowing_alice_as(42);
    gateway
        .expect_create_incident()
        .returning(|_, _| Ok(json!({"request_id": 77})));
    let mut repository = MockTicketRepository::new();
    repository.expect_insert().times(1).returning(|_| {
        Err(StoreTicketError::Unexpected(anyhow::anyhow!(
            "connection refused"
        )))
    });

    let created = creator(gateway, repository)
        .create_ticket(&alice(), ticket())
        .await
        .expect("InvGate created it, so the caller gets it");

    assert_eq!(created.inv_gate_id.get(), 77);
}

#[tokio::test]
async fn a_success_answer_without_an_id_is_an_upstream_failure_and_nothing_is_stored() {
    let mut gateway = gateway_knowing_alice_as(42);
    gateway
        .expect_create_incident()
        .returning(|_, _| Ok(json!({"status": "OK", "info": "done"})));
    let mut repository = MockTicketRepository::new();
    repository.expect_insert().never();

    let err = creator(gateway, repository)
        .create_ticket(&alice(), ticket())
        .await
        .expect_err("no id");

    assert!(
        matches!(err, CreateTicketError::UpstreamFailed(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn each_gateway_failure_of_the_create_maps_to_its_own_error() {
    type Check = fn(&CreateTicketError) -> bool;
    let cases: Vec<(fn() -> GatewayError, Check)> = vec![
        (
            || GatewayError::Rejected {
                message: "categoría inválida".into(),
            },
            |e| matches!(e, CreateTicketError::UpstreamRejected { message } if message == "categoría inválida"),
        ),
        (
            || GatewayError::Unauthorized { status: 401 },
            |e| matches!(e, CreateTicketError::UpstreamAuth(_)),
        ),
        (
            || GatewayError::RateLimited {
                retry_after: Some(Duration::from_secs(12)),
            },
            |e| matches!(e, CreateTicketError::UpstreamBusy { retry_after: Some(d) } if d.as_secs() == 12),
        ),
        (
            || GatewayError::Timeout,
            |e| matches!(e, CreateTicketError::UpstreamTimeout),
        ),
        (
            || GatewayError::Unavailable(anyhow::anyhow!("HTTP 500")),
            |e| matches!(e, CreateTicketError::UpstreamFailed(_)),
        ),
    ];
    for (failure, expected) in cases {
        let mut gateway = gateway_knowing_alice_as(42);
        gateway
            .expect_create_incident()
            .times(1)
            .returning(move |_, _| Err(failure()));
        let mut repository = MockTicketRepository::new();
        repository.expect_insert().never();

        let err = creator(gateway, repository)
            .create_ticket(&alice(), ticket())
            .await
            .expect_err("gateway failed");

        assert!(expected(&err), "unexpected mapping: {err:?}");
    }
}

#[tokio::test]
async fn a_failed_user_lookup_is_reported_as_upstream_trouble_not_as_a_missing_user() {
    let mut gateway = MockIncidentGateway::new();
    gateway
        .expect_find_user_id_by_email()
        .returning(|_| Err(GatewayError::Timeout));
    gateway.expect_create_incident().never();

    let err = creator(gateway, MockTicketRepository::new())
        .create_ticket(&alice(), ticket())
        .await
        .expect_err("lookup failed");

    assert!(matches!(err, CreateTicketError::UpstreamTimeout), "{err:?}");
}
