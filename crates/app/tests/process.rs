//! The `ticketd` binary as an operator runs it: configuration errors, `migrate`, and a graceful
//! stop on SIGTERM with the request in flight finishing first. Also checks the logs it writes.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};
use support::{ALICE, INVGATE_KEY, JWT_SECRET, TestApp, invgate_knowing_alice, valid_ticket};
use ticketd_pgtemp::test_database;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

const BIN: &str = env!("CARGO_BIN_EXE_ticketd");

/// A command with a clean environment apart from what the test sets.
fn ticketd() -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    command
}

/// Asks `child` to stop as an orchestrator would (SIGTERM); a process already gone is fine.
fn terminate(child: &Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}

#[test]
fn a_missing_setting_stops_the_start_with_one_line_naming_it() {
    let output = ticketd()
        .args(["serve"])
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/x")
        .env("INVGATE_BASE_URL", "http://127.0.0.1:1/api/v1")
        .env("INVGATE_USERNAME", "u")
        .env("INVGATE_PASSWORD", "p")
        .output()
        .expect("runs");

    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("JWT_SECRET"), "{stderr}");
}

#[test]
fn a_flag_wins_over_its_environment_variable() {
    let output = ticketd()
        .args(["serve", "--invgate-timeout-secs", "abc"])
        .env("INVGATE_TIMEOUT_SECS", "5")
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/x")
        .env("INVGATE_BASE_URL", "http://127.0.0.1:1/api/v1")
        .env("INVGATE_USERNAME", "u")
        .env("INVGATE_PASSWORD", "p")
        .env("JWT_SECRET", "s")
        .output()
        .expect("runs");

    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("INVGATE_TIMEOUT_SECS (--invgate-timeout-secs) must be a whole number of at least 1, got \"abc\""));
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_creates_the_tickets_table_and_exits() {
    let db = test_database().await.expect("database");

    let status = ticketd()
        .args(["migrate"])
        .env("DATABASE_URL", db.url())
        .stderr(Stdio::null())
        .status()
        .expect("runs");

    assert!(status.success());
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    let mut conn = AsyncPgConnection::establish(db.url())
        .await
        .expect("connects");
    diesel::sql_query("SELECT id FROM tickets")
        .execute(&mut conn)
        .await
        .expect("the table exists");
}

/// Starts `ticketd serve` and returns it with its address, read from its log, and a channel of
/// its log lines.
fn start_serving(
    database_url: &str,
    invgate_uri: &str,
    spool: &std::path::Path,
) -> (Child, String, mpsc::Receiver<String>) {
    start_serving_with(database_url, invgate_uri, spool, &[])
}

