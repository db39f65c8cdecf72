//! Turning a request body into a [`NewTicket`]: JSON, or multipart with the ticket as a `request`
//! part or as one form field per name, plus files in `attachments[]` (or `attachments`).
//!
//! Files are streamed to temporary files while being measured and hashed, so memory does not grow
//! with their size; the temporary files live exactly as long as the returned [`BoundTicket`].

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use actix_multipart::{Field, Multipart};
use actix_web::error::PayloadError;
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{HttpRequest, web};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tempfile::TempPath;
use ticketd_domain::{
    Attachment, AttachmentName, CommentText, FieldError, NewComment, NewTicket, Sha256Hex,
    TicketDraft,
};
use tokio::io::AsyncWriteExt;

use crate::Limits;
use crate::files::{SNIFF_BYTES, inspect_ole, is_ole, judge, vet};
use crate::problem::ApiError;

/// Bytes per write of a spooled upload.
const SPOOL_BLOCK: usize = 1024 * 1024;

/// Uploads up to this size are gathered in memory and written with one plain `write` on the
/// worker thread, like the temporary file's creation just before. Writing that much into the page
/// cache takes microseconds, where tokio's file writes are trips to the blocking pool, two
/// cross-thread wake-ups each. Larger uploads go through tokio in [`SPOOL_BLOCK`] blocks.
const SMALL_UPLOAD: usize = 64 * 1024;

/// Where an upload's bytes go: a buffer while the upload is small, then the temporary file.
enum Spool {
    Small(std::fs::File, Vec<u8>),
    Large(tokio::io::BufWriter<tokio::fs::File>),
}

impl Spool {
    async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Small(_, buffer) if buffer.len() + chunk.len() <= SMALL_UPLOAD => {
                buffer.extend_from_slice(chunk);
                Ok(())
            }
            Self::Small(file, buffer) => {
                // Past the threshold: what was gathered, then the rest, through tokio.
                let mut large = tokio::io::BufWriter::with_capacity(
                    SPOOL_BLOCK,
                    tokio::fs::File::from_std(file.try_clone()?),
                );
                large.write_all(buffer).await?;
                large.write_all(chunk).await?;
                *self = Self::Large(large);
                Ok(())
            }
            Self::Large(file) => file.write_all(chunk).await,
        }
    }

    async fn finish(self) -> std::io::Result<()> {
        match self {
            Self::Small(mut file, buffer) => std::io::Write::write_all(&mut file, &buffer),
            Self::Large(mut file) => file.flush().await,
        }
    }
}

/// Text parts (ticket fields) a multipart body may have besides its files.
const MAX_TEXT_PARTS: usize = 64;

/// How deeply JSON may nest. A ticket is flat (depth 2 with `related_to`); the limit only keeps
/// hostile bodies from making the parser recurse.
pub(crate) const MAX_JSON_DEPTH: usize = 32;

/// A request body whose chunks must each arrive within the idle timeout.
type Body = Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>;

/// The order fields are reported in, matching the documented body.
pub(crate) const FIELD_ORDER: [&str; 11] = [
    "body",
    "request",
    "title",
    "description",
    "category_id",
    "priority_id",
    "type_id",
    "source_id",
    "location_id",
    "date_ocurred",
    "related_to",
];

/// A bound ticket and the temporary files its attachments point to.
#[derive(Debug)]
pub(crate) struct BoundTicket {
    pub ticket: NewTicket,
    /// The spooled attachment files, deleted when dropped.
    pub spooled: Vec<TempPath>,
}

/// Binds the body of a create request.
pub(crate) async fn bind_ticket(
    req: &HttpRequest,
    payload: web::Payload,
    limits: &Limits,
) -> Result<BoundTicket, ApiError> {
    let (fields, attachments, files) = read_body(req, payload, limits).await?;
    let ticket = to_ticket(&fields, attachments, limits)?;
    Ok(BoundTicket {
        ticket,
        spooled: files,
    })
}

/// A bound comment and the temporary files its attachments point to.
#[derive(Debug)]
pub(crate) struct BoundComment {
    pub comment: NewComment,
    /// The spooled attachment files, deleted when dropped.
    pub spooled: Vec<TempPath>,
}

