//! Spawning the real application for black-box tests: a fresh database per test, a mock InvGate
//! on loopback, the server on a free port.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the support code"
)]

use std::time::Duration;

use actix_web::dev::ServerHandle;
use secrecy::SecretString;
use serde_json::{Value, json};
use ticketd::Application;
use ticketd::config::{DatabaseArgs, ServeArgs};
use ticketd_pgtemp::{TestDatabase, test_database};
use ticketd_postgres::{PgTicketRepository, PoolConfig, TicketRow, connect_pool};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const JWT_SECRET: &str = "black-box-jwt-secret-0123456789abcdef";
pub const INVGATE_USER: &str = "ticketd-api";
pub const INVGATE_KEY: &str = "invgate-key-never-logged";
pub const ALICE: &str = "alice@example.com";
pub const ALICE_ID: i64 = 42;

/// A spool directory of a test's own: a shared one would replay records into other tests'
/// databases.
pub fn spool_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ticketd-test-spool-")
        .tempdir()
        .expect("spool dir")
}

pub struct TestApp {
    pub spool: tempfile::TempDir,
    pub base_url: String,
    pub invgate: MockServer,
    pub db: TestDatabase,
    pub http: reqwest::Client,
    handle: ServerHandle,
}

/// The settings a user would give through the environment, pointing at this test's resources.
pub fn serve_args(database_url: &str, invgate_uri: &str) -> ServeArgs {
    ServeArgs {
        listen: Some("127.0.0.1:0".into()),
        database: DatabaseArgs {
            database_url: Some(database_url.to_owned()),
        },
        invgate_base_url: Some(format!("{invgate_uri}/api/v1")),
        invgate_username: Some(INVGATE_USER.into()),
        invgate_password: Some(INVGATE_KEY.into()),
        invgate_timeout_secs: Some("2".into()),
        jwt_secret: Some(JWT_SECRET.into()),
        worker_interval_ms: Some("100".into()),
        // Tests drive many tickets as one caller; the rate limit has tests of its own.
        rate_limit_per_minute: Some("0".into()),
        ..ServeArgs::default()
    }
}

/// InvGate's answer to a successful create of incident `id`.
pub fn invgate_ok(id: i64) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"status": "OK", "info": "Solicitud creada", "request_id": id}))
}

/// Mounts `POST incident` answering `response`.
pub async fn mock_create(invgate: &MockServer, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path("/api/v1/incident"))
        .respond_with(response)
        .mount(invgate)
        .await;
}

/// Mounts `user.by` knowing Alice.
pub async fn invgate_knowing_alice() -> MockServer {
    let invgate = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/user.by"))
        .and(query_param("email", ALICE))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": ALICE_ID, "name": "Alice", "lastname": "Doe", "email": ALICE, "is_disabled": false, "is_deleted": false
        })))
        .mount(&invgate)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/user.by"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(json!({"status": "ERROR", "info": "User not found"})),
        )
        .with_priority(10)
        .mount(&invgate)
        .await;
    invgate
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(customize: impl FnOnce(&mut ServeArgs)) -> Self {
        let db = test_database().await.expect("a test database");
        let invgate = invgate_knowing_alice().await;
        let spool = spool_dir();
        let mut args = serve_args(db.url(), &invgate.uri());
        args.spool_dir = Some(spool.path().display().to_string());
        customize(&mut args);
        let mut settings = args.settings().expect("valid settings");
        settings.workers = Some(1);
        let app = Application::build(settings).await.expect("the app builds");
        let base_url = format!("http://{}", app.local_addr());
        let handle = app.handle();
        tokio::spawn(app.run_until_stopped());
        Self {
            spool,
            base_url,
            invgate,
            db,
            http: reqwest::Client::new(),
            handle,
        }
    }

    pub fn token(email: &str) -> String {
        ticketd_http::mint_hs256_token(
            &SecretString::from(JWT_SECRET),
            email,
            Duration::from_secs(300),
        )
        .expect("token")
    }

    pub async fn post_ticket(&self, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}/api/v1/tickets", self.base_url))
            .bearer_auth(Self::token(ALICE))
            .json(body)
            .send()
            .await
            .expect("ticketd answers")
    }

    pub async fn mock_create(&self, response: ResponseTemplate) {
        mock_create(&self.invgate, response).await;
    }

    pub async fn row(&self, inv_gate_id: i64) -> Option<TicketRow> {
        let pool = connect_pool(self.db.url(), PoolConfig::default()).expect("pool");
        PgTicketRepository::new(pool)
            .find_by_inv_gate_id(inv_gate_id)
            .await
            .expect("query works")
    }

    pub async fn ticket_count(&self) -> i64 {
        use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = AsyncPgConnection::establish(self.db.url())
            .await
            .expect("connects");
        diesel::sql_query("SELECT count(*) AS n FROM tickets")
            .get_result::<Count>(&mut conn)
            .await
            .expect("counts")
            .n
    }
}

