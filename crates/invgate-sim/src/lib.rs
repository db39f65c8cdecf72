//! A simulator of InvGate Service Management's v1 API, faithful enough that ticketd's real client
//! cannot tell it from the real thing: the same dotted endpoint names under `/api/v1/`, HTTP Basic
//! auth, PHP-style arrays, `428` with a `status: "ERROR"` body for bad parameters, and the
//! documented answer shapes (see `../shared/invgate-api.md` in the project).
//!
//! For tests it adds what the real one lacks:
//! - **fault injection**: the next N calls of an endpoint answer a given status (with
//!   `Retry-After`), an error body, garbage, a dropped connection, a hang, a delay, or do their
//!   work and answer late ([`Simulator::inject`], or `POST /_sim/faults`);
//! - **recording**: every request with its parameters and each file's name, size and SHA-256
//!   ([`Simulator::requests`], or `GET /_sim/requests`).
//!
//! State lives in memory, seeded from a JSON file or [`Seed::default`] (users
//! `alice@example.com` (42) and `bob@example.com` (43), a disabled `carol@example.com` (44),
//! six categories). Files are hashed and measured while they stream in, never stored.

mod api;
mod control;
mod params;
mod state;

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use actix_web::dev::Server;
use actix_web::http::header::HeaderValue;
use actix_web::{App, HttpServer, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use api::VERSION;
pub use params::{Params, UploadedFile};
pub use state::{Category, Named, Seed, User};

/// Who may call the simulated API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl Default for Credentials {
    fn default() -> Self {
        Self {
            username: "ticketd".into(),
            password: "simulated-api-key".into(),
        }
    }
}

/// What an injected fault does to a call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer this HTTP status (with `Retry-After` seconds when given) and this JSON body (else a
    /// `status: ERROR` body).
    Status {
        status: u16,
        #[serde(default)]
        retry_after: Option<u64>,
        #[serde(default)]
        body: Option<Value>,
    },
    /// Answer 200 with `{"status":"ERROR","error":message}`.
    ErrorBody {
        #[serde(default)]
        message: Option<String>,
    },
    /// Answer 200 with an HTML page instead of JSON.
    Garbage,
    /// Close the connection without an answer.
    Drop,
    /// Never answer.
    Hang,
    /// Wait, then handle the call normally.
    Delay { ms: u64 },
    /// Handle the call (an incident is created), then wait before answering: the case where the
    /// caller times out although the work was done.
    AnswerLate { ms: u64 },
}

/// A fault for the next `times` calls of `endpoint` (e.g. `incident`), for one method or all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    pub endpoint: String,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default = "one")]
    pub times: u32,
    #[serde(flatten)]
    pub kind: FaultKind,
}

fn one() -> u32 {
    1
}

impl Fault {
    /// A fault on every method of `endpoint`, once.
    #[must_use]
    pub fn on(endpoint: &str, kind: FaultKind) -> Self {
        Self {
            endpoint: endpoint.to_owned(),
            method: None,
            times: 1,
            kind,
        }
    }

    #[must_use]
    pub fn times(mut self, times: u32) -> Self {
        self.times = times;
        self
    }

    #[must_use]
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self
    }
}

/// One request the simulator received.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordedRequest {
    pub method: String,
    pub endpoint: String,
    /// Query and body parameters, in order, arrays as repeated `name[]`.
    pub fields: Vec<(String, String)>,
    pub files: Vec<UploadedFile>,
    /// The status answered; `None` for a dropped or hung call.
    pub status: Option<u16>,
}

impl RecordedRequest {
    fn new(method: &str, endpoint: &str, params: Params, status: Option<u16>) -> Self {
        Self {
            method: method.to_owned(),
            endpoint: endpoint.to_owned(),
            fields: params.fields,
            files: params.files,
            status,
        }
    }

    /// The last value of a field.
    #[must_use]
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
struct Inner {
    credentials: Credentials,
    world: Mutex<state::World>,
    faults: Mutex<Vec<Fault>>,
    requests: Mutex<Vec<RecordedRequest>>,
    recording: AtomicBool,
}

/// A simulated InvGate instance; cheap to clone, all clones share one state.
#[derive(Debug, Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Simulator {
    #[must_use]
    pub fn new(credentials: Credentials, seed: Seed) -> Self {
        Self {
            inner: Arc::new(Inner {
                credentials,
                world: Mutex::new(state::World::new(seed)),
                faults: Mutex::new(Vec::new()),
                requests: Mutex::new(Vec::new()),
                recording: AtomicBool::new(true),
            }),
        }
    }

    #[must_use]
    pub fn credentials(&self) -> &Credentials {
        &self.inner.credentials
    }

    /// Adds a fault; faults are matched in the order they were added.
    pub fn inject(&self, fault: Fault) {
        if fault.times > 0 {
            lock(&self.inner.faults).push(fault);
        }
    }

    /// How many injected fault calls are still to come.
    #[must_use]
    pub fn pending_faults(&self) -> u32 {
        lock(&self.inner.faults).iter().map(|f| f.times).sum()
    }

    pub fn clear_faults(&self) {
        lock(&self.inner.faults).clear();
    }

