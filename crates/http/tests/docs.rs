//! The API description: `/openapi.json`, the Swagger UI at `/docs`, and real answers checked
//! against the schemas the description gives for them, so the two cannot drift apart.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::test::{self, TestRequest};
use async_trait::async_trait;
use secrecy::SecretString;
use serde_json::{Value, json};
use ticketd_domain::ports::{MockTicketQueries, MockTicketService};
use ticketd_domain::{
    Comment, CommentFile, CreateOutcome, CreatedTicket, IncidentId, IncidentStatus, OperationId,
    PageCursor, Reference, TicketDetail, TicketList, TicketMeta, TicketView,
};
use ticketd_http::{Check, HttpState, Limits, Operations, Verifier, app, mint_hs256_token};

const SECRET: &str = "docs-test-secret";

fn bearer() -> (header::HeaderName, String) {
    let token = mint_hs256_token(
        &SecretString::from(SECRET),
        "alice@example.com",
        Duration::from_secs(600),
    )
    .expect("token");
    (header::AUTHORIZATION, format!("Bearer {token}"))
}

fn state(service: MockTicketService, queries: MockTicketQueries) -> HttpState {
    HttpState {
        service: Arc::new(service),
        queries: Arc::new(queries),
        ops: Arc::new(ticketd_http::AlwaysReady),
        verifier: Arc::new(
            Verifier::hs256(&SecretString::from(SECRET), Duration::from_secs(60))
                .expect("a verifier"),
        ),
        limits: Limits::default(),
        rate_limiter: None,
        cors_origins: Vec::new(),
    }
}

struct Answer {
    status: StatusCode,
    headers: header::HeaderMap,
    bytes: Vec<u8>,
}

async fn call(state: HttpState, request: TestRequest) -> Answer {
    let app = test::init_service(app(state)).await;
    let response = test::call_service(&app, request.to_request()).await;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = test::read_body(response).await.to_vec();
    Answer {
        status,
        headers,
        bytes,
    }
}

fn spec() -> Value {
    ticketd_http::openapi_json().expect("the document")
}

/// Every way `value` departs from `schema` (the subset of JSON Schema the document uses: `$ref`,
/// `oneOf`, `type`, `enum`, `format`, `required`, `properties`, `additionalProperties`, `items`).
/// Objects are strict: a member the schema does not describe is a departure.
fn departures(spec: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    if let Some(Value::String(target)) = schema.get("$ref") {
        let resolved = spec
            .pointer(target.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("{target} does not resolve"));
        return departures(spec, resolved, value, at);
    }
    if let Some(Value::Array(branches)) = schema.get("oneOf") {
        let fitting = branches
            .iter()
            .filter(|b| departures(spec, b, value, at).is_empty())
            .count();
        return if fitting == 1 {
            Vec::new()
        } else {
            vec![format!("{at}: {value} fits {fitting} of oneOf")]
        };
    }
    let mut found = Vec::new();
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let allowed: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !allowed.is_empty()
        && !allowed
            .iter()
            .any(|t| *t == kind || (*t == "number" && kind == "integer"))
    {
        return vec![format!("{at}: {value} is {kind}, not {allowed:?}")];
    }
    if let Some(Value::Array(options)) = schema.get("enum")
        && !options.contains(value)
    {
        found.push(format!("{at}: {value} is not one of {options:?}"));
    }
    if let (Some(format), Value::String(text)) = (schema.get("format"), value) {
        let ok = match format.as_str() {
            Some("date-time") => chrono::DateTime::parse_from_rfc3339(text).is_ok(),
            Some("uuid") => uuid::Uuid::parse_str(text).is_ok(),
            _ => true,
        };
        if !ok {
            found.push(format!("{at}: {text:?} is not a {format}"));
        }
    }
    match value {
        Value::Object(members) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            for required in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !members.contains_key(required) {
                    found.push(format!("{at}: required {required} is missing"));
                }
            }
            for (name, member) in members {
                match properties.and_then(|p| p.get(name)) {
                    Some(described) => {
                        found.extend(departures(spec, described, member, &format!("{at}.{name}")));
                    }
                    // A schema that lists no properties describes any object.
                    None if properties.is_none()
                        || schema.get("additionalProperties").is_some() => {}
                    None => found.push(format!("{at}: {name} is not described")),
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    found.extend(departures(spec, item_schema, item, &format!("{at}[{i}]")));
                }
            }
        }
        _ => {}
    }
    found
}

