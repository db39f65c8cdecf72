//! The circuit breaker over a mocked gateway.

use std::time::Duration;

use ticketd_domain::ports::MockIncidentGateway;
use ticketd_domain::{
    BreakerConfig, CircuitBreaker, EmailAddress, GatewayError, IncidentGateway, InvGateUserId,
};

fn alice() -> EmailAddress {
    EmailAddress::parse("alice@example.com").expect("email")
}

fn config(cooldown: Duration) -> BreakerConfig {
    BreakerConfig {
        failure_threshold: 3,
        cooldown,
    }
}

#[tokio::test]
async fn repeated_failures_open_the_circuit_and_calls_are_refused_without_reaching_invgate() {
    let mut gateway = MockIncidentGateway::new();
    gateway
        .expect_find_user_id_by_email()
        .times(3)
        .returning(|_| Err(GatewayError::Timeout));
    let breaker = CircuitBreaker::new(gateway, config(Duration::from_secs(60)));

    for _ in 0..3 {
        assert!(matches!(
            breaker.find_user_id_by_email(&alice()).await,
            Err(GatewayError::Timeout)
        ));
    }
    let refused = breaker.find_user_id_by_email(&alice()).await;

    assert!(
        matches!(refused, Err(GatewayError::CircuitOpen { retry_after }) if retry_after > Duration::from_secs(50)),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_success_resets_the_count_and_refusals_by_invgate_do_not_count() {
    let mut gateway = MockIncidentGateway::new();
    let mut calls = 0;
    gateway
        .expect_find_user_id_by_email()
        .times(6)
        .returning(move |_| {
            calls += 1;
            match calls {
                3 => Ok(Some(InvGateUserId::new(1))),
                4..=5 => Err(GatewayError::Rejected {
                    message: "no".into(),
                }),
                _ => Err(GatewayError::Timeout),
            }
        });
    let breaker = CircuitBreaker::new(gateway, config(Duration::from_secs(60)));

    for _ in 0..6 {
        let outcome = breaker.find_user_id_by_email(&alice()).await;
        assert!(
            !matches!(outcome, Err(GatewayError::CircuitOpen { .. })),
            "opened too early"
        );
    }
}

#[tokio::test]
async fn after_the_cool_down_one_probe_decides_and_success_closes_the_circuit() {
    let mut gateway = MockIncidentGateway::new();
    let mut calls = 0;
    gateway
        .expect_find_user_id_by_email()
        .times(5)
        .returning(move |_| {
            calls += 1;
            if calls <= 3 {
                Err(GatewayError::NotSent(anyhow::anyhow!("refused")))
            } else {
                Ok(None)
            }
        });
    let breaker = CircuitBreaker::new(gateway, config(Duration::from_millis(100)));
    for _ in 0..3 {
        let _ = breaker.find_user_id_by_email(&alice()).await;
    }
    assert!(matches!(
        breaker.find_user_id_by_email(&alice()).await,
        Err(GatewayError::CircuitOpen { .. })
    ));

    tokio::time::sleep(Duration::from_millis(150)).await;

    assert!(
        matches!(breaker.find_user_id_by_email(&alice()).await, Ok(None)),
        "the probe goes through"
    );
    assert!(
        matches!(breaker.find_user_id_by_email(&alice()).await, Ok(None)),
        "closed again"
    );
}

#[tokio::test]
async fn a_failed_probe_opens_the_circuit_for_another_cool_down() {
    let mut gateway = MockIncidentGateway::new();
    gateway
        .expect_find_user_id_by_email()
        .times(4)
        .returning(|_| Err(GatewayError::Unavailable(anyhow::anyhow!("500"))));
    let breaker = CircuitBreaker::new(gateway, config(Duration::from_millis(100)));
    for _ in 0..3 {
        let _ = breaker.find_user_id_by_email(&alice()).await;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;

    assert!(
        matches!(
            breaker.find_user_id_by_email(&alice()).await,
            Err(GatewayError::Unavailable(_))
        ),
        "the probe"
    );
    assert!(matches!(
        breaker.find_user_id_by_email(&alice()).await,
        Err(GatewayError::CircuitOpen { .. })
    ));
}
