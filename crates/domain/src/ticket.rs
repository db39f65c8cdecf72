//! The ticket and its validated parts. Every field type can only be built through `parse`, so a
//! [`NewTicket`] that exists is a ticket InvGate's documented rules accept.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::attachment::Attachment;
use crate::caller::{EmailAddress, InvGateUserId};
use crate::error::{FieldError, InvalidTicket};

/// Longest title InvGate's clients accept (and the Go service enforced), in characters.
pub const TITLE_MAX_CHARS: usize = 255;

/// A ticket title: trimmed, non-blank, at most [`TITLE_MAX_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TicketTitle(String);

impl TicketTitle {
    /// # Errors
    /// A message for the client when the title is blank or too long.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("must not be blank".into());
        }
        let chars = trimmed.chars().count();
        if chars > TITLE_MAX_CHARS {
            return Err(format!(
                "must be at most {TITLE_MAX_CHARS} characters (got {chars})"
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A ticket description: non-blank after trimming; HTML is InvGate's business, not ours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TicketDescription(String);

impl TicketDescription {
    /// # Errors
    /// A message for the client when the description is blank.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("must not be blank".into());
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// This description with `suffix` appended (still non-blank, so still valid).
    #[must_use]
    pub fn with_suffix(&self, suffix: &str) -> Self {
        Self(format!("{}{suffix}", self.0))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! positive_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(i64);

        impl $name {
            /// # Errors
            /// A message for the client when the id is not positive.
            pub fn parse(raw: i64) -> Result<Self, String> {
                if raw > 0 { Ok(Self(raw)) } else { Err("must be a positive integer".into()) }
            }

            #[must_use]
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

positive_id!(
    /// An InvGate category id.
    CategoryId
);
positive_id!(
    /// An InvGate source id (per instance: web, e-mail, API, …).
    SourceId
);
positive_id!(
    /// An InvGate location id.
    LocationId
);
positive_id!(
    /// An InvGate request (incident) id: what InvGate calls `request_id`.
    IncidentId
);

macro_rules! bounded_code {
    ($(#[$doc:meta])* $name:ident, $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(u8);

        impl $name {
            /// # Errors
            /// A message for the client when the code is outside `1..=MAX`.
            pub fn parse(raw: i64) -> Result<Self, String> {
                match u8::try_from(raw) {
                    Ok(v @ 1..=$max) => Ok(Self(v)),
                    _ => Err(concat!("must be between 1 and ", stringify!($max)).into()),
                }
            }

            #[must_use]
            pub fn get(self) -> u8 {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

bounded_code!(
    /// InvGate's fixed priorities: 1 Low, 2 Medium, 3 High, 4 Urgent, 5 Critical.
    PriorityId,
    5
);
bounded_code!(
    /// InvGate's fixed request types: 1 Incident, 2 Service Request, 3 Question, 4 Problem,
    /// 5 Change, 6 Major Incident.
    TicketTypeId,
    6
);

/// When the reported problem happened: not before the epoch, not in the future beyond the leeway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct OccurredAt(DateTime<Utc>);

impl OccurredAt {
    /// Parses epoch seconds, allowing `leeway` of clock skew between the client and us.
    ///
    /// # Errors
    /// A message for the client when the instant is negative, unrepresentable or in the future.
    pub fn parse(epoch_seconds: i64, now: DateTime<Utc>, leeway: Duration) -> Result<Self, String> {
        if epoch_seconds < 0 {
            return Err("must be epoch seconds, not negative".into());
        }
        let at = DateTime::<Utc>::from_timestamp(epoch_seconds, 0)
            .ok_or_else(|| "is not a representable instant".to_owned())?;
        if at > now + leeway {
            return Err("must not be in the future".into());
        }
        Ok(Self(at))
    }

    #[must_use]
    pub fn get(self) -> DateTime<Utc> {
        self.0
    }

    #[must_use]
    pub fn epoch_seconds(self) -> i64 {
        self.0.timestamp()
    }
}

/// The raw fields of a ticket as a client sent them, already typed by the transport (numbers are
/// numbers) but not yet checked. [`NewTicket::parse`] turns it into a ticket or every reason not to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketDraft {
    pub title: Option<String>,
    pub description: Option<String>,
    pub category_id: Option<i64>,
    pub priority_id: Option<i64>,
    pub type_id: Option<i64>,
    pub source_id: Option<i64>,
    pub location_id: Option<i64>,
    pub date_ocurred: Option<i64>,
    pub related_to: Option<Vec<i64>>,
}

/// A ticket that passed every rule, with its files. Identity is not part of it: the creator comes
/// from the caller's token only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTicket {
    pub title: TicketTitle,
    pub description: TicketDescription,
    pub category_id: CategoryId,
    pub priority_id: PriorityId,
    pub type_id: TicketTypeId,
    pub source_id: Option<SourceId>,
    pub location_id: Option<LocationId>,
    pub date_ocurred: Option<OccurredAt>,
    pub related_to: Vec<IncidentId>,
    pub attachments: Vec<Attachment>,
}

impl NewTicket {
    /// Checks every field of `draft` and reports **all** problems at once, so a client fixes its
    /// request in one round trip.
    ///
    /// # Errors
    /// [`InvalidTicket`] listing each bad or missing field.
    pub fn parse(
        draft: TicketDraft,
        attachments: Vec<Attachment>,
        now: DateTime<Utc>,
        leeway: Duration,
    ) -> Result<Self, InvalidTicket> {
        let mut errors = Collector::default();

        let title = errors.check(
            "title",
            required(draft.title.as_deref()).and_then(TicketTitle::parse),
        );
        let description = errors.check(
            "description",
            required(draft.description.as_deref()).and_then(TicketDescription::parse),
        );
        let category_id = errors.check(
            "category_id",
            required(draft.category_id).and_then(CategoryId::parse),
        );
        let priority_id = errors.check(
            "priority_id",
            required(draft.priority_id).and_then(PriorityId::parse),
        );
        let type_id = errors.check(
            "type_id",
            required(draft.type_id).and_then(TicketTypeId::parse),
        );
        let source_id = errors.check(
            "source_id",
            draft.source_id.map(SourceId::parse).transpose(),
        );
        let location_id = errors.check(
            "location_id",
            draft.location_id.map(LocationId::parse).transpose(),
        );
        let date_ocurred = errors.check(
            "date_ocurred",
            draft
                .date_ocurred
                .map(|epoch| OccurredAt::parse(epoch, now, leeway))
                .transpose(),
        );
        let related_to = errors.check(
            "related_to",
            draft
                .related_to
                .unwrap_or_default()
                .into_iter()
                .map(|id| {
                    IncidentId::parse(id)
                        .map_err(|_| format!("contains {id}, which is not a positive integer"))
                })
                .collect::<Result<Vec<_>, _>>(),
        );

        match (
            title,
            description,
            category_id,
            priority_id,
            type_id,
            source_id,
            location_id,
            date_ocurred,
            related_to,
        ) {
            (
                Some(title),
                Some(description),
                Some(category_id),
                Some(priority_id),
                Some(type_id),
                Some(source_id),
                Some(location_id),
                Some(date_ocurred),
                Some(related_to),
            ) if errors.0.is_empty() => Ok(Self {
                title,
                description,
                category_id,
                priority_id,
                type_id,
                source_id,
                location_id,
                date_ocurred,
                related_to,
                attachments,
            }),
            _ => Err(InvalidTicket::new(errors.0)),
        }
    }
}

#[derive(Default)]
struct Collector(Vec<FieldError>);

impl Collector {
    fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        result
            .map_err(|message| self.0.push(FieldError::new(field, message)))
            .ok()
    }
}

fn required<T>(value: Option<T>) -> Result<T, String> {
    value.ok_or_else(|| "is required".to_owned())
}

/// The local record of a ticket InvGate created: everything needed to answer for it later without
/// asking InvGate.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTicket {
    pub id: Uuid,
    /// The operation that created it.
    pub operation_id: Option<crate::operation::OperationId>,
    pub inv_gate_id: IncidentId,
    pub creator_email: EmailAddress,
    pub creator_id: InvGateUserId,
    pub customer_id: InvGateUserId,
    pub ticket: NewTicket,
    pub invgate_response: InvGateAnswer,
    pub created_at: DateTime<Utc>,
}

/// InvGate's answer to the incident it created, as a JSON value and as JSON text of that value,
/// written once: the text is what the caller is answered, what the journal keeps and what the
/// stored copy is read from, so all three are the same bytes and none is serialized again.
#[derive(Debug, Clone, PartialEq)]
pub struct InvGateAnswer {
    value: Value,
    text: String,
}

impl InvGateAnswer {
    /// Writes `value` out, once.
    #[must_use]
    pub fn new(value: Value) -> Self {
        let text = value.to_string();
        Self { value, text }
    }

    /// An answer kept as text (a spooled record's), read back; the text stays as it was.
    ///
    /// # Errors
    /// When `text` is not JSON.
    pub fn parse(text: String) -> Result<Self, serde_json::Error> {
        let value = serde_json::from_str(&text)?;
        Ok(Self { value, text })
    }

    #[must_use]
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The answer as JSON text, whose value is [`Self::value`].
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_700_000_000, 0).expect("valid instant")
    }

    fn valid_draft() -> TicketDraft {
        TicketDraft {
            title: Some("  Printer on fire ".into()),
            description: Some("Third floor".into()),
            category_id: Some(3),
            priority_id: Some(2),
            type_id: Some(1),
            ..TicketDraft::default()
        }
    }

    #[test]
    fn an_invgate_answer_s_text_is_its_value_written_out() {
        let value =
            serde_json::json!({"status": "OK", "request_id": 7, "info": "Request \"created\""});
        let answer = InvGateAnswer::new(value.clone());
        assert_eq!(answer.value(), &value);
        assert_eq!(
            serde_json::from_str::<Value>(answer.text()).expect("JSON text"),
            value
        );
        assert_eq!(answer.text(), value.to_string());
    }

    #[test]
    fn a_valid_draft_becomes_a_ticket_with_a_trimmed_title() {
        let ticket = NewTicket::parse(valid_draft(), vec![], now(), Duration::seconds(60))
            .expect("valid draft");
        assert_eq!(ticket.title.as_str(), "Printer on fire");
        assert_eq!(ticket.priority_id.get(), 2);
        assert!(ticket.related_to.is_empty());
    }

    #[test]
    fn every_invalid_field_is_reported_at_once() {
        let draft = TicketDraft {
            title: Some("   ".into()),
            description: None,
            category_id: Some(0),
            priority_id: Some(6),
            type_id: Some(7),
            source_id: Some(-1),
            location_id: Some(0),
            date_ocurred: Some(now().timestamp() + 3600),
            related_to: Some(vec![5, 0]),
        };
        let err =
            NewTicket::parse(draft, vec![], now(), Duration::seconds(60)).expect_err("invalid");
        let fields: Vec<_> = err.errors().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "title",
                "description",
                "category_id",
                "priority_id",
                "type_id",
                "source_id",
                "location_id",
                "date_ocurred",
                "related_to"
            ]
        );
    }

    #[test]
    fn a_title_of_255_characters_is_accepted_and_256_is_not() {
        let ok = "é".repeat(255);
        assert!(
            TicketTitle::parse(&ok).is_ok(),
            "255 multi-byte characters fit"
        );
        let too_long = "é".repeat(256);
        assert!(TicketTitle::parse(&too_long).is_err());
    }

    #[test]
    fn priority_and_type_accept_exactly_their_documented_ranges() {
        assert!((1..=5).all(|p| PriorityId::parse(p).is_ok()));
        assert!(PriorityId::parse(0).is_err() && PriorityId::parse(6).is_err());
        assert!((1..=6).all(|t| TicketTypeId::parse(t).is_ok()));
        assert!(TicketTypeId::parse(0).is_err() && TicketTypeId::parse(7).is_err());
        assert!(
            PriorityId::parse(i64::from(u8::MAX) + 2).is_err(),
            "no wrap-around"
        );
    }

    #[test]
    fn an_occurrence_inside_the_leeway_is_accepted_but_not_beyond_it() {
        let leeway = Duration::seconds(60);
        assert!(OccurredAt::parse(now().timestamp() + 59, now(), leeway).is_ok());
        assert!(OccurredAt::parse(now().timestamp() + 61, now(), leeway).is_err());
        assert!(OccurredAt::parse(-1, now(), leeway).is_err());
        assert!(OccurredAt::parse(i64::MAX, now(), leeway).is_err());
    }
}
