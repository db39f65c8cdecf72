//! `ticketd-bench` (run by `just bench`): starts a throwaway PostgreSQL (or a fresh database on
//! `DATABASE_URL`), the InvGate simulator with request recording off, and ticketd, all release
//! builds in their own processes; runs every scenario against ticketd and against the floor (the
//! same work without ticketd); prints a markdown table and writes `target/bench/results.json`.
//!
//! ticketd's CPU time per ticket comes from `/proc/<pid>/stat` before and after a run, its peak
//! resident memory from `VmHWM` (reset before each run). Nothing here is a test: the figures
//! depend on the machine, and the targets are reported, not asserted.

mod floor;
mod http1;
mod load;
mod procfs;

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use reqwest::multipart::{Form, Part};
use secrecy::SecretString;
use serde::Serialize;
use tokio::process::{Child, Command};

use crate::floor::{File, Floor};
use crate::http1::Http1;
use crate::load::{Outcome, Percentiles, Work};

/// The allocator ticketd is built with, so that the floor's share of the work (the database and
/// InvGate clients, in this process) is measured as ticketd does it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SIM_USER: &str = "ticketd";
const SIM_PASSWORD: &str = "simulated-api-key";
/// The simulator's seeded user the load creates tickets for.
const CALLER: &str = "alice@example.com";
const CALLER_INVGATE_ID: i64 = 42;
const MIB: usize = 1024 * 1024;

struct Settings {
    /// `json`, `open`, `multipart`, `big`, `instructions`: which scenarios run
    /// (`BENCH_SCENARIOS`, default all).
    scenarios: Vec<String>,
    run: Duration,
    warmup: Duration,
    big_runs: usize,
    /// How many times each closed-loop JSON comparison (a ticketd run and a floor run, in
    /// alternating order) is repeated; the
    /// targets use the medians, since one pair can be off by 20% on a shared VM.
    pairs: usize,
    /// The closed-loop JSON concurrencies (`BENCH_CONCURRENCY`, default `1,16,64`); the
    /// efficiency and p99 targets are read at 64.
    concurrency: Vec<usize>,
    load_client: LoadClient,
    out: PathBuf,
}

impl Settings {
    fn wants(&self, scenario: &str) -> bool {
        self.scenarios.iter().any(|s| s == scenario)
    }

    fn from_env() -> anyhow::Result<Self> {
        let secs = |name: &str, default: u64| -> anyhow::Result<u64> {
            std::env::var(name)
                .ok()
                .map(|v| {
                    v.parse()
                        .with_context(|| format!("{name} must be a whole number"))
                })
                .transpose()
                .map(|v| v.unwrap_or(default))
        };
        Ok(Self {
            scenarios: std::env::var("BENCH_SCENARIOS")
                .unwrap_or_else(|_| "json,open,multipart,big,instructions".to_owned())
                .split(',')
                .map(|s| s.trim().to_owned())
                .collect(),
            run: Duration::from_secs(secs("BENCH_SECS", 10)?),
            warmup: Duration::from_secs(secs("BENCH_WARMUP_SECS", 2)?),
            big_runs: usize::try_from(secs("BENCH_BIG_RUNS", 3)?)?,
            pairs: usize::try_from(secs("BENCH_PAIRS", 5)?)?.max(1),
            concurrency: std::env::var("BENCH_CONCURRENCY")
                .unwrap_or_else(|_| "1,16,64".to_owned())
                .split(',')
                .map(|c| match c.trim().parse::<usize>() {
                    Ok(c) if c > 0 => Ok(c),
                    _ => Err(anyhow::anyhow!(
                        "BENCH_CONCURRENCY is a list of whole numbers above 0, not {c:?}"
                    )),
                })
                .collect::<anyhow::Result<_>>()?,
            load_client: match std::env::var("BENCH_LOAD_CLIENT").as_deref() {
                Err(_) | Ok("lean") => LoadClient::Lean,
                Ok("reqwest") => LoadClient::Reqwest,
                Ok(other) => bail!("BENCH_LOAD_CLIENT is `lean` or `reqwest`, not {other:?}"),
            },
            out: std::env::var_os("BENCH_OUT")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("target/bench/results.json")),
        })
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The release binaries built beside this one.
fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.parent().context("no directory")?.join(name);
    if !path.is_file() {
        bail!(
            "{} is missing: build it (`just bench` does)",
            path.display()
        );
    }
    Ok(path)
}

