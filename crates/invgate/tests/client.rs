//! The InvGate client against a local mock InvGate (wiremock on loopback).

use std::io::Write;
use std::time::Duration;

use chrono::Utc;
use secrecy::SecretString;
use serde_json::{Value, json};
use ticketd_domain::{
    Attachment, AttachmentName, EmailAddress, GatewayError, IncidentGateway, InvGateUserId,
    NewTicket, Sha256Hex, TicketDraft,
};
use ticketd_invgate::{InvGateConfig, ReqwestInvGateClient, RetryPolicy};
use wiremock::matchers::{basic_auth, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const BASIC_ALICE: (&str, &str) = ("api-user", "s3cret-key");

fn client_for(server: &MockServer, timeout: Duration) -> ReqwestInvGateClient {
    client_with_slots(server, timeout, 16)
}

fn client_with_slots(
    server: &MockServer,
    timeout: Duration,
    max_concurrent_calls: usize,
) -> ReqwestInvGateClient {
    ReqwestInvGateClient::new(InvGateConfig {
        // No trailing slash on purpose: it is optional.
        base_url: format!("{}/api/v1", server.uri()),
        username: BASIC_ALICE.0.into(),
        password: SecretString::from(BASIC_ALICE.1),
        timeout,
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        },
        max_concurrent_calls,
    })
    .expect("valid configuration")
}

fn client(server: &MockServer) -> ReqwestInvGateClient {
    client_for(server, Duration::from_secs(5))
}

fn draft() -> TicketDraft {
    TicketDraft {
        title: Some("Printer jam".into()),
        description: Some("<b>Tray 2</b>".into()),
        category_id: Some(5),
        priority_id: Some(2),
        type_id: Some(1),
        ..TicketDraft::default()
    }
}

fn ticket_with(draft: TicketDraft, attachments: Vec<Attachment>) -> NewTicket {
    NewTicket::parse(
        draft,
        attachments,
        Utc::now(),
        chrono::Duration::seconds(60),
    )
    .expect("valid ticket")
}

fn spooled(name: &str, content_type: &str, bytes: &[u8]) -> (tempfile::TempPath, Attachment) {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(bytes).expect("written");
    let path = file.into_temp_path();
    let attachment = Attachment {
        name: AttachmentName::sanitize(name),
        content_type: content_type.into(),
        size: bytes.len() as u64,
        sha256: Sha256Hex::parse(&"0".repeat(64)).expect("hex"),
        path: path.to_path_buf(),
    };
    (path, attachment)
}

/// One part of a multipart/form-data body.
#[derive(Debug)]
struct FormPart {
    name: String,
    file_name: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

/// A deliberately independent multipart reader, so the test checks the wire format rather than
/// trusting the library that wrote it.
fn parse_multipart(request: &Request) -> Vec<FormPart> {
    let content_type = request
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .expect("content type");
    assert!(
        content_type.starts_with("multipart/form-data"),
        "{content_type}"
    );
    let boundary = content_type
        .split("boundary=")
        .nth(1)
        .expect("boundary")
        .trim_matches('"');
    let delimiter = format!("--{boundary}").into_bytes();
    let body = &request.body;
    let mut positions = Vec::new();
    let mut i = 0;
    while i + delimiter.len() <= body.len() {
        if body[i..].starts_with(&delimiter) {
            positions.push(i);
            i += delimiter.len();
        } else {
            i += 1;
        }
    }
    positions
        .windows(2)
        .map(|w| {
            let part = &body[w[0] + delimiter.len() + 2..w[1] - 2];
            let split = part
                .windows(4)
                .position(|x| x == b"\r\n\r\n")
                .expect("header end");
            let headers = String::from_utf8(part[..split].to_vec()).expect("utf-8 headers");
            let header = |name: &str| {
                headers
                    .lines()
                    .find(|l| l.to_ascii_lowercase().starts_with(&format!("{name}:")))
                    .map(|l| l[name.len() + 1..].trim().to_owned())
            };
            let disposition = header("content-disposition").expect("disposition");
            let param = |key: &str| {
                disposition
                    .split(';')
                    .map(str::trim)
                    .find_map(|p| p.strip_prefix(&format!("{key}=")))
                    .map(|v| v.trim_matches('"').to_owned())
            };
            FormPart {
                name: param("name").expect("name"),
                file_name: param("filename"),
                content_type: header("content-type"),
                body: part[split + 4..].to_vec(),
            }
        })
        .collect()
}

fn text_fields(parts: &[FormPart]) -> Vec<(String, String)> {
    parts
        .iter()
        .filter(|p| p.file_name.is_none())
        .map(|p| {
            (
                p.name.clone(),
                String::from_utf8(p.body.clone()).expect("utf-8"),
            )
        })
        .collect()
}

async fn mock_create(server: &MockServer, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path("/api/v1/incident"))
        .respond_with(response)
        .mount(server)
        .await;
}

