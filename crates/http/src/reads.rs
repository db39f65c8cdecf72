//! The read side over HTTP: `GET /api/v1/tickets` (the caller's tickets, cursor pages),
//! `GET /api/v1/tickets/{id}` (one, fresh from InvGate or marked stale, with an `ETag`), its
//! comments (read and add), and the reference data of `GET /api/v1/ticket-meta`.

use actix_web::http::header::{
    CACHE_CONTROL, ContentType, ETAG, HeaderValue, IF_NONE_MATCH, LINK, LOCATION,
};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use ticketd_domain::{
    Comment, CommentFile, CommentsError, CreateTicketError, FieldError, IncidentId, PageCursor,
    ReadTicketsError, Reference, TicketMeta, TicketPage, TicketView,
};
use tracing::Instrument;
use utoipa::{IntoParams, ToSchema};

use crate::binding::{BoundComment, bind_comment};

use crate::HttpState;
use crate::auth::Caller;
use crate::problem::ApiError;

fn from_read(err: ReadTicketsError) -> ApiError {
    match err {
        ReadTicketsError::StoreUnavailable(cause) => {
            tracing::error!(error = ?cause, "the ticket store is unavailable");
            ApiError::StoreUnavailable
        }
    }
}

/// One line of the list: what a client shows in "my tickets".
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TicketSummary<'a> {
    /// ticketd's own id of the ticket.
    #[schema(format = Uuid)]
    id: String,
    /// InvGate's id: the `{id}` of `/api/v1/tickets/{id}`.
    inv_gate_id: i64,
    title: &'a str,
    category_id: i64,
    priority_id: i64,
    type_id: i64,
    /// InvGate's status (see `statuses` in `/api/v1/ticket-meta`); `null` until first synced.
    status_id: Option<i64>,
    #[schema(format = DateTime)]
    created_at: String,
    /// When InvGate last changed the ticket, as of the last sync.
    #[schema(format = DateTime)]
    last_update: Option<String>,
    /// When ticketd last read the status from InvGate; `null` if never since creation.
    #[schema(format = DateTime)]
    status_synced_at: Option<String>,
}

impl<'a> From<&'a TicketView> for TicketSummary<'a> {
    fn from(t: &'a TicketView) -> Self {
        Self {
            id: t.id.to_string(),
            inv_gate_id: t.inv_gate_id.get(),
            title: &t.title,
            category_id: t.category_id,
            priority_id: t.priority_id,
            type_id: t.type_id,
            status_id: t.status.status_id,
            created_at: t.created_at.to_rfc3339(),
            last_update: t.status.last_update.map(|d| d.to_rfc3339()),
            status_synced_at: t.status_synced_at.map(|d| d.to_rfc3339()),
        }
    }
}

/// A page of the caller's tickets, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TicketList)]
pub(crate) struct TicketListBody<'a> {
    tickets: Vec<TicketSummary<'a>>,
    /// Pass as `cursor` for the next page; `null` on the last page. Also in the `Link` header.
    next_cursor: Option<String>,
}

/// The query of `GET /api/v1/tickets`.
#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "describes the query for the OpenAPI document; page_of parses it"
)]
pub(crate) struct ListQuery {
    /// Tickets per page, 1 to 100.
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page (opaque; anything else is 400).
    #[param(pattern = "^[A-Za-z0-9_-]+$")]
    cursor: Option<String>,
    /// Only tickets with this InvGate status.
    status_id: Option<i64>,
}

/// The query of a list request; parsed by hand so every bad parameter is reported.
fn page_of(req: &HttpRequest) -> Result<TicketPage, ApiError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).map_err(|_| {
            ApiError::invalid(vec![FieldError::new(
                "query",
                "is not a valid query string",
            )])
        })?;
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let mut errors = Vec::new();
    let limit = match get("limit").map(str::parse::<u32>) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => {
            errors.push(FieldError::new("limit", "must be a whole number"));
            None
        }
    };
    let after = match get("cursor")
        .filter(|c| !c.is_empty())
        .map(PageCursor::decode)
    {
        None => None,
        Some(Ok(cursor)) => Some(cursor),
        Some(Err(message)) => {
            errors.push(FieldError::new("cursor", message));
            None
        }
    };
    let status_id = match get("status_id").map(str::parse::<i64>) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => {
            errors.push(FieldError::new("status_id", "must be an integer"));
            None
        }
    };
    match TicketPage::new(limit, after, status_id) {
        Ok(page) if errors.is_empty() => Ok(page),
        Ok(_) => Err(ApiError::invalid(errors)),
        Err(message) => {
            errors.insert(0, FieldError::new("limit", message));
            Err(ApiError::invalid(errors))
        }
    }
}

