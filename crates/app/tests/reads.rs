//! The read side end to end: tickets created through ticketd, listed and shown to their creator
//! only, with InvGate's state (from the simulator) merged in, or the local copy marked stale.

mod support;

use invgate_sim::{Fault, FaultKind};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{ALICE, SimApp, TestApp, valid_ticket};

async fn get(app: &SimApp, path: &str, as_who: &str) -> reqwest::Response {
    app.http
        .get(format!("{}{path}", app.base_url))
        .bearer_auth(TestApp::token(as_who))
        .send()
        .await
        .expect("ticketd answers")
}

async fn create(app: &SimApp, title: &str) -> i64 {
    let mut ticket = valid_ticket();
    // The simulator knows no incident 1200 to relate to.
    ticket.as_object_mut().expect("object").remove("related_to");
    ticket["title"] = json!(title);
    let response = app.post(&ticket, None).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.expect("json");
    body["request_id"].as_i64().expect("id")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_creator_pages_through_their_tickets_and_nobody_else_sees_them() {
    let (_db, app) = SimApp::spawn().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(create(&app, &format!("ticket {i}")).await);
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/tickets?limit=2".to_owned();
    loop {
        let response = get(&app, &path, ALICE).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.expect("json");
        for ticket in body["tickets"].as_array().expect("tickets") {
            seen.push(ticket["inv_gate_id"].as_i64().expect("id"));
        }
        match body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/tickets?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "newest first, each once");

    let bob = get(&app, "/api/v1/tickets", "bob@example.com").await;
    let body: Value = bob.json().await.expect("json");
    assert_eq!(body["tickets"], json!([]));
    let foreign = get(
        &app,
        &format!("/api/v1/tickets/{}", ids[0]),
        "bob@example.com",
    )
    .await;
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ticket_shows_invgates_current_status_and_an_unchanged_one_is_304() {
    let (_db, app) = SimApp::spawn().await;
    let id = create(&app, "status please").await;
    assert!(app.sim.sim.set_incident_status(id, 3));

    let response = get(&app, &format!("/api/v1/tickets/{id}"), ALICE).await;
    assert_eq!(response.status(), StatusCode::OK);
    let etag = response.headers().get("etag").cloned().expect("etag");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status_id"], 3);
    assert_eq!(body["stale"], false);
    assert_eq!(body["title"], "status please");

    // Stored in the mirror: the list shows it too.
    let list: Value = get(&app, "/api/v1/tickets?status_id=3", ALICE)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(list["tickets"][0]["inv_gate_id"], id);

    let if_none_match = |etag: reqwest::header::HeaderValue| {
        app.http
            .get(format!("{}/api/v1/tickets/{id}", app.base_url))
            .bearer_auth(TestApp::token(ALICE))
            .header("if-none-match", etag)
            .send()
    };
    let again = if_none_match(etag.clone()).await.expect("answers");
    // Nothing changed in InvGate (only the sync time moved on): 304.
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers().get("etag"), Some(&etag));

    // The ticket changes in InvGate: a full answer with a new tag.
    assert!(app.sim.sim.set_incident_status(id, 4));
    let changed = if_none_match(etag.clone()).await.expect("answers");
    assert_eq!(changed.status(), StatusCode::OK);
    assert_ne!(changed.headers().get("etag"), Some(&etag));
}

#[tokio::test(flavor = "multi_thread")]
async fn when_invgate_fails_the_local_copy_is_shown_marked_stale() {
    let (_db, app) = SimApp::spawn().await;
    // Reads of the incident fail from before the ticket exists, so the background sync (which
    // takes never-synced tickets at once) cannot refresh it first, nor use the faults up.
    let mut fault = Fault::on(
        "incident",
        FaultKind::Status {
            status: 500,
            retry_after: None,
            body: None,
        },
    );
    fault.method = Some("GET".into());
    fault.times = 10_000;
    app.sim.sim.inject(fault);
    let id = create(&app, "while InvGate is down").await;

    let response = get(&app, &format!("/api/v1/tickets/{id}"), ALICE).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["stale"], true);
    assert_eq!(body["inv_gate_id"], id);
    assert_eq!(body["status_synced_at"], Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_creator_comments_with_a_file_and_reads_the_conversation_without_internal_notes() {
    let (_db, app) = SimApp::spawn().await;
    let id = create(&app, "needs a conversation").await;
    let form = reqwest::multipart::Form::new()
        .text("comment", "Here is the log")
        .part(
            "attachments[]",
            reqwest::multipart::Part::bytes(b"line 1\nline 2\n".to_vec())
                .file_name("日志.txt")
                .mime_str("text/plain")
                .expect("mime"),
        );
    let added = app
        .http
        .post(format!("{}/api/v1/tickets/{id}/comments", app.base_url))
        .bearer_auth(TestApp::token(ALICE))
        .multipart(form)
        .send()
        .await
        .expect("answers");
    assert_eq!(added.status(), StatusCode::CREATED);

    // An agent's internal note, written straight into InvGate.
    let creds = app.sim.sim.credentials().clone();
    let note = app
        .http
        .post(format!("{}incident.comment", app.sim.base_url()))
        .basic_auth(&creds.username, Some(&creds.password))
        .multipart(
            reqwest::multipart::Form::new()
                .text("request_id", id.to_string())
                .text("author_id", "43")
                .text("comment", "internal: customer is on the old VPN client")
                .text("customer_visible", "0"),
        )
        .send()
        .await
        .expect("answers");
    assert!(note.status().is_success());

    let listed: Value = get(&app, &format!("/api/v1/tickets/{id}/comments"), ALICE)
        .await
        .json()
        .await
        .expect("json");
    let comments = listed["comments"].as_array().expect("comments");
    assert_eq!(comments.len(), 1, "{listed}");
    assert_eq!(comments[0]["comment"], "Here is the log");
    assert_eq!(comments[0]["author_id"], 42);
    assert_eq!(comments[0]["attachments"][0]["name"], "日志.txt");

    let foreign = get(
        &app,
        &format!("/api/v1/tickets/{id}/comments"),
        "bob@example.com",
    )
    .await;
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn ticket_meta_comes_from_invgate() {
    let (_db, app) = SimApp::spawn().await;
    let response = get(&app, "/api/v1/ticket-meta", ALICE).await;
    assert_eq!(response.status(), StatusCode::OK);
    let meta: Value = response.json().await.expect("json");
    for list in ["priorities", "types", "statuses", "sources", "categories"] {
        assert!(
            !meta[list].as_array().expect("list").is_empty(),
            "{list}: {meta}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_background_sync_brings_a_status_changed_in_invgate_into_the_list() {
    // The list reads only the mirror: only the sync can bring InvGate's change there.
    let (_db, app) = SimApp::spawn().await;
    let id = create(&app, "watched by the sync").await;
    assert!(app.sim.sim.set_incident_status(id, 5));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let list: Value = get(&app, "/api/v1/tickets", ALICE)
            .await
            .json()
            .await
            .expect("json");
        if list["tickets"][0]["status_id"] == 5 {
            assert!(list["tickets"][0]["status_synced_at"].is_string());
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sync never ran: {list}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