fn ok_answer() -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"status": "OK", "info": "Incident created", "request_id": 1864}))
}

#[tokio::test]
async fn a_ticket_is_sent_as_multipart_with_every_field_and_basic_auth() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/incident"))
        .and(basic_auth(BASIC_ALICE.0, BASIC_ALICE.1))
        .respond_with(ok_answer())
        .expect(1)
        .mount(&server)
        .await;
    let ticket = ticket_with(
        TicketDraft {
            source_id: Some(8),
            location_id: Some(3),
            date_ocurred: Some(1_700_000_000),
            related_to: Some(vec![10, 11]),
            ..draft()
        },
        vec![],
    );

    let answer = client(&server)
        .create_incident(InvGateUserId::new(42), &ticket)
        .await
        .expect("created");

    assert_eq!(
        answer,
        json!({"status": "OK", "info": "Incident created", "request_id": 1864})
    );
    let requests = server.received_requests().await.expect("recording on");
    let fields = text_fields(&parse_multipart(&requests[0]));
    let expected: Vec<(String, String)> = [
        ("creator_id", "42"),
        ("customer_id", "42"),
        ("category_id", "5"),
        ("priority_id", "2"),
        ("type_id", "1"),
        ("title", "Printer jam"),
        ("description", "<b>Tray 2</b>"),
        ("source_id", "8"),
        ("location_id", "3"),
        ("date", "1700000000"),
        ("related_to[]", "10"),
        ("related_to[]", "11"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    assert_eq!(fields, expected);
}

#[tokio::test]
async fn optional_fields_that_were_not_given_are_not_sent() {
    let server = MockServer::start().await;
    mock_create(&server, ok_answer()).await;

    client(&server)
        .create_incident(InvGateUserId::new(42), &ticket_with(draft(), vec![]))
        .await
        .expect("created");

    let requests = server.received_requests().await.expect("recording on");
    let names: Vec<String> = text_fields(&parse_multipart(&requests[0]))
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        names,
        [
            "creator_id",
            "customer_id",
            "category_id",
            "priority_id",
            "type_id",
            "title",
            "description"
        ]
    );
}

#[tokio::test]
async fn attachments_travel_as_attachments_array_parts_with_name_type_and_exact_bytes() {
    let server = MockServer::start().await;
    mock_create(&server, ok_answer()).await;
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let (_a, png) = spooled("scan.png", "image/png", &binary);
    let (_b, txt) = spooled("notes.txt", "text/plain", b"hello\r\n--not a boundary");

    client(&server)
        .create_incident(
            InvGateUserId::new(42),
            &ticket_with(draft(), vec![png, txt]),
        )
        .await
        .expect("created");

    let requests = server.received_requests().await.expect("recording on");
    let files: Vec<FormPart> = parse_multipart(&requests[0])
        .into_iter()
        .filter(|p| p.file_name.is_some())
        .collect();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].name, "attachments[]");
    assert_eq!(files[0].file_name.as_deref(), Some("scan.png"));
    assert_eq!(files[0].content_type.as_deref(), Some("image/png"));
    assert_eq!(files[0].body, binary);
    assert_eq!(files[1].name, "attachments[]");
    assert_eq!(files[1].file_name.as_deref(), Some("notes.txt"));
    assert_eq!(files[1].body, b"hello\r\n--not a boundary");
}