/// `GET /api/v1/tickets`: the caller's tickets from the mirror, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/tickets",
    tag = "tickets",
    summary = "The caller's tickets",
    description = "The tickets the caller created, newest first, from ticketd's own record; statuses are as of `status_synced_at` (kept current by a background sync).",
    params(ListQuery),
    responses(
        (status = 200, description = "A page.", body = TicketListBody,
            headers(("Link" = String, description = "`<…>; rel=\"next\"` when there is a next page."))),
        (status = 400, description = "`INVALID_INPUT`: a bad `limit`, `cursor` or `status_id`, each listed in `errors`.", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "`STORE_UNAVAILABLE`: the database is unreachable.", body = crate::problem::ProblemBody, content_type = "application/problem+json",
            headers(("Retry-After" = String, description = "Seconds to wait."))),
    ),
)]
#[tracing::instrument(name = "tickets.list", skip_all)]
pub(crate) async fn list_tickets(
    req: HttpRequest,
    caller: Caller,
    state: web::Data<HttpState>,
) -> Result<HttpResponse, ApiError> {
    let page = page_of(&req)?;
    let limit = page.limit;
    let status_id = page.status_id;
    let list = state
        .queries
        .list_tickets(&caller.email, page)
        .await
        .map_err(from_read)?;
    let next_cursor = list.next.map(|c| c.encode());
    let mut response = HttpResponse::Ok();
    if let Some(cursor) = &next_cursor {
        let mut next = format!("/api/v1/tickets?limit={limit}&cursor={cursor}");
        if let Some(status_id) = status_id {
            next.push_str(&format!("&status_id={status_id}"));
        }
        response.insert_header((LINK, format!("<{next}>; rel=\"next\"")));
    }
    Ok(response.json(TicketListBody {
        tickets: list.tickets.iter().map(TicketSummary::from).collect(),
        next_cursor,
    }))
}

/// The metadata of a file attached to a ticket (its content stays in InvGate).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StoredAttachment {
    name: String,
    size: u64,
    /// The type ticketd sniffed from the content.
    content_type: String,
    #[schema(pattern = "^[0-9a-f]{64}$")]
    sha256: String,
}

/// One of the caller's tickets: everything it was created with, and InvGate's status.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Ticket)]
pub(crate) struct TicketBody<'a> {
    /// ticketd's own id of the ticket.
    id: uuid::Uuid,
    /// InvGate's id.
    inv_gate_id: i64,
    title: &'a str,
    description: &'a str,
    category_id: i64,
    priority_id: i64,
    type_id: i64,
    source_id: Option<i64>,
    location_id: Option<i64>,
    date_ocurred: Option<DateTime<Utc>>,
    related_to: &'a [i64],
    #[schema(value_type = Vec<StoredAttachment>)]
    attachments: &'a Value,
    created_at: DateTime<Utc>,
    /// InvGate's status (see `statuses` in `/api/v1/ticket-meta`).
    status_id: Option<i64>,
    last_update: Option<DateTime<Utc>>,
    solved_at: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
    /// When ticketd last read the status from InvGate.
    status_synced_at: Option<DateTime<Utc>>,
    /// InvGate could not be asked: the status fields are as of `status_synced_at`.
    stale: bool,
}

impl<'a> TicketBody<'a> {
    fn new(t: &'a TicketView, stale: bool) -> Self {
        Self {
            id: t.id,
            inv_gate_id: t.inv_gate_id.get(),
            title: &t.title,
            description: &t.description,
            category_id: t.category_id,
            priority_id: t.priority_id,
            type_id: t.type_id,
            source_id: t.source_id,
            location_id: t.location_id,
            date_ocurred: t.date_ocurred,
            related_to: &t.related_to,
            attachments: &t.attachments,
            created_at: t.created_at,
            status_id: t.status.status_id,
            last_update: t.status.last_update,
            solved_at: t.status.solved_at,
            closed_at: t.status.closed_at,
            status_synced_at: t.status_synced_at,
            stale,
        }
    }
}

