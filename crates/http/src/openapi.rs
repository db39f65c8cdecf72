//! The API description: OpenAPI 3.1 at `/openapi.json`, derived from the handlers' `#[utoipa::path]`
//! attributes and the wire types' `ToSchema`, and Swagger UI at `/docs`, served from assets
//! compiled into the binary so it works with no network.
//!
//! What every operation shares (the bearer token, 401 and 429 under `/api/v1`, 431 and 500
//! everywhere, `X-Request-Id`) is added here once, by [`Shared`], rather than repeated per handler.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use actix_web::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, ContentType, LOCATION};
use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, Object, OpenApi as Document, Ref, RefOr, Required, ResponseBuilder, Type,
};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::problem::{ApiError, ProblemCode};
use crate::routes::API_PREFIX;

/// The fields of a ticket, as a JSON body or as the `request` part of a multipart body. Unknown
/// members are ignored, so the Go service's clients may send what they always sent.
#[derive(Serialize, ToSchema)]
#[schema(as = TicketRequest, example = json!({
    "title": "VPN drops every hour",
    "description": "Since Monday the VPN disconnects on the hour.",
    "category_id": 3,
    "priority_id": 2,
    "type_id": 1
}))]
pub(crate) struct TicketRequestDoc {
    /// 1 to 255 characters, not blank.
    #[schema(min_length = 1, max_length = 255, example = "VPN drops every hour")]
    title: String,
    /// Not blank.
    #[schema(
        min_length = 1,
        example = "Since Monday the VPN disconnects on the hour."
    )]
    description: String,
    /// See `categories` in `/api/v1/ticket-meta`. Numbers sent as text are accepted.
    #[schema(minimum = 1, example = 3)]
    category_id: i64,
    /// InvGate's fixed priorities: 1 Low, 2 Medium, 3 High, 4 Urgent, 5 Critical.
    #[schema(minimum = 1, maximum = 5, example = 2)]
    priority_id: i64,
    /// InvGate's fixed types: 1 Incident, 2 Service Request, 3 Question, 4 Problem, 5 Change,
    /// 6 Major Incident.
    #[schema(minimum = 1, maximum = 6, example = 1)]
    type_id: i64,
    /// See `sources` in `/api/v1/ticket-meta`.
    #[schema(minimum = 1)]
    source_id: Option<i64>,
    #[schema(minimum = 1)]
    location_id: Option<i64>,
    /// When it happened, in Unix seconds; not in the future. `date_occurred` is read too.
    #[schema(minimum = 0)]
    date_ocurred: Option<i64>,
    /// InvGate ids of related tickets.
    related_to: Option<Vec<i64>>,
}

/// A ticket with files: its fields as one JSON `request` part (or as form fields of the same
/// names), and the files as `attachments[]` parts.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TicketForm)]
pub(crate) struct TicketFormDoc {
    /// A [`TicketRequest`] as JSON text.
    #[schema(value_type = String, content_media_type = "application/json")]
    request: TicketRequestDoc,
    /// Files; their types are sniffed from the content and checked against the allow-list.
    #[serde(rename = "attachments[]")]
    #[schema(value_type = Vec<String>, format = Binary)]
    attachments: Option<Vec<Vec<u8>>>,
}

/// A comment on a ticket, as a JSON body or as the `comment` field of a multipart body.
#[derive(Serialize, ToSchema)]
#[schema(as = CommentRequest)]
pub(crate) struct CommentRequestDoc {
    /// 1 to 20 000 characters, not blank.
    #[schema(
        min_length = 1,
        max_length = 20000,
        example = "It happened again at 10:00."
    )]
    comment: String,
}

/// A comment with files.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CommentForm)]
pub(crate) struct CommentFormDoc {
    #[schema(min_length = 1, max_length = 20000)]
    comment: String,
    #[serde(rename = "attachments[]")]
    #[schema(value_type = Vec<String>, format = Binary)]
    attachments: Option<Vec<Vec<u8>>>,
}

/// InvGate's answer, passed on as InvGate gave it. For a ticket it holds the new ticket's id as
/// `request_id` (older InvGate versions: `id` or `incident_id`).
#[derive(Serialize, ToSchema)]
#[schema(as = InvGateAnswer, example = json!({"status": "OK", "info": "Request created successfully", "request_id": 1042}))]
pub(crate) struct InvGateAnswerDoc(BTreeMap<String, serde_json::Value>);

