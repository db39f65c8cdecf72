//! InvGate's API: one handler for `/api/v1/{endpoint}`, dispatching on method and the dotted
//! endpoint name, after authentication and fault injection.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use crate::params::{self, Params};
use crate::state::{Comment, NewIncident, World, priorities, types};
use crate::{FaultKind, RecordedRequest, Simulator};

/// Page size of the paged list endpoints when the caller does not set `limit`.
const DEFAULT_PAGE: usize = 50;

/// Every endpoint the simulator knows, with its methods.
const ENDPOINTS: [(&str, &[&str]); 15] = [
    ("incident", &["GET", "POST"]),
    ("incidents", &["GET"]),
    ("incidents.by.customer", &["GET"]),
    ("incidents.last.hour", &["GET"]),
    ("incident.attachment", &["GET"]),
    ("incident.comment", &["GET", "POST"]),
    ("user.by", &["GET"]),
    ("user", &["POST"]),
    ("categories", &["GET"]),
    ("incident.attributes.priority", &["GET"]),
    ("incident.attributes.type", &["GET"]),
    ("incident.attributes.status", &["GET"]),
    ("incident.attributes.source", &["GET"]),
    ("sd.version", &["GET"]),
    ("incident.cancel", &["POST"]),
];

/// The version `sd.version` reports.
pub const VERSION: &str = "v8.15.13";

fn error(status: StatusCode, info: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(json!({"status": "ERROR", "info": info.into()}))
}

/// Missing or invalid parameters: InvGate answers 428.
fn precondition(info: impl Into<String>) -> HttpResponse {
    error(StatusCode::PRECONDITION_REQUIRED, info)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub(crate) async fn endpoint(
    req: HttpRequest,
    payload: web::Payload,
    path: web::Path<String>,
    sim: web::Data<Simulator>,
) -> HttpResponse {
    let endpoint = path.into_inner();
    let method = req.method().as_str().to_owned();
    let params = match params::read(&req, payload).await {
        Ok(params) => params,
        Err(message) => {
            sim.record(RecordedRequest::new(
                &method,
                &endpoint,
                Params::default(),
                Some(400),
            ));
            return error(StatusCode::BAD_REQUEST, message);
        }
    };

    if !sim.authorized(req.headers().get(header::AUTHORIZATION)) {
        sim.record(RecordedRequest::new(&method, &endpoint, params, Some(401)));
        return HttpResponse::Unauthorized()
            .insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"InvGate\""),
            ))
            .json(json!({"status": "ERROR", "info": "Invalid credentials"}));
    }

    let fault = sim.take_fault(&method, &endpoint);
    let mut answer_late = None;
    match fault {
        Some(FaultKind::Status {
            status,
            retry_after,
            body,
        }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            sim.record(RecordedRequest::new(
                &method,
                &endpoint,
                params,
                Some(status.as_u16()),
            ));
            let mut response = HttpResponse::build(status);
            if let Some(seconds) = retry_after {
                response.insert_header((header::RETRY_AFTER, seconds.to_string()));
            }
            return response.json(body.unwrap_or_else(|| {
                json!({"status": "ERROR", "info": format!("Simulated HTTP {}", status.as_u16())})
            }));
        }
        Some(FaultKind::ErrorBody { message }) => {
            sim.record(RecordedRequest::new(&method, &endpoint, params, Some(200)));
            return HttpResponse::Ok().json(json!({
                "status": "ERROR",
                "error": message.unwrap_or_else(|| "Simulated failure".to_owned()),
            }));
        }
        Some(FaultKind::Garbage) => {
            sim.record(RecordedRequest::new(&method, &endpoint, params, Some(200)));
            return HttpResponse::Ok()
                .content_type("text/html")
                .body("<html><body>502 Bad Gateway (simulated garbage)</body></html>");
        }
        Some(FaultKind::Drop) => {
            sim.record(RecordedRequest::new(&method, &endpoint, params, None));
            return dropped();
        }
        Some(FaultKind::Hang) => {
            sim.record(RecordedRequest::new(&method, &endpoint, params, None));
            // Until the client gives up and the connection goes away (actix then drops us).
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return dropped();
        }
        Some(FaultKind::Delay { ms }) => tokio::time::sleep(Duration::from_millis(ms)).await,
        Some(FaultKind::AnswerLate { ms }) => answer_late = Some(Duration::from_millis(ms)),
        None => {}
    }

    let base_url = format!(
        "{}://{}/api/v1/",
        req.connection_info().scheme(),
        req.connection_info().host()
    );
    let response = sim.with_world(|world| dispatch(world, &method, &endpoint, &params, &base_url));
    sim.record(RecordedRequest::new(
        &method,
        &endpoint,
        params,
        Some(response.status().as_u16()),
    ));
    if let Some(delay) = answer_late {
        // The work is done (the incident exists); only the answer is late.
        tokio::time::sleep(delay).await;
    }
    response
}

