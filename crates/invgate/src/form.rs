//! The `multipart/form-data` bodies of writes to InvGate, built here instead of by reqwest's
//! `Form`.
//!
//! reqwest sends a `Form` as a stream of small pieces (each part's headers, its value, the line
//! break after it), so hyper writes the request head and the body in separate system calls and
//! polls the stream once per piece. A ticket's fields are a few hundred bytes: they, and files up
//! to [`SMALL_FILE`], are written into one buffer, sent with the head in one `writev`. Larger
//! files are still streamed from their spooled copy, so memory stays flat whatever their size.
//!
//! The wire format is reqwest's: the same part headers, and a file name outside the plain
//! characters sent as RFC 5987 `filename*=utf-8''…`, as InvGate has been receiving it.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use reqwest::Body;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use ticketd_domain::{Attachment, GatewayError};
use tokio_util::io::ReaderStream;

/// Spooled files up to this size are read whole with one plain `read` on the worker thread: from
/// the page cache that takes microseconds, where opening and reading through tokio are trips to
/// the blocking pool, two cross-thread wake-ups each. Larger files are streamed.
pub(crate) const SMALL_FILE: u64 = 64 * 1024;

/// Bytes per read of a streamed file on its way to InvGate.
const UPLOAD_BLOCK: usize = 256 * 1024;

/// The characters percent-encoded in a file name, as reqwest's default (a URL path segment's).
const FILE_NAME_ENCODE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'#')
    .add(b'?')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b'%');

/// A multipart body being built: buffered bytes, and between them the large files to stream.
#[derive(Debug)]
pub struct MultipartBody {
    boundary: String,
    buffer: BytesMut,
    pieces: Vec<Piece>,
    length: u64,
}

#[derive(Debug)]
enum Piece {
    Bytes(Bytes),
    File(tokio::fs::File),
}

/// A finished body: what the request's `Content-Type` and `Content-Length` must say, and the
/// body itself.
#[derive(Debug)]
pub struct FinishedBody {
    pub content_type: HeaderValue,
    pub length: u64,
    pub body: Body,
    /// Whether the body is one buffer (sent with the head) rather than a stream.
    pub buffered: bool,
}

impl Default for MultipartBody {
    fn default() -> Self {
        Self::new()
    }
}

impl MultipartBody {
    /// An empty body with a random boundary, which no field value will contain by chance.
    #[must_use]
    pub fn new() -> Self {
        Self {
            boundary: uuid::Uuid::new_v4().simple().to_string(),
            buffer: BytesMut::with_capacity(1024),
            pieces: Vec::new(),
            length: 0,
        }
    }

    /// A text field.
    #[must_use]
    pub fn text(mut self, name: &str, value: &str) -> Self {
        self.part_head(name, None);
        self.buffer.extend_from_slice(value.as_bytes());
        self.buffer.extend_from_slice(b"\r\n");
        self
    }

    /// A file held in memory: copied into the body when small, sent as its own piece (no copy)
    /// when not.
    #[must_use]
    pub fn file_bytes(
        mut self,
        name: &str,
        file_name: &str,
        content_type: &str,
        bytes: Bytes,
    ) -> Self {
        self.part_head(name, Some((file_name, content_type)));
        if bytes.len() as u64 <= SMALL_FILE {
            self.buffer.extend_from_slice(&bytes);
        } else {
            self.flush_buffer();
            self.length += bytes.len() as u64;
            self.pieces.push(Piece::Bytes(bytes));
        }
        self.buffer.extend_from_slice(b"\r\n");
        self
    }

    /// A spooled file: read into the body when small, streamed from disk when not. The file is
    /// opened now, so a missing one fails before anything is sent.
    ///
    /// # Errors
    /// When the spooled file cannot be opened or read, or is no longer the size recorded.
    pub async fn spooled_file(
        mut self,
        name: &str,
        attachment: &Attachment,
    ) -> Result<Self, GatewayError> {
        let unreadable = |e: std::io::Error| {
            GatewayError::Unavailable(anyhow::Error::new(e).context("opening a spooled attachment"))
        };
        // The HTTP adapter only lets valid media types through; octet-stream is the safe
        // fallback.
        let content_type = if HeaderValue::from_str(&attachment.content_type).is_ok()
            && attachment.content_type.contains('/')
        {
            attachment.content_type.as_str()
        } else {
            "application/octet-stream"
        };
        let changed =
            || GatewayError::Unavailable(anyhow::anyhow!("a spooled attachment changed size"));
        if attachment.size <= SMALL_FILE {
            let bytes = std::fs::read(&attachment.path).map_err(unreadable)?;
            // The spooled file is the one whose size and hash the ticket records.
            if bytes.len() as u64 != attachment.size {
                return Err(changed());
            }
            return Ok(self.file_bytes(
                name,
                attachment.name.as_str(),
                content_type,
                Bytes::from(bytes),
            ));
        }
        let file = tokio::fs::File::open(&attachment.path)
            .await
            .map_err(unreadable)?;
        let on_disk = file.metadata().await.map_err(unreadable)?.len();
        if on_disk != attachment.size {
            return Err(changed());
        }
        self.part_head(name, Some((attachment.name.as_str(), content_type)));
        self.flush_buffer();
        self.pieces.push(Piece::File(file));
        self.length += attachment.size;
        self.buffer.extend_from_slice(b"\r\n");
        Ok(self)
    }

