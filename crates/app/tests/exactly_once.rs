//! Exactly-once creation as a client sees it: idempotency keys over the real server, a real
//! database and the InvGate simulator.

mod support;

use std::time::Duration;

use invgate_sim::{Fault, FaultKind};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::SimApp;

/// A ticket the simulator accepts (its seed has no incident to relate to).
fn valid_ticket() -> Value {
    let mut ticket = support::valid_ticket();
    ticket.as_object_mut().expect("object").remove("related_to");
    ticket
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_with_the_same_key_replays_the_first_answer_byte_for_byte_and_invgate_sees_one_create()
 {
    let (_db, app) = SimApp::spawn().await;

    let first = app.post(&valid_ticket(), Some("order-1")).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_location = first.headers()["location"].clone();
    let first_body = first.bytes().await.expect("body");

    let second = app.post(&valid_ticket(), Some("order-1")).await;

    assert_eq!(second.status(), StatusCode::CREATED);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    assert_eq!(second.headers()["location"], first_location);
    assert_eq!(second.bytes().await.expect("body"), first_body);
    assert_eq!(app.sim.sim.incident_count(), 1);
    assert_eq!(app.ticket_count().await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_key_two_identical_requests_are_two_tickets() {
    let (_db, app) = SimApp::spawn().await;
    for _ in 0..2 {
        assert_eq!(
            app.post(&valid_ticket(), None).await.status(),
            StatusCode::CREATED
        );
    }
    assert_eq!(app.sim.sim.incident_count(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_key_for_a_different_ticket_is_422_and_creates_nothing() {
    let (_db, app) = SimApp::spawn().await;
    assert_eq!(
        app.post(&valid_ticket(), Some("k")).await.status(),
        StatusCode::CREATED
    );
    let mut other = valid_ticket();
    other["title"] = json!("Something else");

    let response = app.post(&other, Some("k")).await;

    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.expect("problem");
    assert_eq!(body["code"], "IDEMPOTENCY_KEY_MISMATCH");
    assert_eq!(app.sim.sim.incident_count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_whose_first_request_is_still_running_is_409_then_replays_once_it_finished() {
    let (_db, app) = SimApp::spawn().await;
    app.sim
        .sim
        .inject(Fault::on("incident", FaultKind::Delay { ms: 1200 }));

    let ticket = valid_ticket();
    let (first, second) = tokio::join!(app.post(&ticket, Some("slow")), async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        app.post(&ticket, Some("slow")).await
    });

    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(second.status(), StatusCode::CONFLICT);
    assert!(second.headers().contains_key("retry-after"));
    let problem: Value = second.json().await.expect("problem");
    assert_eq!(problem["code"], "IDEMPOTENCY_KEY_IN_USE");
    let third = app.post(&valid_ticket(), Some("slow")).await;
    assert_eq!(
        (third.status(), &third.headers()["idempotent-replayed"]),
        (StatusCode::CREATED, &"true".parse().expect("value"))
    );
    assert_eq!(app.sim.sim.incident_count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejection_is_replayed_too_and_invgate_is_not_asked_again() {
    let (_db, app) = SimApp::spawn().await;
    let mut unknown_category = valid_ticket();
    unknown_category["category_id"] = json!(999);

    let first = app.post(&unknown_category, Some("bad")).await;
    assert_eq!(first.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let first_body = first.bytes().await.expect("body");
    let second = app.post(&unknown_category, Some("bad")).await;

    assert_eq!(second.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    assert_eq!(second.bytes().await.expect("body"), first_body);
    assert_eq!(app.sim.sim.requests_to("POST", "incident").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_that_created_nothing_lets_the_same_key_try_again() {
    let (_db, app) = SimApp::spawn().await;
    app.sim.sim.inject(
        Fault::on(
            "incident",
            FaultKind::Status {
                status: 503,
                retry_after: Some(30),
                body: None,
            },
        )
        .method("POST"),
    );

    let busy = app.post(&valid_ticket(), Some("again")).await;
    assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retried = app.post(&valid_ticket(), Some("again")).await;

    assert_eq!(retried.status(), StatusCode::CREATED);
    assert!(
        retried.headers().get("idempotent-replayed").is_none(),
        "a fresh attempt, not a replay"
    );
    assert_eq!(app.sim.sim.incident_count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_validation_failure_is_not_remembered_under_its_key() {
    let (_db, app) = SimApp::spawn().await;
    assert_eq!(
        app.post(&json!({"title": ""}), Some("fixme"))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.post(&valid_ticket(), Some("fixme")).await.status(),
        StatusCode::CREATED
    );
}

/// ticketd with a 1 s InvGate timeout (so a 2 s lease) in front of a fresh simulator.
async fn impatient() -> (ticketd_pgtemp::TestDatabase, SimApp) {
    let db = ticketd_pgtemp::test_database().await.expect("database");
    let sim = invgate_sim::RunningSimulator::start().expect("simulator");
    let app = SimApp::spawn_on(db.url(), sim, |args| {
        args.invgate_timeout_secs = Some("1".into())
    })
    .await;
    (db, app)
}

/// Retries `key` until its answer is no longer 409, as a patient client would.
async fn retry_until_settled(app: &SimApp, ticket: &Value, key: &str) -> reqwest::Response {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let response = app.post(ticket, Some(key)).await;
        if response.status() != StatusCode::CONFLICT {
            return response;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the operation never settled"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_whose_answer_came_too_late_is_found_by_its_marker_and_adopted_never_resent() {
    let (_db, app) = impatient().await;
    app.sim
        .sim
        .inject(Fault::on("incident", FaultKind::AnswerLate { ms: 1500 }));

    let timed_out = app.post(&valid_ticket(), Some("late")).await;
    assert_eq!(timed_out.status(), StatusCode::GATEWAY_TIMEOUT);
    let in_doubt = app.post(&valid_ticket(), Some("late")).await;
    assert_eq!(
        in_doubt.status(),
        StatusCode::CONFLICT,
        "in doubt until reconciled"
    );

    let settled = retry_until_settled(&app, &valid_ticket(), "late").await;

    assert_eq!(settled.status(), StatusCode::CREATED);
    assert_eq!(settled.headers()["idempotent-replayed"], "true");
    let incident = app.sim.sim.incidents()[0].clone();
    assert_eq!(
        settled.headers()["location"],
        format!("/api/v1/tickets/{}", incident["id"])
    );
    let body: Value = settled.json().await.expect("JSON");
    assert_eq!(body["request_id"], incident["id"]);
    assert_eq!(
        app.sim.sim.requests_to("POST", "incident").len(),
        1,
        "never resent blindly"
    );
    assert_eq!(app.ticket_count().await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_that_never_happened_is_proven_absent_and_its_key_creates_the_ticket_on_retry() {
    let (_db, app) = impatient().await;
    app.sim.sim.inject(Fault::on("incident", FaultKind::Hang));

    let timed_out = app.post(&valid_ticket(), Some("lost")).await;
    assert_eq!(timed_out.status(), StatusCode::GATEWAY_TIMEOUT);

    let settled = retry_until_settled(&app, &valid_ticket(), "lost").await;

    assert_eq!(settled.status(), StatusCode::CREATED);
    assert!(
        settled.headers().get("idempotent-replayed").is_none(),
        "created by the retry"
    );
    assert_eq!(app.sim.sim.incident_count(), 1);
    assert_eq!(app.ticket_count().await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_given_the_same_key_at_once_create_one_ticket() {
    let (db, first) = SimApp::spawn().await;
    let sim =
        invgate_sim::RunningSimulator::start_with(first.sim.sim.clone()).expect("second listener");
    let second = SimApp::spawn_on(db.url(), sim, |_| {}).await;
    first
        .sim
        .sim
        .inject(Fault::on("incident", FaultKind::Delay { ms: 300 }).times(4));

    let ticket = valid_ticket();
    let requests = (0..4).map(|i| {
        let app = if i % 2 == 0 { &first } else { &second };
        app.post(&ticket, Some("shared"))
    });
    let statuses: Vec<StatusCode> = futures_util::future::join_all(requests)
        .await
        .iter()
        .map(reqwest::Response::status)
        .collect();

    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );
    assert_eq!(first.sim.sim.incident_count(), 1);
    assert_eq!(first.ticket_count().await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn while_invgate_is_down_respond_async_queues_the_ticket_and_a_worker_creates_it_later() {
    let (_db, app) = SimApp::spawn().await;
    app.sim.sim.inject(
        Fault::on(
            "user.by",
            FaultKind::Status {
                status: 503,
                retry_after: Some(60),
                body: None,
            },
        )
        .times(100),
    );
    let file = b"queued while InvGate was down".to_vec();
    let form = reqwest::multipart::Form::new()
        .text("request", valid_ticket().to_string())
        .part(
            "attachments[]",
            reqwest::multipart::Part::bytes(file.clone())
                .file_name("note.txt")
                .mime_str("text/plain")
                .expect("mime"),
        );

    let accepted = app
        .http
        .post(format!("{}/api/v1/tickets", app.base_url))
        .bearer_auth(support::TestApp::token(support::ALICE))
        .header("Prefer", "respond-async")
        .multipart(form)
        .send()
        .await
        .expect("answers");

    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    assert_eq!(accepted.headers()["preference-applied"], "respond-async");
    let location = accepted.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        location.starts_with("/api/v1/tickets/operations/"),
        "{location}"
    );
    let body: Value = accepted.json().await.expect("status");
    assert_eq!(body["status"], "queued");
    let status = |app: &SimApp| {
        let url = format!("{}{location}", app.base_url);
        let http = app.http.clone();
        async move {
            http.get(url)
                .bearer_auth(support::TestApp::token(support::ALICE))
                .send()
                .await
                .expect("answers")
                .json::<Value>()
                .await
                .expect("status")
        }
    };
    assert_eq!(status(&app).await["status"], "queued");
    assert_eq!(app.sim.sim.incident_count(), 0);

    app.sim.sim.clear_faults();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let created = loop {
        let current = status(&app).await;
        if current["status"] == "created" {
            break current;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never created: {current}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let incident = app.sim.sim.incidents()[0].clone();
    assert_eq!(created["inv_gate_id"], incident["id"]);
    assert_eq!(
        created["ticket"],
        format!("/api/v1/tickets/{}", incident["id"])
    );
    let sent = app.sim.sim.requests_to("POST", "incident");
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].files[0].size,
        file.len() as u64,
        "the file made it through the queue"
    );
    assert_eq!(app.ticket_count().await, 1);

    let foreign = app
        .http
        .get(format!("{}{location}", app.base_url))
        .bearer_auth(support::TestApp::token("bob@example.com"))
        .send()
        .await
        .expect("answers");
    assert_eq!(
        foreign.status(),
        StatusCode::NOT_FOUND,
        "only the caller's own operations"
    );
}
