//! The read side over HTTP: `GET /api/v1/tickets` (the caller's tickets, cursor pages),
//! `GET /api/v1/tickets/{id}` (one, fresh from InvGate or marked stale, with an `ETag`), its
//! comments (read and add), and the reference data of `GET /api/v1/ticket-meta`.

use actix_web::http::header::{
    CACHE_CONTROL, ContentType, ETAG, HeaderValue, IF_NONE_MATCH, LINK, LOCATION,
};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use sha2::{Digest, Sha256};
use ticketd_domain::{
    Comment, CommentsError, CreateTicketError, FieldError, IncidentId, PageCursor,
    ReadTicketsError, TicketPage, TicketView,
};
use tracing::Instrument;

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
#[derive(Debug, Serialize)]
struct TicketSummary<'a> {
    id: String,
    inv_gate_id: i64,
    title: &'a str,
    category_id: i64,
    priority_id: i64,
    type_id: i64,
    status_id: Option<i64>,
    created_at: String,
    last_update: Option<String>,
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

#[derive(Debug, Serialize)]
struct TicketListBody<'a> {
    tickets: Vec<TicketSummary<'a>>,
    next_cursor: Option<String>,
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

#[derive(Debug, Serialize)]
struct TicketBody<'a> {
    #[serde(flatten)]
    ticket: &'a TicketView,
    /// InvGate could not be asked: the status fields are as of `status_synced_at`.
    stale: bool,
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
    let body = serde_json::to_vec(&TicketBody {
        ticket: &detail.ticket,
        stale: detail.stale,
    })
    .map_err(|_| ApiError::Internal)?;
    // A weak validator over everything but the sync time, which moves on with every fresh read:
    // the tag changes when the ticket does, not when ticketd looked at it again.
    let unchanging = TicketView {
        status_synced_at: None,
        ..detail.ticket.clone()
    };
    let tagged = serde_json::to_vec(&TicketBody {
        ticket: &unchanging,
        stale: detail.stale,
    })
    .map_err(|_| ApiError::Internal)?;
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

#[derive(Debug, Serialize)]
struct CommentsBody<'a> {
    comments: &'a [Comment],
}

/// `GET /api/v1/tickets/{id}/comments`: the comments on the caller's own ticket the caller may
/// see (the service desk's internal notes are left out).
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
        comments: &comments,
    }))
}

/// `POST /api/v1/tickets/{id}/comments`: a comment on the caller's own ticket, by the caller's
/// InvGate user, JSON or multipart with files; answered 201 with InvGate's answer.
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
#[tracing::instrument(name = "tickets.meta", skip_all)]
pub(crate) async fn ticket_meta(state: web::Data<HttpState>) -> Result<HttpResponse, ApiError> {
    let meta = state.queries.ticket_meta().await.map_err(from_comments)?;
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "private, max-age=300"))
        .json(meta))
}