/// The liveness answer.
#[derive(Serialize, ToSchema)]
#[schema(as = Health)]
pub(crate) struct HealthDoc {
    #[schema(example = "ok")]
    status: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ticketd",
        description = "Creates InvGate Service Management tickets for an organisation's apps, and keeps a durable record of each.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0"),
    ),
    paths(
        crate::routes::healthz,
        crate::ops::readyz,
        crate::ops::metrics,
        document,
        crate::routes::create_ticket,
        crate::reads::list_tickets,
        crate::routes::operation_status,
        crate::reads::show_ticket,
        crate::reads::list_comments,
        crate::reads::add_comment,
        crate::reads::ticket_meta,
    ),
    components(schemas(ProblemCode)),
    modifiers(&Shared),
    tags(
        (name = "tickets", description = "The caller's tickets: create, list, read, comment."),
        (name = "operations", description = "Probes and metrics, for operators; no token."),
        (name = "documentation", description = "This description."),
    ),
)]
struct ApiDoc;

/// Adds what every operation has in common, and the table of problem codes.
struct Shared;

const PROBLEM_JSON: &str = "application/problem+json";

fn problem_response(description: String) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
        .into()
}

fn string_header(description: &str) -> RefOr<utoipa::openapi::header::Header> {
    RefOr::T(
        HeaderBuilder::new()
            .schema(Some(Object::with_type(Type::String)))
            .description(Some(description))
            .build(),
    )
}

impl Modify for Shared {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT whose e-mail claim names the caller's InvGate user.",
                    ))
                    .build(),
            ),
        );
        let request_id = ParameterBuilder::new()
            .name("X-Request-Id")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "Your id for the request (1 to 128 of A-Z a-z 0-9 - _ . :), echoed back and logged; one is made up when absent or unusable.",
            ))
            .schema(Some(Object::with_type(Type::String)))
            .build();
        for (path, item) in openapi.paths.paths.iter_mut() {
            let authenticated = path.starts_with(API_PREFIX);
            let operations: [Option<&mut Operation>; 2] = [item.get.as_mut(), item.post.as_mut()];
            for operation in operations.into_iter().flatten() {
                operation
                    .parameters
                    .get_or_insert_with(Vec::new)
                    .push(RefOr::T(request_id.clone()));
                let responses = &mut operation.responses.responses;
                for response in responses.values_mut() {
                    if let RefOr::T(response) = response {
                        response.headers.insert(
                            "X-Request-Id".to_owned(),
                            string_header("The request's id, as sent or as made up by ticketd."),
                        );
                    }
                }
                if authenticated {
                    operation.security = Some(vec![SecurityRequirement::new(
                        "bearer",
                        Vec::<String>::new(),
                    )]);
                    responses.insert(
                        "401".to_owned(),
                        problem_response(
                            "`UNAUTHORIZED`: no bearer token, or one that is invalid or expired (see `WWW-Authenticate`).".to_owned(),
                        ),
                    );
                    let mut limited = ResponseBuilder::new()
                        .description(
                            "`RATE_LIMITED`: the caller sent too many requests; retry after `Retry-After` seconds.",
                        )
                        .content(
                            PROBLEM_JSON,
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name("Problem")))
                                .build(),
                        )
                        .build();
                    limited
                        .headers
                        .insert("Retry-After".to_owned(), string_header("Seconds to wait."));
                    responses.insert("429".to_owned(), limited.into());
                }
                responses.insert(
                    "431".to_owned(),
                    problem_response(
                        "`HEADERS_TOO_LARGE`: the request headers together exceed the configured limit.".to_owned(),
                    ),
                );
                responses.insert(
                    "500".to_owned(),
                    problem_response(
                        "`INTERNAL_ERROR`: a bug; the request id finds it in the logs.".to_owned(),
                    ),
                );
            }
        }
        openapi.info.description = Some(format!(
            "{}\n\n{}",
            openapi.info.description.take().unwrap_or_default(),
            problem_table()
        ));
    }
}

/// Every problem code with its status and title, for the description's reader.
fn problem_table() -> String {
    let mut table = String::from(
        "Every failure is answered as RFC 9457 `application/problem+json` (schema `Problem`) whose `code` is one of:\n\n| code | status | title |\n|---|---|---|\n",
    );
    for code in ProblemCode::ALL {
        table.push_str(&format!(
            "| `{}` | {} | {} |\n",
            code.as_str(),
            code.status().as_u16(),
            code.title()
        ));
    }
    table
}

/// The document, serialized once.
static DOCUMENT: LazyLock<Result<Vec<u8>, String>> = LazyLock::new(|| {
    let mut openapi = ApiDoc::openapi();
    openapi.info.version = env!("CARGO_PKG_VERSION").to_owned();
    serde_json::to_vec_pretty(&openapi).map_err(|e| e.to_string())
});