    /// Closes the body.
    #[must_use]
    pub fn finish(mut self) -> FinishedBody {
        self.buffer.extend_from_slice(b"--");
        self.buffer.extend_from_slice(self.boundary.as_bytes());
        self.buffer.extend_from_slice(b"--\r\n");
        self.flush_buffer();
        let content_type =
            HeaderValue::from_str(&format!("multipart/form-data; boundary={}", self.boundary))
                .unwrap_or_else(|_| HeaderValue::from_static("multipart/form-data"));
        let length = self.length;
        let mut pieces = self.pieces;
        if let [Piece::Bytes(bytes)] = pieces.as_mut_slice() {
            return FinishedBody {
                content_type,
                length,
                body: Body::from(std::mem::take(bytes)),
                buffered: true,
            };
        }
        let stream = futures_util::stream::iter(pieces).flat_map(|piece| match piece {
            Piece::Bytes(bytes) => {
                futures_util::stream::once(std::future::ready(Ok::<_, std::io::Error>(bytes)))
                    .left_stream()
            }
            Piece::File(file) => ReaderStream::with_capacity(file, UPLOAD_BLOCK).right_stream(),
        });
        FinishedBody {
            content_type,
            length,
            body: Body::wrap_stream(stream),
            buffered: false,
        }
    }

    fn part_head(&mut self, name: &str, file: Option<(&str, &str)>) {
        let buffer = &mut self.buffer;
        buffer.extend_from_slice(b"--");
        buffer.extend_from_slice(self.boundary.as_bytes());
        buffer.extend_from_slice(b"\r\nContent-Disposition: form-data; ");
        parameter(buffer, "name", name);
        if let Some((file_name, content_type)) = file {
            buffer.extend_from_slice(b"; ");
            parameter(buffer, "filename", file_name);
            buffer.extend_from_slice(b"\r\nContent-Type: ");
            buffer.extend_from_slice(content_type.as_bytes());
        }
        buffer.extend_from_slice(b"\r\n\r\n");
    }

    fn flush_buffer(&mut self) {
        if !self.buffer.is_empty() {
            let bytes = self.buffer.split().freeze();
            self.length += bytes.len() as u64;
            self.pieces.push(Piece::Bytes(bytes));
        }
    }
}

/// `name="value"` when the value is plain, `name*=utf-8''…` (RFC 5987) when it is not.
fn parameter(buffer: &mut BytesMut, name: &str, value: &str) {
    let encoded = utf8_percent_encode(value, FILE_NAME_ENCODE).to_string();
    buffer.extend_from_slice(name.as_bytes());
    if encoded == value {
        buffer.extend_from_slice(b"=\"");
        buffer.extend_from_slice(value.as_bytes());
        buffer.extend_from_slice(b"\"");
    } else {
        buffer.extend_from_slice(b"*=utf-8''");
        buffer.extend_from_slice(encoded.as_bytes());
    }
}

impl FinishedBody {
    /// Puts the body, its type and its length on `request`.
    pub fn attach(self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request
            .header(CONTENT_TYPE, self.content_type)
            .header(CONTENT_LENGTH, self.length)
            .body(self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use ticketd_domain::{AttachmentName, Sha256Hex};

    /// The body as a server receives it, sent by reqwest with the headers `attach` sets.
    async fn bytes_of(body: FinishedBody) -> Vec<u8> {
        use wiremock::{Mock, MockServer, ResponseTemplate, matchers::method};
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        let content_type = body.content_type.clone();
        let length = body.length;
        crate::client::install_crypto_provider();
        body.attach(reqwest::Client::new().post(server.uri()))
            .send()
            .await
            .expect("sent");
        let received = server.received_requests().await.expect("recorded");
        let request = received.first().expect("one request");
        assert_eq!(request.headers.get(CONTENT_TYPE), Some(&content_type));
        assert_eq!(
            request
                .headers
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()),
            Some(length.to_string().as_str())
        );
        assert!(
            request.headers.get("transfer-encoding").is_none(),
            "sent with a length, not chunked"
        );
        assert_eq!(request.body.len() as u64, length);
        request.body.clone()
    }

    fn attachment(dir: &std::path::Path, name: &str, content: &[u8]) -> Attachment {
        let path = dir.join(name);
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(content))
            .expect("a spooled file");
        Attachment {
            name: AttachmentName::sanitize(name),
            content_type: "text/plain".into(),
            size: content.len() as u64,
            sha256: Sha256Hex::parse(&"ab".repeat(32)).expect("a hash"),
            path,
        }
    }