/// Asserts the answer is one the document describes for this operation, body included.
fn assert_described(spec: &Value, method: &str, path: &str, answer: &Answer) {
    let status = answer.status.as_u16().to_string();
    let response = &spec["paths"][path][method]["responses"][&status];
    assert!(
        response.is_object(),
        "{method} {path} does not describe {status}"
    );
    let content_type = answer
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let media = content_type.split(';').next().unwrap_or_default().trim();
    let described = response["content"]
        .as_object()
        .and_then(|c| {
            c.iter()
                .find(|(k, _)| k.split(';').next().unwrap_or_default().trim() == media)
        })
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("{method} {path} {status}: {media} is not described"));
    if media.ends_with("json") {
        let body: Value = serde_json::from_slice(&answer.bytes).expect("a JSON body");
        let problems = departures(spec, &described["schema"], &body, "body");
        assert!(
            problems.is_empty(),
            "{method} {path} {status}: {problems:#?}\n{body:#}"
        );
    }
    for name in response["headers"]
        .as_object()
        .into_iter()
        .flat_map(|h| h.keys())
    {
        if ["Location", "ETag", "Link", "X-Request-Id"].contains(&name.as_str())
            && status.starts_with('2')
            && !(name == "Link" && answer.headers.get("link").is_none())
        {
            assert!(
                answer.headers.contains_key(name.as_str()),
                "{method} {path} {status}: no {name} header"
            );
        }
    }
}

fn full_ticket(id: i64) -> TicketView {
    let at = |secs| chrono::DateTime::from_timestamp(secs, 0).expect("instant");
    TicketView {
        id: uuid::Uuid::now_v7(),
        inv_gate_id: IncidentId::parse(id).expect("id"),
        title: "Printer on fire".into(),
        description: "Third floor".into(),
        category_id: 3,
        priority_id: 2,
        type_id: 1,
        source_id: Some(2),
        location_id: Some(9),
        date_ocurred: Some(at(1_700_000_000)),
        related_to: vec![7, 8],
        attachments: json!([{"name": "fire.jpg", "size": 4096, "content_type": "image/jpeg", "sha256": "ab".repeat(32)}]),
        created_at: at(1_700_000_100),
        status: IncidentStatus {
            status_id: Some(2),
            last_update: Some(at(1_700_000_200)),
            solved_at: Some(at(1_700_000_300)),
            closed_at: None,
        },
        status_synced_at: Some(at(1_700_000_400)),
    }
}

fn reading_queries() -> MockTicketQueries {
    let mut queries = MockTicketQueries::new();
    queries.expect_list_tickets().returning(|_, _| {
        let tickets = vec![full_ticket(11), full_ticket(10)];
        let next = Some(PageCursor::after(&tickets[1]));
        Ok(TicketList { tickets, next })
    });
    queries.expect_ticket().returning(|_, id| {
        Ok((id.get() == 11).then(|| TicketDetail {
            ticket: full_ticket(11),
            stale: true,
        }))
    });
    queries.expect_comments().returning(|_, _| {
        Ok(Some(vec![Comment {
            id: 3,
            author_id: Some(42),
            comment: "We are on it".into(),
            created_at: chrono::DateTime::from_timestamp(1_700_000_500, 0),
            is_solution: true,
            attachments: vec![CommentFile {
                id: 5,
                name: "log.txt".into(),
            }],
            customer_visible: true,
        }]))
    });
    queries
        .expect_add_comment()
        .returning(|_, _, _| Ok(Some(json!({"status": "OK", "id": 77}))));
    queries.expect_ticket_meta().returning(|| {
        let one = |id, name: &str, parent_id| Reference {
            id,
            name: name.into(),
            parent_id,
        };
        Ok(TicketMeta {
            priorities: vec![one(1, "Low", None)],
            types: vec![one(1, "Incident", None)],
            statuses: vec![one(1, "New", None)],
            sources: vec![one(2, "Web", None)],
            categories: vec![one(3, "Hardware", None), one(4, "Printers", Some(3))],
        })
    });
    queries
}

fn creating_service() -> MockTicketService {
    let mut service = MockTicketService::new();
    service.expect_create_ticket().returning(|_, _, _| {
        Ok(CreateOutcome::Created(CreatedTicket {
            local_id: uuid::Uuid::now_v7(),
            operation_id: OperationId::new(),
            inv_gate_id: IncidentId::parse(1042).expect("id"),
            body:
                json!({"status": "OK", "info": "Request created successfully", "request_id": 1042})
                    .to_string(),
        }))
    });
    service
}