/// A response that breaks off: the body fails before a byte is sent, so the server closes the
/// connection and the client sees it dropped.
fn dropped() -> HttpResponse {
    let broken = futures_util::stream::once(async {
        Err::<web::Bytes, std::io::Error>(std::io::Error::other(
            "connection dropped by the simulator",
        ))
    });
    HttpResponse::Ok().streaming(broken)
}

fn dispatch(
    world: &mut World,
    method: &str,
    endpoint: &str,
    params: &Params,
    base_url: &str,
) -> HttpResponse {
    match (method, endpoint) {
        ("POST", "incident") => create_incident(world, params),
        ("GET", "incident") => get_incident(world, params),
        ("GET", "incidents") => get_incidents(world, params),
        ("GET", "incidents.by.customer") => incidents_by_customer(world, params),
        ("GET", "incidents.last.hour") => incidents_last_hour(world, params),
        ("GET", "incident.attachment") => attachment(world, params, base_url),
        ("POST", "incident.comment") => add_comment(world, params),
        ("GET", "incident.comment") => comments(world, params, base_url),
        ("GET", "user.by") => user_by(world, params),
        ("POST", "user") => create_user(world, params),
        ("GET", "categories") => categories(world, params),
        ("GET", "incident.attributes.priority") => HttpResponse::Ok().json(priorities()),
        ("GET", "incident.attributes.type") => HttpResponse::Ok().json(types()),
        ("GET", "incident.attributes.status") => HttpResponse::Ok().json(&world.statuses),
        ("GET", "incident.attributes.source") => HttpResponse::Ok().json(&world.sources),
        ("GET", "sd.version") => HttpResponse::Ok().json(json!({"version": VERSION})),
        ("POST", "incident.cancel") => cancel(world, params),
        _ => match ENDPOINTS.iter().find(|(name, _)| *name == endpoint) {
            Some((_, methods)) => HttpResponse::MethodNotAllowed()
                .insert_header((header::ALLOW, methods.join(", ")))
                .json(json!({"status": "ERROR", "info": format!("{endpoint} does not accept {method}")})),
            None => error(StatusCode::NOT_FOUND, format!("Unknown endpoint {endpoint}")),
        },
    }
}

/// Reads an integer parameter: `Ok(None)` when absent, `Err` (a 428 message) when not an integer.
fn int(params: &Params, key: &str) -> Result<Option<i64>, String> {
    params
        .get(key)
        .map(|v| {
            v.trim()
                .parse::<i64>()
                .map_err(|_| format!("{key} must be an integer"))
        })
        .transpose()
}

fn required_int(params: &Params, key: &str) -> Result<i64, String> {
    int(params, key)?.ok_or_else(|| format!("Missing required parameter: {key}"))
}

fn bool_param(params: &Params, key: &str) -> bool {
    matches!(params.get(key), Some("1" | "true"))
}

