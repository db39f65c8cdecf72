//! What an uploaded file really is: its type sniffed from its first bytes (never taken from the
//! client's word), checked against an allow-list, against its name, and against the type the
//! client declared. A file that is refused, or whose declared type lies, is answered 415.

use std::fmt;

/// How many leading bytes are sniffed. Office formats are recognised inside this window; a
/// larger one buys little and is held per upload.
pub const SNIFF_BYTES: usize = 8 * 1024;

/// The families files are allowed or refused by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    Image,
    Pdf,
    Office,
    Text,
    Archive,
    Audio,
    Video,
    /// Native code, installers, bytecode: never allowed.
    Executable,
    /// Interpreted programs (shebang lines, script file names): never allowed.
    Script,
    /// HTML, SVG and XML, which run script when opened in a browser.
    Markup,
    /// Recognised but in none of the families above (fonts, databases, …), or not recognised.
    Other,
}

impl Category {
    const NAMED: [(&'static str, Category); 9] = [
        ("image", Self::Image),
        ("pdf", Self::Pdf),
        ("office", Self::Office),
        ("text", Self::Text),
        ("archive", Self::Archive),
        ("audio", Self::Audio),
        ("video", Self::Video),
        ("markup", Self::Markup),
        ("other", Self::Other),
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Image => "an image",
            Self::Pdf => "a PDF document",
            Self::Office => "an office document",
            Self::Text => "text",
            Self::Archive => "an archive",
            Self::Audio => "audio",
            Self::Video => "video",
            Self::Executable => "an executable",
            Self::Script => "a script",
            Self::Markup => "markup (HTML, SVG or XML)",
            Self::Other => "of an unrecognised type",
        }
    }
}

/// The families of files a ticket may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentPolicy {
    allowed: Vec<Category>,
}

impl Default for AttachmentPolicy {
    /// Images, PDF, office documents, plain text and archives.
    fn default() -> Self {
        Self {
            allowed: vec![
                Category::Image,
                Category::Pdf,
                Category::Office,
                Category::Text,
                Category::Archive,
            ],
        }
    }
}

impl AttachmentPolicy {
    /// Parses a comma-separated list of families (`image,pdf,office,text,archive,audio,video,
    /// markup,other`). Executables and scripts cannot be allowed.
    ///
    /// # Errors
    /// A message naming the first unknown or forbidden family.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut allowed = Vec::new();
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let item = item.to_ascii_lowercase();
            let Some((_, category)) = Category::NAMED.iter().find(|(n, _)| *n == item) else {
                return Err(format!(
                    "{item:?} is not a file family; use image, pdf, office, text, archive, audio, video, markup or other (executables and scripts are never allowed)"
                ));
            };
            if !allowed.contains(category) {
                allowed.push(*category);
            }
        }
        if allowed.is_empty() {
            return Err("names no file family".into());
        }
        Ok(Self { allowed })
    }

    fn allows(&self, category: Category) -> bool {
        self.allowed.contains(&category)
    }
}

/// Why a file is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Its content is of a family not allowed.
    NotAllowed(Category),
    /// Its name marks it as something that runs (`.exe`, `.js`, `.sh`, …).
    ExecutableName(String),
    /// The declared type is of another family than the content.
    Mislabelled { declared: String, actual: Category },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAllowed(category) => {
                write!(f, "is {}, which is not accepted", category.name())
            }
            Self::ExecutableName(extension) => {
                write!(
                    f,
                    "has a name ending in .{extension}, which is not accepted"
                )
            }
            Self::Mislabelled { declared, actual } => write!(
                f,
                "is declared as {declared} but its content is {}",
                actual.name()
            ),
        }
    }
}

