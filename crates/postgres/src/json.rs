//! JSON bound as a `jsonb` parameter straight from its text.
//!
//! diesel binds a `jsonb` parameter from a `serde_json::Value`, so a value serialized from one of
//! our own types went through a `Value` first: a tree of maps and strings built, written out and
//! dropped, for each of the three `jsonb` columns a ticket writes (the journal's snapshot, its
//! answer, the attachments' metadata). [`JsonText`] writes the type's JSON once, and sends it as
//! it is.

use std::io::Write;

use diesel::pg::Pg;
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Jsonb;
use serde::Serialize;
use ticketd_domain::InvGateAnswer;

/// JSON text for a `jsonb` parameter. Made only by serializing a value, so it is always JSON.
/// (The journal's and the repository's tests read every such column back.)
#[derive(Debug, Clone, PartialEq, Eq, diesel::expression::AsExpression)]
#[diesel(sql_type = Jsonb)]
pub(crate) struct JsonText(String);

impl JsonText {
    /// `value`'s JSON.
    pub(crate) fn of<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Self> {
        serde_json::to_string(value).map(Self)
    }
}

/// JSON text already written, borrowed for a `jsonb` parameter: InvGate's answer, which the
/// domain keeps as the text it answered with ([`InvGateAnswer`]), always JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, diesel::expression::AsExpression)]
#[diesel(sql_type = Jsonb)]
pub(crate) struct JsonStr<'a>(&'a str);

impl<'a> JsonStr<'a> {
    pub(crate) fn answer(answer: &'a InvGateAnswer) -> Self {
        Self(answer.text())
    }
}

impl ToSql<Jsonb, Pg> for JsonStr<'_> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        write_jsonb(self.0, out)
    }
}

/// The version of `jsonb`'s binary format, the one byte in front of the text (PostgreSQL's
/// `jsonb_send`/`jsonb_recv`; the text is then parsed by the server as in `'…'::jsonb`).
const JSONB_FORMAT_VERSION: u8 = 1;

/// Writes JSON text as a `jsonb` parameter in its binary format.
fn write_jsonb(json: &str, out: &mut Output<'_, '_, Pg>) -> serialize::Result {
    out.write_all(&[JSONB_FORMAT_VERSION])?;
    out.write_all(json.as_bytes())?;
    Ok(IsNull::No)
}

impl ToSql<Jsonb, Pg> for JsonText {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        write_jsonb(&self.0, out)
    }
}