async fn wait_for(
    client: &reqwest::Client,
    url: &str,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        if let Ok(r) = client.get(url).send().await
            && r.status().is_success()
        {
            return Ok(start.elapsed());
        }
        if start.elapsed() > limit {
            bail!("{url} did not answer 200 within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn wait_for_port(port: u16, limit: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if start.elapsed() > limit {
            bail!("nothing listens on port {port} after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

struct Ticketd {
    child: Child,
    pid: u32,
}

struct Stack {
    /// ticketd's port, the same across restarts so the load's URLs stay valid.
    port: u16,
    sim_base: String,
    database_url: String,
    secret: String,
    log: PathBuf,
    /// InvGate calls ticketd may have in flight (`INVGATE_MAX_CONCURRENT_CALLS`): the largest
    /// closed-loop concurrency, so that ticketd makes as many calls at once as the floor does.
    invgate_slots: usize,
}

impl Stack {
    async fn start_ticketd(&self, client: &reqwest::Client) -> anyhow::Result<(Ticketd, Duration)> {
        self.start_ticketd_under(&[], &[], client).await
    }

    /// Starts ticketd as the last argument of `wrapper` (a profiler's command line), or on its
    /// own when `wrapper` is empty, with `settings` added to its environment.
    async fn start_ticketd_under(
        &self,
        wrapper: &[String],
        settings: &[(&str, &str)],
        client: &reqwest::Client,
    ) -> anyhow::Result<(Ticketd, Duration)> {
        let port = self.port;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let started = Instant::now();
        let ticketd = sibling("ticketd")?;
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(ticketd);
                command
            }
            None => Command::new(ticketd),
        };
        let child = command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DATABASE_URL", &self.database_url)
            .env("INVGATE_BASE_URL", format!("{}/api/v1", self.sim_base))
            .env("INVGATE_USERNAME", SIM_USER)
            .env("INVGATE_PASSWORD", SIM_PASSWORD)
            .env("JWT_SECRET", &self.secret)
            .env("TICKETD_LISTEN", format!("127.0.0.1:{port}"))
            // One caller sends all the load: the per-caller limit would measure itself.
            .env("TICKETD_RATE_LIMIT_PER_MINUTE", "0")
            // The limit on InvGate calls in flight (16 by default, to spare a real InvGate)
            // would too: at c=64 requests would wait for a slot where the floor calls at once.
            .env(
                "INVGATE_MAX_CONCURRENT_CALLS",
                self.invgate_slots.to_string(),
            )
            // For the 100 MiB scenario.
            .env("TICKETD_MAX_ATTACHMENT_BYTES", (128 * MIB).to_string())
            .env("TICKETD_SPOOL_DIR", self.log.with_file_name("spool"))
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            // Settings to experiment with pass through.
            .envs(
                [
                    "TICKETD_WORKERS",
                    "RUST_LOG",
                    "INVGATE_MAX_CONCURRENT_CALLS",
                ]
                .into_iter()
                .filter_map(|name| std::env::var_os(name).map(|value| (name, value))),
            )
            .envs(settings.iter().copied())
            .kill_on_drop(true)
            .spawn()
            .context("starting ticketd")?;
        let pid = child.id().context("ticketd has no pid")?;
        let base = format!("http://127.0.0.1:{port}");
        wait_for(client, &format!("{base}/readyz"), Duration::from_secs(120)).await?;
        Ok((Ticketd { child, pid }, started.elapsed()))
    }
}

/// A fresh ticketd for the next scenario, so its peak memory is its own and not what an earlier
/// scenario left allocated.
async fn restart(
    stack: &Stack,
    ticketd: Ticketd,
    probe: &reqwest::Client,
) -> anyhow::Result<Ticketd> {
    stop(ticketd).await?;
    Ok(stack.start_ticketd(probe).await?.0)
}

async fn stop(mut ticketd: Ticketd) -> anyhow::Result<()> {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &ticketd.pid.to_string()])
        .status();
    tokio::time::timeout(Duration::from_secs(30), ticketd.child.wait())
        .await
        .context("ticketd did not stop within 30 s")??;
    Ok(())
}

