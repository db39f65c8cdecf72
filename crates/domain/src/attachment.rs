//! Files that travel with a ticket. The bytes never live in memory: the driving adapter spools each
//! file to local disk while hashing it, and the gateway streams it from there.

use std::path::PathBuf;

use serde::Serialize;
use unicode_normalization::UnicodeNormalization;

/// Longest file name we pass on, in bytes (the common file-system limit).
pub const NAME_MAX_BYTES: usize = 255;

/// The name given to a file that arrives without a usable one.
pub const FALLBACK_NAME: &str = "attachment";

/// Longest extension kept whole when a long name is shortened.
const EXTENSION_MAX_BYTES: usize = 16;

/// A file name safe to store and to pass to InvGate: Unicode NFC, no directory part, no control
/// or invisible direction-changing characters, no leading dot, not a Windows device name, at most
/// [`NAME_MAX_BYTES`] bytes, never empty. Letters of any script and emoji are kept as they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct AttachmentName(String);

impl AttachmentName {
    /// Sanitizes rather than rejects: clients send whatever their platform produced
    /// (`C:\Users\me\scan.pdf`), and the file is still worth keeping.
    #[must_use]
    pub fn sanitize(raw: &str) -> Self {
        // NFC first: the same name typed on macOS (decomposed) and Windows (composed) is one name.
        let composed: String = raw.nfc().collect();
        let base = composed.rsplit(['/', '\\']).next().unwrap_or_default();
        let cleaned: String = base.chars().filter(|c| !is_hidden_or_control(*c)).collect();
        // Leading dots make hidden files (and `..`); trailing dots and spaces vanish on Windows.
        let trimmed = cleaned
            .trim_start_matches(|c: char| c == '.' || c.is_whitespace())
            .trim_end_matches(|c: char| c == '.' || c.is_whitespace());
        if trimmed.is_empty() {
            return Self(FALLBACK_NAME.to_owned());
        }
        let name = if is_windows_device_name(trimmed) {
            format!("_{trimmed}")
        } else {
            trimmed.to_owned()
        };
        Self(shorten(&name))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Control characters, and the invisible format characters used to disguise names
/// (`invoice\u{202E}fdp.exe` shows as `invoiceexe.pdf`).
fn is_hidden_or_control(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

/// `CON`, `NUL`, `COM1`, … (with any extension) cannot be created on Windows.
fn is_windows_device_name(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or(name).trim_end();
    let upper = stem.to_ascii_uppercase();
    matches!(upper.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((upper.starts_with("COM") || upper.starts_with("LPT"))
            && upper.len() == 4
            && upper.as_bytes()[3].is_ascii_digit())
}

/// Cuts a name to [`NAME_MAX_BYTES`] on a character boundary, keeping a short extension.
fn shorten(name: &str) -> String {
    if name.len() <= NAME_MAX_BYTES {
        return name.to_owned();
    }
    if let Some((stem, extension)) = name.rsplit_once('.')
        && !stem.is_empty()
        && extension.len() < EXTENSION_MAX_BYTES
    {
        let stem = truncate_to_bytes(stem, NAME_MAX_BYTES - extension.len() - 1);
        return format!("{}.{extension}", stem.trim_end());
    }
    truncate_to_bytes(name, NAME_MAX_BYTES)
        .trim_end_matches(|c: char| c == '.' || c.is_whitespace())
        .to_owned()
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
        for empty in ["", "  ", "dir/", "..", "\u{7}", "...", ". ."] {
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
    fn names_are_composed_and_stripped_of_hidden_direction_marks_and_leading_dots() {
        // "é" as e + combining acute becomes the single code point.
        assert_eq!(
            AttachmentName::sanitize("cafe\u{301}.txt").as_str(),
            "caf\u{e9}.txt"
        );
        assert_eq!(
            AttachmentName::sanitize("invoice\u{202E}fdp.exe").as_str(),
            "invoicefdp.exe"
        );
        assert_eq!(AttachmentName::sanitize(".bashrc").as_str(), "bashrc");
        assert_eq!(AttachmentName::sanitize("..\u{200B}.env").as_str(), "env");
        assert_eq!(AttachmentName::sanitize("report. . ").as_str(), "report");
    }

    #[test]
    fn windows_device_names_are_prefixed() {
        assert_eq!(AttachmentName::sanitize("CON").as_str(), "_CON");
        assert_eq!(AttachmentName::sanitize("nul.txt").as_str(), "_nul.txt");
        assert_eq!(AttachmentName::sanitize("com1.log").as_str(), "_com1.log");
        assert_eq!(
            AttachmentName::sanitize("console.txt").as_str(),
            "console.txt"
        );
    }

    #[test]
    fn a_long_name_keeps_its_extension() {
        let name = AttachmentName::sanitize(&format!("{}.pdf", "a".repeat(300)));
        assert_eq!(name.as_str().len(), NAME_MAX_BYTES);
        assert!(name.as_str().ends_with("a.pdf"));
    }

    #[test]
    fn non_ascii_names_survive() {
        assert_eq!(
            AttachmentName::sanitize("отчёт 📎.pdf").as_str(),
            "отчёт 📎.pdf"
        );
        for name in ["報告書.pdf", "تقرير.docx", "😀 scan.png", "Ünïcödé.txt"] {
            assert_eq!(AttachmentName::sanitize(name).as_str(), name);
        }
    }

    #[test]
    fn sha256_accepts_only_lower_case_hex_of_the_right_length() {
        assert!(Sha256Hex::parse(&"a".repeat(64)).is_ok());
        assert!(Sha256Hex::parse(&"A".repeat(64)).is_err());
        assert!(Sha256Hex::parse("abc").is_err());
    }
}