/// File name extensions of things that run when opened, whatever their bytes look like.
// Also shortcuts that open something else (`.url`, `.lnk`), macro-enabled office files
// (`.docm`, …) and markup that runs script in a browser (`.html`, `.svg`, `.xml`).
const EXECUTABLE_EXTENSIONS: &[&str] = &[
    "exe",
    "dll",
    "com",
    "scr",
    "pif",
    "cpl",
    "msi",
    "msp",
    "msc",
    "msix",
    "msixbundle",
    "appx",
    "appxbundle",
    "bat",
    "cmd",
    "ps1",
    "psm1",
    "psd1",
    "vb",
    "vbs",
    "vbe",
    "js",
    "jse",
    "mjs",
    "ws",
    "wsf",
    "wsh",
    "wsc",
    "sct",
    "hta",
    "lnk",
    "url",
    "website",
    "reg",
    "inf",
    "scf",
    "jar",
    "jnlp",
    "apk",
    "app",
    "application",
    "xbap",
    "gadget",
    "dmg",
    "pkg",
    "deb",
    "rpm",
    "sh",
    "bash",
    "zsh",
    "ksh",
    "csh",
    "command",
    "desktop",
    "py",
    "pyw",
    "pl",
    "rb",
    "php",
    "elf",
    "so",
    "dylib",
    "iso",
    "img",
    "vhd",
    "vhdx",
    "chm",
    "hlp",
    "library-ms",
    "settingcontent-ms",
    "docm",
    "dotm",
    "xlsm",
    "xltm",
    "xlam",
    "xll",
    "pptm",
    "potm",
    "ppsm",
    "ppam",
    "sldm",
    "html",
    "htm",
    "xhtml",
    "xht",
    "shtml",
    "mht",
    "mhtml",
    "svg",
    "svgz",
    "xml",
    "xsl",
    "xslt",
];

/// A vetted file: the content type to pass on (the sniffed one, not the client's claim).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vetted {
    pub content_type: String,
    pub category: Category,
}

/// Decides on a file from its first bytes (at most [`SNIFF_BYTES`]; all of them for a smaller
/// file), its sanitized name and its declared content type.
///
/// # Errors
/// The reason the file is refused.
pub fn vet(
    head: &[u8],
    name: &str,
    declared: Option<&str>,
    policy: &AttachmentPolicy,
) -> Result<Vetted, Refusal> {
    let (category, sniffed) = sniff(head);
    judge(category, sniffed, name, declared, policy)
}

/// Decides on a file whose family is known (sniffed from its head, or found by [`inspect_ole`]).
///
/// # Errors
/// The reason the file is refused.
pub fn judge(
    category: Category,
    sniffed: &str,
    name: &str,
    declared: Option<&str>,
    policy: &AttachmentPolicy,
) -> Result<Vetted, Refusal> {
    if let Some(extension) = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase())
        && EXECUTABLE_EXTENSIONS.contains(&extension.as_str())
    {
        return Err(Refusal::ExecutableName(extension));
    }
    if !policy.allows(category) {
        return Err(Refusal::NotAllowed(category));
    }
    let declared_essence = declared
        .map(|d| {
            d.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|d| !d.is_empty());
    if let Some(declared) = &declared_essence
        && let Some(claimed) = declared_category(declared)
        && !compatible(claimed, category)
    {
        return Err(Refusal::Mislabelled {
            declared: declared.clone(),
            actual: category,
        });
    }
    let content_type = match (category, declared_essence.as_deref()) {
        // Text has no signature; of the client's text types only inert ones are passed on.
        (Category::Text, Some(declared @ ("text/csv" | "application/json" | "text/markdown"))) => {
            declared.to_owned()
        }
        _ => sniffed.to_owned(),
    };
    Ok(Vetted {
        content_type,
        category,
    })
}

/// The family and media type of content, from its leading bytes.
#[must_use]
pub fn sniff(head: &[u8]) -> (Category, &'static str) {
    // Native code by its magic number alone: the generic matchers want whole headers, and a
    // truncated executable is still one.
    const NATIVE: [&[u8]; 8] = [
        b"\x7fELF",
        b"MZ",
        b"\xfe\xed\xfa\xce",
        b"\xfe\xed\xfa\xcf",
        b"\xce\xfa\xed\xfe",
        b"\xcf\xfa\xed\xfe",
        b"\xca\xfe\xba\xbe",
        b"\0asm",
    ];
    if NATIVE.iter().any(|magic| head.starts_with(magic)) {
        return (Category::Executable, "application/octet-stream");
    }
    if let Some(kind) = infer::get(head) {
        let mime = kind.mime_type();
        return (category_of_sniffed(kind.matcher_type(), mime), mime);
    }
    sniff_text(head)
}

