//! Files that travel with a ticket. The bytes never live in memory: the driving adapter spools each
//! file to local disk while hashing it, and the gateway streams it from there.

use std::path::PathBuf;

use serde::Serialize;

/// Longest file name we pass on, in bytes (the common file-system limit).
pub const NAME_MAX_BYTES: usize = 255;

/// The name given to a file that arrives without a usable one.
pub const FALLBACK_NAME: &str = "attachment";

/// A file name safe to store and to pass to InvGate: no directory part, no control characters,
/// at most [`NAME_MAX_BYTES`] bytes, never empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct AttachmentName(String);

impl AttachmentName {
    /// Sanitizes rather than rejects: clients send whatever their platform produced
    /// (`C:\Users\me\scan.pdf`), and the file is still worth keeping.
    #[must_use]
    pub fn sanitize(raw: &str) -> Self {
        let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
        let cleaned: String = base.chars().filter(|c| !c.is_control()).collect();
        let trimmed = cleaned.trim();
        if trimmed.is_empty() || trimmed == "." || trimmed == ".." {
            return Self(FALLBACK_NAME.to_owned());
        }
        Self(truncate_to_bytes(trimmed, NAME_MAX_BYTES).to_owned())
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn truncate_to_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A lower-case hex SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Sha256Hex(String);

impl Sha256Hex {
    /// # Errors
    /// Returns the input back when it is not 64 lower-case hex digits.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.len() == 64 && raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(raw.to_owned())
        }
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One file of a ticket: its metadata and where its bytes wait on local disk. Whoever spooled the
/// file owns its lifetime and removes it once the request is over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    pub name: AttachmentName,
    pub content_type: String,
    pub size: u64,
    pub sha256: Sha256Hex,
    #[serde(skip)]
    pub path: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_parts_are_removed_from_names_of_either_platform() {
        assert_eq!(
            AttachmentName::sanitize("../../etc/passwd").as_str(),
            "passwd"
        );
        assert_eq!(
            AttachmentName::sanitize(r"C:\Users\me\scan.pdf").as_str(),
            "scan.pdf"
        );
    }

    #[test]
    fn control_characters_are_dropped_and_empty_names_get_a_fallback() {
        assert_eq!(
            AttachmentName::sanitize("re\u{0}port\n.txt").as_str(),
            "report.txt"
        );
        for empty in ["", "  ", "dir/", "..", "\u{7}"] {
            assert_eq!(
                AttachmentName::sanitize(empty).as_str(),
                FALLBACK_NAME,
                "{empty:?}"
            );
        }
    }

    #[test]
    fn long_names_are_cut_on_a_character_boundary() {
        let name = AttachmentName::sanitize(&"日".repeat(100));
        assert!(name.as_str().len() <= NAME_MAX_BYTES);
        assert_eq!(
            name.as_str().chars().count(),
            85,
            "3-byte characters, 255 bytes"
        );
    }

    #[test]
    fn non_ascii_names_survive() {
        assert_eq!(
            AttachmentName::sanitize("отчёт 📎.pdf").as_str(),
            "отчёт 📎.pdf"
        );
    }

    #[test]
    fn sha256_accepts_only_lower_case_hex_of_the_right_length() {
        assert!(Sha256Hex::parse(&"a".repeat(64)).is_ok());
        assert!(Sha256Hex::parse(&"A".repeat(64)).is_err());
        assert!(Sha256Hex::parse("abc").is_err());
    }
}