/// ticketd in front of the InvGate simulator: the app, its database and the simulator.
pub struct SimApp {
    pub spool: tempfile::TempDir,
    pub base_url: String,
    pub sim: invgate_sim::RunningSimulator,
    pub database_url: String,
    pub http: reqwest::Client,
    handle: ServerHandle,
}

impl SimApp {
    /// A new database and simulator.
    pub async fn spawn() -> (TestDatabase, Self) {
        let db = test_database().await.expect("a test database");
        let sim = invgate_sim::RunningSimulator::start().expect("the simulator starts");
        let app = Self::spawn_on(db.url(), sim, |_| {}).await;
        (db, app)
    }

    /// Another ticketd instance on the same database, in front of `sim`.
    pub async fn spawn_on(
        database_url: &str,
        sim: invgate_sim::RunningSimulator,
        customize: impl FnOnce(&mut ServeArgs),
    ) -> Self {
        let spool = spool_dir();
        let mut args = serve_args(database_url, &sim.uri());
        args.spool_dir = Some(spool.path().display().to_string());
        args.invgate_username = Some(sim.sim.credentials().username.clone());
        args.invgate_password = Some(sim.sim.credentials().password.clone());
        customize(&mut args);
        let mut settings = args.settings().expect("valid settings");
        settings.workers = Some(2);
        let app = Application::build(settings).await.expect("the app builds");
        let base_url = format!("http://{}", app.local_addr());
        let handle = app.handle();
        tokio::spawn(app.run_until_stopped());
        Self {
            spool,
            base_url,
            sim,
            database_url: database_url.to_owned(),
            http: reqwest::Client::new(),
            handle,
        }
    }

    /// Posts `body` as Alice, with an idempotency key when given.
    pub async fn post(&self, body: &Value, key: Option<&str>) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}/api/v1/tickets", self.base_url))
            .bearer_auth(TestApp::token(ALICE))
            .json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.expect("ticketd answers")
    }

    pub async fn ticket_count(&self) -> i64 {
        count(&self.database_url, "SELECT count(*) AS n FROM tickets").await
    }

    /// Posts `body` as Alice under `key`; `None` when no answer came at all.
    pub async fn post_quietly(&self, body: &Value, key: &str) -> Option<u16> {
        self.http
            .post(format!("{}/api/v1/tickets", self.base_url))
            .bearer_auth(TestApp::token(ALICE))
            .header("Idempotency-Key", key)
            .json(body)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
    }
}

/// Runs a `SELECT count(*) AS n …`.
pub async fn count(database_url: &str, sql: &str) -> i64 {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = AsyncPgConnection::establish(database_url)
        .await
        .expect("connects");
    diesel::sql_query(sql)
        .get_result::<Count>(&mut conn)
        .await
        .expect("counts")
        .n
}

/// Runs a `SELECT … AS t` returning one text, if any row.
pub async fn first_text(database_url: &str, sql: &str) -> Option<String> {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    #[derive(diesel::QueryableByName)]
    struct Text {
        #[diesel(sql_type = diesel::sql_types::Text)]
        t: String,
    }
    let mut conn = AsyncPgConnection::establish(database_url).await.ok()?;
    diesel::sql_query(sql)
        .get_result::<Text>(&mut conn)
        .await
        .ok()
        .map(|r| r.t)
}

impl Drop for SimApp {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Stop accepting and release the port; nothing to wait for in a test.
        drop(self.handle.stop(false));
    }
}

pub fn valid_ticket() -> Value {
    json!({
        "title": "Laptop overheating",
        "description": "Fan is loud since the update",
        "category_id": 3,
        "priority_id": 3,
        "type_id": 1,
        "source_id": 8,
        "related_to": [1200],
        "creator_id": 999,
        "customer_id": 999
    })
}