    #[tokio::test]
    async fn fields_and_small_files_make_one_buffer_in_reqwests_wire_format() {
        let dir = tempfile::tempdir().expect("a directory");
        let body = MultipartBody::new()
            .text("title", "VPN \"drops\"")
            .spooled_file(
                "attachments[]",
                &attachment(dir.path(), "a b.txt", b"hello"),
            )
            .await
            .expect("a small file")
            .finish();
        assert!(body.buffered);
        let boundary = body
            .content_type
            .to_str()
            .expect("ASCII")
            .strip_prefix("multipart/form-data; boundary=")
            .expect("a boundary")
            .to_owned();
        let text = String::from_utf8(bytes_of(body).await).expect("UTF-8");
        assert_eq!(
            text,
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nVPN \"drops\"\r\n\
                 --{boundary}\r\nContent-Disposition: form-data; name=\"attachments[]\"; filename*=utf-8''a%20b.txt\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
                 --{boundary}--\r\n"
            )
        );
    }

    #[tokio::test]
    async fn a_large_file_is_streamed_between_the_buffered_parts() {
        let dir = tempfile::tempdir().expect("a directory");
        let content = vec![b'x'; usize::try_from(SMALL_FILE).expect("small") + 1];
        let body = MultipartBody::new()
            .text("title", "t")
            .spooled_file(
                "attachments[]",
                &attachment(dir.path(), "big.log", &content),
            )
            .await
            .expect("a large file")
            .text("after", "z")
            .finish();
        assert!(!body.buffered);
        let all = bytes_of(body).await;
        let at = all
            .windows(content.len())
            .position(|w| w == content.as_slice())
            .expect("the file's bytes in the body");
        assert!(all[..at].ends_with(b"filename=\"big.log\"\r\nContent-Type: text/plain\r\n\r\n"));
        assert!(all[at + content.len()..].starts_with(b"\r\n--"));
        assert!(all.ends_with(b"--\r\n"));
    }

    #[tokio::test]
    async fn a_large_file_in_memory_is_sent_as_its_own_piece_and_a_small_one_is_copied_in() {
        let large = Bytes::from(vec![b'y'; usize::try_from(SMALL_FILE).expect("small") + 1]);
        let body = MultipartBody::new()
            .file_bytes(
                "attachments[]",
                "small.txt",
                "text/plain",
                Bytes::from_static(b"s"),
            )
            .file_bytes("attachments[]", "large.txt", "text/plain", large.clone())
            .finish();
        assert!(!body.buffered);
        let all = bytes_of(body).await;
        let at = all
            .windows(large.len())
            .position(|w| w == &large[..])
            .expect("the large file's bytes in the body");
        assert!(all[..at].ends_with(b"filename=\"large.txt\"\r\nContent-Type: text/plain\r\n\r\n"));
        assert!(all[at + large.len()..].starts_with(b"\r\n--"));
        let small_part = b"filename=\"small.txt\"\r\nContent-Type: text/plain\r\n\r\ns\r\n--";
        assert!(all.windows(small_part.len()).any(|w| w == small_part));
    }

    #[tokio::test]
    async fn a_spooled_file_that_changed_size_or_vanished_is_refused_before_sending() {
        let dir = tempfile::tempdir().expect("a directory");
        for size in [10, usize::try_from(SMALL_FILE).expect("small") + 10] {
            let mut changed = attachment(dir.path(), "f.txt", &vec![b'x'; size]);
            changed.size += 1;
            let refused = MultipartBody::new()
                .spooled_file("attachments[]", &changed)
                .await;
            assert!(
                matches!(refused, Err(GatewayError::Unavailable(_))),
                "{size}"
            );
        }
        let mut gone = attachment(dir.path(), "g.txt", b"x");
        gone.path = dir.path().join("missing");
        assert!(
            MultipartBody::new()
                .spooled_file("attachments[]", &gone)
                .await
                .is_err()
        );
    }

    #[test]
    fn two_bodies_get_different_boundaries() {
        assert_ne!(MultipartBody::new().boundary, MultipartBody::new().boundary);
    }
}