#[actix_web::test]
async fn the_document_is_served_as_json_without_a_token() {
    let answer = call(
        state(MockTicketService::new(), MockTicketQueries::new()),
        TestRequest::get().uri("/openapi.json"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let served: Value = serde_json::from_slice(&answer.bytes).expect("JSON");
    assert_eq!(served, spec());
    assert_eq!(served["openapi"], "3.1.0");
    assert_described(&spec(), "get", "/openapi.json", &answer);
}

#[actix_web::test]
async fn the_docs_page_is_swagger_ui_from_this_server_pointed_at_the_document() {
    let state = state(MockTicketService::new(), MockTicketQueries::new());
    let app = test::init_service(app(state)).await;

    let bare = test::call_service(&app, TestRequest::get().uri("/docs").to_request()).await;
    assert_eq!(bare.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        bare.headers().get(header::LOCATION).expect("location"),
        "/docs/"
    );

    let page = test::call_service(&app, TestRequest::get().uri("/docs/").to_request()).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page
        .headers()
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .expect("a content security policy")
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = String::from_utf8(test::read_body(page).await.to_vec()).expect("UTF-8");
    assert!(html.contains("swagger-ui"), "{html}");
    // Every script and stylesheet the page loads is one of this server's files.
    for reference in html
        .split(['"', '\''])
        .filter(|s| s.ends_with(".js") || s.ends_with(".css") || s.starts_with("http"))
    {
        assert!(
            !reference.contains("://"),
            "loads {reference} from elsewhere"
        );
        let path = format!("/docs/{}", reference.trim_start_matches("./"));
        let asset = test::call_service(&app, TestRequest::get().uri(&path).to_request()).await;
        assert_eq!(asset.status(), StatusCode::OK, "{path}");
    }

    let init = test::call_service(
        &app,
        TestRequest::get()
            .uri("/docs/swagger-initializer.js")
            .to_request(),
    )
    .await;
    let script = String::from_utf8(test::read_body(init).await.to_vec()).expect("UTF-8");
    assert!(script.contains("/openapi.json"), "{script}");

    let missing =
        test::call_service(&app, TestRequest::get().uri("/docs/nope.js").to_request()).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn the_probes_answer_as_described() {
    let spec = spec();
    let health = call(
        state(MockTicketService::new(), MockTicketQueries::new()),
        TestRequest::get().uri("/healthz"),
    )
    .await;
    assert_described(&spec, "get", "/healthz", &health);

    struct DatabaseDown;
    #[async_trait]
    impl Operations for DatabaseDown {
        async fn readiness(&self) -> Vec<Check> {
            vec![
                Check {
                    name: "database",
                    ok: false,
                    detail: "unreachable".into(),
                },
                Check {
                    name: "invgate",
                    ok: true,
                    detail: "answering".into(),
                },
            ]
        }
        async fn refresh_metrics(&self) {}
    }
    let mut down = state(MockTicketService::new(), MockTicketQueries::new());
    down.ops = Arc::new(DatabaseDown);
    let ready = call(down, TestRequest::get().uri("/readyz")).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_described(&spec, "get", "/readyz", &ready);

    let metrics = call(
        state(MockTicketService::new(), MockTicketQueries::new()),
        TestRequest::get().uri("/metrics"),
    )
    .await;
    assert_described(&spec, "get", "/metrics", &metrics);
}

#[actix_web::test]
async fn created_and_refused_tickets_answer_as_described() {
    let spec = spec();
    let valid =
        json!({"title": "t", "description": "d", "category_id": 1, "priority_id": 1, "type_id": 1});
    let created = call(
        state(creating_service(), MockTicketQueries::new()),
        TestRequest::post()
            .uri("/api/v1/tickets")
            .insert_header(bearer())
            .set_json(&valid),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_described(&spec, "post", "/api/v1/tickets", &created);

    let invalid = call(
        state(MockTicketService::new(), MockTicketQueries::new()),
        TestRequest::post()
            .uri("/api/v1/tickets")
            .insert_header(bearer())
            .set_json(json!({"title": 5})),
    )
    .await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    assert_described(&spec, "post", "/api/v1/tickets", &invalid);

    let anonymous = call(
        state(MockTicketService::new(), MockTicketQueries::new()),
        TestRequest::post().uri("/api/v1/tickets").set_json(&valid),
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_described(&spec, "post", "/api/v1/tickets", &anonymous);
}

#[actix_web::test]
async fn every_read_answers_as_described() {
    let spec = spec();
    let cases = [
        ("get", "/api/v1/tickets?limit=2", "/api/v1/tickets", 200),
        ("get", "/api/v1/tickets?limit=0", "/api/v1/tickets", 400),
        ("get", "/api/v1/tickets/11", "/api/v1/tickets/{id}", 200),
        ("get", "/api/v1/tickets/12", "/api/v1/tickets/{id}", 404),
        (
            "get",
            "/api/v1/tickets/11/comments",
            "/api/v1/tickets/{id}/comments",
            200,
        ),
        ("get", "/api/v1/ticket-meta", "/api/v1/ticket-meta", 200),
    ];
    for (method, uri, path, expected) in cases {
        let answer = call(
            state(MockTicketService::new(), reading_queries()),
            TestRequest::get().uri(uri).insert_header(bearer()),
        )
        .await;
        assert_eq!(answer.status.as_u16(), expected, "{uri}");
        assert_described(&spec, method, path, &answer);
    }

    let comment = call(
        state(MockTicketService::new(), reading_queries()),
        TestRequest::post()
            .uri("/api/v1/tickets/11/comments")
            .insert_header(bearer())
            .set_json(json!({"comment": "Still broken"})),
    )
    .await;
    assert_eq!(comment.status, StatusCode::CREATED);
    assert_described(&spec, "post", "/api/v1/tickets/{id}/comments", &comment);
}

#[actix_web::test]
async fn a_wrong_method_on_a_probe_is_405_listing_the_one_it_answers() {
    let answer = call(
        state(MockTicketService::new(), MockTicketQueries::new()),
        TestRequest::post().uri("/openapi.json"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.headers.get(header::ALLOW).expect("allow"), "GET");
}