#[tokio::test]
async fn a_success_code_with_status_error_is_a_rejection_carrying_invgates_message() {
    let server = MockServer::start().await;
    mock_create(
        &server,
        ResponseTemplate::new(200)
            .set_body_json(json!({"status": "ERROR", "error": "Categoría inexistente"})),
    )
    .await;

    let err = client(&server)
        .create_incident(InvGateUserId::new(42), &ticket_with(draft(), vec![]))
        .await
        .expect_err("rejected");

    assert!(
        matches!(&err, GatewayError::Rejected { message } if message == "Categoría inexistente"),
        "{err:?}"
    );
}

#[tokio::test]
async fn client_error_codes_are_rejections_with_the_error_or_info_text() {
    for (status, body, expected) in [
        (400, json!({"status": "ERROR", "info": "bad"}), "bad"),
        (
            404,
            json!({"error": "no such category"}),
            "no such category",
        ),
        (
            422,
            json!({"status": "ERROR", "info": "invalid"}),
            "invalid",
        ),
        (
            428,
            json!({"status": "ERROR", "info": "Faltan parámetros"}),
            "Faltan parámetros",
        ),
    ] {
        let server = MockServer::start().await;
        mock_create(&server, ResponseTemplate::new(status).set_body_json(body)).await;

        let err = client(&server)
            .create_incident(InvGateUserId::new(42), &ticket_with(draft(), vec![]))
            .await
            .expect_err("rejected");

        assert!(
            matches!(&err, GatewayError::Rejected { message } if message == expected),
            "{status}: {err:?}"
        );
    }
}

#[tokio::test]
async fn refused_credentials_are_unauthorized() {
    for status in [401, 403] {
        let server = MockServer::start().await;
        mock_create(&server, ResponseTemplate::new(status)).await;

        let err = client(&server)
            .create_incident(InvGateUserId::new(42), &ticket_with(draft(), vec![]))
            .await
            .expect_err("unauthorized");

        assert!(
            matches!(err, GatewayError::Unauthorized { status: s } if s == status),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn rate_limiting_carries_retry_after_when_invgate_gives_it() {
    let server = MockServer::start().await;
    mock_create(
        &server,
        ResponseTemplate::new(429).insert_header("Retry-After", "12"),
    )
    .await;
    let err = client(&server)
        .create_incident(InvGateUserId::new(42), &ticket_with(draft(), vec![]))
        .await
        .expect_err("rate limited");
    assert!(
        matches!(err, GatewayError::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(12)),
        "{err:?}"
    );

    let server = MockServer::start().await;
    mock_create(&server, ResponseTemplate::new(429)).await;
    let err = client(&server)
        .create_incident(InvGateUserId::new(42), &ticket_with(draft(), vec![]))
        .await
        .expect_err("rate limited");
    assert!(
        matches!(err, GatewayError::RateLimited { retry_after: None }),
        "{err:?}"
    );
}

#[tokio::test]
async fn server_errors_and_garbage_are_unavailable_and_the_create_is_never_retried() {
    for response in [
        ResponseTemplate::new(500),
        ResponseTemplate::new(502).set_body_string("bad gateway"),
        ResponseTemplate::new(200).set_body_string("<html>login</html>"),
        ResponseTemplate::new(200).set_body_raw(vec![0u8; 2 * 1024 * 1024], "application/json"),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/v1/incident"))
            .respond_with(response)
            .expect(1)
            .mount(&server)
            .await;

        let err = client(&server)
            .create_incident(InvGateUserId::new(42), &ticket_with(draft(), vec![]))
            .await
            .expect_err("unavailable");

        assert!(matches!(err, GatewayError::Unavailable(_)), "{err:?}");
        // `expect(1)` is verified when the server drops: exactly one attempt.
    }
}

#[tokio::test]
async fn a_redirect_is_not_followed_but_is_an_unexpected_answer() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/incident"))
        .respond_with(
            ResponseTemplate::new(307).insert_header("Location", "/elsewhere/api/v1/incident"),
        )
        .expect(1)
        .mount(&server)
        .await;
    // Anything at the redirect's target would be a second create.
    Mock::given(path("/elsewhere/api/v1/incident"))
        .respond_with(ok_answer())
        .expect(0)
        .mount(&server)
        .await;

    let err = client(&server)
        .create_incident(InvGateUserId::new(42), &ticket_with(draft(), vec![]))
        .await
        .expect_err("a redirect is not a created incident");

    assert!(matches!(err, GatewayError::Unavailable(_)), "{err:?}");
    assert!(format!("{err:?}").contains("HTTP 307"), "{err:?}");
}

#[tokio::test]
async fn a_success_answer_is_passed_on_even_without_an_id_for_the_domain_to_judge() {
    let server = MockServer::start().await;
    mock_create(
        &server,
        ResponseTemplate::new(200).set_body_json(json!({"status": "OK"})),
    )
    .await;

    let answer = client(&server)
        .create_incident(InvGateUserId::new(42), &ticket_with(draft(), vec![]))
        .await
        .expect("2xx JSON");

    assert_eq!(answer, json!({"status": "OK"}));
}

#[tokio::test]
async fn a_refused_connection_is_reported_as_never_sent() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let client = ReqwestInvGateClient::new(InvGateConfig {
        base_url: format!("http://127.0.0.1:{port}/api/v1/"),
        username: "u".into(),
        password: SecretString::from("p"),
        timeout: Duration::from_secs(2),
        retry: RetryPolicy::default(),
        max_concurrent_calls: 16,
    })
    .expect("valid configuration");

    let err = client
        .create_incident(InvGateUserId::new(42), &ticket_with(draft(), vec![]))
        .await
        .expect_err("nobody listens");

    assert!(matches!(err, GatewayError::NotSent(_)), "{err:?}");
}

#[tokio::test]
async fn no_answer_within_the_timeout_is_a_timeout() {
    let server = MockServer::start().await;
    mock_create(&server, ok_answer().set_delay(Duration::from_secs(3))).await;

    let err = client_for(&server, Duration::from_millis(300))
        .create_incident(InvGateUserId::new(42), &ticket_with(draft(), vec![]))
        .await
        .expect_err("too slow");

    assert!(matches!(err, GatewayError::Timeout), "{err:?}");
}

async fn mock_user_by(server: &MockServer, response: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path("/api/v1/user.by"))
        .and(query_param("email", "alice+it@example.com"))
        .and(basic_auth(BASIC_ALICE.0, BASIC_ALICE.1))
        .respond_with(response)
        .mount(server)
        .await;
}