/// Binds the body of an add-comment request: `{"comment": "..."}` as JSON, or a `comment` form
/// field (or a `request` JSON part) with files in `attachments[]`.
pub(crate) async fn bind_comment(
    req: &HttpRequest,
    payload: web::Payload,
    limits: &Limits,
) -> Result<BoundComment, ApiError> {
    let (fields, attachments, files) = read_body(req, payload, limits).await?;
    let text = match fields.get("comment") {
        Some(Value::String(s)) => CommentText::parse(s)
            .map_err(|message| ApiError::invalid(vec![FieldError::new("comment", message)]))?,
        None | Some(Value::Null) => {
            return Err(ApiError::invalid(vec![FieldError::new(
                "comment",
                "is required",
            )]));
        }
        Some(_) => {
            return Err(ApiError::invalid(vec![FieldError::new(
                "comment",
                "must be a string",
            )]));
        }
    };
    Ok(BoundComment {
        comment: NewComment { text, attachments },
        spooled: files,
    })
}

/// Reads a JSON or multipart body into its fields and spooled, vetted files.
async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
    limits: &Limits,
) -> Result<Multiparts, ApiError> {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let is_json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    let timed_out = Rc::new(Cell::new(false));
    let body = with_idle_timeout(payload, limits.body_idle_timeout, timed_out.clone());
    let read = if is_json {
        read_json(req, body, limits)
            .await
            .map(|object| (object, Vec::new(), Vec::new()))
    } else if essence == "multipart/form-data" {
        read_multipart(req, body, limits).await
    } else {
        return Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type must be application/json or multipart/form-data, not {:?}",
            if content_type.is_empty() {
                "(none)"
            } else {
                content_type
            }
        )));
    };
    // A stalled client surfaces as a read error somewhere in the body; it is a timeout.
    match read {
        Err(_) if timed_out.get() => {
            tracing::info!("the client stopped sending the body");
            Err(ApiError::RequestTimeout)
        }
        other => other,
    }
}

/// After this long, a body must have arrived at [`MIN_BODY_BYTES_PER_SEC`] on average.
const BODY_RATE_GRACE: Duration = Duration::from_secs(10);

/// The slowest average a body may arrive at after the grace period: far below any real network
/// (2G moves ~10 KB/s), far above a slow-loris trickle.
const MIN_BODY_BYTES_PER_SEC: f64 = 1024.0;

/// The body as a stream that fails when no bytes arrive for `idle`, or when after a grace period
/// it arrives slower than a minimal rate (slow-loris uploads, one byte at a time), setting
/// `timed_out` so the failure is reported as 408 rather than as a malformed body.
fn with_idle_timeout(payload: web::Payload, idle: Duration, timed_out: Rc<Cell<bool>>) -> Body {
    let started = tokio::time::Instant::now();
    Box::pin(
        futures_util::stream::unfold(Some((payload, 0u64)), move |state| {
            let timed_out = timed_out.clone();
            async move {
                let (mut payload, received) = state?;
                let stalled = |why: &str| {
                    timed_out.set(true);
                    let error = std::io::Error::new(std::io::ErrorKind::TimedOut, why.to_owned());
                    Some((Err(PayloadError::Io(error)), None))
                };
                match tokio::time::timeout(idle, payload.next()).await {
                    Ok(Some(Ok(chunk))) => {
                        let received = received + chunk.len() as u64;
                        let elapsed = started.elapsed();
                        if elapsed > BODY_RATE_GRACE
                            && (received as f64) < MIN_BODY_BYTES_PER_SEC * elapsed.as_secs_f64()
                        {
                            return stalled("the body arrives slower than the minimal rate");
                        }
                        Some((Ok(chunk), Some((payload, received))))
                    }
                    Ok(Some(Err(e))) => Some((Err(e), None)),
                    Ok(None) => None,
                    Err(_) => stalled("no body bytes within the idle timeout"),
                }
            }
        })
        // The multipart reader may poll again after the end; a fused stream keeps answering `None`.
        .fuse(),
    )
}

