//! The operator endpoints through the real server: readiness with what failed, and the metrics
//! exposition after traffic.

mod support;

use invgate_sim::{Fault, FaultKind};
use reqwest::StatusCode;
use serde_json::Value;
use support::{SimApp, valid_ticket};

async fn readyz(app: &SimApp) -> (StatusCode, Value) {
    let response = app
        .http
        .get(format!("{}/readyz", app.base_url))
        .send()
        .await
        .expect("answers");
    let status = response.status();
    (status, response.json().await.expect("json"))
}

fn check<'a>(body: &'a Value, name: &str) -> &'a Value {
    body["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == name)
        .expect("the check is reported")
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_when_the_database_is_migrated_and_invgate_answers() {
    let (_db, app) = SimApp::spawn().await;
    let (status, body) = readyz(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(check(&body, "database")["ok"], true);
    assert_eq!(check(&body, "invgate")["ok"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn not_ready_says_which_dependency_failed() {
    let (db, app) = SimApp::spawn().await;
    app.sim.sim.inject(
        Fault::on(
            "sd.version",
            FaultKind::Status {
                status: 500,
                retry_after: None,
                body: None,
            },
        )
        .times(100),
    );
    // A migration the database has lost track of: the schema is not known to be current.
    support::count(
        db.url(),
        "WITH gone AS (DELETE FROM __diesel_schema_migrations WHERE version = (SELECT max(version) FROM __diesel_schema_migrations) RETURNING 1) SELECT count(*) AS n FROM gone",
    )
    .await;
    let (status, body) = readyz(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "not_ready");
    assert_eq!(check(&body, "invgate")["ok"], false);
    let database = check(&body, "database");
    assert_eq!(database["ok"], false);
    assert!(
        database["detail"]
            .as_str()
            .expect("detail")
            .contains("not applied"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_metrics_show_requests_invgate_calls_pool_journal_spool_and_caches_after_traffic() {
    let (_db, app) = SimApp::spawn().await;
    let mut ticket = valid_ticket();
    ticket.as_object_mut().expect("object").remove("related_to");
    for _ in 0..2 {
        assert_eq!(app.post(&ticket, None).await.status(), StatusCode::CREATED);
    }
    let _ = app
        .http
        .get(format!("{}/api/v1/tickets", app.base_url))
        .bearer_auth(support::TestApp::token(support::ALICE))
        .send()
        .await
        .expect("answers");
    let response = app
        .http
        .get(format!("{}/metrics", app.base_url))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("text");
    for expected in [
        r#"ticketd_http_requests_total{route="/api/v1/tickets",method="POST",status="201"}"#,
        r#"ticketd_http_requests_total{route="/api/v1/tickets",method="GET",status="200"}"#,
        r#"ticketd_http_request_duration_seconds_count{route="/api/v1/tickets",method="POST"}"#,
        r#"ticketd_invgate_calls_total{endpoint="incident",outcome="ok"}"#,
        r#"ticketd_invgate_call_duration_seconds_count{endpoint="user.by"}"#,
        r#"ticketd_db_pool_connections{state="idle"}"#,
        r#"ticketd_journal_operations{state="in_doubt"} 0"#,
        "ticketd_journal_oldest_in_doubt_seconds 0",
        "ticketd_spool_records 0",
        r#"ticketd_cache_lookups_total{cache="invgate_user",result="hit"}"#,
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    // The second create found Alice in the cache.
    let hits = text
        .lines()
        .find(|l| {
            l.starts_with(r#"ticketd_cache_lookups_total{cache="invgate_user",result="hit"}"#)
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .expect("a hit count");
    assert!(hits >= 1, "{text}");
}
