//! Throwaway PostgreSQL for tests and the demo, with no set-up beyond the server binaries.
//!
//! [`TempCluster`] runs `initdb` and `pg_ctl` from the local installation into a temporary
//! directory, on a free loopback port, and removes everything when dropped. Because a test process
//! (or a demo killed with SIGKILL) may never run destructors, each cluster also gets a watchdog: a
//! tiny shell loop in its own process group that stops the server and deletes the directory as soon
//! as the process that started it is gone.
//!
//! [`test_database`] gives each test its own fresh database: on the server named by `DATABASE_URL`
//! when it is set, otherwise on one throwaway cluster shared by the whole test process.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, bail};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

/// Where Debian and Ubuntu install the server binaries, one directory per major version.
const DEBIAN_PG_ROOT: &str = "/usr/lib/postgresql";

/// The one line a user sees when no PostgreSQL server binaries are installed.
pub const MISSING_POSTGRES: &str = "PostgreSQL server binaries (initdb, pg_ctl) not found in \
    $PG_BIN, /usr/lib/postgresql/*/bin or PATH: install them (Debian/Ubuntu: apt install postgresql) \
    or set DATABASE_URL to an existing server";

/// Finds the directory holding `initdb` and `pg_ctl`: `$PG_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin`, else the `PATH`.
///
/// # Errors
/// [`MISSING_POSTGRES`] when none has both programs.
pub fn find_bin_dir() -> anyhow::Result<PathBuf> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("PG_BIN").map(PathBuf::from) {
        if has_tools(&dir) {
            return Ok(dir);
        }
        bail!(
            "PG_BIN={} has no initdb and pg_ctl. {MISSING_POSTGRES}",
            dir.display()
        );
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir(DEBIAN_PG_ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| has_tools(bin))
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .find(|dir| has_tools(dir))
        .context(MISSING_POSTGRES)
}

/// A PostgreSQL cluster living in a temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempCluster {
    root: PathBuf,
    bin: PathBuf,
    port: u16,
    /// `initdb` refuses to run as root; then every server command runs as the `postgres` user.
    run_as_postgres: bool,
    running: bool,
}

impl TempCluster {
    /// Creates and starts a cluster with trust authentication for user `postgres`, listening on
    /// 127.0.0.1 only. Durability is switched off: the data is thrown away anyway.
    ///
    /// # Errors
    /// When the binaries are missing, `initdb` fails or the server does not start; the message
    /// includes the server's log.
    pub fn start() -> anyhow::Result<Self> {
        let bin = find_bin_dir()?;
        let run_as_postgres = fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
        let root = tempfile::Builder::new()
            .prefix("ticketd-pg-")
            .tempdir()
            .context("creating a directory for the throwaway cluster")?
            .keep();
        let mut cluster = Self {
            root,
            bin,
            port: 0,
            run_as_postgres,
            running: false,
        };
        if run_as_postgres {
            let (uid, gid) = postgres_user_ids()?;
            std::os::unix::fs::chown(&cluster.root, Some(uid), Some(gid))
                .context("handing the cluster directory to the postgres user")?;
        }
        cluster.spawn_watchdog()?;
        cluster.init()?;
        cluster.start_server()?;
        Ok(cluster)
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temporary directory holding data, socket and log.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        let mut command = if self.run_as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        command.stdin(Stdio::null());
        command
    }