/// Whether an `If-None-Match` header matches `etag` (`*`, or one of a list), by the weak
/// comparison RFC 9110 prescribes for it.
fn matches(req: &HttpRequest, etag: &str) -> bool {
    let opaque = etag.trim_start_matches("W/");
    req.headers()
        .get_all(IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == opaque)
}

/// `GET /api/v1/tickets/{id}` (InvGate's id): only the creator's own ticket; anyone else gets
/// 404, as for a ticket that does not exist.
#[utoipa::path(
    get,
    path = "/api/v1/tickets/{id}",
    tag = "tickets",
    summary = "One of the caller's tickets",
    description = "The ticket with its current status read from InvGate; when InvGate cannot be asked, ticketd's copy with `stale: true`. Another caller's ticket is 404, as one that does not exist.",
    params(
        ("id" = i64, Path, minimum = 1, description = "InvGate's id of the ticket."),
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` from an earlier answer: 304 if the ticket has not changed since."),
    ),
    responses(
        (status = 200, description = "The ticket.", body = TicketBody,
            headers(
                ("ETag" = String, description = "A weak validator of the ticket (not of when it was last synced)."),
                ("Cache-Control" = String, description = "`private, no-cache`."),
            )),
        (status = 304, description = "Unchanged since the `If-None-Match` tag.",
            headers(("ETag" = String, description = "The same tag."))),
        (status = 404, description = "`NOT_FOUND`: no such ticket of the caller's.", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "`STORE_UNAVAILABLE`: the database is unreachable.", body = crate::problem::ProblemBody, content_type = "application/problem+json",
            headers(("Retry-After" = String, description = "Seconds to wait."))),
    ),
)]
#[tracing::instrument(name = "tickets.show", skip_all)]
pub(crate) async fn show_ticket(
    req: HttpRequest,
    path: web::Path<String>,
    caller: Caller,
    state: web::Data<HttpState>,
) -> Result<HttpResponse, ApiError> {
    let id = ticket_id(&path.into_inner())?;
    let detail = state
        .queries
        .ticket(&caller.email, id)
        .await
        .map_err(from_read)?
        .ok_or(ApiError::NotFound)?;
    let mut ticket = TicketBody::new(&detail.ticket, detail.stale);
    let body = serde_json::to_vec(&ticket).map_err(|_| ApiError::Internal)?;
    // A weak validator over everything but the sync time, which moves on with every fresh read:
    // the tag changes when the ticket does, not when ticketd looked at it again.
    ticket.status_synced_at = None;
    let tagged = serde_json::to_vec(&ticket).map_err(|_| ApiError::Internal)?;
    let etag = format!("W/\"{}\"", &hex::encode(Sha256::digest(&tagged))[..32]);
    // Clients may keep the answer privately but must ask again before using it.
    let cache = HeaderValue::from_static("private, no-cache");
    if matches(&req, &etag) {
        return Ok(HttpResponse::NotModified()
            .insert_header((ETAG, etag))
            .insert_header((CACHE_CONTROL, cache))
            .finish());
    }
    Ok(HttpResponse::Ok()
        .insert_header((ETAG, etag))
        .insert_header((CACHE_CONTROL, cache))
        .content_type(ContentType::json())
        .body(body))
}

fn from_comments(err: CommentsError) -> ApiError {
    match err {
        CommentsError::StoreUnavailable(cause) => {
            tracing::error!(error = ?cause, "the ticket store is unavailable");
            ApiError::StoreUnavailable
        }
        CommentsError::UserNotProvisioned => {
            ApiError::from_create(CreateTicketError::UserNotProvisioned {
                email: String::new(),
            })
        }
        CommentsError::Upstream(err) => ApiError::from_create(CreateTicketError::from(err)),
    }
}

fn ticket_id(raw: &str) -> Result<IncidentId, ApiError> {
    raw.parse::<i64>()
        .ok()
        .and_then(|n| IncidentId::parse(n).ok())
        .ok_or(ApiError::NotFound)
}

/// A file attached to a comment, as InvGate lists it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CommentFile)]
pub(crate) struct CommentFileBody<'a> {
    id: i64,
    name: &'a str,
}

/// A comment the caller may read.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Comment)]
pub(crate) struct CommentBody<'a> {
    /// InvGate's id of the comment.
    id: i64,
    /// InvGate's id of the user who wrote it.
    author_id: Option<i64>,
    comment: &'a str,
    created_at: Option<DateTime<Utc>>,
    /// The service desk marked this comment as the ticket's solution.
    is_solution: bool,
    attachments: Vec<CommentFileBody<'a>>,
}

impl<'a> From<&'a Comment> for CommentBody<'a> {
    fn from(c: &'a Comment) -> Self {
        Self {
            id: c.id,
            author_id: c.author_id,
            comment: &c.comment,
            created_at: c.created_at,
            is_solution: c.is_solution,
            attachments: c
                .attachments
                .iter()
                .map(|f: &'a CommentFile| CommentFileBody {
                    id: f.id,
                    name: &f.name,
                })
                .collect(),
        }
    }
}

/// The comments on a ticket the caller may read, oldest first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CommentList)]
pub(crate) struct CommentsBody<'a> {
    comments: Vec<CommentBody<'a>>,
}

/// An entry of a reference list.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Reference)]
pub(crate) struct ReferenceBody<'a> {
    id: i64,
    name: &'a str,
    /// Categories only: the parent category's id, absent for a top-level one.
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_id: Option<i64>,
}

impl<'a> From<&'a Reference> for ReferenceBody<'a> {
    fn from(r: &'a Reference) -> Self {
        Self {
            id: r.id,
            name: &r.name,
            parent_id: r.parent_id,
        }
    }
}

/// The reference data a client needs to fill in a ticket, from InvGate.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TicketMeta)]
pub(crate) struct MetaBody<'a> {
    /// For `priority_id`.
    priorities: Vec<ReferenceBody<'a>>,
    /// For `type_id`.
    types: Vec<ReferenceBody<'a>>,
    /// For `status_id` (read only).
    statuses: Vec<ReferenceBody<'a>>,
    /// For `source_id`.
    sources: Vec<ReferenceBody<'a>>,
    /// For `category_id`.
    categories: Vec<ReferenceBody<'a>>,
}

impl<'a> From<&'a TicketMeta> for MetaBody<'a> {
    fn from(m: &'a TicketMeta) -> Self {
        let list = |refs: &'a [Reference]| refs.iter().map(ReferenceBody::from).collect();
        Self {
            priorities: list(&m.priorities),
            types: list(&m.types),
            statuses: list(&m.statuses),
            sources: list(&m.sources),
            categories: list(&m.categories),
        }
    }
}

/// `GET /api/v1/tickets/{id}/comments`: the comments on the caller's own ticket the caller may
/// see (the service desk's internal notes are left out).
#[utoipa::path(
    get,
    path = "/api/v1/tickets/{id}/comments",
    tag = "tickets",
    summary = "The comments on one of the caller's tickets",
    description = "Read from InvGate; the service desk's internal notes are left out.",
    params(("id" = i64, Path, minimum = 1, description = "InvGate's id of the ticket.")),
    responses(
        (status = 200, description = "The comments.", body = CommentsBody),
        (status = 404, description = "`NOT_FOUND`: no such ticket of the caller's.", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 502, description = "`UPSTREAM_AUTH` or `EXTERNAL_SERVICE_ERROR`: InvGate refused ticketd or failed.", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "`UPSTREAM_BUSY`, `UPSTREAM_UNAVAILABLE` or `STORE_UNAVAILABLE`: retry after `Retry-After`.", body = crate::problem::ProblemBody, content_type = "application/problem+json",
            headers(("Retry-After" = String, description = "Seconds to wait."))),
        (status = 504, description = "`UPSTREAM_TIMEOUT`: InvGate did not answer in time.", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
    ),
)]
#[tracing::instrument(name = "tickets.comments", skip_all)]
pub(crate) async fn list_comments(
    path: web::Path<String>,
    caller: Caller,
    state: web::Data<HttpState>,
) -> Result<HttpResponse, ApiError> {
    let id = ticket_id(&path.into_inner())?;
    let comments = state
        .queries
        .comments(&caller.email, id)
        .await
        .map_err(from_comments)?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(CommentsBody {
        comments: comments.iter().map(CommentBody::from).collect(),
    }))
}

/// `POST /api/v1/tickets/{id}/comments`: a comment on the caller's own ticket, by the caller's
/// InvGate user, JSON or multipart with files; answered 201 with InvGate's answer.
#[utoipa::path(
    post,
    path = "/api/v1/tickets/{id}/comments",
    tag = "tickets",
    summary = "Comment on one of the caller's tickets",
    description = "Adds a customer-visible comment by the caller's InvGate user, with files if sent as multipart (checked like a ticket's). Comments take no `Idempotency-Key`: a retry after a timeout may comment twice.",
    params(("id" = i64, Path, minimum = 1, description = "InvGate's id of the ticket.")),
    request_body(
        description = "The comment as JSON, or as multipart with files.",
        content(
            (crate::openapi::CommentRequestDoc = "application/json"),
            (crate::openapi::CommentFormDoc = "multipart/form-data"),
        ),
    ),
    responses(
        (status = 201, description = "Added: InvGate's answer.", body = crate::openapi::InvGateAnswerDoc,
            headers(("Location" = String, description = "The ticket's comments."))),
        (status = 400, description = "`INVALID_INPUT`: no comment, a blank or too long one, or a malformed body.", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "`USER_NOT_PROVISIONED`: InvGate has no user with the caller's e-mail.", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`NOT_FOUND`: no such ticket of the caller's.", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 408, description = "`REQUEST_TIMEOUT`: the body stalled or trickled.", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "`PAYLOAD_TOO_LARGE`: too many files or a file too large.", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "`UNSUPPORTED_MEDIA_TYPE`: not JSON or multipart, or a refused file.", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "`UPSTREAM_REJECTED`: InvGate refused the comment.", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 502, description = "`UPSTREAM_AUTH` or `EXTERNAL_SERVICE_ERROR`: InvGate refused ticketd or failed.", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "`UPSTREAM_BUSY`, `UPSTREAM_UNAVAILABLE` or `STORE_UNAVAILABLE`: retry after `Retry-After`.", body = crate::problem::ProblemBody, content_type = "application/problem+json",
            headers(("Retry-After" = String, description = "Seconds to wait."))),
        (status = 504, description = "`UPSTREAM_TIMEOUT`: InvGate did not answer in time.", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
    ),
)]
#[tracing::instrument(name = "tickets.comment", skip_all)]
pub(crate) async fn add_comment(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    caller: Caller,
    state: web::Data<HttpState>,
) -> Result<HttpResponse, ApiError> {
    let id = ticket_id(&path.into_inner())?;
    let BoundComment { comment, spooled } = bind_comment(&req, payload, &state.limits)
        .instrument(tracing::info_span!("binding"))
        .await?;
    let answer = state
        .queries
        .add_comment(&caller.email, id, comment)
        .await
        .map_err(from_comments)?
        .ok_or(ApiError::NotFound)?;
    // The files go only once InvGate has them.
    drop(spooled);
    Ok(HttpResponse::Created()
        .insert_header((LOCATION, format!("/api/v1/tickets/{id}/comments")))
        .json(answer))
}

/// `GET /api/v1/ticket-meta`: priorities, types, statuses, sources and categories, from
/// InvGate, cached.
#[utoipa::path(
    get,
    path = "/api/v1/ticket-meta",
    tag = "tickets",
    summary = "Reference data for filling in a ticket",
    description = "Priorities, types, statuses, sources and categories, from InvGate, cached for 10 minutes; while InvGate fails, the last copy is served.",
    responses(
        (status = 200, description = "The reference data.", body = MetaBody,
            headers(("Cache-Control" = String, description = "`private, max-age=300`."))),
        (status = 502, description = "`UPSTREAM_AUTH` or `EXTERNAL_SERVICE_ERROR`: InvGate refused ticketd or failed.", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "`UPSTREAM_BUSY`, `UPSTREAM_UNAVAILABLE` or `STORE_UNAVAILABLE`: retry after `Retry-After`.", body = crate::problem::ProblemBody, content_type = "application/problem+json",
            headers(("Retry-After" = String, description = "Seconds to wait."))),
        (status = 504, description = "`UPSTREAM_TIMEOUT`: InvGate did not answer in time.", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
    ),
)]
#[tracing::instrument(name = "tickets.meta", skip_all)]
pub(crate) async fn ticket_meta(state: web::Data<HttpState>) -> Result<HttpResponse, ApiError> {
    let meta = state.queries.ticket_meta().await.map_err(from_comments)?;
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "private, max-age=300"))
        .json(MetaBody::from(&meta)))
}