fn alice() -> EmailAddress {
    EmailAddress::parse("alice+it@example.com").expect("email")
}

#[tokio::test]
async fn a_user_is_found_by_email_with_a_numeric_or_string_id() {
    for id in [json!(42), json!("42")] {
        let server = MockServer::start().await;
        mock_user_by(
            &server,
            ResponseTemplate::new(200).set_body_json(json!({"id": id, "email": "alice+it@example.com", "is_disabled": false, "is_deleted": 0})),
        )
        .await;

        let found = client(&server)
            .find_user_id_by_email(&alice())
            .await
            .expect("answered");

        assert_eq!(found, Some(InvGateUserId::new(42)));
    }
}

#[tokio::test]
async fn every_way_invgate_says_no_such_user_means_none() {
    let answers: Vec<ResponseTemplate> = vec![
        ResponseTemplate::new(404),
        ResponseTemplate::new(428).set_body_json(json!({"status": "ERROR", "info": "No existe"})),
        ResponseTemplate::new(200),
        ResponseTemplate::new(200).set_body_json(json!({})),
        ResponseTemplate::new(200).set_body_json(json!([])),
        ResponseTemplate::new(200).set_body_json(Value::Null),
        ResponseTemplate::new(200)
            .set_body_json(json!({"status": "ERROR", "error": "user not found"})),
        ResponseTemplate::new(200).set_body_json(json!({"id": 42, "is_deleted": true})),
        ResponseTemplate::new(200).set_body_json(json!({"id": 42, "is_disabled": "1"})),
    ];
    for answer in answers {
        let server = MockServer::start().await;
        mock_user_by(&server, answer).await;

        let found = client(&server).find_user_id_by_email(&alice()).await;

        assert!(matches!(found, Ok(None)), "{found:?}");
    }
}

