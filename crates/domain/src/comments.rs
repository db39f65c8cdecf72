//! Comments on a ticket (what the service desk and the caller wrote to each other), and the
//! reference data clients need to fill in a ticket.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::attachment::Attachment;

/// Longest comment accepted, in characters.
pub const COMMENT_MAX_CHARS: usize = 20_000;

/// A comment's text: non-blank after trimming, at most [`COMMENT_MAX_CHARS`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct CommentText(String);

impl CommentText {
    /// # Errors
    /// A message for the client when the text is blank or too long.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("must not be blank".into());
        }
        let chars = trimmed.chars().count();
        if chars > COMMENT_MAX_CHARS {
            return Err(format!(
                "must be at most {COMMENT_MAX_CHARS} characters (got {chars})"
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A comment the caller adds, with its files (spooled on disk by the driving adapter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewComment {
    pub text: CommentText,
    pub attachments: Vec<Attachment>,
}

/// A file attached to a comment, as InvGate lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommentFile {
    pub id: i64,
    pub name: String,
}

/// A comment as the caller may see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Comment {
    pub id: i64,
    pub author_id: Option<i64>,
    pub comment: String,
    pub created_at: Option<DateTime<Utc>>,
    pub is_solution: bool,
    pub attachments: Vec<CommentFile>,
    /// Internal notes of the service desk are not the caller's to read.
    #[serde(skip)]
    pub customer_visible: bool,
}

impl Comment {
    /// Reads one entry of a `GET incident.comment` answer; `None` when it has no id.
    #[must_use]
    pub fn from_invgate(entry: &Value) -> Option<Self> {
        let int = |value: Option<&Value>| match value {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        let flag = |key: &str| match entry.get(key) {
            Some(Value::Bool(b)) => *b,
            Some(v) => int(Some(v)).is_some_and(|n| n != 0),
            None => false,
        };
        let attachments = entry
            .get("attached_files")
            .and_then(Value::as_array)
            .map(|files| {
                files
                    .iter()
                    .filter_map(|file| {
                        Some(CommentFile {
                            id: int(file.get("id"))?,
                            name: file
                                .get("name")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_owned(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Self {
            id: int(entry.get("id"))?,
            author_id: int(entry.get("author_id")),
            comment: entry
                .get("comment")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            created_at: int(entry.get("created_at"))
                .filter(|s| *s > 0)
                .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0)),
            is_solution: flag("is_solution"),
            attachments,
            customer_visible: flag("customer_visible"),
        })
    }
}

/// An entry of a reference list (priorities, types, statuses, sources, categories).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reference {
    pub id: i64,
    pub name: String,
    /// Categories only: the parent category.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<i64>,
}

/// Everything a client needs to fill in a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TicketMeta {
    pub priorities: Vec<Reference>,
    pub types: Vec<Reference>,
    pub statuses: Vec<Reference>,
    pub sources: Vec<Reference>,
    pub categories: Vec<Reference>,
}

/// The reference lists InvGate has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReferenceList {
    Priorities,
    Types,
    Statuses,
    Sources,
    Categories,
}

/// Why a comment or reference read or write failed.
#[derive(Debug, thiserror::Error)]
pub enum CommentsError {
    #[error("the ticket store is unavailable")]
    StoreUnavailable(#[source] anyhow::Error),
    #[error("no InvGate user has the caller's e-mail address")]
    UserNotProvisioned,
    #[error("InvGate failed: {0}")]
    Upstream(#[from] crate::error::GatewayError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_comment_is_read_from_invgates_spellings() {
        let comment = Comment::from_invgate(&json!({
            "id": "5", "author_id": 42, "comment": "Rebooted it", "created_at": 1_700_000_000,
            "customer_visible": "1", "is_solution": 0,
            "attached_files": [{"id": 9, "name": "log.txt", "url": "http://x"}, {"name": "no id"}]
        }))
        .expect("comment");
        assert_eq!(comment.id, 5);
        assert!(comment.customer_visible && !comment.is_solution);
        assert_eq!(
            comment.attachments,
            [CommentFile {
                id: 9,
                name: "log.txt".into()
            }]
        );
        assert!(Comment::from_invgate(&json!({"comment": "no id"})).is_none());
    }

    #[test]
    fn a_comment_is_not_blank_nor_endless() {
        assert_eq!(
            CommentText::parse("  ok ").map(|c| c.as_str().to_owned()),
            Ok("ok".into())
        );
        assert!(CommentText::parse(" \n ").is_err());
        assert!(CommentText::parse(&"x".repeat(COMMENT_MAX_CHARS + 1)).is_err());
    }
}
