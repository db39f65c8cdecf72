//! The read side: a caller's own tickets from the local mirror, each kept current with InvGate's
//! state (status, last update, solved and closed times) by reads and a background sync.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::ticket::IncidentId;

/// Most tickets one page may hold.
pub const MAX_PAGE_SIZE: u32 = 100;

/// Tickets a page holds when the caller does not say.
pub const DEFAULT_PAGE_SIZE: u32 = 20;

/// InvGate's view of where a ticket stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IncidentStatus {
    pub status_id: Option<i64>,
    pub last_update: Option<DateTime<Utc>>,
    pub solved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
}

impl IncidentStatus {
    /// Reads the status fields of a `GET incident` answer. InvGate sends dates as epoch seconds,
    /// as numbers or numeric strings; anything else is taken as absent.
    #[must_use]
    pub fn from_incident(incident: &Value) -> Self {
        let int = |key: &str| match incident.get(key) {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        let instant = |key: &str| {
            int(key)
                .filter(|secs| *secs > 0)
                .and_then(|secs| DateTime::<Utc>::from_timestamp(secs, 0))
        };
        Self {
            status_id: int("status_id"),
            last_update: instant("last_update"),
            solved_at: instant("solved_at"),
            closed_at: instant("closed_at"),
        }
    }
}

/// One of the caller's tickets as ticketd knows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TicketView {
    /// ticketd's own id.
    pub id: Uuid,
    pub inv_gate_id: IncidentId,
    pub title: String,
    pub description: String,
    pub category_id: i64,
    pub priority_id: i64,
    pub type_id: i64,
    pub source_id: Option<i64>,
    pub location_id: Option<i64>,
    pub date_ocurred: Option<DateTime<Utc>>,
    pub related_to: Vec<i64>,
    /// `[{name, size, content_type, sha256}]`.
    pub attachments: Value,
    pub created_at: DateTime<Utc>,
    #[serde(flatten)]
    pub status: IncidentStatus,
    /// When the status fields were last read from InvGate; `None` since creation.
    pub status_synced_at: Option<DateTime<Utc>>,
}

/// Where a page starts: after the ticket with this creation time and id (newest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageCursor {
    pub created_at: DateTime<Utc>,
    pub inv_gate_id: i64,
}

impl PageCursor {
    #[must_use]
    pub fn after(ticket: &TicketView) -> Self {
        Self {
            created_at: ticket.created_at,
            inv_gate_id: ticket.inv_gate_id.get(),
        }
    }

    /// The opaque text clients pass back.
    #[must_use]
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{}.{}",
            self.created_at.timestamp_micros(),
            self.inv_gate_id
        ))
    }

    /// # Errors
    /// A message for the client when the text is not a cursor ticketd gave out.
    pub fn decode(raw: &str) -> Result<Self, String> {
        let invalid = || "is not a cursor from a previous page".to_owned();
        let bytes = URL_SAFE_NO_PAD.decode(raw.trim()).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (micros, id) = text.split_once('.').ok_or_else(invalid)?;
        let created_at = micros
            .parse::<i64>()
            .ok()
            .and_then(DateTime::<Utc>::from_timestamp_micros)
            .ok_or_else(invalid)?;
        let inv_gate_id = id.parse::<i64>().map_err(|_| invalid())?;
        Ok(Self {
            created_at,
            inv_gate_id,
        })
    }
}

/// Which page of the caller's tickets to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketPage {
    /// 1 to [`MAX_PAGE_SIZE`].
    pub limit: u32,
    pub after: Option<PageCursor>,
    pub status_id: Option<i64>,
}

impl TicketPage {
    /// # Errors
    /// A message for the client when the limit is outside `1..=100`.
    pub fn new(
        limit: Option<u32>,
        after: Option<PageCursor>,
        status_id: Option<i64>,
    ) -> Result<Self, String> {
        let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&limit) {
            return Err(format!("must be between 1 and {MAX_PAGE_SIZE}"));
        }
        Ok(Self {
            limit,
            after,
            status_id,
        })
    }
}

/// A page of tickets and where the next one starts.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketList {
    pub tickets: Vec<TicketView>,
    pub next: Option<PageCursor>,
}

/// One ticket, and whether its status could be refreshed from InvGate just now.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketDetail {
    pub ticket: TicketView,
    /// InvGate could not be asked: the status is as of `status_synced_at`.
    pub stale: bool,
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadTicketsError {
    #[error("the ticket store is unavailable")]
    StoreUnavailable(#[source] anyhow::Error),
}

/// The local store failed.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ReadStoreError(pub anyhow::Error);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_cursor_survives_the_round_trip_and_garbage_is_refused() {
        let cursor = PageCursor {
            created_at: DateTime::<Utc>::from_timestamp_micros(1_700_000_000_123_456)
                .expect("instant"),
            inv_gate_id: 1864,
        };
        assert_eq!(PageCursor::decode(&cursor.encode()), Ok(cursor));
        for garbage in ["", "!!!", "bm90LWEtY3Vyc29y", "MTIzLmFiYw"] {
            assert!(PageCursor::decode(garbage).is_err(), "{garbage:?}");
        }
    }

    #[test]
    fn status_fields_are_read_from_numbers_or_numeric_strings() {
        let status = IncidentStatus::from_incident(&json!({
            "status_id": "5", "last_update": 1_700_000_000, "solved_at": "1700000100",
            "closed_at": null
        }));
        assert_eq!(status.status_id, Some(5));
        assert_eq!(
            status.last_update.map(|d| d.timestamp()),
            Some(1_700_000_000)
        );
        assert_eq!(status.solved_at.map(|d| d.timestamp()), Some(1_700_000_100));
        assert_eq!(status.closed_at, None);
        assert_eq!(
            IncidentStatus::from_incident(&json!("x")),
            IncidentStatus::default()
        );
    }

    #[test]
    fn a_page_holds_1_to_100_tickets() {
        assert_eq!(TicketPage::new(None, None, None).map(|p| p.limit), Ok(20));
        assert!(TicketPage::new(Some(0), None, None).is_err());
        assert!(TicketPage::new(Some(101), None, None).is_err());
        assert!(TicketPage::new(Some(100), None, None).is_ok());
    }
}