    fn init(&self) -> anyhow::Result<()> {
        let output = self
            .command("initdb")
            .arg("-D")
            .arg(self.data_dir())
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "-N",
            ])
            .output()
            .context("running initdb")?;
        if !output.status.success() {
            bail!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    fn start_server(&mut self) -> anyhow::Result<()> {
        let log = self.root.join("server.log");
        let mut last_error = None;
        // A free port can be taken between finding it and the server binding it: try a few.
        // A restarted cluster keeps its port, so URLs handed out stay valid.
        for _ in 0..5 {
            let port = if self.port == 0 {
                free_port()?
            } else {
                self.port
            };
            let options = format!(
                "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
                self.root.display()
            );
            let output = self
                .command("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "60", "-o", &options, "start"])
                // Its own process group: a Ctrl-C meant for the parent must not kill the server
                // before the parent had the chance to stop it cleanly.
                .process_group(0)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()
                .context("running pg_ctl start")?;
            if output.status.success() {
                self.port = port;
                self.running = true;
                return Ok(());
            }
            last_error = Some(format!(
                "{} {}",
                String::from_utf8_lossy(&output.stderr).trim(),
                fs::read_to_string(&log).unwrap_or_default().trim()
            ));
        }
        bail!(
            "the throwaway PostgreSQL did not start: {}",
            last_error.unwrap_or_default()
        )
    }

    fn spawn_watchdog(&self) -> anyhow::Result<()> {
        let runas = if self.run_as_postgres {
            "runuser -u postgres -- "
        } else {
            ""
        };
        let script = format!(
            "while kill -0 {parent} 2>/dev/null; do sleep 0.2; done; \
             {runas}'{pg_ctl}' -D '{data}' -m immediate -w stop >/dev/null 2>&1; rm -rf '{root}'",
            parent = std::process::id(),
            pg_ctl = self.bin.join("pg_ctl").display(),
            data = self.data_dir().display(),
            root = self.root.display(),
        );
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the cluster's watchdog")?;
        Ok(())
    }

    /// Stops the server but keeps its files, as a database outage would (for fault tests).
    /// A fast (not immediate) shutdown: the cluster runs with `synchronous_commit=off`, and an
    /// immediate stop would lose transactions the server already reported committed.
    ///
    /// # Errors
    /// When `pg_ctl stop` fails.
    pub fn pause(&mut self) -> anyhow::Result<()> {
        let status = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "fast", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("running pg_ctl stop")?;
        if !status.success() {
            bail!("pg_ctl stop failed");
        }
        self.running = false;
        Ok(())
    }

    /// Starts a paused server again, on the same port.
    ///
    /// # Errors
    /// When the server does not start.
    pub fn resume(&mut self) -> anyhow::Result<()> {
        self.start_server()
    }

    /// Stops the server (immediately: nothing in it is worth a checkpoint) and deletes its files.
    pub fn stop(&mut self) {
        if self.running {
            let _ = self
                .command("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", "immediate", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            self.running = false;
        }
        let _ = fs::remove_dir_all(&self.root);
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn postgres_user_ids() -> anyhow::Result<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    passwd
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            (fields.next() == Some("postgres")).then_some(())?;
            let uid = fields.nth(1)?.parse().ok()?;
            let gid = fields.next()?.parse().ok()?;
            Some((uid, gid))
        })
        .context("running as root, the throwaway cluster needs a `postgres` system user (initdb refuses root)")
}

/// Replaces the database name in a PostgreSQL URL, keeping credentials, host and parameters.
#[must_use]
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

/// Where test databases are created.
enum TestServer {
    External(String),
    Throwaway(TempCluster),
}

impl TestServer {
    fn admin_url(&self) -> String {
        match self {
            Self::External(url) => url.clone(),
            Self::Throwaway(cluster) => cluster.url(),
        }
    }
}

static TEST_SERVER: OnceLock<Result<TestServer, String>> = OnceLock::new();

fn test_server() -> anyhow::Result<&'static TestServer> {
    TEST_SERVER
        .get_or_init(|| match std::env::var("DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => Ok(TestServer::External(url)),
            _ => TempCluster::start()
                .map(TestServer::Throwaway)
                .map_err(|e| format!("{e:#}")),
        })
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// A database of its own for one test; dropped with the test when it lives on a shared server.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    name: String,
    admin_url: String,
    drop_on_exit: bool,
}

impl TestDatabase {
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Creates an empty database for one test (see the crate docs for where).
///
/// # Errors
/// When no server is available or the database cannot be created.
pub async fn test_database() -> anyhow::Result<TestDatabase> {
    let server = tokio::task::spawn_blocking(test_server)
        .await
        .context("starting the test server")??;
    let admin_url = server.admin_url();
    let name = format!("ticketd_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = AsyncPgConnection::establish(&admin_url)
        .await
        .with_context(|| format!("connecting to the test server at {admin_url}"))?;
    diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .with_context(|| format!("creating database {name}"))?;
    Ok(TestDatabase {
        url: with_database(&admin_url, &name),
        name,
        admin_url,
        drop_on_exit: matches!(server, TestServer::External(_)),
    })
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if !self.drop_on_exit {
            return;
        }
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop cannot await, and may run inside a runtime: do the clean-up on a thread of its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut admin = AsyncPgConnection::establish(&admin_url).await.ok()?;
                diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .ok()
            })
        });
        let _ = cleanup.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_name_is_replaced_and_everything_else_kept() {
        assert_eq!(
            with_database("postgres://u:p@db:5432/postgres?sslmode=disable", "t1"),
            "postgres://u:p@db:5432/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@db", "t1"), "postgres://u@db/t1");
        assert_eq!(
            with_database("postgres://u@db/", "t1"),
            "postgres://u@db/t1"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn each_test_database_is_new_and_reachable() {
        let first = test_database().await.expect("a test database");
        let second = test_database().await.expect("another test database");
        assert_ne!(first.url(), second.url());
        let mut conn = AsyncPgConnection::establish(first.url())
            .await
            .expect("connects");
        diesel::sql_query("CREATE TABLE probe (id int)")
            .execute(&mut conn)
            .await
            .expect("writable");
    }

    #[test]
    fn a_throwaway_cluster_leaves_nothing_behind_when_dropped() {
        let cluster = TempCluster::start().expect("cluster starts");
        let root = cluster.root().to_path_buf();
        assert!(std::net::TcpStream::connect(("127.0.0.1", cluster.port())).is_ok());
        let port = cluster.port();
        drop(cluster);
        assert!(!root.exists(), "{} must be removed", root.display());
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "server must be stopped"
        );
    }
}