fn text_file(name: &str, size: usize) -> File {
    let line = b"ticketd benchmark attachment line, plain text.\n";
    let bytes: Vec<u8> = line.iter().copied().cycle().take(size).collect();
    let sha256 = sha256_hex(&bytes);
    File {
        name: name.to_owned(),
        bytes: Bytes::from(bytes),
        sha256,
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

const TITLE: &str = "Benchmark ticket";
const DESCRIPTION: &str = "The VPN drops every hour since Monday; reported by the benchmark.";

fn ticket_json() -> Bytes {
    Bytes::from(
        serde_json::json!({
            "title": TITLE,
            "description": DESCRIPTION,
            "category_id": 1,
            "priority_id": 2,
            "type_id": 1,
        })
        .to_string(),
    )
}

/// Which HTTP client sends the load to ticketd (`BENCH_LOAD_CLIENT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum LoadClient {
    /// The request built once and written as is on keep-alive connections (`http1.rs`).
    Lean,
    /// reqwest, building each request anew: what earlier tables were measured with.
    Reqwest,
}

/// Where the load goes, and as whom.
struct Endpoint {
    addr: SocketAddr,
    path: &'static str,
    token: String,
}

impl Endpoint {
    fn url(&self) -> String {
        format!("http://{}{}", self.addr, self.path)
    }
}

const BOUNDARY: &str = "ticketd-bench-7f3a9c1e5b";

/// The multipart body ticketd's clients send: the ticket's JSON as `request`, the files as
/// `attachments[]`. The boundary cannot occur in the bench's plain-text files.
fn multipart_body(json: &[u8], files: &[File]) -> Vec<u8> {
    let mut body =
        Vec::with_capacity(files.iter().map(|f| f.bytes.len() + 256).sum::<usize>() + 512);
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"request\"\r\nContent-Type: application/json\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(json);
    for file in files {
        body.extend_from_slice(
            format!(
                "\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"attachments[]\"; filename=\"{}\"\r\nContent-Type: text/plain\r\n\r\n",
                file.name
            )
            .as_bytes(),
        );
        body.extend_from_slice(&file.bytes);
    }
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// One create request to ticketd: JSON without files, multipart with them. Either way it must be
/// answered `201 Created`.
fn ticketd_work(
    load: LoadClient,
    endpoint: &Endpoint,
    files: Arc<Vec<File>>,
) -> anyhow::Result<Work> {
    let json = ticket_json();
    if load == LoadClient::Reqwest {
        return Ok(reqwest_work(
            client(64)?,
            endpoint.url(),
            endpoint.token.clone(),
            json,
            files,
        ));
    }
    let authorization = format!("Bearer {}", endpoint.token);
    let (content_type, body) = if files.is_empty() {
        ("application/json".to_owned(), json.to_vec())
    } else {
        (
            format!("multipart/form-data; boundary={BOUNDARY}"),
            multipart_body(&json, &files),
        )
    };
    let http = Arc::new(Http1::post(
        endpoint.addr,
        endpoint.path,
        &[
            ("Authorization", &authorization),
            ("Content-Type", &content_type),
        ],
        &body,
    ));
    Ok(Arc::new(move || {
        let http = http.clone();
        Box::pin(async move {
            let answer = http.send().await?;
            if answer.status == 201 {
                Ok(())
            } else {
                Err(format!(
                    "{}: {}",
                    answer.status,
                    String::from_utf8_lossy(&answer.body)
                ))
            }
        })
    }))
}

/// The same request through reqwest, built anew each time.
fn reqwest_work(
    client: reqwest::Client,
    url: String,
    token: String,
    json: Bytes,
    files: Arc<Vec<File>>,
) -> Work {
    Arc::new(move || {
        let client = client.clone();
        let url = url.clone();
        let token = token.clone();
        let files = files.clone();
        let json = json.clone();
        Box::pin(async move {
            let request = client.post(&url).bearer_auth(&token);
            let request = if files.is_empty() {
                request
                    .header("content-type", "application/json")
                    .body(json)
            } else {
                let mut form = Form::new().part(
                    "request",
                    Part::stream_with_length(reqwest::Body::from(json.clone()), json.len() as u64)
                        .mime_str("application/json")
                        .map_err(|e| e.to_string())?,
                );
                for file in files.iter() {
                    form = form.part(
                        "attachments[]",
                        Part::stream_with_length(
                            reqwest::Body::from(file.bytes.clone()),
                            file.bytes.len() as u64,
                        )
                        .file_name(file.name.clone())
                        .mime_str("text/plain")
                        .map_err(|e| e.to_string())?,
                    );
                }
                request.multipart(form)
            };
            let response = request.send().await.map_err(|e| e.to_string())?;
            let status = response.status();
            let body = response.bytes().await.map_err(|e| e.to_string())?;
            if status == reqwest::StatusCode::CREATED {
                Ok(())
            } else {
                Err(format!("{status}: {}", String::from_utf8_lossy(&body)))
            }
        })
    })
}

fn floor_work(floor: Floor, files: Arc<Vec<File>>) -> Work {
    Arc::new(move || {
        let floor = floor.clone();
        let files = files.clone();
        Box::pin(async move { floor.create(TITLE, DESCRIPTION, &files).await })
    })
}

fn client(pool: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(pool)
        .timeout(Duration::from_secs(120))
        .build()?)
}

/// One run's figures.
#[derive(Debug, Clone, Serialize)]
struct Run {
    scenario: String,
    target: &'static str,
    mode: String,
    requests_ok: u64,
    errors: u64,
    dropped: u64,
    seconds: f64,
    tickets_per_s: f64,
    latency: Percentiles,
    /// ticketd: its process's CPU per ticket. Floor: the bench process's, which then does the
    /// floor's client work (database, InvGate) and drives the load, but serves nothing.
    cpu_us_per_ticket: Option<f64>,
    /// ticketd only: the bench process's CPU per ticket while it drove ticketd (building,
    /// sending and reading the HTTP requests). It shares the cores with ticketd, so what the load
    /// generator costs lowers ticketd's throughput, and the efficiency, without being ticketd's.
    driver_cpu_us_per_ticket: Option<f64>,
    peak_rss_mib: Option<f64>,
    /// ticketd only: its tickets/s over the floor's in the same scenario.
    efficiency: Option<f64>,
    first_error: Option<String>,
}

fn run_of(scenario: &str, target: &'static str, mode: String, outcome: &Outcome) -> Run {
    Run {
        scenario: scenario.to_owned(),
        target,
        mode,
        requests_ok: outcome.ok,
        errors: outcome.errors,
        dropped: outcome.dropped,
        seconds: outcome.elapsed.as_secs_f64(),
        tickets_per_s: outcome.per_second(),
        latency: outcome.percentiles(),
        cpu_us_per_ticket: None,
        driver_cpu_us_per_ticket: None,
        peak_rss_mib: None,
        efficiency: None,
        first_error: outcome.first_error.clone(),
    }
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Closed(usize),
    Open(f64),
}

impl Mode {
    fn label(&self) -> String {
        match self {
            Self::Closed(c) => format!("closed c={c}"),
            Self::Open(rate) => format!("open {rate:.0}/s"),
        }
    }
}

async fn measure(work: &Work, mode: &Mode, settings: &Settings) -> Outcome {
    match *mode {
        Mode::Closed(c) => load::closed(work.clone(), c, settings.run).await,
        Mode::Open(rate) => load::open(work.clone(), rate, settings.run, 4096).await,
    }
}

async fn warm(work: &Work, mode: &Mode, settings: &Settings) {
    if settings.warmup.is_zero() {
        return;
    }
    let c = match *mode {
        Mode::Closed(c) => c,
        Mode::Open(_) => 16,
    };
    let _ = load::closed(work.clone(), c, settings.warmup).await;
}

/// CPU time per ticket in µs; none when no ticket was made.
fn per_ticket(cpu: Duration, tickets: u64) -> Option<f64> {
    (tickets > 0).then(|| cpu.as_secs_f64() * 1e6 / tickets as f64)
}

/// One scenario on ticketd and on the floor: both runs, ticketd's (with its efficiency) first,
/// whichever ran first. The JSON pairs alternate which runs first (`floor_first`), so that what
/// the first run of a pair leaves behind (a table grown by its tickets, autovacuum started by
/// them, a warmer cache) does not always fall on the same side.
async fn compare(
    name: &str,
    (on_ticketd_work, ticketd_mode): (&Work, Mode),
    (on_floor_work, floor_mode): (&Work, Mode),
    ticketd: &Ticketd,
    settings: &Settings,
    ticks: u64,
    floor_first: bool,
) -> anyhow::Result<[Run; 2]> {
    let first_base = if floor_first {
        Some(on_floor(name, on_floor_work, floor_mode, settings, ticks).await)
    } else {
        None
    };
    let mut run = on_ticketd(
        name,
        on_ticketd_work,
        ticketd_mode,
        ticketd,
        settings,
        ticks,
    )
    .await?;
    let base = match first_base {
        Some(base) => base,
        None => on_floor(name, on_floor_work, floor_mode, settings, ticks).await,
    };
    run.efficiency = Some(run.tickets_per_s / base.tickets_per_s);
    Ok([run, base])
}

/// The middle value (the mean of the middle two for an even count); none for no values.
fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// The best rate of a scenario on `target`: the highest, over its loads, of the median tickets/s
/// of that load's runs.
fn best(runs: &[Run], scenario: &str, target: &str) -> f64 {
    let mut modes: Vec<&str> = runs
        .iter()
        .filter(|r| r.target == target && r.scenario == scenario)
        .map(|r| r.mode.as_str())
        .collect();
    modes.dedup();
    modes
        .into_iter()
        .filter_map(|mode| {
            median(
                runs.iter()
                    .filter(|r| r.target == target && r.scenario == scenario && r.mode == mode)
                    .map(|r| r.tickets_per_s)
                    .collect(),
            )
        })
        .fold(0.0, f64::max)
}

/// Runs one scenario against ticketd, measuring its CPU and peak memory around the run.
async fn on_ticketd(
    name: &str,
    work: &Work,
    mode: Mode,
    ticketd: &Ticketd,
    settings: &Settings,
    ticks: u64,
) -> anyhow::Result<Run> {
    warm(work, &mode, settings).await;
    procfs::reset_peak(ticketd.pid)?;
    let me = std::process::id();
    let cpu_before = procfs::cpu_time(ticketd.pid, ticks)?;
    let driver_before = procfs::cpu_time(me, ticks)?;
    let outcome = measure(work, &mode, settings).await;
    let cpu_after = procfs::cpu_time(ticketd.pid, ticks)?;
    let driver_after = procfs::cpu_time(me, ticks)?;
    let mut run = run_of(name, "ticketd", mode.label(), &outcome);
    run.cpu_us_per_ticket = per_ticket(cpu_after - cpu_before, outcome.ok);
    run.driver_cpu_us_per_ticket = per_ticket(driver_after - driver_before, outcome.ok);
    run.peak_rss_mib = Some(procfs::status_kib(ticketd.pid, "VmHWM")? as f64 / 1024.0);
    eprintln!(
        "  {name:<28} ticketd {:<14} {:>8.1}/s p99 {:>8.2} ms",
        run.mode, run.tickets_per_s, run.latency.p99_ms
    );
    Ok(run)
}

/// Runs one scenario on the floor. Its CPU per ticket is this process's: the floor's own database
/// and InvGate client work, plus driving the load (but no HTTP serving).
async fn on_floor(name: &str, work: &Work, mode: Mode, settings: &Settings, ticks: u64) -> Run {
    warm(work, &mode, settings).await;
    let me = std::process::id();
    let cpu_before = procfs::cpu_time(me, ticks).unwrap_or_default();
    let outcome = measure(work, &mode, settings).await;
    let cpu_after = procfs::cpu_time(me, ticks).unwrap_or_default();
    let mut run = run_of(name, "floor", mode.label(), &outcome);
    run.cpu_us_per_ticket = per_ticket(cpu_after - cpu_before, outcome.ok);
    eprintln!(
        "  {name:<28} floor   {:<14} {:>8.1}/s p99 {:>8.2} ms",
        run.mode, run.tickets_per_s, run.latency.p99_ms
    );
    run
}

#[derive(Debug, Serialize)]
struct Machine {
    cores: usize,
    cpu_model: String,
    load_average_before: String,
    load_average_after: String,
    kernel: String,
}

#[derive(Debug, Serialize)]
struct BigUpload {
    mib: usize,
    runs: usize,
    seconds: Vec<f64>,
    best_mib_per_s: f64,
    ticketd_peak_rss_mib: f64,
    floor_seconds: Vec<f64>,
}

#[derive(Debug, Serialize)]
struct Target {
    what: &'static str,
    goal: String,
    measured: String,
    met: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    generated_at: String,
    machine: Machine,
    run_seconds: f64,
    warmup_seconds: f64,
    /// The client that sent ticketd its load.
    load_client: LoadClient,
    startup_to_ready_ms: f64,
    idle_rss_mib: f64,
    runs: Vec<Run>,
    /// Per closed-loop JSON load, the median over the pairs of ticketd's CPU per ticket minus the
    /// floor's: what ticketd adds to the database and InvGate client work both do.
    cpu_above_floor_us: Vec<(String, f64)>,
    /// `None` when the scenario was not run.
    big_upload: Option<BigUpload>,
    /// ticketd's instructions per JSON ticket under callgrind; none without valgrind.
    instructions: Option<Instructions>,
    targets: Vec<Target>,
}

/// What callgrind counted while ticketd created JSON tickets.
#[derive(Debug, Serialize)]
struct Instructions {
    concurrency: usize,
    tickets: u64,
    /// Instructions ticketd executed in user space (`Ir`), per ticket, less what it executes
    /// idle over the same time.
    per_ticket: f64,
    /// Instructions per second with no requests.
    idle_per_second: f64,
}

/// The instructions counted in one of callgrind's dumps.
fn dumped_instructions(dump: &Path) -> anyhow::Result<f64> {
    std::fs::read_to_string(dump)
        .with_context(|| format!("reading {}", dump.display()))?
        .lines()
        .find_map(|line| line.strip_prefix("summary:"))
        .and_then(|n| n.trim().parse().ok())
        .with_context(|| format!("no summary line in {}", dump.display()))
}

/// The concurrency of the instruction count: a few requests in flight, as valgrind runs one
/// thread at a time anyway.
const INSTRUCTIONS_CONCURRENCY: usize = 4;

/// Counts the instructions ticketd executes per JSON ticket, with ticketd under valgrind's
/// callgrind: unlike CPU time, the count hardly moves from one run to the next or with what else
/// the machine does (runs of the same build agree within about 1%, where CPU time per ticket
/// moves by 20%), so it shows changes of a few percent that the timed runs cannot. It counts user space only: not the kernel's work in system calls,
/// and not waiting. Skipped, with a note, when valgrind is not installed.
async fn instructions(
    stack: &Stack,
    work: &Work,
    probe: &reqwest::Client,
    settings: &Settings,
    out_dir: &Path,
) -> anyhow::Result<Option<Instructions>> {
    let installed = |tool: &str| {
        std::process::Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !installed("valgrind") || !installed("callgrind_control") {
        eprintln!("instructions per ticket: skipped, valgrind is not installed");
        return Ok(None);
    }
    eprintln!("instructions per ticket, ticketd under callgrind:");
    let out = out_dir.join("callgrind.ticketd");
    for part in 1..=2 {
        let _ = std::fs::remove_file(out_dir.join(format!("callgrind.ticketd.{part}")));
    }
    let wrapper = [
        "valgrind".to_owned(),
        "--tool=callgrind".to_owned(),
        format!("--callgrind-out-file={}", out.display()),
    ];
    // The background round (spool replay, reconciliation, the queue, and the status sync, which
    // calls InvGate for up to ten tickets left by earlier scenarios) runs every 5 s whatever the
    // load, so it is not a ticket's work: here it waits an hour. Left on, it was most of the
    // idle rate subtracted below, and with it most of the count's spread between runs.
    let (ticketd, _) = stack
        .start_ticketd_under(
            &wrapper,
            &[("TICKETD_WORKER_INTERVAL_MS", "3600000")],
            probe,
        )
        .await?;
    let control = |command: &str| -> anyhow::Result<()> {
        let status = std::process::Command::new("callgrind_control")
            .args([command, &ticketd.pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "callgrind_control {command} failed");
        Ok(())
    };
    // Warm: connections opened, the caller's InvGate id cached, statements prepared.
    let _ = load::closed(
        work.clone(),
        INSTRUCTIONS_CONCURRENCY,
        Duration::from_secs(3),
    )
    .await;
    // What ticketd does with no requests (its workers' polls of the journal, timers), per
    // second: left out of the figure, which would otherwise depend on how fast valgrind runs.
    control("-z")?;
    let idle_started = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    control("-d")?;
    let idle_seconds = idle_started.elapsed().as_secs_f64();
    control("-z")?;
    let outcome = load::closed(
        work.clone(),
        INSTRUCTIONS_CONCURRENCY,
        settings.run.max(Duration::from_secs(20)),
    )
    .await;
    control("-d")?;
    stop(ticketd).await?;
    anyhow::ensure!(
        outcome.ok > 0 && outcome.errors == 0,
        "under callgrind: {} tickets, {} errors (first: {:?})",
        outcome.ok,
        outcome.errors,
        outcome.first_error
    );
    let idle = dumped_instructions(&out_dir.join("callgrind.ticketd.1"))?;
    let loaded = dumped_instructions(&out_dir.join("callgrind.ticketd.2"))?;
    let idle_per_second = idle / idle_seconds;
    let counted = Instructions {
        concurrency: INSTRUCTIONS_CONCURRENCY,
        tickets: outcome.ok,
        per_ticket: (loaded - idle_per_second * outcome.elapsed.as_secs_f64()).max(0.0)
            / outcome.ok as f64,
        idle_per_second,
    };
    eprintln!(
        "  {:.0} instructions per ticket over {} tickets",
        counted.per_ticket, counted.tickets
    );
    Ok(Some(counted))
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // reqwest is built without a default TLS provider (see the workspace notes).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let settings = Settings::from_env()?;
    let out_dir = settings
        .out
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    std::fs::create_dir_all(out_dir.join("spool"))?;
    let load_before = procfs::load_average();
    let ticks = procfs::clock_ticks_per_second();

    eprintln!("starting PostgreSQL, the simulator and ticketd …");
    let database = ticketd_pgtemp::test_database().await?;
    let sim_port = free_port()?;
    let sim_base = format!("http://127.0.0.1:{sim_port}");
    let _sim = Command::new(sibling("invgate-sim")?)
        .args(["--listen", &format!("127.0.0.1:{sim_port}"), "--no-record"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting the simulator")?;
    let probe = client(4)?;
    wait_for_port(sim_port, Duration::from_secs(30)).await?;

    let secret = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let stack = Stack {
        port: free_port()?,
        sim_base: sim_base.clone(),
        database_url: database.url().to_owned(),
        secret: secret.clone(),
        log: out_dir.join("ticketd.log"),
        invgate_slots: settings.concurrency.iter().copied().max().unwrap_or(1),
    };
    // The first start applies the migrations; the second is the one timed.
    let (first, _) = stack.start_ticketd(&probe).await?;
    stop(first).await?;
    let (ticketd, startup) = stack.start_ticketd(&probe).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = procfs::status_kib(ticketd.pid, "VmRSS")? as f64 / 1024.0;
    eprintln!(
        "ticketd ready in {:.0} ms, idle RSS {idle_rss:.1} MiB",
        startup.as_secs_f64() * 1e3
    );

    let token = ticketd_auth::mint_hs256_token(
        &SecretString::from(secret),
        CALLER,
        Duration::from_secs(6 * 3600),
    )?;
    let endpoint = Endpoint {
        addr: SocketAddr::from(([127, 0, 0, 1], stack.port)),
        path: "/api/v1/tickets",
        token,
    };
    let floor = Floor {
        repository: ticketd_postgres::PgTicketRepository::new(ticketd_postgres::connect_pool(
            database.url(),
            ticketd_postgres::PoolConfig::default(),
        )?),
        http: client(64)?,
        incident_url: format!("{sim_base}/api/v1/incident"),
        username: SIM_USER.to_owned(),
        password: SIM_PASSWORD.to_owned(),
        caller: ticketd_domain::EmailAddress::parse(CALLER)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?,
        requester: ticketd_domain::InvGateUserId::new(CALLER_INVGATE_ID),
    };

    let mut runs = Vec::new();
    let none = Arc::new(Vec::new());
    let json_ticketd = ticketd_work(settings.load_client, &endpoint, none.clone())?;
    let json_floor = floor_work(floor.clone(), none.clone());

    eprintln!(
        "JSON ticket, closed loop, {} pairs of runs:",
        settings.pairs
    );
    for &c in settings
        .concurrency
        .iter()
        .filter(|_| settings.wants("json"))
    {
        for pair in 0..settings.pairs {
            runs.extend(
                compare(
                    "json",
                    (&json_ticketd, Mode::Closed(c)),
                    (&json_floor, Mode::Closed(c)),
                    &ticketd,
                    &settings,
                    ticks,
                    pair % 2 == 1,
                )
                .await?,
            );
        }
    }
    let max = best(&runs, "json", "ticketd");
    let floor_max = best(&runs, "json", "floor");
    let ticketd = restart(&stack, ticketd, &probe).await?;
    eprintln!("JSON ticket, open loop (50% and 90% of ticketd's best {max:.0}/s):");
    for share in [0.5, 0.9]
        .into_iter()
        .filter(|_| settings.wants("open") && max > 0.0)
    {
        let rate = (max * share).max(1.0);
        let name = format!("json at {:.0}% of max", share * 100.0);
        let pair = compare(
            &name,
            (&json_ticketd, Mode::Open(rate)),
            (&json_floor, Mode::Open(rate.min(floor_max))),
            &ticketd,
            &settings,
            ticks,
            false,
        )
        .await?;
        runs.extend(pair);
    }

    let ticketd = restart(&stack, ticketd, &probe).await?;
    eprintln!("multipart tickets:");
    for (name, files, c) in [
        ("multipart 1×4 KiB", vec![text_file("note.txt", 4096)], 16),
        (
            "multipart 5×1 MiB",
            (1..=5)
                .map(|i| text_file(&format!("log{i}.txt"), MIB))
                .collect(),
            4,
        ),
    ]
    .into_iter()
    .filter(|_| settings.wants("multipart"))
    {
        let files = Arc::new(files);
        let work = ticketd_work(settings.load_client, &endpoint, files.clone())?;
        let pair = compare(
            name,
            (&work, Mode::Closed(c)),
            (&floor_work(floor.clone(), files), Mode::Closed(c)),
            &ticketd,
            &settings,
            ticks,
            false,
        )
        .await?;
        runs.extend(pair);
    }

    let ticketd = restart(&stack, ticketd, &probe).await?;
    eprintln!("one 100 MiB attachment, {} runs:", settings.big_runs);
    let big = Arc::new(vec![text_file("big.txt", 100 * MIB)]);
    let big_work = ticketd_work(settings.load_client, &endpoint, big.clone())?;
    let big_floor = floor_work(floor.clone(), big.clone());
    let mut seconds = Vec::new();
    let mut floor_seconds = Vec::new();
    procfs::reset_peak(ticketd.pid)?;
    let big_runs = if settings.wants("big") {
        settings.big_runs
    } else {
        0
    };
    for _ in 0..big_runs {
        let start = Instant::now();
        big_work()
            .await
            .map_err(|e| anyhow::anyhow!("100 MiB ticket: {e}"))?;
        seconds.push(start.elapsed().as_secs_f64());
        let start = Instant::now();
        big_floor()
            .await
            .map_err(|e| anyhow::anyhow!("100 MiB floor: {e}"))?;
        floor_seconds.push(start.elapsed().as_secs_f64());
    }
    // Skipped (`BENCH_SCENARIOS` without `big`): no figures, rather than zeros that read as a
    // failed target.
    let big_upload = if seconds.is_empty() {
        None
    } else {
        let big_rss = procfs::status_kib(ticketd.pid, "VmHWM")? as f64 / 1024.0;
        let best = seconds.iter().copied().fold(f64::INFINITY, f64::min);
        let big_upload = BigUpload {
            mib: 100,
            runs: seconds.len(),
            best_mib_per_s: 100.0 / best,
            seconds,
            ticketd_peak_rss_mib: big_rss,
            floor_seconds,
        };
        eprintln!(
            "  best {:.0} MiB/s, ticketd peak RSS {big_rss:.1} MiB",
            big_upload.best_mib_per_s
        );
        Some(big_upload)
    };
    stop(ticketd).await?;

    let instructions = if settings.wants("instructions") {
        instructions(&stack, &json_ticketd, &probe, &settings, &out_dir).await?
    } else {
        None
    };

    // Medians over the pairs: each ticketd run is paired with the floor run next to it.
    let json_runs = |target: &str, mode: &str| -> Vec<&Run> {
        runs.iter()
            .filter(|r| r.target == target && r.scenario == "json" && r.mode == mode)
            .collect()
    };
    let (json64, floor64) = (
        json_runs("ticketd", "closed c=64"),
        json_runs("floor", "closed c=64"),
    );
    let closed: Vec<String> = settings
        .concurrency
        .iter()
        .map(|c| Mode::Closed(*c).label())
        .collect();
    let cpu = closed
        .iter()
        .filter_map(|mode| {
            median(
                json_runs("ticketd", mode)
                    .iter()
                    .filter_map(|r| r.cpu_us_per_ticket)
                    .collect(),
            )
        })
        .fold(f64::INFINITY, f64::min);
    let cpu_above_floor_us = closed
        .iter()
        .filter_map(|mode| {
            let differences = json_runs("ticketd", mode)
                .iter()
                .zip(json_runs("floor", mode))
                .filter_map(|(t, f)| Some(t.cpu_us_per_ticket? - f.cpu_us_per_ticket?))
                .collect();
            Some((mode.clone(), median(differences)?))
        })
        .collect();
    let efficiencies = json64.iter().filter_map(|r| r.efficiency).collect();
    let p99_ratios = json64
        .iter()
        .zip(&floor64)
        .map(|(t, f)| t.latency.p99_ms / f.latency.p99_ms)
        .collect();
    let at_64 = median(efficiencies)
        .zip(median(p99_ratios))
        .map(|(efficiency, p99_ratio)| AtConcurrency64 {
            efficiency,
            p99_ratio,
            pairs: json64.len(),
        });
    let targets = targets(
        cpu.is_finite().then_some(cpu),
        idle_rss,
        startup,
        big_upload.as_ref(),
        at_64,
    );

    let report = Report {
        generated_at: chrono::Utc::now().to_rfc3339(),
        machine: Machine {
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model: procfs::cpu_model(),
            load_average_before: load_before,
            load_average_after: procfs::load_average(),
            kernel: kernel(),
        },
        run_seconds: settings.run.as_secs_f64(),
        warmup_seconds: settings.warmup.as_secs_f64(),
        load_client: settings.load_client,
        startup_to_ready_ms: startup.as_secs_f64() * 1e3,
        idle_rss_mib: idle_rss,
        runs,
        cpu_above_floor_us,
        big_upload,
        instructions,
        targets,
    };
    std::fs::write(&settings.out, serde_json::to_vec_pretty(&report)?)?;
    println!("{}", markdown(&report));
    println!("Written to {}.", settings.out.display());
    Ok(())
}

/// The medians of the closed-loop JSON pairs at c=64.
#[derive(Debug, Clone, Copy)]
struct AtConcurrency64 {
    efficiency: f64,
    p99_ratio: f64,
    pairs: usize,
}

/// The targets, for the figures measured: a scenario not run (`BENCH_SCENARIOS`) sets no
/// target, rather than a zero that reads as a failed one.
fn targets(
    cpu_us: Option<f64>,
    idle_rss: f64,
    startup: Duration,
    big: Option<&BigUpload>,
    at_64: Option<AtConcurrency64>,
) -> Vec<Target> {
    let mut targets = Vec::new();
    if let Some(cpu) = cpu_us {
        targets.push(Target {
            what: "JSON ticket: ticketd CPU per ticket (the lowest median of a concurrency)",
            goal: "≤ 100 µs".into(),
            measured: format!("{cpu:.0} µs"),
            met: cpu <= 100.0,
        });
    }
    targets.push(Target {
        what: "idle RSS after start",
        goal: "≤ 32 MiB".into(),
        measured: format!("{idle_rss:.1} MiB"),
        met: idle_rss <= 32.0,
    });
    targets.push(Target {
        what: "start-up to ready, migrations applied",
        goal: "≤ 1 s".into(),
        measured: format!("{:.0} ms", startup.as_secs_f64() * 1e3),
        met: startup <= Duration::from_secs(1),
    });
    if let Some(big) = big {
        targets.push(Target {
            what: "100 MiB attachment: ticketd peak RSS",
            goal: "≤ 64 MiB".into(),
            measured: format!("{:.1} MiB", big.ticketd_peak_rss_mib),
            met: big.ticketd_peak_rss_mib <= 64.0,
        });
        targets.push(Target {
            what: "100 MiB attachment: throughput",
            goal: "≥ 200 MiB/s".into(),
            measured: format!("{:.0} MiB/s", big.best_mib_per_s),
            met: big.best_mib_per_s >= 200.0,
        });
    }
    if let Some(AtConcurrency64 {
        efficiency,
        p99_ratio,
        pairs,
    }) = at_64
    {
        targets.push(Target {
            what: "JSON ticket at c=64: efficiency (ticketd ÷ floor tickets/s, median of pairs)",
            goal: "≥ 0.8".into(),
            measured: format!("{efficiency:.2} ({pairs} pairs)"),
            met: efficiency >= 0.8,
        });
        targets.push(Target {
            what: "JSON ticket at c=64: p99 over the floor's p99 (median of pairs)",
            goal: "≤ 2×".into(),
            measured: format!("{p99_ratio:.2}× ({pairs} pairs)"),
            met: p99_ratio <= 2.0,
        });
    }
    targets
}

fn markdown(report: &Report) -> String {
    let mut md = String::new();
    let m = &report.machine;
    let _ = writeln!(
        md,
        "Machine: {} cores, {}, kernel {}, load average {} before, {} after. Each run {:.0} s after {:.0} s of warm-up; load client: {:?}.\n",
        m.cores,
        m.cpu_model,
        m.kernel,
        m.load_average_before,
        m.load_average_after,
        report.run_seconds,
        report.warmup_seconds,
        report.load_client
    );
    let _ = writeln!(
        md,
        "| scenario | target | load | tickets | tickets/s | p50 ms | p99 ms | p99.9 ms | CPU µs/ticket | load generator CPU µs/ticket | peak RSS MiB | efficiency | errors |"
    );
    let _ = writeln!(
        md,
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in &report.runs {
        let opt = |v: Option<f64>, digits: usize| {
            v.map_or_else(|| "–".to_owned(), |v| format!("{v:.digits$}"))
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.1} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} | {} |",
            r.scenario,
            r.target,
            r.mode,
            r.requests_ok,
            r.tickets_per_s,
            r.latency.p50_ms,
            r.latency.p99_ms,
            r.latency.p999_ms,
            opt(r.cpu_us_per_ticket, 0),
            opt(r.driver_cpu_us_per_ticket, 0),
            opt(r.peak_rss_mib, 1),
            opt(r.efficiency, 2),
            r.errors + r.dropped,
        );
    }
    md.push('\n');
    if let Some(b) = &report.big_upload {
        let _ = writeln!(
            md,
            "One {} MiB attachment, {} runs: ticketd {:?} s (best {:.0} MiB/s), floor {:?} s; ticketd peak RSS {:.1} MiB.",
            b.mib,
            b.runs,
            b.seconds
                .iter()
                .map(|s| (s * 100.0).round() / 100.0)
                .collect::<Vec<_>>(),
            b.best_mib_per_s,
            b.floor_seconds
                .iter()
                .map(|s| (s * 100.0).round() / 100.0)
                .collect::<Vec<_>>(),
            b.ticketd_peak_rss_mib
        );
    }
    let _ = writeln!(
        md,
        "Start-up to ready (migrations applied): {:.0} ms; idle RSS {:.1} MiB.\n",
        report.startup_to_ready_ms, report.idle_rss_mib
    );
    if let Some(i) = &report.instructions {
        let _ = writeln!(
            md,
            "ticketd's instructions per JSON ticket (callgrind, user space, closed loop c={}, {} tickets, less {:.0} per second when idle): {:.0}.\n",
            i.concurrency, i.tickets, i.idle_per_second, i.per_ticket
        );
    }
    if !report.cpu_above_floor_us.is_empty() {
        let above: Vec<String> = report
            .cpu_above_floor_us
            .iter()
            .map(|(mode, us)| format!("{mode} {us:.0} µs"))
            .collect();
        let _ = writeln!(
            md,
            "JSON ticket, ticketd's CPU per ticket above the floor's (median of pairs): {}.\n",
            above.join(", ")
        );
    }
    let _ = writeln!(md, "| target | goal | measured | met |\n|---|---|---|---|");
    for t in &report.targets {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            t.what,
            t.goal,
            t.measured,
            if t.met { "yes" } else { "**no**" }
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump_with(name: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "ticketd-bench-{}-{name}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&path, text).expect("temporary file");
        path
    }

    #[test]
    fn scenarios_that_did_not_run_set_no_targets() {
        let targets = targets(None, 14.8, Duration::from_millis(36), None, None);
        let named: Vec<&str> = targets.iter().map(|t| t.what).collect();
        assert_eq!(
            named,
            [
                "idle RSS after start",
                "start-up to ready, migrations applied"
            ]
        );
        assert!(targets.iter().all(|t| t.met));
    }

    #[test]
    fn every_target_is_judged_against_its_goal_when_its_scenario_ran() {
        let big = BigUpload {
            mib: 100,
            runs: 1,
            seconds: vec![0.25],
            best_mib_per_s: 400.0,
            ticketd_peak_rss_mib: 70.0,
            floor_seconds: vec![0.1],
        };
        let at_64 = AtConcurrency64 {
            efficiency: 0.84,
            p99_ratio: 2.5,
            pairs: 5,
        };
        let targets = targets(
            Some(281.0),
            14.8,
            Duration::from_millis(36),
            Some(&big),
            Some(at_64),
        );
        let met: Vec<(&str, bool)> = targets.iter().map(|t| (t.what, t.met)).collect();
        assert_eq!(met.len(), 7);
        for (what, expected) in [
            ("JSON ticket: ticketd CPU per ticket", false),
            ("100 MiB attachment: ticketd peak RSS", false),
            ("100 MiB attachment: throughput", true),
            ("JSON ticket at c=64: efficiency", true),
            ("JSON ticket at c=64: p99", false),
        ] {
            let found = met.iter().find(|(w, _)| w.starts_with(what));
            assert_eq!(found.map(|(_, m)| *m), Some(expected), "{what}");
        }
    }

    #[test]
    fn a_callgrind_dump_s_summary_line_is_its_instruction_count() {
        let dump = dump_with(
            "counted",
            "# callgrind format\nversion: 1\nevents: Ir\nsummary: 1045717965\n\nfn=(1) main\n0 5\n",
        );
        let counted = dumped_instructions(&dump);
        let _ = std::fs::remove_file(&dump);
        assert_eq!(counted.expect("a count"), 1_045_717_965.0);
    }

    #[test]
    fn a_dump_without_a_summary_line_is_an_error() {
        let dump = dump_with("empty", "# callgrind format\nversion: 1\nevents: Ir\n");
        let counted = dumped_instructions(&dump);
        let _ = std::fs::remove_file(&dump);
        assert!(counted.is_err());
    }
}