/// The OpenAPI document as a value, for tests and tools.
///
/// # Errors
/// Never in practice: the document is built from types known at compile time.
pub fn openapi_json() -> Result<serde_json::Value, ApiError> {
    let bytes = DOCUMENT.as_ref().map_err(|_| ApiError::Internal)?;
    serde_json::from_slice(bytes).map_err(|_| ApiError::Internal)
}

/// `GET /openapi.json`: this API's OpenAPI 3.1 description.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "documentation",
    summary = "This API's description",
    responses((status = 200, description = "The OpenAPI 3.1 document.", content_type = "application/json")),
)]
pub(crate) async fn document() -> Result<HttpResponse, ApiError> {
    let bytes = DOCUMENT.as_ref().map_err(|e| {
        tracing::error!(error = %e, "the OpenAPI document could not be serialized");
        ApiError::Internal
    })?;
    Ok(HttpResponse::Ok()
        .content_type(ContentType::json())
        .insert_header((CACHE_CONTROL, "public, max-age=300"))
        .body(bytes.as_slice()))
}

/// Swagger UI, pointed at `/openapi.json`.
static SWAGGER: LazyLock<Arc<utoipa_swagger_ui::Config<'static>>> = LazyLock::new(|| {
    Arc::new(
        utoipa_swagger_ui::Config::new(["/openapi.json"])
            .try_it_out_enabled(true)
            // `/docs/#/tickets/create_ticket` opens that operation.
            .deep_linking(true)
            .persist_authorization(false),
    )
});

/// The page and its scripts come from this server only; Swagger UI styles inline and shows
/// its logo as a data URL.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// `/docs`: the interactive documentation. Not part of the described API itself.
pub(crate) fn configure_docs(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/docs").route(web::get().to(|| async {
        HttpResponse::PermanentRedirect()
            .insert_header((LOCATION, "/docs/"))
            .finish()
    })))
    .service(web::resource("/docs/{file:.*}").route(web::get().to(docs_file)));
}

