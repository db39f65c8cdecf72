//! Fault tests: the database going away while requests flow, with a PostgreSQL of the test's own
//! that it stops and starts, and the InvGate simulator.

mod support;

use std::time::{Duration, Instant};

use invgate_sim::{Fault, FaultKind, RunningSimulator};
use reqwest::StatusCode;
use serde_json::Value;
use support::{SimApp, count};
use ticketd_pgtemp::{TempCluster, with_database};

/// A ticket the simulator accepts.
fn ticket() -> Value {
    let mut ticket = support::valid_ticket();
    ticket.as_object_mut().expect("object").remove("related_to");
    ticket
}

async fn own_cluster() -> (TempCluster, String) {
    let cluster = tokio::task::spawn_blocking(TempCluster::start)
        .await
        .expect("task")
        .expect("cluster starts");
    let url = with_database(&cluster.url(), "ticketd");
    {
        use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
        let mut admin = AsyncPgConnection::establish(&cluster.url())
            .await
            .expect("connects");
        diesel::sql_query("CREATE DATABASE ticketd")
            .execute(&mut admin)
            .await
            .expect("created");
    }
    (cluster, url)
}

fn spooled_files(app: &SimApp) -> usize {
    std::fs::read_dir(app.spool.path())
        .expect("spool dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".json"))
        })
        .count()
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ticket_created_while_the_database_went_down_is_spooled_answered_201_and_stored_when_it_is_back()
 {
    let (mut cluster, url) = own_cluster().await;
    let sim = RunningSimulator::start().expect("simulator");
    let app = SimApp::spawn_on(&url, sim, |_| {}).await;
    app.sim
        .sim
        .inject(Fault::on("incident", FaultKind::Delay { ms: 1500 }));

    let ticket = ticket();
    let (response, ()) = tokio::join!(app.post(&ticket, Some("outage-1")), async {
        // The journal entry is written; InvGate is working; now the database goes.
        tokio::time::sleep(Duration::from_millis(500)).await;
        cluster.pause().expect("database stops");
    });

    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "InvGate created it: the client gets its ticket"
    );
    assert_eq!(spooled_files(&app), 1, "the record waits in the spool");
    assert_eq!(app.sim.sim.incident_count(), 1);

    // With the database down, nothing new may start: an untracked incident could be lost.
    let refused = app.post(&ticket, Some("outage-2")).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(
        refused.json::<Value>().await.expect("problem")["code"],
        "STORE_UNAVAILABLE"
    );
    assert_eq!(app.sim.sim.incident_count(), 1, "InvGate was not called");

    cluster.resume().expect("database is back");
    eventually("the spooled record is in the database", async || {
        spooled_files(&app) == 0 && count(&url, "SELECT count(*) AS n FROM tickets").await == 1
    })
    .await;
    assert_eq!(
        count(&url, "SELECT count(*) AS n FROM ticket_operations WHERE state = 'succeeded' AND inv_gate_id IS NOT NULL").await,
        1
    );

    let replay = app.post(&ticket, Some("outage-1")).await;
    assert_eq!(replay.status(), StatusCode::CREATED);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(app.sim.sim.incident_count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn records_spooled_before_a_restart_are_stored_at_start_up() {
    let (mut cluster, url) = own_cluster().await;
    let sim = RunningSimulator::start().expect("simulator");
    let app = SimApp::spawn_on(&url, sim, |args| {
        args.worker_interval_ms = Some("3600000".into())
    })
    .await;
    app.sim
        .sim
        .inject(Fault::on("incident", FaultKind::Delay { ms: 1000 }));
    let ticket = ticket();
    let (response, ()) = tokio::join!(app.post(&ticket, None), async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        cluster.pause().expect("database stops");
    });
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(spooled_files(&app), 1);
    cluster.resume().expect("database is back");

    // A new instance on the same spool: it replays before serving.
    let sim = RunningSimulator::start_with(app.sim.sim.clone()).expect("simulator");
    let spool = app.spool.path().display().to_string();
    let restarted = SimApp::spawn_on(&url, sim, |args| args.spool_dir = Some(spool)).await;

    assert_eq!(count(&url, "SELECT count(*) AS n FROM tickets").await, 1);
    assert_eq!(std::fs::read_dir(app.spool.path()).expect("dir").count(), 0);
    drop(restarted);
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_invgate_failures_open_the_circuit_then_a_probe_closes_it() {
    let db = ticketd_pgtemp::test_database().await.expect("database");
    let sim = RunningSimulator::start().expect("simulator");
    let app = SimApp::spawn_on(db.url(), sim, |args| {
        args.breaker_threshold = Some("2".into());
        args.breaker_cooldown_secs = Some("2".into());
    })
    .await;
    let ticket = ticket();
    assert_eq!(
        app.post(&ticket, None).await.status(),
        StatusCode::CREATED,
        "user.by is cached from here on"
    );
    // Only the creates: the first ticket is due for the background status sync at once, and its
    // `GET incident` would otherwise take one of the two faults.
    app.sim.sim.inject(
        Fault::on(
            "incident",
            FaultKind::Status {
                status: 500,
                retry_after: None,
                body: None,
            },
        )
        .method("POST")
        .times(2),
    );

    for _ in 0..2 {
        assert_eq!(
            app.post(&ticket, None).await.status(),
            StatusCode::BAD_GATEWAY
        );
    }
    let sent_before = app.sim.sim.requests_to("POST", "incident").len();
    let refused = app.post(&ticket, None).await;

    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(
        refused.json::<Value>().await.expect("problem")["code"],
        "UPSTREAM_UNAVAILABLE"
    );
    assert_eq!(
        app.sim.sim.requests_to("POST", "incident").len(),
        sent_before,
        "refused without calling InvGate"
    );

    tokio::time::sleep(Duration::from_millis(2200)).await;
    eventually("the circuit closes after the cool-down", async || {
        app.post(&ticket, None).await.status() == StatusCode::CREATED
    })
    .await;
}

/// Posts with `key` until the answer is final (not 409, not a retryable 5xx), as a patient client.
async fn until_final(app: &SimApp, ticket: &Value, key: &str) -> (StatusCode, Vec<StatusCode>) {
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut seen = Vec::new();
    loop {
        let status = app.post(ticket, Some(key)).await.status();
        seen.push(status);
        let transient = status == StatusCode::CONFLICT || status.is_server_error();
        if !transient {
            return (status, seen);
        }
        assert!(Instant::now() < deadline, "never settled: {seen:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn under_every_invgate_fault_a_retrying_client_gets_exactly_one_ticket() {
    let cases: Vec<(&str, FaultKind, StatusCode)> = vec![
        (
            "500",
            FaultKind::Status {
                status: 500,
                retry_after: None,
                body: None,
            },
            StatusCode::BAD_GATEWAY,
        ),
        (
            "429",
            FaultKind::Status {
                status: 429,
                retry_after: Some(30),
                body: None,
            },
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        ("hang", FaultKind::Hang, StatusCode::GATEWAY_TIMEOUT),
        ("drop", FaultKind::Drop, StatusCode::BAD_GATEWAY),
        ("garbage", FaultKind::Garbage, StatusCode::BAD_GATEWAY),
        (
            "late answer",
            FaultKind::AnswerLate { ms: 1500 },
            StatusCode::GATEWAY_TIMEOUT,
        ),
    ];
    let runs = cases
        .into_iter()
        .map(|(name, fault, first_status)| async move {
            let db = ticketd_pgtemp::test_database().await.expect("database");
            let sim = RunningSimulator::start().expect("simulator");
            let app = SimApp::spawn_on(db.url(), sim, |args| {
                args.invgate_timeout_secs = Some("1".into())
            })
            .await;
            app.sim.sim.inject(Fault::on("incident", fault));
            let ticket = ticket();

            let (last, seen) = until_final(&app, &ticket, "fault").await;

            assert_eq!(seen[0], first_status, "{name}: first answer");
            assert_eq!(last, StatusCode::CREATED, "{name}: {seen:?}");
            assert_eq!(
                app.sim.sim.incident_count(),
                1,
                "{name}: exactly one incident"
            );
            assert_eq!(
                app.ticket_count().await,
                1,
                "{name}: exactly one local record"
            );
            drop(db);
        });
    futures_util::future::join_all(runs).await;
}
