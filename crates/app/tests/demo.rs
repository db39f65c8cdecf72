//! `ticketd demo` and `ticketd token` as a new user runs them.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use secrecy::SecretString;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_ticketd");

fn ticketd() -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    command
}

/// What the demo printed that a user would copy.
struct Printed {
    api: String,
    token: String,
    database_url: String,
    cluster_dir: PathBuf,
}

fn read_banner(lines: &mpsc::Receiver<String>) -> Printed {
    let (mut api, mut token, mut database_url, mut cluster_dir) = (None, None, None, None);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the demo prints its banner");
        if let Some(value) = line.strip_prefix("export TICKETD=") {
            api = Some(value.to_owned());
        } else if let Some(value) = line.strip_prefix("export TOKEN=") {
            token = Some(value.to_owned());
        } else if let Some(rest) = line.trim().strip_prefix("PostgreSQL:") {
            let mut words = rest.split_whitespace();
            database_url = words.next().map(ToOwned::to_owned);
            cluster_dir = rest
                .split("in ")
                .nth(1)
                .and_then(|s| s.split(',').next())
                .map(PathBuf::from);
        } else if line.starts_with("Ctrl-C stops everything") {
            break;
        }
    }
    Printed {
        api: api.expect("API address"),
        token: token.expect("token"),
        database_url: database_url.expect("database URL"),
        cluster_dir: cluster_dir.expect("cluster directory"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_creates_tickets_end_to_end_and_leaves_nothing_behind_on_sigterm() {
    let mut child = ticketd()
        .args(["demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let printed = tokio::task::spawn_blocking(move || (read_banner(&lines), lines))
        .await
        .expect("task");
    let (printed, lines) = printed;
    assert!(printed.cluster_dir.exists());
    ticketd_invgate::install_crypto_provider();
    let http = reqwest::Client::new();

    let json_answer = http
        .post(format!("{}/api/v1/tickets", printed.api))
        .bearer_auth(&printed.token)
        .json(&json!({"title": "VPN is down", "description": "Since 9am", "category_id": 3, "priority_id": 3, "type_id": 1}))
        .send()
        .await
        .expect("answers");
    assert_eq!(json_answer.status(), StatusCode::CREATED);
    let form = Form::new()
        .text("request", json!({"title": "Screen", "description": "Photo", "category_id": 5, "priority_id": 2, "type_id": 1}).to_string())
        .part("attachments[]", Part::bytes(b"hello from the demo test".to_vec()).file_name("note.txt").mime_str("text/plain").expect("mime"));
    let multipart_answer = http
        .post(format!("{}/api/v1/tickets", printed.api))
        .bearer_auth(&printed.token)
        .multipart(form)
        .send()
        .await
        .expect("answers");
    assert_eq!(multipart_answer.status(), StatusCode::CREATED);
    let ids: Vec<i64> = [json_answer, multipart_answer]
        .into_iter()
        .map(|r| {
            r.headers()["location"]
                .to_str()
                .expect("ascii")
                .rsplit('/')
                .next()
                .expect("id")
                .parse()
                .expect("number")
        })
        .collect();

    {
        use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            inv_gate_id: i64,
            #[diesel(sql_type = diesel::sql_types::Text)]
            creator_email: String,
            #[diesel(sql_type = diesel::sql_types::Jsonb)]
            attachments: Value,
        }
        let mut conn = AsyncPgConnection::establish(&printed.database_url)
            .await
            .expect("the printed URL works");
        let rows: Vec<Row> = diesel::sql_query(
            "SELECT inv_gate_id, creator_email, attachments FROM tickets ORDER BY inv_gate_id",
        )
        .load(&mut conn)
        .await
        .expect("rows");
        assert_eq!(rows.iter().map(|r| r.inv_gate_id).collect::<Vec<_>>(), ids);
        assert!(rows.iter().all(|r| r.creator_email == "alice@example.com"));
        assert_eq!(rows[1].attachments[0]["name"], "note.txt");
        assert_eq!(rows[1].attachments[0]["size"], 24);
    }

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("task")
        .expect("exits");
    assert_eq!(status.code(), Some(0));
    let farewell: Vec<String> = lines.try_iter().collect();
    assert!(
        farewell.iter().any(|l| l.contains("stopped")),
        "{farewell:?}"
    );
    assert!(
        !printed.cluster_dir.exists(),
        "the data directory is removed"
    );
    let dir = printed.cluster_dir.display().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let survivors = Command::new("pgrep")
            .args(["-f", &dir])
            .output()
            .expect("pgrep runs");
        if survivors.stdout.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "processes left behind: {}",
            String::from_utf8_lossy(&survivors.stdout)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let port: u16 = printed
        .database_url
        .rsplit(':')
        .next()
        .and_then(|s| s.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("port");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "PostgreSQL is stopped"
    );
}

#[test]
fn without_postgresql_binaries_the_demo_says_what_to_install_in_one_line() {
    let output = ticketd()
        .args(["demo", "--listen", "127.0.0.1:0"])
        .env("PG_BIN", "/nonexistent/postgresql/bin")
        .output()
        .expect("runs");

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("apt install postgresql") && stderr.contains("DATABASE_URL"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_token_printed_by_ticketd_token_authenticates_its_email_for_its_ttl() {
    let output = ticketd()
        .args(["token", "--email", "alice@example.com", "--ttl", "2h"])
        .env("JWT_SECRET", "operator-secret")
        .output()
        .expect("runs");
    assert!(output.status.success());
    let token = String::from_utf8(output.stdout)
        .expect("utf-8")
        .trim()
        .to_owned();

    let verifier =
        ticketd_http::Verifier::hs256(&SecretString::from("operator-secret"), Duration::ZERO)
            .expect("a verifier");
    let caller = verifier
        .authenticate(Some(&format!("Bearer {token}")))
        .await
        .expect("valid token");
    assert_eq!(caller.email.as_str(), "alice@example.com");

    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(b"operator-secret"),
        &validation,
    )
    .expect("decodes")
    .claims;
    let ttl = claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat");
    assert_eq!(ttl, 7200);
}

#[test]
fn ticketd_token_needs_a_secret_and_an_address() {
    let no_secret = ticketd()
        .args(["token", "--email", "alice@example.com"])
        .output()
        .expect("runs");
    assert_eq!(no_secret.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_secret.stderr).contains("JWT_SECRET"));

    let bad_email = ticketd()
        .args(["token", "--email", "alice"])
        .env("JWT_SECRET", "s")
        .output()
        .expect("runs");
    assert_eq!(bad_email.status.code(), Some(2));
}
