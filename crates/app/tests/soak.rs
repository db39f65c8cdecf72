//! A bounded soak: many creates through ticketd while InvGate misbehaves at random and PostgreSQL
//! goes away for a moment, with clients retrying under idempotency keys. At the end InvGate's
//! incidents, the local tickets and the successful operations must be the same set: nothing lost,
//! nothing twice.
//!
//! CI runs a small one; `just soak` a big one (`TICKETD_SOAK_REQUESTS`, `TICKETD_SOAK_CONCURRENCY`,
//! `TICKETD_SOAK_SEED`), and writes its figures to `target/soak/results.json`.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use invgate_sim::{Fault, FaultKind, RunningSimulator};
use serde_json::{Value, json};
use support::{SimApp, count};
use ticketd_pgtemp::{TempCluster, with_database};

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: reproducible randomness from a printed seed, without a dependency.
struct Rng(AtomicU64);

impl Rng {
    fn below(&self, n: u64) -> u64 {
        let mut x = self.0.load(Ordering::Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0.store(x, Ordering::Relaxed);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

fn random_fault(rng: &Rng) -> (&'static str, Fault) {
    let (name, endpoint, kind) = match rng.below(8) {
        0 => (
            "500",
            "incident",
            FaultKind::Status {
                status: 500,
                retry_after: None,
                body: None,
            },
        ),
        1 => (
            "429",
            "incident",
            FaultKind::Status {
                status: 429,
                retry_after: Some(1),
                body: None,
            },
        ),
        2 => (
            "503",
            "incident",
            FaultKind::Status {
                status: 503,
                retry_after: None,
                body: None,
            },
        ),
        3 => ("drop", "incident", FaultKind::Drop),
        4 => ("garbage", "incident", FaultKind::Garbage),
        5 => (
            "answer_late",
            "incident",
            FaultKind::AnswerLate { ms: 1500 },
        ),
        6 => ("hang", "incident", FaultKind::Hang),
        // (`user.by` is cached after the first ticket: faults there would never be reached.)
        _ => ("delay", "incident", FaultKind::Delay { ms: 300 }),
    };
    (name, Fault::on(endpoint, kind))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_soak_with_random_faults_and_retrying_clients_loses_nothing_and_duplicates_nothing() {
    let requests = setting("TICKETD_SOAK_REQUESTS", 100);
    let concurrency = setting("TICKETD_SOAK_CONCURRENCY", 8);
    let seed = setting("TICKETD_SOAK_SEED", 0x005e_ed0f_7ac0) | 1;
    let rng = Arc::new(Rng(AtomicU64::new(seed)));
    let started = Instant::now();
    if let Ok(filter) = std::env::var("TICKETD_SOAK_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .try_init();
    }

    let mut cluster = tokio::task::spawn_blocking(TempCluster::start)
        .await
        .expect("task")
        .expect("cluster");
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
    let sim = RunningSimulator::start().expect("simulator");
    sim.sim.set_recording(false);
    let app = Arc::new(
        SimApp::spawn_on(&url, sim, |args| {
            args.invgate_timeout_secs = Some("1".into());
            args.breaker_threshold = Some("20".into());
            args.breaker_cooldown_secs = Some("1".into());
        })
        .await,
    );

    // Faults: before each attempt, at random, a fault for the next InvGate call (whichever client
    // it hits). A few pending at most, or they would pile up and starve the last clients.
    let fault_percent = setting("TICKETD_SOAK_FAULT_PERCENT", 15);
    let faults: Arc<Mutex<BTreeMap<&'static str, u64>>> = Arc::default();
    let done = Arc::new(AtomicUsize::new(0));
    // The database goes away once, a third of the way in.
    let outage = {
        let done = done.clone();
        tokio::spawn(async move {
            while done.load(Ordering::Relaxed) < requests as usize / 3 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::task::spawn_blocking(move || {
                cluster.pause().expect("database stops");
                std::thread::sleep(Duration::from_millis(1500));
                cluster.resume().expect("database is back");
                cluster
            })
            .await
            .expect("task")
        })
    };

    let statuses: Arc<Mutex<BTreeMap<u16, u64>>> = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    // Collected first: spawning lazily while awaiting would run the clients one after the other.
    let clients: Vec<_> = (0..concurrency).map(|_| {
        let (app, statuses, next, done) = (app.clone(), statuses.clone(), next.clone(), done.clone());
        let (rng, faults) = (rng.clone(), faults.clone());
        tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests as usize {
                    return;
                }
                let ticket: Value = json!({"title": format!("soak {i}"), "description": "soak", "category_id": 1, "priority_id": 2, "type_id": 1});
                let key = format!("soak-{i}");
                let deadline = Instant::now() + Duration::from_secs(120);
                let mut seen = Vec::new();
                loop {
                    if app.sim.sim.pending_faults() < 4 && rng.below(100) < fault_percent {
                        let (name, fault) = random_fault(&rng);
                        app.sim.sim.inject(fault);
                        *faults.lock().expect("lock").entry(name).or_default() += 1;
                    }
                    // 0: no answer at all (the connection broke); retried like a 5xx.
                    let status = app.post_quietly(&ticket, &key).await.unwrap_or(0);
                    *statuses.lock().expect("lock").entry(status).or_default() += 1;
                    if seen.last() != Some(&status) {
                        seen.push(status);
                    }
                    if status == 201 {
                        break;
                    }
                    assert!(status == 0 || status == 409 || status >= 500, "ticket {i}: unexpected {status}");
                    if Instant::now() >= deadline {
                        let state = support::first_text(
                            &app.database_url,
                            &format!("SELECT state || ' ' || coalesce(reason, '') || ' lease ' || lease_until::text || ' now ' || now()::text AS t FROM ticket_operations WHERE idempotency_key = '{key}'"),
                        )
                        .await;
                        panic!("ticket {i} never got its 201: answers {seen:?}, operation {state:?}");
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        })
    }).collect();
    for client in clients {
        client.await.expect("client");
    }
    app.sim.sim.clear_faults();
    let _cluster = outage.await.expect("outage");

    // Let the workers settle whatever is still in doubt or spooled.
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&url, "SELECT count(*) AS n FROM ticket_operations WHERE state IN ('in_flight', 'in_doubt', 'queued')").await > 0
        || std::fs::read_dir(app.spool.path()).expect("spool").count() > 0
    {
        assert!(Instant::now() < deadline, "operations never settled");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let incidents = app.sim.sim.incidents();
    let titles: Vec<String> = incidents
        .iter()
        .map(|i| i["title"].as_str().unwrap_or_default().to_owned())
        .collect();
    let distinct: HashSet<&String> = titles.iter().collect();
    let tickets = count(&url, "SELECT count(*) AS n FROM tickets").await;
    let succeeded = count(
        &url,
        "SELECT count(*) AS n FROM ticket_operations WHERE state = 'succeeded'",
    )
    .await;
    let local_titles = count(&url, "SELECT count(DISTINCT title) AS n FROM tickets").await;
    let attempts: u64 = statuses.lock().expect("lock").values().sum();
    let results = json!({
        "requests": requests,
        "concurrency": concurrency,
        "seed": seed,
        "fault_percent": fault_percent,
        "seconds": started.elapsed().as_secs_f64(),
        "client_attempts": attempts,
        "answers_by_status": statuses.lock().expect("lock").iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
        "faults_injected": *faults.lock().expect("lock"),
        "invgate_incidents": incidents.len(),
        "distinct_incident_titles": distinct.len(),
        "tickets_rows": tickets,
        "distinct_ticket_titles": local_titles,
        "succeeded_operations": succeeded,
    });
    println!("{}", serde_json::to_string_pretty(&results).expect("JSON"));
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/soak");
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(
            dir.join("results.json"),
            serde_json::to_vec_pretty(&results).expect("JSON"),
        );
    }

    let n = requests as usize;
    assert_eq!(
        incidents.len(),
        n,
        "InvGate incidents = requests: none lost, none twice"
    );
    assert_eq!(distinct.len(), n, "no ticket created twice in InvGate");
    assert_eq!(tickets as usize, n, "a local row for every incident");
    assert_eq!(local_titles as usize, n);
    assert_eq!(succeeded as usize, n, "one successful operation per ticket");
}
