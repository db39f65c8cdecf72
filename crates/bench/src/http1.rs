//! A lean HTTP/1.1 load client: one request, built once, sent over and over on keep-alive
//! connections, and only the status line and the body's length read from each answer.
//!
//! The load generator shares the two cores with ticketd, PostgreSQL and the simulator, so every
//! microsecond it spends per request is taken from them and shows as a lower ticketd rate that is
//! not ticketd's doing. A general client (reqwest) builds and parses headers, a request object and
//! a body stream per request; this one writes the same bytes each time, the way `wrk` does.

use std::net::SocketAddr;
use std::sync::Mutex;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MAX_HEADERS: usize = 64;
/// A status line and headers longer than this are not an answer this client expects.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// One prepared request to one address, and the idle connections it can be sent on.
pub struct Http1 {
    addr: SocketAddr,
    request: Bytes,
    idle: Mutex<Vec<Connection>>,
}

struct Connection {
    stream: TcpStream,
    buf: BytesMut,
    /// Whether an answer has been read on it: a connection that has answered before may have
    /// been closed by the server while it sat idle, and sending on it again is safe to retry.
    reused: bool,
}

/// What an answer carried that the load checks.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl Http1 {
    /// A `POST` of `body` to `path` on `addr`, with `headers` besides `Host` and
    /// `Content-Length`.
    pub fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Self {
        let mut head = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\n");
        for (name, value) in headers {
            head.push_str(name);
            head.push_str(": ");
            head.push_str(value);
            head.push_str("\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut request = Vec::with_capacity(head.len() + body.len());
        request.extend_from_slice(head.as_bytes());
        request.extend_from_slice(body);
        Self {
            addr,
            request: Bytes::from(request),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Sends the request once and reads the whole answer. A connection that had answered before
    /// and fails before any byte of this answer arrives (the server closed it while idle) is
    /// dropped and the request sent once more on a new one.
    pub async fn send(&self) -> Result<Answer, String> {
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut connection = match pooled {
            Some(connection) => connection,
            None => self.connect().await?,
        };
        let outcome = match exchange(&mut connection, &self.request).await {
            Err(Failure::BeforeAnswer(_)) if connection.reused => {
                connection = self.connect().await?;
                exchange(&mut connection, &self.request).await
            }
            other => other,
        };
        match outcome {
            Ok((answer, keep_alive)) => {
                if keep_alive {
                    connection.reused = true;
                    if let Ok(mut idle) = self.idle.lock() {
                        idle.push(connection);
                    }
                }
                Ok(answer)
            }
            Err(Failure::BeforeAnswer(e) | Failure::During(e)) => Err(e),
        }
    }

    async fn connect(&self) -> Result<Connection, String> {
        let stream = TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connect {}: {e}", self.addr))?;
        // Requests are written whole; Nagle would only hold back the next one.
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(Connection {
            stream,
            buf: BytesMut::with_capacity(8 * 1024),
            reused: false,
        })
    }
}

enum Failure {
    /// Nothing of the answer arrived.
    BeforeAnswer(String),
    During(String),
}

/// Writes the request and reads one answer: its status, its body, and whether the connection
/// can carry the next request.
async fn exchange(connection: &mut Connection, request: &[u8]) -> Result<(Answer, bool), Failure> {
    connection
        .stream
        .write_all(request)
        .await
        .map_err(|e| Failure::BeforeAnswer(format!("write: {e}")))?;
    connection.buf.clear();
    let (head_len, status, body_len, keep_alive) = loop {
        let read = connection
            .stream
            .read_buf(&mut connection.buf)
            .await
            .map_err(|e| Failure::BeforeAnswer(format!("read: {e}")))?;
        if read == 0 {
            let e = "the server closed the connection".to_owned();
            return Err(if connection.buf.is_empty() {
                Failure::BeforeAnswer(e)
            } else {
                Failure::During(e)
            });
        }
        if let Some(head) = parse_head(&connection.buf).map_err(Failure::During)? {
            break head;
        }
        if connection.buf.len() > MAX_HEAD_BYTES {
            return Err(Failure::During("the answer's head is too long".to_owned()));
        }
    };
    let total = head_len + body_len;
    while connection.buf.len() < total {
        let read = connection
            .stream
            .read_buf(&mut connection.buf)
            .await
            .map_err(|e| Failure::During(format!("read: {e}")))?;
        if read == 0 {
            return Err(Failure::During(
                "the server closed the connection mid-body".to_owned(),
            ));
        }
    }
    if connection.buf.len() > total {
        // One request at a time: bytes past the answer mean the framing was misread.
        return Err(Failure::During(
            "more bytes than the answer's Content-Length".to_owned(),
        ));
    }
    let mut answer = connection.buf.split_to(total);
    let body = answer.split_off(head_len).freeze();
    Ok((Answer { status, body }, keep_alive))
}

/// The head's length, the status, the body's length and whether the connection stays open, once
/// the whole head has arrived. Answers must carry `Content-Length` (ticketd's do); chunked ones
/// are refused rather than misread.
fn parse_head(buf: &[u8]) -> Result<Option<(usize, u16, usize, bool)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("not an HTTP answer: {e}")),
    };
    let status = response.code.ok_or("no status")?;
    let mut body_len = None;
    let mut keep_alive = response.version == Some(1);
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value).map_err(|e| e.to_string())?;
            body_len = Some(
                value
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| format!("Content-Length {value:?}"))?,
            );
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err("a chunked answer: this client reads Content-Length only".to_owned());
        } else if header.name.eq_ignore_ascii_case("connection") {
            let value = String::from_utf8_lossy(header.value).to_ascii_lowercase();
            if value.contains("close") {
                keep_alive = false;
            } else if value.contains("keep-alive") {
                keep_alive = true;
            }
        }
    }
    // 204 and 304 have no body; every other answer here must say how long it is.
    let body_len = match (status, body_len) {
        (204 | 304, _) => 0,
        (_, Some(n)) => n,
        (_, None) => return Err(format!("a {status} answer without Content-Length")),
    };
    Ok(Some((head_len, status, body_len, keep_alive)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server that answers each request on a connection with `answer`, for `requests`
    /// requests, then closes the connection; it reads only up to the end of a small request.
    async fn server(answer: &'static [u8], requests: usize) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("its address");
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.expect("a connection");
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    for _ in 0..requests {
                        let mut seen = Vec::new();
                        while !seen.windows(7).any(|w| w == b"\r\n\r\nabc") {
                            let n = socket.read(&mut buf).await.unwrap_or(0);
                            if n == 0 {
                                return;
                            }
                            seen.extend_from_slice(&buf[..n]);
                        }
                        // Written in two pieces, so the client has to wait for the rest.
                        let (first, rest) = answer.split_at(answer.len() / 2);
                        socket.write_all(first).await.expect("the first half");
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                        socket.write_all(rest).await.expect("the second half");
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn an_answer_is_read_whole_and_its_connection_kept_for_the_next_request() {
        let addr = server(
            b"HTTP/1.1 201 Created\r\ncontent-length: 5\r\n\r\nhello",
            usize::MAX,
        )
        .await;
        let client = Http1::post(addr, "/t", &[("X-A", "1")], b"abc");
        for _ in 0..3 {
            let answer = client.send().await.expect("an answer");
            assert_eq!(answer.status, 201);
            assert_eq!(&answer.body[..], b"hello");
        }
        assert_eq!(client.idle.lock().expect("the idle list").len(), 1);
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_while_idle_is_replaced_and_the_request_sent_again() {
        // Each connection answers one request and is then closed by the server.
        let addr = server(b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n", 1).await;
        let client = Http1::post(addr, "/t", &[], b"abc");
        for _ in 0..3 {
            assert_eq!(client.send().await.expect("an answer").status, 201);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_connection_the_answer_says_to_close_is_not_reused() {
        let addr = server(
            b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 2\r\n\r\nno",
            usize::MAX,
        )
        .await;
        let client = Http1::post(addr, "/t", &[], b"abc");
        assert_eq!(client.send().await.expect("an answer").status, 503);
        assert!(client.idle.lock().expect("the idle list").is_empty());
    }

    #[test]
    fn a_chunked_answer_or_one_without_a_length_is_refused_not_misread() {
        assert!(
            parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                .expect_err("refused")
                .contains("chunked")
        );
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert_eq!(
            parse_head(b"HTTP/1.1 204 No Content\r\n\r\n").expect("a head"),
            Some((27, 204, 0, true))
        );
        assert_eq!(
            parse_head(b"HTTP/1.1 201 Cre").expect("a partial head"),
            None
        );
    }
}