/// Like [`start_serving`], with more (or overriding) environment variables.
fn start_serving_with(
    database_url: &str,
    invgate_uri: &str,
    spool: &std::path::Path,
    extra_env: &[(&str, &str)],
) -> (Child, String, mpsc::Receiver<String>) {
    let mut child = ticketd()
        .args(["serve"])
        .env("TICKETD_SPOOL_DIR", spool)
        .env("TICKETD_LISTEN", "127.0.0.1:0")
        .env("DATABASE_URL", database_url)
        .env("INVGATE_BASE_URL", format!("{invgate_uri}/api/v1/"))
        .env("INVGATE_USERNAME", "ticketd-api")
        .env("INVGATE_PASSWORD", INVGATE_KEY)
        .env("JWT_SECRET", JWT_SECRET)
        .env("RUST_LOG", "debug")
        .env("TICKETD_RATE_LIMIT_PER_MINUTE", "0")
        .envs(extra_env.iter().copied())
        // Anything the process leaves in its working directory goes away with the test's
        // temporary spool.
        .current_dir(spool)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("starts");
    let stderr = child.stderr.take().expect("stderr");
    let (lines, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let address = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("ticketd logs that it listens");
        let Ok(entry) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if entry["message"] == "ticketd listening" {
            break entry["address"].as_str().expect("address").to_owned();
        }
    };
    (child, address, rx)
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_the_request_in_flight_finish_then_exits_zero_and_logs_no_secrets() {
    let db = test_database().await.expect("database");
    let invgate = invgate_knowing_alice().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/incident"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"status": "OK", "info": "ok", "request_id": 9}))
                .set_delay(Duration::from_millis(1500)),
        )
        .mount(&invgate)
        .await;
    let spool = support::spool_dir();
    let (mut child, address, logs) = start_serving(db.url(), &invgate.uri(), spool.path());
    let token = TestApp::token(ALICE);

    let in_flight = tokio::spawn({
        let url = format!("http://{address}/api/v1/tickets");
        let token = token.clone();
        async move {
            ticketd_invgate::install_crypto_provider();
            reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .header("x-request-id", "graceful-1")
                .json(&valid_ticket())
                .send()
                .await
        }
    });
    // Let the request reach InvGate (which takes 1.5 s to answer), then ask ticketd to stop.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());

    let response = in_flight
        .await
        .expect("task")
        .expect("the in-flight request is answered");
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("task")
        .expect("exits");
    assert_eq!(status.code(), Some(0));

    let lines: Vec<String> = logs.try_iter().collect();
    let access = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["message"] == "request finished" && e["request_id"] == "graceful-1")
        .expect("one access line for the request");
    assert_eq!(access["http.status_code"], 201);
    assert_eq!(access["http.method"], "POST");
    assert_eq!(access["http.path"], "/api/v1/tickets");
    assert!(access["latency_ms"].as_f64().is_some());
    for line in &lines {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "not one JSON object per line: {line}"
        );
        for secret in [INVGATE_KEY, JWT_SECRET, token.as_str()] {
            assert!(!line.contains(secret), "a secret reached the log: {line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_between_invgates_answer_and_the_local_write_is_recovered_after_restart() {
    let db = test_database().await.expect("database");
    let sim = invgate_sim::RunningSimulator::start().expect("simulator");
    let creds = sim.sim.credentials().clone();
    let spool = support::spool_dir();
    let env = [
        ("INVGATE_USERNAME", creds.username.as_str()),
        ("INVGATE_PASSWORD", creds.password.as_str()),
        ("INVGATE_TIMEOUT_SECS", "1"),
        ("TICKETD_WORKER_INTERVAL_MS", "100"),
    ];
    let mut armed = env.to_vec();
    armed.push(("TICKETD_FAILPOINT", "freeze-after-invgate-create"));
    let (mut child, address, _logs) =
        start_serving_with(db.url(), &sim.uri(), spool.path(), &armed);
    ticketd_invgate::install_crypto_provider();
    let http = reqwest::Client::new();
    let mut ticket = valid_ticket();
    ticket.as_object_mut().expect("object").remove("related_to");
    let post = |address: String| {
        let (http, ticket) = (http.clone(), ticket.clone());
        async move {
            http.post(format!("http://{address}/api/v1/tickets"))
                .bearer_auth(TestApp::token(ALICE))
                .header("Idempotency-Key", "crash-1")
                .json(&ticket)
                .send()
                .await
        }
    };

    let frozen = tokio::spawn(post(address));
    // InvGate has answered (the incident exists); the request is frozen before the local write.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while sim.sim.incident_count() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "InvGate never got the create"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let killed = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("task")
        .expect("exits");
    assert!(!status.success());
    assert!(
        frozen.await.expect("task").is_err(),
        "the client never got an answer"
    );
    assert_eq!(sim.sim.incident_count(), 1, "InvGate created the incident");
    assert_eq!(
        support::count(db.url(), "SELECT count(*) AS n FROM tickets").await,
        0,
        "nothing was written locally"
    );

    let (mut restarted, address, _logs) =
        start_serving_with(db.url(), &sim.uri(), spool.path(), &env);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let answer = loop {
        let answer = post(address.clone()).await.expect("answers");
        if answer.status() != reqwest::StatusCode::CONFLICT {
            break answer;
        }
        assert!(std::time::Instant::now() < deadline, "never reconciled");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    assert_eq!(answer.status(), reqwest::StatusCode::CREATED);
    assert_eq!(answer.headers()["idempotent-replayed"], "true");
    assert_eq!(sim.sim.incident_count(), 1, "adopted, not created again");
    assert_eq!(
        support::count(db.url(), "SELECT count(*) AS n FROM tickets").await,
        1
    );
    terminate(&restarted);
    let _ = restarted.wait();
}

#[tokio::test(flavor = "multi_thread")]
async fn two_ticketd_processes_given_the_same_key_at_once_create_one_incident() {
    let db = test_database().await.expect("database");
    let sim = invgate_sim::RunningSimulator::start().expect("simulator");
    sim.sim.inject(
        invgate_sim::Fault::on("incident", invgate_sim::FaultKind::Delay { ms: 300 }).times(8),
    );
    let creds = sim.sim.credentials().clone();
    let env = [
        ("INVGATE_USERNAME", creds.username.as_str()),
        ("INVGATE_PASSWORD", creds.password.as_str()),
    ];
    let (spool_a, spool_b) = (support::spool_dir(), support::spool_dir());
    let (mut a, address_a, _logs_a) =
        start_serving_with(db.url(), &sim.uri(), spool_a.path(), &env);
    let (mut b, address_b, _logs_b) =
        start_serving_with(db.url(), &sim.uri(), spool_b.path(), &env);
    ticketd_invgate::install_crypto_provider();
    let http = reqwest::Client::new();
    let mut ticket = valid_ticket();
    ticket.as_object_mut().expect("object").remove("related_to");

    let requests = (0..8).map(|i| {
        let address = if i % 2 == 0 { &address_a } else { &address_b };
        http.post(format!("http://{address}/api/v1/tickets"))
            .bearer_auth(TestApp::token(ALICE))
            .header("Idempotency-Key", "two-processes")
            .json(&ticket)
            .send()
    });
    let statuses: Vec<u16> = futures_util::future::join_all(requests)
        .await
        .into_iter()
        .map(|r| r.expect("answers").status().as_u16())
        .collect();

    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    assert_eq!(sim.sim.incident_count(), 1);
    assert_eq!(
        support::count(db.url(), "SELECT count(*) AS n FROM tickets").await,
        1
    );
    for child in [&mut a, &mut b] {
        terminate(child);
        let _ = child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_black_box_session_with_known_secrets_logs_none_of_them_nor_tokens_nor_file_contents() {
    const NEXT_SECRET: &str = "rotated-in-jwt-secret-abcdef0123456789";
    const FILE_MARKER: &str = "file-content-that-must-never-be-logged";
    let db = test_database().await.expect("database");
    let invgate = invgate_knowing_alice().await;
    support::mock_create(&invgate, support::invgate_ok(11)).await;
    let spool = support::spool_dir();
    // Trace: the most talkative the process can be, dependencies included.
    let (mut child, address, logs) = start_serving_with(
        db.url(),
        &invgate.uri(),
        spool.path(),
        &[("RUST_LOG", "trace"), ("JWT_SECRETS", NEXT_SECRET)],
    );
    ticketd_invgate::install_crypto_provider();
    let http = reqwest::Client::new();
    let url = format!("http://{address}/api/v1/tickets");
    let sign = |secret: &str, exp_offset: i64| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &json!({"email": ALICE, "exp": chrono::Utc::now().timestamp() + exp_offset}),
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("signs")
    };
    let tokens = [
        TestApp::token(ALICE),
        sign(NEXT_SECRET, 300),
        sign("a-secret-ticketd-does-not-know-at-all", 300),
        sign(JWT_SECRET, -3600),
    ];
    for token in &tokens {
        let _ = http
            .post(&url)
            .bearer_auth(token)
            .json(&valid_ticket())
            .send()
            .await
            .expect("answers");
    }
    let form = reqwest::multipart::Form::new()
        .text("request", valid_ticket().to_string())
        .part(
            "attachments[]",
            reqwest::multipart::Part::bytes(FILE_MARKER.as_bytes().to_vec())
                .file_name("note.txt")
                .mime_str("text/plain")
                .expect("mime"),
        );
    let created = http
        .post(&url)
        .bearer_auth(&tokens[0])
        .multipart(form)
        .send()
        .await
        .expect("answers");
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);

    terminate(&child);
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    let lines: Vec<String> = logs.try_iter().collect();
    assert!(
        lines.len() > 20,
        "trace logging produced {} lines",
        lines.len()
    );
    let basic = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("ticketd-api:{INVGATE_KEY}"))
    };
    let mut forbidden = vec![
        JWT_SECRET.to_owned(),
        NEXT_SECRET.to_owned(),
        INVGATE_KEY.to_owned(),
        basic,
        FILE_MARKER.to_owned(),
    ];
    for token in &tokens {
        forbidden.push(token.clone());
        // The signature alone would let no one in, but it has no business in a log either.
        forbidden.push(token.rsplit('.').next().expect("signature").to_owned());
    }
    for line in &lines {
        for secret in &forbidden {
            assert!(
                !line.contains(secret.as_str()),
                "{secret:?} reached the log: {line}"
            );
        }
    }
}