fn declared_length(req: &HttpRequest) -> Option<u64> {
    req.headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

fn too_large_json(limit: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!("the JSON body is larger than {limit} bytes"))
}

async fn read_json(
    req: &HttpRequest,
    mut payload: Body,
    limits: &Limits,
) -> Result<Map<String, Value>, ApiError> {
    let limit = limits.max_json_bytes;
    // Refuse at once what announces itself as too big, before reading a byte of it.
    if declared_length(req).is_some_and(|len| len > limit as u64) {
        return Err(too_large_json(limit));
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::malformed("body", format!("could not be read: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large_json(limit));
        }
        body.extend_from_slice(&chunk);
    }
    parse_object(&body, "body")
}

fn parse_object(bytes: &[u8], field: &str) -> Result<Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::malformed(
            field,
            "is empty; expected a JSON object",
        ));
    }
    if nests_deeper_than(bytes, MAX_JSON_DEPTH) {
        return Err(ApiError::malformed(
            field,
            format!("nests deeper than {MAX_JSON_DEPTH} levels"),
        ));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ApiError::malformed(field, "must be a JSON object")),
        Err(e) => Err(ApiError::malformed(
            field,
            format!("is not valid JSON: {e}"),
        )),
    }
}

/// Whether JSON text opens more than `max` arrays/objects at once (strings skipped), checked
/// before parsing so the parser never recurses that deep.
pub(crate) fn nests_deeper_than(bytes: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

type Multiparts = (Map<String, Value>, Vec<Attachment>, Vec<TempPath>);

async fn read_multipart(
    req: &HttpRequest,
    payload: Body,
    limits: &Limits,
) -> Result<Multiparts, ApiError> {
    let mut multipart = Multipart::new(req.headers(), payload);
    let mut request_json: Option<Vec<u8>> = None;
    let mut form = Map::new();
    let mut related: Vec<Value> = Vec::new();
    let mut attachments = Vec::new();
    let mut files = Vec::new();
    let mut text_budget = limits.max_json_bytes;
    let mut parts = 0usize;

    while let Some(field) = multipart.next().await {
        let mut field = field
            .map_err(|e| ApiError::malformed("body", format!("is not valid multipart: {e}")))?;
        parts += 1;
        if parts > limits.max_attachments + MAX_TEXT_PARTS {
            return Err(ApiError::PayloadTooLarge(format!(
                "the form has more than {} parts",
                limits.max_attachments + MAX_TEXT_PARTS
            )));
        }
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = file_name_of(&field);
        match name.as_str() {
            "attachments[]" | "attachments" => {
                if attachments.len() == limits.max_attachments {
                    return Err(ApiError::PayloadTooLarge(format!(
                        "at most {} attachments are allowed per ticket",
                        limits.max_attachments
                    )));
                }
                let (attachment, path) =
                    spool(&mut field, file_name.as_deref().unwrap_or_default(), limits).await?;
                attachments.push(attachment);
                files.push(path);
            }
            _ if file_name.is_some() => {
                // A file under a name we do not know: not ours to keep, but it must not
                // be an unbounded upload either.
                discard(&mut field, limits.max_attachment_bytes, &name).await?;
            }
            _ => {
                let value =
                    read_text(&mut field, &name, &mut text_budget, limits.max_json_bytes).await?;
                match name.as_str() {
                    "request" => request_json = Some(value.into_bytes()),
                    "related_to[]" | "related_to" => related.extend(split_ids(&value)),
                    _ => {
                        form.insert(name, Value::String(value));
                    }
                }
            }
        }
    }

    if !related.is_empty() {
        form.insert("related_to".to_owned(), Value::Array(related));
    }
    // The `request` JSON is the ticket; loose form fields only fill what it leaves out.
    let fields = match request_json {
        Some(json) => {
            let mut object = parse_object(&json, "request")?;
            for (key, value) in form {
                object.entry(key).or_insert(value);
            }
            object
        }
        None => form,
    };
    Ok((fields, attachments, files))
}

/// `related_to` as a form field may repeat, or list ids separated by commas.
fn split_ids(value: &str) -> Vec<Value> {
    let trimmed = value.trim();
    if trimmed.starts_with('[')
        && !nests_deeper_than(trimmed.as_bytes(), MAX_JSON_DEPTH)
        && let Ok(Value::Array(items)) = serde_json::from_str::<Value>(trimmed)
    {
        return items;
    }
    trimmed
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Value::String(s.to_owned()))
        .collect()
}

