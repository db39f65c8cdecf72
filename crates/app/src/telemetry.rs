//! Logging: one JSON object per line (or human-readable lines), filtered by `RUST_LOG`.
//!
//! JSON lines go to stderr through [`LogWriter`]: an event appends its formatted line to a
//! shared buffer, and one background thread writes the buffer out every few milliseconds (sooner
//! when it fills). Written directly, each line would be a `write` system call on the request's
//! thread, and waking a writer thread per line would cost as much.
//! Lines reach stderr at most [`WRITE_INTERVAL`] late; [`flush`] writes what is pending at once.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use ticketd_http::StepTimes;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber and routes panics through it, so that a panic is one log line
/// like any other. Safe to call more than once (later calls change nothing).
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_new(&settings.filter).unwrap_or_else(|e| {
        eprintln!(
            "ticketd: RUST_LOG {:?} is not a valid filter ({e}); using info",
            settings.filter
        );
        EnvFilter::new("info")
    });
    // Every request's access line carries its steps' durations, totalled by `StepTimes`.
    let registry = tracing_subscriber::registry().with(filter).with(StepTimes);
    let installed = match settings.format {
        // Every line carries the spans it sits in (so the request id of the outermost one).
        LogFormat::Json => {
            // A line per finished span, with its duration, only when asked for: those lines
            // more than doubled the cost of logging a request (docs/performance.md).
            let span_events = if settings.span_events {
                FmtSpan::CLOSE
            } else {
                FmtSpan::NONE
            };
            registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(LogWriter::start())
                        .json()
                        .flatten_event(true)
                        .with_current_span(true)
                        .with_span_list(true)
                        .with_span_events(span_events),
                )
                .try_init()
        }
        LogFormat::Pretty => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal()),
            )
            .try_init(),
    };
    if installed.is_ok() {
        std::panic::set_hook(Box::new(|info| {
            tracing::error!(panic = %info, "panic");
        }));
    }
}

/// How often the writer thread writes what was logged.
const WRITE_INTERVAL: Duration = Duration::from_millis(20);

/// Past this many pending bytes the writer is woken at once, so the buffer stays small.
const EAGER_BYTES: usize = 256 * 1024;

/// The lines logged and not yet written, and the writer thread's alarm.
#[derive(Debug, Default)]
struct Pending {
    lines: Mutex<Vec<u8>>,
    full: Condvar,
}

impl Pending {
    /// Takes everything pending, leaving `spare` (emptied) in its place so no allocation is lost.
    fn take(&self, spare: Vec<u8>) -> Vec<u8> {
        match self.lines.lock() {
            Ok(mut lines) => std::mem::replace(&mut *lines, spare),
            Err(_) => spare,
        }
    }

    /// Writes out everything pending.
    fn drain(&self, out: &mut impl Write, spare: Vec<u8>) -> Vec<u8> {
        let mut batch = self.take(spare);
        if !batch.is_empty() {
            // A failed write has nowhere to be reported; the next batch tries again.
            let _ = out.write_all(&batch);
            let _ = out.flush();
        }
        batch.clear();
        batch
    }
}

static PENDING: OnceLock<Arc<Pending>> = OnceLock::new();

/// Appends each formatted line to the pending buffer (see the module docs).
#[derive(Debug, Clone)]
pub struct LogWriter {
    pending: Arc<Pending>,
}

impl LogWriter {
    /// Starts the writer thread (once per process).
    pub fn start() -> Self {
        let pending = PENDING
            .get_or_init(|| {
                let pending = Arc::new(Pending::default());
                let shared = pending.clone();
                let started = std::thread::Builder::new()
                    .name("ticketd-log".into())
                    .spawn(move || write_periodically(&shared, &mut std::io::stderr()));
                if started.is_err() {
                    eprintln!("ticketd: could not start the log writer thread");
                }
                pending
            })
            .clone();
        Self { pending }
    }
}

fn write_periodically(pending: &Pending, out: &mut impl Write) {
    let mut spare = Vec::with_capacity(EAGER_BYTES);
    loop {
        if let Ok(lines) = pending.lines.lock() {
            // Woken early when the buffer fills; otherwise on the interval.
            let _ = pending.full.wait_timeout(lines, WRITE_INTERVAL);
        }
        spare = pending.drain(out, spare);
    }
}

/// Writes every line logged so far, now: for the end of `main` and before a last word on stderr.
pub fn flush() {
    if let Some(pending) = PENDING.get() {
        pending.drain(&mut std::io::stderr(), Vec::new());
    }
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut lines) = self.pending.lines.lock() {
            lines.extend_from_slice(buf);
            if lines.len() >= EAGER_BYTES {
                self.pending.full.notify_one();
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Sink(std::sync::Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut inner = self.0.lock().expect("lock");
            inner.0.extend_from_slice(buf);
            inner.1 += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_are_written_whole_in_order_in_one_write_per_batch() {
        let pending = Arc::new(Pending::default());
        let mut writer = LogWriter {
            pending: pending.clone(),
        };
        for i in 0..1000 {
            writer
                .write_all(format!("line {i}\n").as_bytes())
                .expect("buffered");
        }
        let mut sink = Sink::default();
        let spare = pending.drain(&mut sink, Vec::new());
        assert!(spare.is_empty());
        let inner = sink.0.lock().expect("lock");
        let expected: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(String::from_utf8(inner.0.clone()).expect("UTF-8"), expected);
        assert_eq!(inner.1, 1, "one write for the whole batch");
        drop(inner);
        pending.drain(&mut sink, spare);
        assert_eq!(
            sink.0.lock().expect("lock").1,
            1,
            "nothing pending, nothing written"
        );
    }

    #[test]
    fn the_writer_thread_writes_pending_lines_without_being_asked() {
        let pending = Arc::new(Pending::default());
        let mut writer = LogWriter {
            pending: pending.clone(),
        };
        let sink = Sink::default();
        let mut out = sink.clone();
        let shared = pending.clone();
        std::thread::spawn(move || write_periodically(&shared, &mut out));
        writer
            .write_all(b"{\"message\":\"hi\"}\n")
            .expect("buffered");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while sink.0.lock().expect("lock").0.is_empty() {
            assert!(std::time::Instant::now() < deadline, "never written");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(sink.0.lock().expect("lock").0, b"{\"message\":\"hi\"}\n");
    }
}