async fn docs_file(path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let file = utoipa_swagger_ui::serve(&path, SWAGGER.clone())
        .map_err(|e| {
            tracing::error!(error = %e, "Swagger UI could not be served");
            ApiError::Internal
        })?
        .ok_or(ApiError::NotFound)?;
    // The assets are compiled in: served from the binary without a copy (only the initializer,
    // which carries the configuration, is made per request).
    let body = match file.bytes {
        std::borrow::Cow::Borrowed(bytes) => bytes::Bytes::from_static(bytes),
        std::borrow::Cow::Owned(bytes) => bytes::Bytes::from(bytes),
    };
    Ok(HttpResponse::Ok()
        .content_type(file.content_type)
        .insert_header((CONTENT_SECURITY_POLICY, DOCS_CSP))
        .body(body))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::*;
    use crate::routes::{api_endpoints, public_endpoints};

    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];

    fn spec() -> Value {
        openapi_json().expect("the document serializes")
    }

    fn operations(spec: &Value) -> Vec<(String, String, Value)> {
        let mut found = Vec::new();
        for (path, item) in spec["paths"].as_object().expect("paths") {
            for method in METHODS {
                if let Some(operation) = item.get(method) {
                    found.push((method.to_owned(), path.clone(), operation.clone()));
                }
            }
        }
        found
    }

    #[test]
    fn every_registered_route_is_described_and_every_described_route_is_registered() {
        let mut registered = BTreeSet::new();
        for (prefix, endpoints) in [("", public_endpoints()), (API_PREFIX, api_endpoints())] {
            for endpoint in endpoints {
                for (method, _) in &endpoint.routes {
                    registered.insert((
                        method.as_str().to_ascii_lowercase(),
                        format!("{prefix}{}", endpoint.path),
                    ));
                }
            }
        }
        let described: BTreeSet<(String, String)> = operations(&spec())
            .into_iter()
            .map(|(method, path, _)| (method, path))
            .collect();
        let undescribed: Vec<_> = registered.difference(&described).collect();
        let unregistered: Vec<_> = described.difference(&registered).collect();
        assert!(
            undescribed.is_empty(),
            "routes missing from /openapi.json: {undescribed:?}"
        );
        assert!(
            unregistered.is_empty(),
            "described but not served: {unregistered:?}"
        );
        assert!(registered.len() >= 11, "{registered:?}");
    }

    #[test]
    fn the_document_is_openapi_3_1_and_every_reference_resolves() {
        let spec = spec();
        assert_eq!(spec["openapi"], "3.1.0");
        assert_eq!(spec["info"]["version"], env!("CARGO_PKG_VERSION"));
        fn refs(value: &Value, out: &mut Vec<String>) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(target)) = map.get("$ref") {
                        out.push(target.clone());
                    }
                    map.values().for_each(|v| refs(v, out));
                }
                Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let mut targets = Vec::new();
        refs(&spec, &mut targets);
        assert!(!targets.is_empty());
        for target in targets {
            let pointer = target
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("{target} is not local"));
            assert!(spec.pointer(pointer).is_some(), "{target} does not resolve");
        }
    }

    #[test]
    fn every_problem_code_is_in_the_codes_enum_and_the_table_of_codes() {
        let spec = spec();
        let listed: Vec<&str> = spec["components"]["schemas"]["ProblemCode"]["enum"]
            .as_array()
            .expect("ProblemCode is an enum")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let all: Vec<&str> = ProblemCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, all);
        let description = spec["info"]["description"].as_str().expect("description");
        for code in ProblemCode::ALL {
            let row = format!("| `{}` | {} |", code.as_str(), code.status().as_u16());
            assert!(description.contains(&row), "no row {row}");
        }
        assert_eq!(
            spec["components"]["schemas"]["Problem"]["properties"]["code"]["$ref"],
            "#/components/schemas/ProblemCode"
        );
    }

    #[test]
    fn every_failure_an_operation_documents_is_a_problem() {
        for (method, path, operation) in operations(&spec()) {
            for (status, response) in operation["responses"].as_object().expect("responses") {
                if !(status.starts_with('4') || status.starts_with('5')) {
                    continue;
                }
                // The one failure that is not a problem: a probe's 503 lists its checks.
                if path == "/readyz" && status == "503" {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/Readiness"
                    );
                    continue;
                }
                assert_eq!(
                    response["content"][PROBLEM_JSON]["schema"]["$ref"],
                    "#/components/schemas/Problem",
                    "{method} {path} {status}"
                );
                let description = response["description"].as_str().unwrap_or_default();
                let named = ProblemCode::ALL
                    .iter()
                    .any(|c| description.contains(&format!("`{}`", c.as_str())));
                assert!(named, "{method} {path} {status} names no code");
            }
        }
    }

    #[test]
    fn the_api_requires_a_bearer_token_and_the_probes_do_not() {
        let spec = spec();
        assert_eq!(
            spec["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        for (method, path, operation) in operations(&spec) {
            let secured = operation.get("security").is_some();
            assert_eq!(secured, path.starts_with(API_PREFIX), "{method} {path}");
            assert_eq!(
                operation["responses"].get("401").is_some(),
                secured,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn the_create_operation_describes_its_headers_and_both_bodies() {
        let spec = spec();
        let create = &spec["paths"]["/api/v1/tickets"]["post"];
        let headers: BTreeSet<&str> = create["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .filter(|p| p["in"] == "header")
            .filter_map(|p| p["name"].as_str())
            .collect();
        for name in ["Idempotency-Key", "Prefer", "X-Request-Id"] {
            assert!(headers.contains(name), "{name} missing from {headers:?}");
        }
        let content = &create["requestBody"]["content"];
        assert_eq!(
            content["application/json"]["schema"]["$ref"],
            "#/components/schemas/TicketRequest"
        );
        assert_eq!(
            content["multipart/form-data"]["schema"]["$ref"],
            "#/components/schemas/TicketForm"
        );
        for status in ["201", "202"] {
            assert!(
                create["responses"][status]["headers"]
                    .get("Location")
                    .is_some(),
                "{status} has no Location"
            );
        }
    }

    #[test]
    fn the_ticket_request_schema_lists_exactly_the_fields_binding_reads() {
        let spec = spec();
        let described: BTreeSet<&str> =
            spec["components"]["schemas"]["TicketRequest"]["properties"]
                .as_object()
                .expect("properties")
                .keys()
                .map(String::as_str)
                .collect();
        // The first two are where whole-body problems are reported, not fields.
        let read: BTreeSet<&str> = crate::binding::FIELD_ORDER[2..].iter().copied().collect();
        assert_eq!(described, read);
        let required: BTreeSet<&str> = spec["components"]["schemas"]["TicketRequest"]["required"]
            .as_array()
            .expect("required")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(
            required,
            BTreeSet::from([
                "title",
                "description",
                "category_id",
                "priority_id",
                "type_id"
            ])
        );
    }
}