#[tokio::test]
async fn no_more_than_the_configured_number_of_calls_reach_invgate_at_once() {
    let server = MockServer::start().await;
    let delay = Duration::from_millis(200);
    mock_user_by(
        &server,
        ResponseTemplate::new(200)
            .set_body_json(json!({"id": 42, "email": "alice@example.com"}))
            .set_delay(delay),
    )
    .await;
    let client = client_with_slots(&server, Duration::from_secs(30), 2);
    let started = std::time::Instant::now();
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.find_user_id_by_email(&alice()).await })
        })
        .collect();
    for call in calls {
        assert!(matches!(call.await.expect("joins"), Ok(Some(_))));
    }
    // Two at a time, three rounds: never faster than three delays (a lower bound only, so a
    // slow machine cannot fail it).
    assert!(started.elapsed() >= delay * 3, "{:?}", started.elapsed());
    assert_eq!(server.received_requests().await.map(|r| r.len()), Some(6));
}

#[tokio::test]
async fn a_user_lookup_that_fails_is_an_error_not_a_missing_user() {
    for (answer, check) in [
        (
            ResponseTemplate::new(401),
            (|e: &GatewayError| matches!(e, GatewayError::Unauthorized { .. }))
                as fn(&GatewayError) -> bool,
        ),
        (ResponseTemplate::new(500), |e| {
            matches!(e, GatewayError::Unavailable(_))
        }),
        (ResponseTemplate::new(429), |e| {
            matches!(e, GatewayError::RateLimited { .. })
        }),
        (
            ResponseTemplate::new(200).set_body_string("not json"),
            |e| matches!(e, GatewayError::Unavailable(_)),
        ),
    ] {
        let server = MockServer::start().await;
        mock_user_by(&server, answer).await;

        let err = client(&server)
            .find_user_id_by_email(&alice())
            .await
            .expect_err("failed");

        assert!(check(&err), "{err:?}");
    }
}

#[tokio::test]
async fn a_create_answered_503_or_429_is_retried_because_invgate_did_nothing() {
    for status in [503, 429] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/v1/incident"))
            .respond_with(ResponseTemplate::new(status))
            .up_to_n_times(2)
            .expect(2)
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/api/v1/incident"))
            .respond_with(ok_answer())
            .expect(1)
            .with_priority(2)
            .mount(&server)
            .await;

        let answer = client(&server)
            .create_incident(InvGateUserId::new(42), &ticket_with(draft(), vec![]))
            .await
            .expect("third attempt succeeds");

        assert_eq!(answer["request_id"], 1864, "{status}");
    }
}