fn file_name_of(field: &Field) -> Option<String> {
    let disposition = field.content_disposition()?;
    // RFC 5987 `filename*` (UTF-8, percent-encoded) wins over the plain `filename`.
    if let Some(extended) = disposition.get_filename_ext() {
        return Some(String::from_utf8_lossy(&extended.value).into_owned());
    }
    disposition.get_filename().map(ToOwned::to_owned)
}

async fn read_text(
    field: &mut Field,
    name: &str,
    budget: &mut usize,
    limit: usize,
) -> Result<String, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::malformed("body", format!("is not valid multipart: {e}")))?;
        if chunk.len() > *budget {
            return Err(ApiError::PayloadTooLarge(format!(
                "the ticket's fields are larger than {limit} bytes together"
            )));
        }
        *budget -= chunk.len();
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| ApiError::malformed(name, "is not valid UTF-8"))
}

async fn discard(field: &mut Field, limit: u64, name: &str) -> Result<(), ApiError> {
    let mut seen = 0u64;
    while let Some(chunk) = field.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::malformed("body", format!("is not valid multipart: {e}")))?;
        seen += chunk.len() as u64;
        if seen > limit {
            return Err(ApiError::PayloadTooLarge(format!(
                "the file in part {name:?} is larger than {limit} bytes"
            )));
        }
    }
    Ok(())
}

/// Streams one file to a temporary file, measuring and hashing it on the way.
async fn spool(
    field: &mut Field,
    raw_name: &str,
    limits: &Limits,
) -> Result<(Attachment, TempPath), ApiError> {
    let name = AttachmentName::sanitize(raw_name);
    let declared = field.content_type().map(ToString::to_string);
    let refused = |refusal: crate::files::Refusal| {
        tracing::info!(attachment.name = ?name.as_str(), reason = %refusal, "attachment refused");
        ApiError::UnsupportedMediaType(format!("attachment {:?} {refusal}", name.as_str()))
    };
    let policy = &limits.attachment_policy;
    // OLE files (old Office, installers) are decided once whole: their directory can be
    // anywhere in the file.
    let check = |head: &[u8]| -> Result<Option<crate::files::Vetted>, ApiError> {
        if is_ole(head) {
            return Ok(None);
        }
        vet(head, name.as_str(), declared.as_deref(), policy)
            .map(Some)
            .map_err(refused)
    };
    let internal = |context: &'static str| {
        move |e: std::io::Error| {
            tracing::error!(error = %e, "{context}");
            ApiError::Internal
        }
    };
    let temp = match &limits.upload_dir {
        Some(dir) => tempfile::Builder::new()
            .prefix("ticketd-upload-")
            .tempfile_in(dir),
        None => tempfile::Builder::new()
            .prefix("ticketd-upload-")
            .tempfile(),
    }
    .map_err(internal("creating a temporary file for an upload"))?;
    let (file, path) = temp.into_parts();
    // Each write to a tokio file is a trip to the blocking pool: small uploads are written at
    // once, large ones in large blocks, never in the multipart stream's small chunks.
    let mut file = Spool::Small(file, Vec::new());
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut head = Vec::new();
    let mut vetted: Option<Option<crate::files::Vetted>> = None;
    while let Some(chunk) = field.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::malformed("attachments", format!("could not be read: {e}")))?;
        if vetted.is_none() {
            let wanted = (SNIFF_BYTES - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..wanted]);
            if head.len() == SNIFF_BYTES {
                // Decided as soon as the window is full: a refused file is not read further.
                vetted = Some(check(&head)?);
            }
        }
        size += chunk.len() as u64;
        if size > limits.max_attachment_bytes {
            return Err(ApiError::PayloadTooLarge(format!(
                "attachment {:?} is larger than {} bytes",
                name.as_str(),
                limits.max_attachment_bytes
            )));
        }
        hasher.update(&chunk);
        file.write(&chunk)
            .await
            .map_err(internal("spooling an upload"))?;
    }
    file.finish()
        .await
        .map_err(internal("spooling an upload"))?;
    let vetted = match vetted {
        Some(Some(vetted)) => vetted,
        None if !is_ole(&head) => check(&head)?.ok_or(ApiError::Internal)?,
        _ => {
            let on_disk = path.to_path_buf();
            let (category, mime) = tokio::task::spawn_blocking(move || inspect_ole(&on_disk))
                .await
                .map_err(|_| ApiError::Internal)?;
            judge(category, mime, name.as_str(), declared.as_deref(), policy).map_err(refused)?
        }
    };
    let sha256 =
        Sha256Hex::parse(&hex::encode(hasher.finalize())).map_err(|_| ApiError::Internal)?;
    let attachment = Attachment {
        name,
        content_type: vetted.content_type,
        size,
        sha256,
        path: path.to_path_buf(),
    };
    Ok((attachment, path))
}