fn check_new_incident(world: &World, params: &Params) -> Result<NewIncident, String> {
    let creator_id = required_int(params, "creator_id")?;
    let customer_id = required_int(params, "customer_id")?;
    let category_id = required_int(params, "category_id")?;
    let priority_id = required_int(params, "priority_id")?;
    let type_id = required_int(params, "type_id")?;
    let title = params
        .get("title")
        .ok_or("Missing required parameter: title")?
        .to_owned();
    if !(1..=5).contains(&priority_id) {
        return Err(format!("Invalid priority_id {priority_id}"));
    }
    if !(1..=6).contains(&type_id) {
        return Err(format!("Invalid type_id {type_id}"));
    }
    if world.active_user(creator_id).is_none() {
        return Err(format!("Unknown user {creator_id} (creator_id)"));
    }
    if world.active_user(customer_id).is_none() {
        return Err(format!("Unknown user {customer_id} (customer_id)"));
    }
    if !world.has_category(category_id) {
        return Err(format!("Unknown category {category_id}"));
    }
    let source_id = int(params, "source_id")?;
    if let Some(source) = source_id.filter(|s| !world.has_source(*s)) {
        return Err(format!("Unknown source {source}"));
    }
    let related_to = params
        .array("related_to")?
        .into_iter()
        .map(|v| {
            v.trim()
                .parse::<i64>()
                .map_err(|_| format!("related_to contains {v:?}, not an id"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(unknown) = related_to
        .iter()
        .find(|id| !world.incidents.contains_key(id))
    {
        return Err(format!("Unknown related request {unknown}"));
    }
    Ok(NewIncident {
        title,
        description: params.get("description").unwrap_or_default().to_owned(),
        category_id,
        priority_id,
        type_id,
        source_id,
        customer_id,
        creator_id,
        location_id: int(params, "location_id")?,
        date_ocurred: int(params, "date")?,
        related_to,
    })
}

/// Keeps the metadata of the files sent as `attachments[]` and returns their ids.
fn store_attachments(world: &mut World, params: &Params) -> Vec<i64> {
    params
        .files_named("attachments")
        .map(|f| {
            world.store_file(
                f.name.clone(),
                f.content_type.clone(),
                f.size,
                f.sha256.clone(),
            )
        })
        .collect()
}

fn create_incident(world: &mut World, params: &Params) -> HttpResponse {
    let new = match check_new_incident(world, params) {
        Ok(new) => new,
        Err(message) => return precondition(message),
    };
    let files = store_attachments(world, params);
    let id = world.create_incident(new, files, now());
    HttpResponse::Ok()
        .json(json!({"status": "OK", "info": "Request created successfully", "request_id": id}))
}

fn get_incident(world: &World, params: &Params) -> HttpResponse {
    let id = match required_int(params, "id") {
        Ok(id) => id,
        Err(message) => return precondition(message),
    };
    match world.incidents.get(&id) {
        Some(incident) => HttpResponse::Ok().json(incident.to_json()),
        None => error(
            StatusCode::NOT_FOUND,
            format!("Request {id} does not exist"),
        ),
    }
}

fn get_incidents(world: &World, params: &Params) -> HttpResponse {
    let ids = match params.array("ids") {
        Ok(ids) if !ids.is_empty() => ids,
        Ok(_) => return precondition("Missing required parameter: ids[]"),
        Err(message) => return precondition(message),
    };
    let mut found = serde_json::Map::new();
    for raw in ids {
        let Ok(id) = raw.trim().parse::<i64>() else {
            return precondition(format!("ids contains {raw:?}, not an id"));
        };
        if let Some(incident) = world.incidents.get(&id) {
            found.insert(id.to_string(), incident.to_json());
        }
    }
    HttpResponse::Ok().json(Value::Object(found))
}

/// `limit` (default [`DEFAULT_PAGE`], at most 500) and `page_key` (the last id seen).
fn paging(params: &Params) -> Result<(usize, i64), String> {
    let limit = int(params, "limit")?.unwrap_or(DEFAULT_PAGE as i64);
    if !(1..=500).contains(&limit) {
        return Err("limit must be between 1 and 500".into());
    }
    let after = match params.get("page_key") {
        Some(key) => key
            .parse::<i64>()
            .map_err(|_| "Invalid page_key".to_owned())?,
        None => 0,
    };
    Ok((usize::try_from(limit).unwrap_or(DEFAULT_PAGE), after))
}

fn page<'a>(
    items: impl Iterator<Item = &'a crate::state::Incident>,
    limit: usize,
) -> (Vec<&'a crate::state::Incident>, Option<String>) {
    let mut items: Vec<_> = items.take(limit + 1).collect();
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|i| i.id.to_string())
    } else {
        None
    };
    (items, next)
}

fn incidents_by_customer(world: &World, params: &Params) -> HttpResponse {
    let lookup = ["email", "id", "username"]
        .into_iter()
        .find_map(|field| params.get(field).map(|value| (field, value)));
    let Some((field, value)) = lookup else {
        return precondition("Missing required parameter: email, id or username");
    };
    let Some(customer) = world.user_by(field, value) else {
        return error(StatusCode::NOT_FOUND, "User not found");
    };
    let (limit, after) = match paging(params) {
        Ok(paging) => paging,
        Err(message) => return precondition(message),
    };
    let (items, next) = page(world.open_incidents_of(customer.id, after), limit);
    let requests: serde_json::Map<String, Value> = items
        .iter()
        .map(|i| (i.id.to_string(), i.to_json()))
        .collect();
    HttpResponse::Ok()
        .json(json!({"status": "OK", "info": "", "requests": requests, "next_page_key": next}))
}

fn incidents_last_hour(world: &World, params: &Params) -> HttpResponse {
    let (limit, after) = match paging(params) {
        Ok(paging) => paging,
        Err(message) => return precondition(message),
    };
    let (items, next) = page(world.incidents_since(now() - 3600, after), limit);
    let data: Vec<Value> = items.iter().map(|i| i.to_json()).collect();
    HttpResponse::Ok().json(json!({"data": data, "next_page_key": next}))
}

fn attachment(world: &World, params: &Params, base_url: &str) -> HttpResponse {
    let id = match required_int(params, "id") {
        Ok(id) => id,
        Err(message) => return precondition(message),
    };
    match world.file_json(id, base_url) {
        Some(file) => HttpResponse::Ok().json(file),
        None => error(
            StatusCode::NOT_FOUND,
            format!("Attachment {id} does not exist"),
        ),
    }
}

fn add_comment(world: &mut World, params: &Params) -> HttpResponse {
    let checked = (|| {
        let request_id = required_int(params, "request_id")?;
        let author_id = required_int(params, "author_id")?;
        let comment = params
            .get("comment")
            .ok_or("Missing required parameter: comment")?
            .to_owned();
        if !world.incidents.contains_key(&request_id) {
            return Err(format!("Request {request_id} does not exist"));
        }
        if world.active_user(author_id).is_none() {
            return Err(format!("Unknown user {author_id} (author_id)"));
        }
        Ok((request_id, author_id, comment))
    })();
    let (request_id, author_id, comment) = match checked {
        Ok(checked) => checked,
        Err(message) => return precondition(message),
    };
    let attachments = store_attachments(world, params);
    world.add_comment(Comment {
        id: 0,
        request_id,
        author_id,
        comment,
        customer_visible: bool_param(params, "customer_visible"),
        is_solution: bool_param(params, "is_solution"),
        created_at: now(),
        attachments,
    });
    HttpResponse::Ok().json(json!({"status": "OK", "info": "Comment added"}))
}

fn comments(world: &World, params: &Params, base_url: &str) -> HttpResponse {
    let request_id = match required_int(params, "request_id") {
        Ok(id) => id,
        Err(message) => return precondition(message),
    };
    if !world.incidents.contains_key(&request_id) {
        return error(
            StatusCode::NOT_FOUND,
            format!("Request {request_id} does not exist"),
        );
    }
    let list: Vec<Value> = world
        .comments
        .iter()
        .filter(|c| c.request_id == request_id)
        .map(|c| {
            json!({
                "id": c.id,
                "request_id": c.request_id,
                "author_id": c.author_id,
                "comment": c.comment,
                "created_at": c.created_at,
                "customer_visible": u8::from(c.customer_visible),
                "is_solution": u8::from(c.is_solution),
                "attached_files": c.attachments.iter().filter_map(|id| world.file_json(*id, base_url)).collect::<Vec<_>>(),
            })
        })
        .collect();
    HttpResponse::Ok().json(list)
}

fn user_by(world: &World, params: &Params) -> HttpResponse {
    let lookup = ["email", "username", "id"]
        .into_iter()
        .find_map(|field| params.get(field).map(|value| (field, value)));
    let Some((field, value)) = lookup else {
        return precondition("Missing required parameter: email");
    };
    match world.user_by(field, value) {
        Some(user) => HttpResponse::Ok().json(user),
        None => error(StatusCode::NOT_FOUND, "User not found"),
    }
}

fn create_user(world: &mut World, params: &Params) -> HttpResponse {
    let (Some(name), Some(lastname), Some(email)) = (
        params.get("name"),
        params.get("lastname"),
        params.get("email"),
    ) else {
        return precondition("Missing required parameters: name, lastname and email");
    };
    if !email.contains('@') {
        return precondition(format!("Invalid e-mail address {email:?}"));
    }
    match world.add_user(
        name.to_owned(),
        lastname.to_owned(),
        email.to_owned(),
        params.get("username").map(ToOwned::to_owned),
    ) {
        Ok(id) => {
            HttpResponse::Ok().json(json!({"status": "OK", "info": "User created", "id": id}))
        }
        Err(message) => precondition(message),
    }
}

fn categories(world: &World, params: &Params) -> HttpResponse {
    let paging = (|| {
        let page = int(params, "page")?.unwrap_or(1);
        let size = int(params, "page_size")?.unwrap_or(100);
        if page < 1 || !(1..=500).contains(&size) {
            return Err("page must be at least 1 and page_size between 1 and 500".to_owned());
        }
        Ok((
            usize::try_from(page - 1).unwrap_or(0),
            usize::try_from(size).unwrap_or(100),
        ))
    })();
    match paging {
        Ok((page, size)) => {
            let slice: Vec<_> = world
                .categories
                .iter()
                .skip(page.saturating_mul(size))
                .take(size)
                .collect();
            HttpResponse::Ok().json(slice)
        }
        Err(message) => precondition(message),
    }
}

fn cancel(world: &mut World, params: &Params) -> HttpResponse {
    let id = match required_int(params, "request_id").or_else(|_| required_int(params, "id")) {
        Ok(id) => id,
        Err(message) => return precondition(message),
    };
    match world.incidents.get_mut(&id) {
        Some(incident) => {
            incident.status_id = 8;
            incident.closed_at = Some(now());
            incident.last_update = now();
            HttpResponse::Ok().json(json!({"status": "OK", "info": "Request cancelled"}))
        }
        None => error(
            StatusCode::NOT_FOUND,
            format!("Request {id} does not exist"),
        ),
    }
}