fn category_of_sniffed(matcher: infer::MatcherType, mime: &str) -> Category {
    use infer::MatcherType as M;
    match (matcher, mime) {
        (M::App, _)
        | (
            _,
            "application/x-shockwave-flash"
            | "application/x-google-chrome-extension"
            | "application/vnd.ms-cab-compressed"
            | "application/vnd.debian.binary-package"
            | "application/x-rpm"
            | "application/x-nintendo-nes-rom",
        ) => Category::Executable,
        (M::Image, _) => Category::Image,
        (M::Video, _) => Category::Video,
        (M::Audio, _) => Category::Audio,
        (_, "application/pdf") => Category::Pdf,
        // An OLE container the sniffer could not name (installers are OLE too) is looked into
        // once the whole file is on disk: see [`inspect_ole`].
        (_, "application/x-ole-storage") => Category::Other,
        (M::Doc, _) | (_, "application/rtf") => Category::Office,
        (M::Text, "text/x-shellscript") => Category::Script,
        (M::Text, _) => Category::Markup,
        (
            M::Archive,
            "application/zip"
            | "application/x-tar"
            | "application/vnd.rar"
            | "application/gzip"
            | "application/x-bzip2"
            | "application/vnd.bzip3"
            | "application/x-7z-compressed"
            | "application/x-xz"
            | "application/zstd"
            | "application/x-lzip"
            | "application/x-lz4"
            | "application/x-compress",
        ) => Category::Archive,
        _ => Category::Other,
    }
}

/// Content with no signature: text if it is UTF-8 without NULs and few control characters;
/// scripts and markup told apart by how they start.
fn sniff_text(head: &[u8]) -> (Category, &'static str) {
    let body = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let valid_len = match std::str::from_utf8(body) {
        Ok(_) => body.len(),
        // A multi-byte character cut by the sniff window is fine; anything else is binary.
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        Err(_) => return (Category::Other, "application/octet-stream"),
    };
    let text = &body[..valid_len];
    let controls = text
        .iter()
        .filter(|b| **b < 0x20 && !matches!(**b, b'\n' | b'\r' | b'\t' | 0x0c))
        .count();
    if text.contains(&0) || controls * 100 > text.len().max(1) {
        return (Category::Other, "application/octet-stream");
    }
    if text.starts_with(b"#!") {
        return (Category::Script, "text/x-shellscript");
    }
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map_or(&text[..0], |i| &text[i..]);
    let starts = [&b"<!doctype"[..], b"<?xml", b"<head", b"<body"];
    // Tags that run script or load content, anywhere in the window (a comment first hides
    // nothing): a browser finds them wherever they are.
    let active = [
        &b"<html"[..],
        b"<script",
        b"<svg",
        b"<iframe",
        b"<object",
        b"<embed",
        b"<meta http-equiv",
        b"<xsl:",
    ];
    // Every marker starts with `<`, so only the places where a `<` is are compared (in any
    // case), not every offset of the window: this is on every upload's path.
    let marked = |at: &[u8], marker: &[u8]| {
        at.get(..marker.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(marker))
    };
    let active_anywhere = text
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'<')
        .any(|(i, _)| active.iter().any(|m| marked(&text[i..], m)));
    if active_anywhere || starts.iter().any(|m| marked(start, m)) {
        return (Category::Markup, "text/html");
    }
    (Category::Text, "text/plain")
}