/// Reads the documented fields from a JSON object (or form fields gathered into one), collecting
/// type errors, then lets the domain check the rules; reports every problem at once.
fn to_ticket(
    fields: &Map<String, Value>,
    attachments: Vec<Attachment>,
    limits: &Limits,
) -> Result<NewTicket, ApiError> {
    let mut errors = Vec::new();
    let mut text = |key: &str| match fields.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(FieldError::new(key, "must be a string"));
            None
        }
    };
    let title = text("title");
    let description = text("description");
    let mut int = |key: &str, shown_as: &str| match fields.get(key).map(as_integer) {
        None | Some(Ok(None)) => None,
        Some(Ok(Some(n))) => Some(n),
        Some(Err(message)) => {
            errors.push(FieldError::new(shown_as, message));
            None
        }
    };
    let category_id = int("category_id", "category_id");
    let priority_id = int("priority_id", "priority_id");
    let type_id = int("type_id", "type_id");
    let source_id = int("source_id", "source_id");
    let location_id = int("location_id", "location_id");
    // The Go service spelled it like InvGate does; the correct spelling is accepted too.
    let date_key = if fields.get("date_ocurred").is_some_and(|v| !v.is_null()) {
        "date_ocurred"
    } else {
        "date_occurred"
    };
    let date_ocurred = int(date_key, "date_ocurred");
    let related_to = match fields.get("related_to") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            let ids: Result<Vec<i64>, String> = items
                .iter()
                .map(|item| match as_integer(item) {
                    Ok(Some(n)) => Ok(n),
                    _ => Err(format!("must be an array of integers; {item} is not one")),
                })
                .collect();
            match ids {
                Ok(ids) => Some(ids),
                Err(message) => {
                    errors.push(FieldError::new("related_to", message));
                    None
                }
            }
        }
        Some(_) => {
            errors.push(FieldError::new(
                "related_to",
                "must be an array of integers",
            ));
            None
        }
    };

    let draft = TicketDraft {
        title,
        description,
        category_id,
        priority_id,
        type_id,
        source_id,
        location_id,
        date_ocurred,
        related_to,
    };
    match NewTicket::parse(draft, attachments, chrono::Utc::now(), limits.leeway) {
        Ok(ticket) if errors.is_empty() => Ok(ticket),
        Ok(_) => Err(ApiError::invalid(sorted(errors))),
        Err(invalid) => {
            // A field with a type error is absent to the domain, which would add "is required".
            for error in invalid.into_errors() {
                if !errors.iter().any(|e| e.field == error.field) {
                    errors.push(error);
                }
            }
            Err(ApiError::invalid(sorted(errors)))
        }
    }
}

fn sorted(mut errors: Vec<FieldError>) -> Vec<FieldError> {
    errors.sort_by_key(|e| {
        FIELD_ORDER
            .iter()
            .position(|f| *f == e.field)
            .unwrap_or(FIELD_ORDER.len())
    });
    errors
}