/// The JSON log lines of a ticketd that refused a token (request `refused-1`) and created a
/// ticket (request `created-1`), with `env` added to its environment.
async fn log_of_a_refusal_and_a_creation(env: &[(&str, &str)]) -> Vec<Value> {
    let db = test_database().await.expect("database");
    let invgate = invgate_knowing_alice().await;
    support::mock_create(&invgate, support::invgate_ok(12)).await;
    let spool = support::spool_dir();
    let (mut child, address, logs) = start_serving_with(
        db.url(),
        &invgate.uri(),
        spool.path(),
        &[[("RUST_LOG", "info")].as_slice(), env].concat(),
    );
    ticketd_invgate::install_crypto_provider();
    let http = reqwest::Client::new();
    let url = format!("http://{address}/api/v1/tickets");
    let _ = http
        .post(&url)
        .bearer_auth("not-a-token")
        .header("x-request-id", "refused-1")
        .json(&valid_ticket())
        .send()
        .await
        .expect("answers");
    let created = http
        .post(&url)
        .bearer_auth(TestApp::token(ALICE))
        .header("x-request-id", "created-1")
        .json(&valid_ticket())
        .send()
        .await
        .expect("answers");
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    terminate(&child);
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    logs.try_iter()
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect()
}

fn request_of(entry: &Value) -> Option<String> {
    entry["spans"][0]["request_id"]
        .as_str()
        .map(ToOwned::to_owned)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_log_line_of_a_request_carries_its_id_and_the_access_line_its_steps_durations() {
    let entries = log_of_a_refusal_and_a_creation(&[]).await;
    let refused = entries
        .iter()
        .find(|e| e["message"] == "bearer token refused")
        .expect("the refusal is logged");
    assert_eq!(
        request_of(refused).as_deref(),
        Some("refused-1"),
        "{refused}"
    );
    let access = entries
        .iter()
        .find(|e| e["message"] == "request finished" && e["request_id"] == "created-1")
        .expect("the creation's access line");
    let total = access["latency_ms"].as_f64().expect("latency");
    for step in ["auth_ms", "binding_ms", "invgate_ms", "db_ms"] {
        let ms = access[step].as_f64();
        assert!(
            ms.is_some_and(|ms| ms > 0.0 && ms <= total),
            "{step} is a duration within the request's: {access}"
        );
    }
    assert!(
        access.get("spool_ms").is_none(),
        "the spool was not used: {access}"
    );
    assert!(
        entries.iter().all(|e| e["message"] != "close"),
        "no line per finished span unless asked for"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_span_events_on_each_step_logs_its_own_duration_too() {
    let entries = log_of_a_refusal_and_a_creation(&[("TICKETD_LOG_SPAN_EVENTS", "true")]).await;
    let auth_close = entries
        .iter()
        .find(|e| e["message"] == "close" && e["span"]["name"] == "auth")
        .expect("the auth step logs its end");
    assert!(auth_close["time.busy"].is_string(), "{auth_close}");

    let invgate_close = entries
        .iter()
        .find(|e| e["message"] == "close" && e["span"]["name"] == "invgate.create_incident")
        .expect("the InvGate call's span logs its end");
    assert_eq!(request_of(invgate_close).as_deref(), Some("created-1"));
    assert!(invgate_close["time.busy"].is_string(), "{invgate_close}");
    assert!(
        entries.iter().any(|e| e["message"] == "close"
            && request_of(e).as_deref() == Some("created-1")
            && e["span"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("db."))),
        "a database step of the request logs its duration"
    );
}
