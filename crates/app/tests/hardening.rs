//! The hardening, end to end through the real server: identity providers (PEM keys, a JWKS with
//! rotation, issuer and audience), slow clients, and the rate limit as configured by an operator.

mod support;

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{ALICE, TestApp, invgate_ok, valid_ticket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../auth/tests/keys");

fn key_file(name: &str) -> String {
    format!("{KEYS}/{name}")
}

fn rs256(claims: &Value, private: &str, kid: Option<&str>) -> String {
    let pem = std::fs::read(key_file(private)).expect("test key");
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(ToOwned::to_owned);
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(&pem).expect("rsa"),
    )
    .expect("signs")
}

fn claims(extra: Value) -> Value {
    let mut claims = json!({"email": ALICE, "exp": chrono::Utc::now().timestamp() + 300});
    if let (Some(claims), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
        claims.extend(extra.clone());
    }
    claims
}

async fn post_with(app: &TestApp, token: &str) -> StatusCode {
    app.http
        .post(format!("{}/api/v1/tickets", app.base_url))
        .bearer_auth(token)
        .json(&valid_ticket())
        .send()
        .await
        .expect("answers")
        .status()
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_of_a_pem_public_key_are_accepted_with_issuer_and_audience_enforced() {
    let app = TestApp::spawn_with(|args| {
        args.jwt_secret = None;
        args.jwt_public_keys = Some(key_file("rsa-public.pem"));
        args.jwt_issuer = Some("https://idp.example.com/".into());
        args.jwt_audience = Some("ticketd".into());
    })
    .await;
    app.mock_create(invgate_ok(501)).await;

    let good = claims(json!({"iss": "https://idp.example.com/", "aud": "ticketd"}));
    assert_eq!(
        post_with(&app, &rs256(&good, "rsa-private.pem", None)).await,
        StatusCode::CREATED
    );
    for bad in [
        claims(json!({"iss": "https://evil.example.com/", "aud": "ticketd"})),
        claims(json!({"iss": "https://idp.example.com/", "aud": "someone-else"})),
        claims(json!({"aud": "ticketd"})),
    ] {
        assert_eq!(
            post_with(&app, &rs256(&bad, "rsa-private.pem", None)).await,
            StatusCode::UNAUTHORIZED
        );
    }
    // The old shared secret is not configured any more, so its tokens are refused.
    assert_eq!(
        post_with(&app, &TestApp::token(ALICE)).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_rotated_at_the_identity_provider_is_picked_up_from_its_jwks() {
    let idp = MockServer::start().await;
    let jwk = |file: &str| -> Value {
        serde_json::from_slice(&std::fs::read(key_file(file)).expect("jwk")).expect("json")
    };
    // Before the rotation the JWKS has key A; after it, A and B.
    Mock::given(method("GET"))
        .and(path("/jwks.json"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"keys": [jwk("rsa-public.jwk.json")]})),
        )
        .up_to_n_times(1)
        .mount(&idp)
        .await;
    Mock::given(method("GET"))
        .and(path("/jwks.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"keys": [jwk("rsa-public.jwk.json"), jwk("other-rsa-public.jwk.json")]}),
        ))
        .mount(&idp)
        .await;
    let app = TestApp::spawn_with(|args| {
        args.jwt_secret = None;
        args.jwt_jwks_url = Some(format!("{}/jwks.json", idp.uri()));
        args.jwt_jwks_refetch_secs = Some("1".into());
    })
    .await;
    app.mock_create(invgate_ok(502)).await;

    let before = rs256(&claims(json!({})), "rsa-private.pem", Some("key-2026-a"));
    assert_eq!(post_with(&app, &before).await, StatusCode::CREATED);
    // The provider may be asked again one refetch interval after the start-up fetch.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let after = rs256(
        &claims(json!({})),
        "other-rsa-private.pem",
        Some("key-2026-b"),
    );
    assert_eq!(post_with(&app, &after).await, StatusCode::CREATED);
    let fetches = idp.received_requests().await.map_or(0, |r| r.len());
    assert_eq!(fetches, 2, "one fetch at start, one for the new kid");
}

/// Sends `head` over a raw connection, then nothing more; returns what the server answers.
async fn stall_after(app: &TestApp, head: &str) -> String {
    let address = app.base_url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.expect("connects");
    stream.write_all(head.as_bytes()).await.expect("writes");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "the server never gave up on the stalled client"
    );
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_stalls_in_its_headers_or_its_body_is_cut_off() {
    let app = TestApp::spawn_with(|args| {
        args.header_timeout_secs = Some("1".into());
        args.body_idle_timeout_secs = Some("1".into());
    })
    .await;

    let answer = stall_after(&app, "POST /api/v1/tickets HTTP/1.1\r\nHost: ticketd\r\n").await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );

    let head = format!(
        "POST /api/v1/tickets HTTP/1.1\r\nHost: ticketd\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{{\"title\": \"slo",
        TestApp::token(ALICE)
    );
    let answer = stall_after(&app, &head).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("REQUEST_TIMEOUT"), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_configured_rate_limit_applies_per_caller() {
    let app = TestApp::spawn_with(|args| {
        args.rate_limit_per_minute = Some("6".into());
        args.rate_limit_burst = Some("2".into());
    })
    .await;
    app.mock_create(invgate_ok(503)).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(app.post_ticket(&valid_ticket()).await.status().as_u16());
    }
    assert_eq!(statuses, [201, 201, 429]);
    let limited = app.post_ticket(&valid_ticket()).await;
    let retry_after: u64 = limited
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    // One request per 10 s comes back.
    assert!((1..=10).contains(&retry_after), "{retry_after}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_trickled_a_byte_at_a_time_is_cut_off_after_the_grace_period() {
    // Each byte comes within the idle timeout, so only the minimal rate (1 KiB/s on average
    // after 10 s) can stop it.
    let app = TestApp::spawn_with(|args| {
        args.body_idle_timeout_secs = Some("5".into());
    })
    .await;
    let address = app.base_url.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).await.expect("connects");
    let head = format!(
        "POST /api/v1/tickets HTTP/1.1\r\nHost: ticketd\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n",
        TestApp::token(ALICE)
    );
    stream.write_all(head.as_bytes()).await.expect("writes");
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    while started.elapsed() < Duration::from_secs(40) {
        if stream.write_all(b" ").await.is_err() {
            break;
        }
        let mut buffer = [0u8; 4096];
        match tokio::time::timeout(Duration::from_millis(1500), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                answer.extend_from_slice(&buffer[..n]);
                break;
            }
            Err(_) => {}
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "{answer:?} after {:?}",
        started.elapsed()
    );
}