/// An integer from JSON: a number without fraction, or (as forms send them) a numeric string.
fn as_integer(value: &Value) -> Result<Option<i64>, String> {
    match value {
        Value::Null => Ok(None),
        // JSON has one number type: `2.0` is the integer 2 to JSON Schema, so it is to ticketd.
        Value::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            })
            .map(Some)
            .ok_or_else(|| "must be an integer".to_owned()),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| "must be an integer".to_owned()),
        _ => Err("must be an integer".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bind(value: Value) -> Result<NewTicket, ApiError> {
        let Value::Object(fields) = value else {
            panic!("object expected")
        };
        to_ticket(&fields, vec![], &Limits::default())
    }

    fn invalid_fields(err: ApiError) -> Vec<(String, String)> {
        match err {
            ApiError::InvalidInput { errors, .. } => {
                errors.into_iter().map(|e| (e.field, e.message)).collect()
            }
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn the_go_services_json_binds_with_unknown_and_identity_fields_ignored() {
        let ticket = bind(json!({
            "title": "Screen broken", "description": "Cracked", "category_id": 1, "priority_id": 5,
            "type_id": 6, "source_id": 2, "location_id": 9, "date_ocurred": 1_600_000_000,
            "related_to": [3, 4], "creator_id": 999, "customer_id": 999, "colour": "blue"
        }))
        .expect("binds");
        assert_eq!(ticket.title.as_str(), "Screen broken");
        assert_eq!(
            ticket
                .related_to
                .iter()
                .map(|r| r.get())
                .collect::<Vec<_>>(),
            [3, 4]
        );
        assert_eq!(
            ticket.date_ocurred.map(|d| d.epoch_seconds()),
            Some(1_600_000_000)
        );
    }

    #[test]
    fn date_occurred_is_accepted_as_a_spelling_of_date_ocurred() {
        let ticket = bind(json!({"title": "t", "description": "d", "category_id": 1, "priority_id": 1, "type_id": 1, "date_occurred": 1_600_000_000}))
            .expect("binds");
        assert_eq!(
            ticket.date_ocurred.map(|d| d.epoch_seconds()),
            Some(1_600_000_000)
        );
    }

    #[test]
    fn whole_numbers_written_with_a_fraction_are_integers_and_others_are_not() {
        assert_eq!(as_integer(&json!(2.0)), Ok(Some(2)));
        assert_eq!(as_integer(&json!(-3.0)), Ok(Some(-3)));
        assert!(as_integer(&json!(2.5)).is_err());
        assert!(as_integer(&json!(1.0e300)).is_err());
    }

    #[test]
    fn numbers_sent_as_text_are_read_as_numbers() {
        let ticket = bind(json!({"title": "t", "description": "d", "category_id": "7", "priority_id": " 2 ", "type_id": "1", "related_to": ["5"]}))
            .expect("binds");
        assert_eq!(ticket.category_id.get(), 7);
    }

    #[test]
    fn type_errors_and_rule_errors_are_reported_together_once_per_field_in_order() {
        let errors = invalid_fields(
            bind(json!({"title": 5, "category_id": "x", "priority_id": 9, "type_id": 1.5, "related_to": "3"}))
                .expect_err("invalid"),
        );
        assert_eq!(
            errors,
            [
                ("title".into(), "must be a string".into()),
                ("description".into(), "is required".into()),
                ("category_id".into(), "must be an integer".into()),
                ("priority_id".into(), "must be between 1 and 5".into()),
                ("type_id".into(), "must be an integer".into()),
                ("related_to".into(), "must be an array of integers".into()),
            ]
        );
    }

    #[test]
    fn related_ids_in_a_form_may_repeat_or_be_comma_separated() {
        assert_eq!(split_ids("1, 2,3"), [json!("1"), json!("2"), json!("3")]);
        assert_eq!(split_ids("[4,5]"), [json!(4), json!(5)]);
        assert!(split_ids(" ").is_empty());
    }
}