/// Whether content starts like an OLE compound file.
#[must_use]
pub fn is_ole(head: &[u8]) -> bool {
    head.starts_with(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1")
}

/// What an OLE compound file on disk really is, from its streams: office documents pass; macros
/// count as scripts and installers (MSI, by their class id) as executables; anything else is
/// unrecognised. Blocking I/O: run it off the async threads.
#[must_use]
pub fn inspect_ole(path: &std::path::Path) -> (Category, &'static str) {
    const MSI_CLSIDS: [&str; 3] = [
        "000c1084-0000-0000-c000-000000000046",
        "000c1086-0000-0000-c000-000000000046",
        "000c1082-0000-0000-c000-000000000046",
    ];
    let Ok(file) = cfb::open(path) else {
        return (Category::Other, "application/octet-stream");
    };
    let clsid = file.root_entry().clsid().to_string().to_ascii_lowercase();
    if MSI_CLSIDS.contains(&clsid.as_str()) {
        return (Category::Executable, "application/x-msi");
    }
    if ["/Macros", "/_VBA_PROJECT_CUR", "/VBA"]
        .iter()
        .any(|p| file.exists(p))
    {
        return (Category::Script, "application/vnd.ms-office.vbaproject");
    }
    let kinds = [
        ("/WordDocument", "application/msword"),
        ("/Workbook", "application/vnd.ms-excel"),
        ("/Book", "application/vnd.ms-excel"),
        ("/PowerPoint Document", "application/vnd.ms-powerpoint"),
        ("/__properties_version1.0", "application/vnd.ms-outlook"),
        ("/VisioDocument", "application/vnd.visio"),
    ];
    kinds
        .iter()
        .find(|(stream, _)| file.is_stream(stream))
        .map_or(
            (Category::Other, "application/octet-stream"),
            |(_, mime)| (Category::Office, mime),
        )
}

/// The family a declared media type claims, or `None` when it claims nothing in particular.
fn declared_category(essence: &str) -> Option<Category> {
    let (top, sub) = essence.split_once('/')?;
    Some(match (top, sub) {
        (_, "octet-stream") | ("application", "unknown" | "binary") => return None,
        ("image", "svg+xml") | ("text", "html" | "xml") | ("application", "xhtml+xml" | "xml") => {
            Category::Markup
        }
        ("image", _) => Category::Image,
        ("audio", _) => Category::Audio,
        ("video", _) => Category::Video,
        ("application", "pdf" | "x-pdf") => Category::Pdf,
        ("text", "rtf") | ("application", "rtf" | "msword") => Category::Office,
        ("application", s)
            if s.starts_with("vnd.ms-")
                || s.starts_with("vnd.openxmlformats-officedocument")
                || s.starts_with("vnd.oasis.opendocument") =>
        {
            Category::Office
        }
        ("text", _) | ("application", "json" | "csv" | "x-ndjson") => Category::Text,
        (
            "application",
            "zip" | "x-zip-compressed" | "gzip" | "x-gzip" | "x-tar" | "x-7z-compressed"
            | "vnd.rar" | "x-rar-compressed" | "x-bzip2" | "x-xz" | "zstd",
        ) => Category::Archive,
        (
            "application",
            "x-msdownload"
            | "x-executable"
            | "x-sharedlib"
            | "x-mach-binary"
            | "java-archive"
            | "x-msi"
            | "vnd.microsoft.portable-executable",
        ) => Category::Executable,
        _ => return None,
    })
}

/// Whether content of family `actual` may be declared as `claimed`.
fn compatible(claimed: Category, actual: Category) -> bool {
    claimed == actual
        // OOXML and OpenDocument files are ZIP archives; which one the sniffer sees depends on
        // how far in the marker entries sit.
        || matches!(
            (claimed, actual),
            (Category::Office, Category::Archive) | (Category::Archive, Category::Office)
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
    const PDF: &[u8] = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n";
    const ELF: &[u8] = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0";
    const PE: &[u8] = b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0";
    const ZIP: &[u8] = b"PK\x03\x04\x14\0\0\0\x08\0";

    fn policy() -> AttachmentPolicy {
        AttachmentPolicy::default()
    }

    #[test]
    fn allowed_families_pass_with_their_sniffed_type() {
        let ok = |head: &[u8], name: &str, declared: Option<&str>| {
            vet(head, name, declared, &policy()).map(|v| v.content_type)
        };
        assert_eq!(ok(PNG, "a.png", Some("image/png")), Ok("image/png".into()));
        assert_eq!(
            ok(PDF, "a.pdf", Some("application/octet-stream")),
            Ok("application/pdf".into())
        );
        assert_eq!(ok(ZIP, "a.zip", None), Ok("application/zip".into()));
        assert_eq!(
            ok(b"hello, world\n", "notes.txt", Some("text/plain")),
            Ok("text/plain".into())
        );
        assert_eq!(
            ok(b"a,b\n1,2\n", "data.csv", Some("text/csv; charset=utf-8")),
            Ok("text/csv".into())
        );
        assert_eq!(ok(b"", "empty.txt", None), Ok("text/plain".into()));
        assert_eq!(
            ok("日本語のテキスト".as_bytes(), "メモ.txt", None),
            Ok("text/plain".into())
        );
    }

    #[test]
    fn executables_are_refused_whatever_they_are_called_or_declared_as() {
        for head in [ELF, PE] {
            assert_eq!(
                vet(head, "photo.jpg", Some("image/jpeg"), &policy()),
                Err(Refusal::NotAllowed(Category::Executable))
            );
        }
        assert_eq!(
            vet(
                b"#!/bin/sh\nrm -rf /\n",
                "notes.txt",
                Some("text/plain"),
                &policy()
            ),
            Err(Refusal::NotAllowed(Category::Script))
        );
        assert_eq!(
            vet(b"<svg onload=alert(1)>", "x.txt", None, &policy()),
            Err(Refusal::NotAllowed(Category::Markup))
        );
    }

    #[test]
    fn names_of_things_that_run_are_refused_even_with_harmless_content() {
        for name in [
            "run.exe",
            "SETUP.MSI",
            "a.b.js",
            "install.sh",
            "page.html",
            "x.svg",
        ] {
            assert!(
                matches!(
                    vet(b"plain words", name, None, &policy()),
                    Err(Refusal::ExecutableName(_))
                ),
                "{name}"
            );
        }
    }

    #[test]
    fn a_declared_type_of_another_family_than_the_content_is_a_lie() {
        assert_eq!(
            vet(PDF, "scan.png", Some("image/png"), &policy()),
            Err(Refusal::Mislabelled {
                declared: "image/png".into(),
                actual: Category::Pdf
            })
        );
        assert!(vet(b"just text", "a.pdf", Some("application/pdf"), &policy()).is_err());
        // Same family, different subtype: a common client slip, not a lie.
        assert!(vet(PNG, "a.jpg", Some("image/jpeg"), &policy()).is_ok());
        // OOXML declared, ZIP seen (marker entries past the window).
        assert!(
            vet(
                ZIP,
                "a.docx",
                Some("application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
                &policy()
            )
            .is_ok()
        );
    }

    #[test]
    fn unrecognised_binary_content_is_refused_by_default() {
        assert_eq!(
            vet(b"\x00\x01\x02\x03binary", "blob.dat", None, &policy()),
            Err(Refusal::NotAllowed(Category::Other))
        );
    }

    #[test]
    fn the_policy_is_a_list_of_families_and_never_allows_executables() {
        let images = AttachmentPolicy::parse("image, PDF").expect("valid");
        assert!(vet(PNG, "a.png", None, &images).is_ok());
        assert!(vet(b"text", "a.txt", None, &images).is_err());
        assert!(AttachmentPolicy::parse("image,executable").is_err());
        assert!(AttachmentPolicy::parse("script").is_err());
        assert!(AttachmentPolicy::parse(" , ").is_err());
    }

    fn ole_file(streams: &[&str], clsid: Option<&str>) -> tempfile::NamedTempFile {
        let temp = tempfile::NamedTempFile::new().expect("temp file");
        let mut file = cfb::create(temp.path()).expect("cfb");
        for stream in streams {
            if stream.ends_with('/') {
                file.create_storage(stream.trim_end_matches('/'))
                    .expect("storage");
            } else {
                file.create_stream(stream).expect("stream");
            }
        }
        if let Some(clsid) = clsid {
            file.set_storage_clsid("/", uuid::Uuid::parse_str(clsid).expect("uuid"))
                .expect("clsid");
        }
        file.flush().expect("flush");
        temp
    }

    #[test]
    fn ole_files_are_told_apart_by_their_streams_and_class_id() {
        let word = ole_file(&["/WordDocument"], None);
        assert_eq!(
            inspect_ole(word.path()),
            (Category::Office, "application/msword")
        );
        let macros = ole_file(&["/WordDocument", "/Macros/"], None);
        assert_eq!(inspect_ole(macros.path()).0, Category::Script);
        let msi = ole_file(&["/whatever"], Some("000C1084-0000-0000-C000-000000000046"));
        assert_eq!(inspect_ole(msi.path()).0, Category::Executable);
        let unknown = ole_file(&["/Something"], None);
        assert_eq!(inspect_ole(unknown.path()).0, Category::Other);
        let head = std::fs::read(word.path()).expect("bytes");
        assert!(is_ole(&head));
        assert!(!is_ole(PDF));
    }

    #[test]
    fn markup_anywhere_in_the_window_is_markup_and_text_types_are_narrowed() {
        let hidden = format!("<!-- {} --><svg onload=alert(1)>", "x".repeat(600));
        assert_eq!(sniff(hidden.as_bytes()).0, Category::Markup);
        for text in [
            "notes < more notes\n<ScRiPt>alert(1)</script>",
            "  <!DOCTYPE html><p>hi</p>",
            "a < b, and <META HTTP-EQUIV=refresh>",
        ] {
            assert_eq!(sniff(text.as_bytes()).0, Category::Markup, "{text}");
        }
        for text in ["a < b and c<d", "x <scrip", "<htm"] {
            assert_eq!(sniff(text.as_bytes()).0, Category::Text, "{text}");
        }
        let vetted = vet(b"alert(1)", "a.txt", Some("text/javascript"), &policy()).expect("text");
        assert_eq!(vetted.content_type, "text/plain");
        let csv = vet(b"a,b", "a.csv", Some("text/csv"), &policy()).expect("text");
        assert_eq!(csv.content_type, "text/csv");
        for name in ["link.url", "report.docm", "data.xml", "x.SettingContent-ms"] {
            assert!(vet(b"text", name, None, &policy()).is_err(), "{name}");
        }
    }

    #[test]
    fn text_cut_inside_a_multibyte_character_by_the_window_is_still_text() {
        let mut head = "é".repeat(10).into_bytes();
        head.pop();
        assert_eq!(sniff(&head).0, Category::Text);
    }
}