    /// Every request received so far (while recording was on).
    #[must_use]
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.inner.requests).clone()
    }

    /// The recorded requests to one endpoint with one method.
    #[must_use]
    pub fn requests_to(&self, method: &str, endpoint: &str) -> Vec<RecordedRequest> {
        lock(&self.inner.requests)
            .iter()
            .filter(|r| r.method == method && r.endpoint == endpoint)
            .cloned()
            .collect()
    }

    pub fn clear_requests(&self) {
        lock(&self.inner.requests).clear();
    }

    /// Recording costs memory per request; benchmarks switch it off.
    pub fn set_recording(&self, enabled: bool) {
        self.inner.recording.store(enabled, Ordering::Relaxed);
    }

    /// An incident as `GET incident` shows it.
    #[must_use]
    pub fn incident(&self, id: i64) -> Option<Value> {
        lock(&self.inner.world)
            .incidents
            .get(&id)
            .map(state::Incident::to_json)
    }

    /// How many incidents exist.
    #[must_use]
    pub fn incident_count(&self) -> usize {
        lock(&self.inner.world).incidents.len()
    }

    /// Every incident, oldest first.
    #[must_use]
    pub fn incidents(&self) -> Vec<Value> {
        lock(&self.inner.world)
            .incidents
            .values()
            .map(state::Incident::to_json)
            .collect()
    }

    /// Metadata of a stored file: name, content type, size, sha256.
    #[must_use]
    pub fn file(&self, id: i64) -> Option<Value> {
        lock(&self.inner.world)
            .files
            .get(&id)
            .and_then(|f| serde_json::to_value(f).ok())
    }

    /// Changes an incident's status, as an agent working on it would.
    pub fn set_incident_status(&self, id: i64, status_id: i64) -> bool {
        let mut world = lock(&self.inner.world);
        let now = chrono::Utc::now().timestamp();
        world.incidents.get_mut(&id).is_some_and(|incident| {
            incident.status_id = status_id;
            incident.last_update = now;
            true
        })
    }

    fn with_world<T>(&self, f: impl FnOnce(&mut state::World) -> T) -> T {
        f(&mut lock(&self.inner.world))
    }

    fn record(&self, request: RecordedRequest) {
        if self.inner.recording.load(Ordering::Relaxed) {
            lock(&self.inner.requests).push(request);
        }
    }

    fn authorized(&self, header: Option<&HeaderValue>) -> bool {
        let Some(value) = header.and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let Some(encoded) = value
            .strip_prefix("Basic ")
            .or_else(|| value.strip_prefix("basic "))
        else {
            return false;
        };
        let expected = format!(
            "{}:{}",
            self.inner.credentials.username, self.inner.credentials.password
        );
        control::base64_decode(encoded.trim()).is_some_and(|decoded| decoded == expected.as_bytes())
    }

    fn take_fault(&self, method: &str, endpoint: &str) -> Option<FaultKind> {
        let mut faults = lock(&self.inner.faults);
        let index = faults.iter().position(|f| {
            f.endpoint == endpoint
                && f.method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method))
        })?;
        let fault = &mut faults[index];
        let kind = fault.kind.clone();
        fault.times -= 1;
        if fault.times == 0 {
            faults.remove(index);
        }
        Some(kind)
    }

    /// Routes for an actix-web `App`: the API under `/api/v1/` and the control API under `/_sim/`.
    pub fn configure(&self) -> impl FnOnce(&mut web::ServiceConfig) + use<> {
        let sim = web::Data::new(self.clone());
        move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(sim)
                .app_data(web::PayloadConfig::new(usize::MAX))
                .configure(control::configure)
                .route("/api/v1/{endpoint}", web::route().to(api::endpoint));
        }
    }

    /// Serves the simulator on `listener`. Signals are left to the embedding program, which
    /// stops the server through its handle.
    ///
    /// # Errors
    /// When the listener cannot be used.
    pub fn serve(&self, listener: TcpListener, workers: usize) -> std::io::Result<Server> {
        let sim = self.clone();
        Ok(
            HttpServer::new(move || App::new().configure(sim.configure()))
                .workers(workers.max(1))
                .disable_signals()
                .shutdown_timeout(1)
                .listen(listener)?
                .run(),
        )
    }
}

/// A simulator serving on a loopback port, for tests: stops when dropped.
#[derive(Debug)]
pub struct RunningSimulator {
    pub sim: Simulator,
    addr: std::net::SocketAddr,
    handle: actix_web::dev::ServerHandle,
}

impl RunningSimulator {
    /// Starts the default-seeded simulator on a free loopback port, on the current tokio runtime.
    ///
    /// # Errors
    /// When no port can be bound.
    pub fn start() -> std::io::Result<Self> {
        Self::start_with(Simulator::new(Credentials::default(), Seed::default()))
    }

    /// # Errors
    /// When no port can be bound.
    pub fn start_with(sim: Simulator) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let server = sim.serve(listener, 1)?;
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Self { sim, addr, handle })
    }

    /// `http://127.0.0.1:<port>/api/v1/`: what ticketd's `INVGATE_BASE_URL` should be.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}/api/v1/", self.addr)
    }

    /// `http://127.0.0.1:<port>`.
    #[must_use]
    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    #[must_use]
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Stops the server, letting calls in flight finish for up to a second.
    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}
