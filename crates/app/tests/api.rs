//! Black-box tests: the real server on a free port, a real PostgreSQL database per test and a mock
//! InvGate on loopback, driven over HTTP like a client would.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::{ALICE, ALICE_ID, INVGATE_KEY, INVGATE_USER, TestApp, invgate_ok, valid_ticket};
use wiremock::ResponseTemplate;

#[tokio::test(flavor = "multi_thread")]
async fn a_json_ticket_is_created_in_invgate_and_stored_locally() {
    let app = TestApp::spawn().await;
    app.mock_create(invgate_ok(1864)).await;

    let response = app.post_ticket(&valid_ticket()).await;

    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["location"], "/api/v1/tickets/1864");
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(
        body,
        json!({"status": "OK", "info": "Solicitud creada", "request_id": 1864})
    );

    let row = app.row(1864).await.expect("stored");
    assert_eq!(row.creator_email, ALICE);
    assert_eq!(
        (row.creator_id, row.customer_id),
        (ALICE_ID, ALICE_ID),
        "identity comes from the token only"
    );
    assert_eq!(
        (row.category_id, row.priority_id, row.type_id, row.source_id),
        (3, 3, 1, Some(8))
    );
    assert_eq!(row.related_to, vec![1200]);
    assert_eq!(row.invgate_response, body);

    let requests = app.invgate.received_requests().await.expect("recorded");
    let create = requests
        .iter()
        .find(|r| r.url.path() == "/api/v1/incident")
        .expect("create call");
    let expected_auth = format!("Basic {}", base64(&format!("{INVGATE_USER}:{INVGATE_KEY}")));
    assert_eq!(
        create.headers["authorization"].to_str().expect("ascii"),
        expected_auth
    );
    let sent = String::from_utf8_lossy(&create.body);
    assert!(sent.contains("name=\"creator_id\"\r\n\r\n42\r\n"), "{sent}");
    assert!(
        sent.contains("name=\"related_to[]\"\r\n\r\n1200\r\n"),
        "{sent}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_multipart_ticket_carries_its_file_to_invgate_and_its_digest_to_the_database() {
    let app = TestApp::spawn().await;
    app.mock_create(invgate_ok(77)).await;
    // A PDF by its signature, declared as anything: ticketd passes on the type it sniffed.
    let mut file = b"%PDF-1.7\n".to_vec();
    file.extend((0..199_991u32).map(|i| (i % 251) as u8));
    let form = Form::new()
        .part(
            "attachments[]",
            Part::bytes(file.clone())
                .file_name("dump.pdf")
                .mime_str("application/octet-stream")
                .expect("mime"),
        )
        .text("request", valid_ticket().to_string());

    let response = app
        .http
        .post(format!("{}/api/v1/tickets", app.base_url))
        .bearer_auth(TestApp::token(ALICE))
        .multipart(form)
        .send()
        .await
        .expect("answers");

    assert_eq!(response.status(), StatusCode::CREATED);
    let row = app.row(77).await.expect("stored");
    let digest = hex::encode(Sha256::digest(&file));
    assert_eq!(
        row.attachments,
        json!([{"name": "dump.pdf", "size": 200_000, "content_type": "application/pdf", "sha256": digest}])
    );
    let requests = app.invgate.received_requests().await.expect("recorded");
    let create = requests
        .iter()
        .find(|r| r.url.path() == "/api/v1/incident")
        .expect("create call");
    assert!(
        create
            .body
            .windows(file.len())
            .any(|w| w == file.as_slice()),
        "the file's bytes reach InvGate unchanged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_invgate_failure_becomes_its_documented_answer_and_nothing_is_stored() {
    let cases: Vec<(ResponseTemplate, StatusCode, &str)> = vec![
        (
            ResponseTemplate::new(200)
                .set_body_json(json!({"status": "ERROR", "info": "Categoría inexistente"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "UPSTREAM_REJECTED",
        ),
        (
            ResponseTemplate::new(428)
                .set_body_json(json!({"status": "ERROR", "error": "Faltan datos"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "UPSTREAM_REJECTED",
        ),
        (
            ResponseTemplate::new(400),
            StatusCode::UNPROCESSABLE_ENTITY,
            "UPSTREAM_REJECTED",
        ),
        (
            ResponseTemplate::new(404),
            StatusCode::UNPROCESSABLE_ENTITY,
            "UPSTREAM_REJECTED",
        ),
        (
            ResponseTemplate::new(422),
            StatusCode::UNPROCESSABLE_ENTITY,
            "UPSTREAM_REJECTED",
        ),
        (
            ResponseTemplate::new(401),
            StatusCode::BAD_GATEWAY,
            "UPSTREAM_AUTH",
        ),
        (
            ResponseTemplate::new(403),
            StatusCode::BAD_GATEWAY,
            "UPSTREAM_AUTH",
        ),
        (
            ResponseTemplate::new(429).insert_header("Retry-After", "17"),
            StatusCode::SERVICE_UNAVAILABLE,
            "UPSTREAM_BUSY",
        ),
        (
            ResponseTemplate::new(500),
            StatusCode::BAD_GATEWAY,
            "EXTERNAL_SERVICE_ERROR",
        ),
        (
            ResponseTemplate::new(200).set_body_string("<html>oops</html>"),
            StatusCode::BAD_GATEWAY,
            "EXTERNAL_SERVICE_ERROR",
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!({"status": "OK"})),
            StatusCode::BAD_GATEWAY,
            "EXTERNAL_SERVICE_ERROR",
        ),
        (
            invgate_ok(5).set_delay(Duration::from_secs(4)),
            StatusCode::GATEWAY_TIMEOUT,
            "UPSTREAM_TIMEOUT",
        ),
    ];
    let app = TestApp::spawn().await;
    for (answer, status, code) in cases {
        app.invgate.reset().await;
        remount_alice(&app).await;
        app.mock_create(answer).await;

        let response = app.post_ticket(&valid_ticket()).await;

        assert_eq!(response.status(), status, "{code}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        if code == "UPSTREAM_BUSY" {
            assert_eq!(response.headers()["retry-after"], "17");
        }
        let body: Value = response.json().await.expect("problem");
        assert_eq!(body["code"], code);
        assert_eq!(body["error"], body["detail"]);
        assert!(!body.to_string().contains(INVGATE_KEY));
    }
    assert_eq!(app.ticket_count().await, 0);
}

async fn remount_alice(app: &TestApp) {
    use wiremock::matchers::{method, path, query_param};
    wiremock::Mock::given(method("GET"))
        .and(path("/api/v1/user.by"))
        .and(query_param("email", ALICE))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": ALICE_ID, "email": ALICE})),
        )
        .mount(&app.invgate)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejection_passes_invgates_own_message_to_the_client() {
    let app = TestApp::spawn().await;
    app.mock_create(
        ResponseTemplate::new(428)
            .set_body_json(json!({"status": "ERROR", "info": "El campo categoría es obligatorio"})),
    )
    .await;

    let body: Value = app
        .post_ticket(&valid_ticket())
        .await
        .json()
        .await
        .expect("problem");

    assert_eq!(body["detail"], "El campo categoría es obligatorio");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_caller_without_an_invgate_user_gets_403_and_invgate_gets_no_ticket() {
    let app = TestApp::spawn().await;
    app.mock_create(invgate_ok(1)).await;

    let response = app
        .http
        .post(format!("{}/api/v1/tickets", app.base_url))
        .bearer_auth(TestApp::token("mallory@example.com"))
        .json(&valid_ticket())
        .send()
        .await
        .expect("answers");

    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.expect("problem");
    assert_eq!(body["code"], "USER_NOT_PROVISIONED");
    let requests = app.invgate.received_requests().await.expect("recorded");
    assert!(requests.iter().all(|r| r.url.path() != "/api/v1/incident"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_still_gets_its_201_when_the_local_store_fails() {
    let app = TestApp::spawn().await;
    app.mock_create(invgate_ok(31)).await;
    {
        use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
        let mut conn = AsyncPgConnection::establish(app.db.url())
            .await
            .expect("connects");
        diesel::sql_query("DROP TABLE tickets")
            .execute(&mut conn)
            .await
            .expect("dropped");
    }

    let response = app.post_ticket(&valid_ticket()).await;

    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "the ticket exists in InvGate"
    );
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["request_id"], 31);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_ticket_is_400_listing_every_field_and_never_reaches_invgate() {
    let app = TestApp::spawn().await;

    let response = app.post_ticket(&json!({"title": " ", "priority_id": 0, "type_id": 9, "date_ocurred": 4_102_444_800_i64})).await;

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("problem");
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(
        fields,
        [
            "title",
            "description",
            "category_id",
            "priority_id",
            "type_id",
            "date_ocurred"
        ]
    );
    assert!(
        app.invgate
            .received_requests()
            .await
            .expect("recorded")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_checked_before_anything_else() {
    let app = TestApp::spawn().await;
    let url = format!("{}/api/v1/tickets", app.base_url);

    let missing = app
        .http
        .post(&url)
        .json(&valid_ticket())
        .send()
        .await
        .expect("answers");
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");

    let forged = ticketd_http::mint_hs256_token(
        &"not-the-secret".to_owned().into(),
        ALICE,
        Duration::from_secs(60),
    )
    .expect("token");
    let bad = app
        .http
        .post(&url)
        .bearer_auth(forged)
        .json(&valid_ticket())
        .send()
        .await
        .expect("answers");
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        bad.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    assert!(
        app.invgate
            .received_requests()
            .await
            .expect("recorded")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_from_the_configuration_apply() {
    let app = TestApp::spawn_with(|args| {
        args.max_attachments = Some("1".into());
        args.max_attachment_bytes = Some("100".into());
    })
    .await;
    let send = |form: Form| {
        app.http
            .post(format!("{}/api/v1/tickets", app.base_url))
            .bearer_auth(TestApp::token(ALICE))
            .multipart(form)
            .send()
    };

    let too_big = Form::new()
        .text("request", valid_ticket().to_string())
        .part(
            "attachments[]",
            Part::bytes(vec![b'a'; 101]).file_name("big.txt"),
        );
    assert_eq!(
        send(too_big).await.expect("answers").status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );

    let too_many = Form::new()
        .text("request", valid_ticket().to_string())
        .part(
            "attachments[]",
            Part::bytes(vec![b'a'; 10]).file_name("a.txt"),
        )
        .part(
            "attachments[]",
            Part::bytes(vec![b'b'; 10]).file_name("b.txt"),
        );
    assert_eq!(
        send(too_many).await.expect("answers").status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );

    let other_type = app
        .http
        .post(format!("{}/api/v1/tickets", app.base_url))
        .bearer_auth(TestApp::token(ALICE))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("title=x")
        .send()
        .await
        .expect("answers");
    assert_eq!(other_type.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test(flavor = "multi_thread")]
async fn health_is_open_and_cheap() {
    let app = TestApp::spawn().await;
    let response = app
        .http
        .get(format!("{}/healthz", app.base_url))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.expect("JSON"),
        json!({"status": "ok"})
    );
}

fn base64(input: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = input.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
