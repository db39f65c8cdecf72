//! Operations: the journal entry of every create, which makes creation exactly-once. InvGate has
//! no idempotency key and no delete, so ticketd records each create before calling InvGate, marks
//! the incident with the operation's id, and moves the operation to its outcome afterwards.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::attachment::{Attachment, AttachmentName, Sha256Hex};
use crate::caller::{EmailAddress, InvGateUserId};
use crate::error::{FieldError, InvalidTicket};
use crate::ticket::{IncidentId, NewTicket, TicketDraft};

/// Longest `Idempotency-Key` accepted.
pub const IDEMPOTENCY_KEY_MAX: usize = 255;

/// A client's `Idempotency-Key`: 1 to 255 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// # Errors
    /// A message for the client when the key is empty, too long or not printable ASCII.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() || raw.len() > IDEMPOTENCY_KEY_MAX {
            return Err(format!("must be 1 to {IDEMPOTENCY_KEY_MAX} characters"));
        }
        if !raw.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err("must be printable ASCII".into());
        }
        Ok(Self(raw.to_owned()))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The id of one create operation; travels to InvGate inside the incident (see [`MarkerTemplate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OperationId(Uuid);

impl OperationId {
    /// A new, time-ordered id.
    #[must_use]
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    #[must_use]
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    #[must_use]
    pub fn get(self) -> Uuid {
        self.0
    }
}

impl Default for OperationId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for OperationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// How the operation id is written into the incident's description, so a reconciler can find an
/// incident whose creation answer never arrived. `{id}` is replaced by the operation id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerTemplate(String);

impl MarkerTemplate {
    /// The default: a plain-text line at the end of the description.
    pub const DEFAULT: &'static str = "\n\n[ticketd:{id}]";

    /// # Errors
    /// When the template lacks `{id}`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.contains("{id}") {
            Ok(Self(raw.to_owned()))
        } else {
            Err("must contain {id}".into())
        }
    }

    #[must_use]
    pub fn render(&self, id: OperationId) -> String {
        self.0.replace("{id}", &id.to_string())
    }

    /// Whether `description` carries the marker of `id`. Matches on the id alone, since InvGate
    /// may re-format the text around it (HTML escaping, whitespace).
    #[must_use]
    pub fn is_in(&self, description: &str, id: OperationId) -> bool {
        description.contains(&id.to_string())
    }
}

impl Default for MarkerTemplate {
    fn default() -> Self {
        Self(Self::DEFAULT.to_owned())
    }
}

/// What identifies "the same request": every ticket field plus each attachment's SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fingerprint(String);

impl Fingerprint {
    #[must_use]
    pub fn of(ticket: &NewTicket) -> Self {
        let snapshot = TicketSnapshot::from(ticket);
        let canonical = serde_json::json!([
            snapshot.title,
            snapshot.description,
            snapshot.category_id,
            snapshot.priority_id,
            snapshot.type_id,
            snapshot.source_id,
            snapshot.location_id,
            snapshot.date_ocurred,
            snapshot.related_to,
            snapshot
                .attachments
                .iter()
                .map(|a| &a.sha256)
                .collect::<Vec<_>>(),
        ]);
        Self(hex::encode(Sha256::digest(
            canonical.to_string().as_bytes(),
        )))
    }

    #[must_use]
    pub fn from_stored(raw: String) -> Self {
        Self(raw)
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A file's metadata as kept with an operation (never the bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentSnapshot {
    pub name: String,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
}

/// The ticket as the journal keeps it: enough to store the local record of an incident whose
/// creation answer was lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketSnapshot {
    pub title: String,
    pub description: String,
    pub category_id: i64,
    pub priority_id: i64,
    pub type_id: i64,
    pub source_id: Option<i64>,
    pub location_id: Option<i64>,
    pub date_ocurred: Option<i64>,
    pub related_to: Vec<i64>,
    pub attachments: Vec<AttachmentSnapshot>,
}

impl From<&NewTicket> for TicketSnapshot {
    fn from(t: &NewTicket) -> Self {
        Self {
            title: t.title.as_str().to_owned(),
            description: t.description.as_str().to_owned(),
            category_id: t.category_id.get(),
            priority_id: i64::from(t.priority_id.get()),
            type_id: i64::from(t.type_id.get()),
            source_id: t.source_id.map(|s| s.get()),
            location_id: t.location_id.map(|l| l.get()),
            date_ocurred: t.date_ocurred.map(|d| d.epoch_seconds()),
            related_to: t.related_to.iter().map(|r| r.get()).collect(),
            attachments: t
                .attachments
                .iter()
                .map(|a| AttachmentSnapshot {
                    name: a.name.as_str().to_owned(),
                    content_type: a.content_type.clone(),
                    size: a.size,
                    sha256: a.sha256.as_str().to_owned(),
                })
                .collect(),
        }
    }
}

impl TicketSnapshot {
    /// The ticket again, with file metadata but no file contents.
    ///
    /// # Errors
    /// When the snapshot no longer passes the ticket's rules (a corrupted journal).
    pub fn to_ticket(&self) -> Result<NewTicket, InvalidTicket> {
        let draft = TicketDraft {
            title: Some(self.title.clone()),
            description: Some(self.description.clone()),
            category_id: Some(self.category_id),
            priority_id: Some(self.priority_id),
            type_id: Some(self.type_id),
            source_id: self.source_id,
            location_id: self.location_id,
            date_ocurred: self.date_ocurred,
            related_to: Some(self.related_to.clone()),
        };
        let attachments = self
            .attachments
            .iter()
            .map(|a| {
                Ok(Attachment {
                    name: AttachmentName::sanitize(&a.name),
                    content_type: a.content_type.clone(),
                    size: a.size,
                    sha256: Sha256Hex::parse(&a.sha256).map_err(|_| {
                        InvalidTicket::new(vec![FieldError::new(
                            "attachments",
                            "has an invalid sha256",
                        )])
                    })?,
                    path: std::path::PathBuf::new(),
                })
            })
            .collect::<Result<Vec<_>, InvalidTicket>>()?;
        // The occurrence date was checked against the clock when the ticket arrived.
        NewTicket::parse(
            draft,
            attachments,
            chrono::DateTime::<chrono::Utc>::MAX_UTC,
            chrono::Duration::zero(),
        )
    }
}

/// Where an operation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationState {
    /// InvGate is being called.
    InFlight,
    /// The call may have reached InvGate but no usable answer came; the reconciler decides.
    InDoubt,
    /// Accepted while InvGate was unavailable; a worker will create it.
    Queued,
    Succeeded,
    Failed,
}

impl OperationState {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InFlight => "in_flight",
            Self::InDoubt => "in_doubt",
            Self::Queued => "queued",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    /// # Errors
    /// The unknown text back.
    pub fn parse(raw: &str) -> Result<Self, String> {
        Ok(match raw {
            "in_flight" => Self::InFlight,
            "in_doubt" => Self::InDoubt,
            "queued" => Self::Queued,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            other => return Err(other.to_owned()),
        })
    }
}

/// The first answer of an operation, kept to be replayed to retries with the same key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StoredAnswer {
    /// 201 with this exact body.
    Created { inv_gate_id: i64, body: String },
    /// 422: InvGate refused the ticket, with this message.
    Rejected { message: String },
}

/// An operation as the journal holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub id: OperationId,
    pub state: OperationState,
    pub fingerprint: Fingerprint,
    /// `true` for a failure that certainly created nothing: the key may be used again.
    pub retryable: bool,
    pub answer: Option<StoredAnswer>,
    /// The `X-Request-Id` of the request that started it.
    pub request_id: String,
    /// The caller's InvGate user; `None` for a ticket queued before it could be looked up.
    pub requester: Option<InvGateUserId>,
    pub caller: String,
    pub ticket: TicketSnapshot,
    pub inv_gate_id: Option<IncidentId>,
    pub reason: Option<String>,
    /// It was queued at some point: its files are kept with it, and an interrupted attempt goes
    /// back to the queue.
    pub was_queued: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When the current attempt started: InvGate may have created the incident from then on.
    pub attempt_started_at: chrono::DateTime<chrono::Utc>,
}

/// A create about to call InvGate.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOperation {
    pub id: OperationId,
    pub caller: EmailAddress,
    pub key: Option<IdempotencyKey>,
    pub fingerprint: Fingerprint,
    pub request_id: String,
    pub requester: Option<InvGateUserId>,
    pub ticket: TicketSnapshot,
    /// How long this instance owns the operation before others may consider it abandoned.
    pub lease: Duration,
    pub state: OperationState,
}

/// What starting an operation found.
#[derive(Debug, Clone, PartialEq)]
pub enum Begun {
    /// The operation is new and ours.
    Started,
    /// The caller already used this key: here is that operation.
    Existing(Box<Operation>),
}

/// Files of a queued ticket, brought back to local disk for sending. Whatever holds them on disk is
/// released (and the files removed) when this is dropped.
pub struct LoadedFiles {
    pub attachments: Vec<crate::attachment::Attachment>,
    pub guard: Box<dyn Send + Sync>,
}

impl std::fmt::Debug for LoadedFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedFiles")
            .field("attachments", &self.attachments)
            .finish_non_exhaustive()
    }
}

/// An incident as InvGate's list endpoints show it: enough to recognise an operation's marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentSummary {
    pub id: IncidentId,
    pub description: String,
}

/// How an operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationFailure {
    /// Nothing was created: the key may be used again.
    pub retryable: bool,
    /// The answer to replay, for final failures.
    pub answer: Option<StoredAnswer>,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_printable_ascii_up_to_255_characters() {
        assert!(IdempotencyKey::parse("a").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse("with space and ~!").is_ok());
        for bad in [
            String::new(),
            "k".repeat(256),
            "tab\there".into(),
            "é".into(),
            "nl\n".into(),
        ] {
            assert!(IdempotencyKey::parse(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_marker_renders_the_id_and_is_found_again() {
        let id = OperationId::new();
        let marker = MarkerTemplate::default();
        let text = format!("My printer{}", marker.render(id));
        assert!(text.ends_with(&format!("[ticketd:{id}]")));
        assert!(marker.is_in(&text, id));
        assert!(!marker.is_in(&text, OperationId::new()));
        assert!(MarkerTemplate::parse("no placeholder").is_err());
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for state in [
            OperationState::InFlight,
            OperationState::InDoubt,
            OperationState::Queued,
            OperationState::Succeeded,
            OperationState::Failed,
        ] {
            assert_eq!(OperationState::parse(state.as_str()), Ok(state));
        }
        assert!(OperationState::parse("nope").is_err());
    }
}