#[tokio::test]
async fn retry_after_is_honoured_and_a_wait_past_the_deadline_gives_up_at_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/incident"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mock_create(&server, ok_answer()).await;
    let started = std::time::Instant::now();
    client(&server)
        .create_incident(InvGateUserId::new(42), &ticket_with(draft(), vec![]))
        .await
        .expect("succeeds after the wait");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited as asked"
    );

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/incident"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "60"))
        .expect(1)
        .mount(&server)
        .await;
    let started = std::time::Instant::now();
    let err = client(&server)
        .create_incident(InvGateUserId::new(42), &ticket_with(draft(), vec![]))
        .await
        .expect_err("cannot wait a minute within 5 s");
    assert!(matches!(err, GatewayError::RateLimited { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_user_lookup_is_retried_after_a_server_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/user.by"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mock_user_by(
        &server,
        ResponseTemplate::new(200).set_body_json(json!({"id": 42})),
    )
    .await;

    let found = client(&server)
        .find_user_id_by_email(&alice())
        .await
        .expect("second attempt answers");

    assert_eq!(found, Some(InvGateUserId::new(42)));
}

#[tokio::test]
async fn a_comment_is_sent_customer_visible_by_its_author_and_not_resent_after_a_500() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/incident.comment"))
        .and(basic_auth(BASIC_ALICE.0, BASIC_ALICE.1))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": "OK"})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let comment = ticketd_domain::NewComment {
        text: ticketd_domain::CommentText::parse("Still broken").expect("text"),
        attachments: vec![],
    };
    let id = ticketd_domain::IncidentId::parse(1864).expect("id");
    client(&server)
        .add_comment(id, InvGateUserId::new(42), &comment)
        .await
        .expect("added");
    let requests = server.received_requests().await.expect("recording on");
    let fields = text_fields(&parse_multipart(&requests[0]));
    for expected in [
        ("request_id", "1864"),
        ("author_id", "42"),
        ("comment", "Still broken"),
        ("customer_visible", "1"),
        ("is_solution", "0"),
    ] {
        assert!(
            fields.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} in {fields:?}"
        );
    }

    // A 500 may have recorded the comment: it is not sent again.
    Mock::given(method("POST"))
        .and(path("/api/v1/incident.comment"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let failed = client(&server)
        .add_comment(id, InvGateUserId::new(42), &comment)
        .await;
    assert!(failed.is_err());
    assert_eq!(server.received_requests().await.map(|r| r.len()), Some(2));
}

#[tokio::test]
async fn reference_lists_and_an_incidents_status_are_read_from_their_endpoints() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/incident.attributes.priority"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"id": "1", "name": "Low"}])))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/categories"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!([{"id": 3, "name": "Hardware", "parent_category_id": 0}, {"id": 4, "name": "Laptops", "parent_category_id": 3}]),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/incident"))
        .and(query_param("id", "7"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"id": 7, "status_id": 4, "last_update": 1_700_000_000, "solved_at": null}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/incident"))
        .and(query_param("id", "8"))
        .respond_with(
            ResponseTemplate::new(404).set_body_json(json!({"status": "ERROR", "info": "no"})),
        )
        .mount(&server)
        .await;
    let client = client(&server);
    let priorities = client
        .reference_list(ticketd_domain::ReferenceList::Priorities)
        .await
        .expect("priorities");
    assert_eq!((priorities[0].id, priorities[0].name.as_str()), (1, "Low"));
    let categories = client
        .reference_list(ticketd_domain::ReferenceList::Categories)
        .await
        .expect("categories");
    assert_eq!(
        categories.iter().map(|c| c.parent_id).collect::<Vec<_>>(),
        [None, Some(3)]
    );
    let status = client
        .incident_status(ticketd_domain::IncidentId::parse(7).expect("id"))
        .await
        .expect("read")
        .expect("known");
    assert_eq!(status.status_id, Some(4));
    assert!(
        client
            .incident_status(ticketd_domain::IncidentId::parse(8).expect("id"))
            .await
            .expect("read")
            .is_none()
    );
}

fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// hyper drives a keep-alive connection on the runtime that opened it. Were one connection pool
/// shared by all threads, the second thread would be handed the first thread's idle connection,
/// whose driver cannot run while the first thread's runtime is parked, and its call would hang.
#[test]
fn a_thread_calls_invgate_over_its_own_connections_even_when_another_runtime_is_parked() {
    // The mock server runs on this runtime's own threads, whatever the test threads do.
    let server_runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = server_runtime.block_on(async {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v1/sd.version"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"version": "7.4"})))
            .mount(&server)
            .await;
        server
    });
    let client = client_for(&server, Duration::from_secs(5));

    let (used, wait_used) = std::sync::mpsc::channel();
    let (release, parked) = std::sync::mpsc::channel::<()>();
    let first = {
        let client = client.clone();
        std::thread::spawn(move || {
            let runtime = current_thread_runtime();
            let version = runtime.block_on(client.version(Duration::from_secs(5)));
            assert_eq!(version.expect("first thread's call"), "7.4");
            // The connection is idle and kept alive; this runtime now stops running.
            used.send(()).expect("signal");
            let _ = parked.recv();
            drop(runtime);
        })
    };
    wait_used.recv().expect("first thread called InvGate");

    let second = std::thread::spawn(move || {
        current_thread_runtime().block_on(async {
            tokio::time::timeout(
                Duration::from_secs(20),
                client.version(Duration::from_secs(5)),
            )
            .await
        })
    });
    let outcome = second.join().expect("second thread");
    release.send(()).expect("release the first thread");
    first.join().expect("first thread");

    assert!(
        matches!(&outcome, Ok(Ok(version)) if version == "7.4"),
        "the second thread's call must complete: {outcome:?}"
    );
    drop(server_runtime);
}
