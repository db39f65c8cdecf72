//! The durable local spool on the file system: one JSON file per record. A record is written to a
//! temporary name, synced, renamed into place and the directory synced, so after `put` returns it
//! survives a crash or power loss, and a half-written record is never read back.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use async_trait::async_trait;
use ticketd_domain::{RecordSpool, SpoolError, SpooledRecord};
use uuid::Uuid;

const SUFFIX: &str = ".json";
const PARTIAL_SUFFIX: &str = ".json.partial";

/// A [`RecordSpool`] in a directory.
#[derive(Debug, Clone)]
pub struct FsRecordSpool {
    dir: PathBuf,
}

impl FsRecordSpool {
    /// Uses (and creates) `dir`.
    ///
    /// # Errors
    /// When the directory cannot be created or is not writable.
    pub fn open(dir: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)
            .with_context(|| format!("creating the spool directory {}", dir.display()))?;
        let probe = dir.join(".write-probe");
        File::create(&probe)
            .and_then(|_| fs::remove_file(&probe))
            .with_context(|| format!("the spool directory {} is not writable", dir.display()))?;
        Ok(Self { dir })
    }

    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, local_id: Uuid) -> PathBuf {
        self.dir.join(format!("{local_id}{SUFFIX}"))
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn put_blocking(dir: &Path, target: &Path, record: &SpooledRecord) -> anyhow::Result<()> {
    let bytes = serde_json::to_vec(record).context("serializing a record")?;
    let partial = target.with_extension(PARTIAL_SUFFIX.trim_start_matches('.'));
    let mut file =
        File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
    file.write_all(&bytes).context("writing a record")?;
    file.sync_all().context("syncing a record")?;
    fs::rename(&partial, target).context("moving a record into place")?;
    sync_dir(dir).context("syncing the spool directory")?;
    Ok(())
}

fn list_blocking(dir: &Path) -> anyhow::Result<Vec<SpooledRecord>> {
    let mut records = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if !name.ends_with(SUFFIX) || name.ends_with(PARTIAL_SUFFIX) {
            continue;
        }
        let text = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        match serde_json::from_slice::<SpooledRecord>(&text) {
            Ok(record) => records.push(record),
            Err(err) => {
                tracing::error!(path = %path.display(), error = %err, "an unreadable spool file is left in place")
            }
        }
    }
    // Local ids are UUIDv7: ordered by creation.
    records.sort_by_key(|r| r.local_id);
    Ok(records)
}

fn remove_blocking(dir: &Path, path: &Path) -> anyhow::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(dir).context("syncing the spool directory"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(anyhow::Error::new(e).context(format!("removing {}", path.display()))),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Result<T, SpoolError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SpoolError(anyhow::Error::new(e)))?
        .map_err(SpoolError)
}

#[async_trait]
impl RecordSpool for FsRecordSpool {
    #[tracing::instrument(name = "spool.put", skip_all, fields(invgate.request_id = record.inv_gate_id))]
    async fn put(&self, record: &SpooledRecord) -> Result<(), SpoolError> {
        let (dir, target, record) = (self.dir.clone(), self.path(record.local_id), record.clone());
        blocking(move || put_blocking(&dir, &target, &record)).await
    }

    async fn list(&self) -> Result<Vec<SpooledRecord>, SpoolError> {
        let dir = self.dir.clone();
        blocking(move || list_blocking(&dir)).await
    }

    async fn remove(&self, local_id: Uuid) -> Result<(), SpoolError> {
        let (dir, path) = (self.dir.clone(), self.path(local_id));
        blocking(move || remove_blocking(&dir, &path)).await
    }
}
