//! Logging: one JSON object per line (or human-readable lines), filtered by `RUST_LOG`.
//!
//! JSON lines go to stderr through [`LogWriter`]: an event appends its formatted line to a
//! shared buffer, and one background thread writes the buffer out every few milliseconds (sooner
//! when it fills). Written directly, each line would be a `write` system call on the request's
//! thread, and waking a writer thread per line would cost as much.
//! Lines reach stderr at most [`WRITE_INTERVAL`] late; [`flush`] writes what is pending at once.
//! With nothing to write, the thread sleeps until a line arrives.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use ticketd_http::StepTimes;
use tracing_subscriber::filter::{ParseError, Targets};
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber and routes panics through it, so that a panic is one log line
/// like any other. Safe to call more than once (later calls change nothing).
pub fn init(settings: &LogSettings) {
    let filter = log_filter(&settings.filter).unwrap_or_else(|e| {
        eprintln!(
            "ticketd: RUST_LOG {:?} is not a valid filter ({e}); using info",
            settings.filter
        );
        Box::new(Targets::new().with_default(tracing::Level::INFO))
    });
    let installed = match settings.format {
        LogFormat::Json => {
            json_subscriber(filter, LogWriter::start(), settings.span_events).try_init()
        }
        // Every request's access line carries its steps' durations, totalled by `StepTimes`.
        LogFormat::Pretty => tracing_subscriber::registry()
            .with(filter)
            .with(StepTimes)
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

/// The filter a `RUST_LOG` value asks for (tracing's `EnvFilter` syntax).
///
/// Directives that name only targets and levels (`info`, `warn,ticketd::access=info`) become a
/// static [`Targets`] filter; any with a span or field part (`info,[http.request]=debug`), or an
/// empty value, an [`EnvFilter`]. Both let the same events and spans through, but an
/// `EnvFilter` keeps track of every span in case a directive needs it: on each span's creation,
/// and at every enter and exit (a request's future enters and leaves each of its spans at every
/// wake-up), it takes a read lock that all worker threads share.
///
/// # Errors
/// When `directives` is not a valid filter.
pub fn log_filter(directives: &str) -> Result<Box<dyn Layer<Registry> + Send + Sync>, ParseError> {
    // Parsed as an `EnvFilter` first, so that a value is refused exactly when it always was.
    let env_filter = EnvFilter::try_new(directives)?;
    // A span or field part is written in brackets or braces; `Targets` would take it for part of
    // a target's name.
    let dynamic = directives.contains(['[', '{']);
    if !dynamic
        && !directives.trim().is_empty()
        && let Ok(targets) = directives.parse::<Targets>()
    {
        return Ok(Box::new(targets));
    }
    Ok(Box::new(env_filter))
}

/// The subscriber behind JSON logs, writing its lines to `writer`: what [`init`] installs (with
/// a [`LogWriter`]), and what the logging benchmark measures (with a sink).
pub fn json_subscriber<W>(
    filter: Box<dyn Layer<Registry> + Send + Sync>,
    writer: W,
    span_events: bool,
) -> impl tracing::Subscriber + Send + Sync + for<'a> tracing_subscriber::registry::LookupSpan<'a>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    // A line per finished span, with its duration, only when asked for: those lines more than
    // doubled the cost of logging a request (docs/performance.md).
    let span_events = if span_events {
        FmtSpan::CLOSE
    } else {
        FmtSpan::NONE
    };
    // Every request's access line carries its steps' durations, totalled by `StepTimes`.
    tracing_subscriber::registry()
        .with(filter)
        .with(StepTimes)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .fmt_fields(JsonSpanFields)
                // Before the event format, as only tracing-subscriber's own formats have it;
                // the setting stays with the layer.
                .with_span_events(span_events)
                // Every line carries the spans it sits in (so the request id of the outermost).
                .event_format(JsonLines),
        )
}

/// Keeps each span's fields as a JSON object, for the lines logged inside the span, like
/// tracing-subscriber's own `JsonFields`, which a value recorded after the span was created
/// makes parse the fields kept so far and write them all again. Here a recorded value is appended
/// to the object instead; a name recorded twice appears twice, and readers take the last, as a
/// line's `spans` are read by `serde_json` itself. The service records three values per ticket,
/// and the parsing was about 3% of the CPU of a ticket (docs/performance.md).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonSpanFields;

impl<'w> tracing_subscriber::fmt::FormatFields<'w> for JsonSpanFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: tracing_subscriber::fmt::format::Writer<'w>,
        fields: R,
    ) -> std::fmt::Result {
        let mut members = JsonMembers::default();
        fields.record(&mut members);
        write!(writer, "{{{}}}", members.0)
    }

    fn add_fields(
        &self,
        current: &'w mut tracing_subscriber::fmt::FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> std::fmt::Result {
        let mut recorded = Recorded::default();
        fields.record(&mut recorded);
        for (name, member) in recorded.0 {
            set_member(&mut current.fields, name, &member.0);
        }
        Ok(())
    }
}

/// Sets `"name":value` (`member`) in `object`, the JSON text of an object of scalar members:
/// in place of the value `name` has, or at the end. A value recorded again replaces the first
/// one where it stood, as a map read from the text would keep it, so a line's span fields
/// are the same whether or not they are read back into a map.
fn set_member(object: &mut String, name: &str, member: &str) {
    if let Some((start, end)) = member_span(object, name) {
        object.replace_range(start..end, member);
        return;
    }
    match object.pop() {
        // `{…}` so far: the new member goes before the closing brace.
        Some('}') if object.len() > 1 => object.push(','),
        // `{}`, or nothing yet.
        _ => {
            object.clear();
            object.push('{');
        }
    }
    object.push_str(member);
    object.push('}');
}

/// Where the member `name` of `object` starts and ends, if it has one: a walk over the members,
/// one pass with no allocation (a span has a value recorded a few times per request).
fn member_span(object: &str, name: &str) -> Option<(usize, usize)> {
    // Field names are nearly always plain (letters, digits, `.`, `_`): the key is the name.
    let escaped;
    let key = if name.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        let mut quoted = JsonMembers::default();
        quoted.string(name);
        escaped = quoted.0;
        &escaped[1..escaped.len() - 1]
    } else {
        name
    };
    let bytes = object.as_bytes();
    // After `{`, each member is a key, `:`, a scalar value, then `,` or the closing `}`.
    let mut at = 1;
    while bytes.get(at) == Some(&b'"') {
        let start = at;
        let key_end = at + scalar_len(&object[at..]);
        let value_end = key_end + 1 + scalar_len(object.get(key_end + 1..)?);
        if object.get(start + 1..key_end - 1) == Some(key) {
            return Some((start, value_end));
        }
        at = value_end + 1;
    }
    None
}

/// The length of the scalar JSON value (string, number, `true`, `false`, `null`) `text` starts
/// with.
fn scalar_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    if bytes.first() == Some(&b'"') {
        let mut at = 1;
        while at < bytes.len() {
            match bytes[at] {
                b'\\' => at += 2,
                b'"' => return at + 1,
                _ => at += 1,
            }
        }
        return bytes.len();
    }
    text.find([',', '}']).unwrap_or(text.len())
}

/// Each field recorded into a span after it was created, as its name and `"name":value`.
#[derive(Default)]
struct Recorded(Vec<(&'static str, JsonMembers)>);

impl Recorded {
    fn add(&mut self, field: &tracing::field::Field, write: impl FnOnce(&mut JsonMembers)) {
        let mut member = JsonMembers::default();
        write(&mut member);
        self.0.push((field.name(), member));
    }
}

impl tracing::field::Visit for Recorded {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.add(field, |m| m.record_str(field, value));
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.add(field, |m| m.record_i64(field, value));
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.add(field, |m| m.record_u64(field, value));
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.add(field, |m| m.record_bool(field, value));
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.add(field, |m| m.record_f64(field, value));
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.add(field, |m| m.record_debug(field, value));
    }
}

/// Writes each event as one JSON object per line: the timestamp, the level, the event's fields,
/// its target, its span (`span`) and every span it sits in from the outermost (`spans`), each
/// span with its fields and `name`. The same lines as tracing-subscriber's JSON format (with
/// `flatten_event`, `with_current_span` and `with_span_list`), byte for byte (a test checks it),
/// but each span's fields go in as the JSON text [`JsonSpanFields`] keeps, where that format
/// read them back into a map and wrote them out again for every line, the current span's twice.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLines;

impl<S> tracing_subscriber::fmt::FormatEvent<S, JsonSpanFields> for JsonLines
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, JsonSpanFields>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        use tracing_log::NormalizeEvent;
        use tracing_subscriber::fmt::time::FormatTime;

        // Events from the `log` crate carry their level and target in fields.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let mut line = JsonMembers::default();
        line.key("timestamp");
        line.0.push('"');
        tracing_subscriber::fmt::time::SystemTime.format_time(
            &mut tracing_subscriber::fmt::format::Writer::new(&mut line.0),
        )?;
        line.0.push('"');
        line.key("level");
        line.string(meta.level().as_str());
        event.record(&mut line);
        line.key("target");
        line.string(meta.target());
        let current = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current());
        if let Some(span) = &current {
            line.key("span");
            write_span(&mut line, span);
            line.key("spans");
            line.0.push('[');
            if let Some(leaf) = ctx.lookup_current() {
                for (at, span) in leaf.scope().from_root().enumerate() {
                    if at > 0 {
                        line.0.push(',');
                    }
                    write_span(&mut line, &span);
                }
            }
            line.0.push(']');
        }
        writer.write_char('{')?;
        writer.write_str(&line.0)?;
        writer.write_str("}\n")
    }
}

/// A span as an object: its fields, then `"name"`.
fn write_span<S>(line: &mut JsonMembers, span: &tracing_subscriber::registry::SpanRef<'_, S>)
where
    S: for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let extensions = span.extensions();
    let fields = extensions
        .get::<tracing_subscriber::fmt::FormattedFields<JsonSpanFields>>()
        .map_or("", |fields| fields.fields.as_str());
    // `{…}` without its closing brace, or `{` when there are no fields.
    match fields.strip_suffix('}') {
        Some(members) if members.len() > 1 => {
            line.0.push_str(members);
            line.0.push(',');
        }
        _ => line.0.push('{'),
    }
    line.0.push_str("\"name\":");
    line.string(span.metadata().name());
    line.0.push('}');
}

/// `"name":value` pairs, comma-separated, as a [`tracing::field::Visit`]or writes them.
#[derive(Default)]
struct JsonMembers(String);

impl JsonMembers {
    /// Appends `"name":json`, `json` being a JSON value already.
    fn member(&mut self, field: &tracing::field::Field, json: &str) {
        self.key(field.name());
        self.0.push_str(json);
    }

    /// Appends `"name":`, after a comma unless it is the first member.
    fn key(&mut self, name: &str) {
        if !self.0.is_empty() {
            self.0.push(',');
        }
        self.string(name);
        self.0.push(':');
    }

    /// Appends `value` as a JSON string, escaped as `serde_json` escapes it, without the
    /// temporary `String` that `serde_json::to_string` would allocate for every field.
    fn string(&mut self, value: &str) {
        self.0.push('"');
        let mut plain = 0;
        for (at, byte) in value.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0x00..=0x1f => "",
                _ => continue,
            };
            // Every byte escaped is ASCII, so `at` is on a character boundary.
            self.0.push_str(&value[plain..at]);
            if escape.is_empty() {
                let _ = write!(self.0, "\\u{byte:04x}");
            } else {
                self.0.push_str(escape);
            }
            plain = at + 1;
        }
        self.0.push_str(&value[plain..]);
        self.0.push('"');
    }

    /// Appends `"name":` and a number, formatted in place.
    fn number(&mut self, field: &tracing::field::Field, value: impl std::fmt::Display) {
        self.member(field, "");
        let _ = write!(self.0, "{value}");
    }
}

impl tracing::field::Visit for JsonMembers {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.member(field, "");
        self.string(value);
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.number(field, value);
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.number(field, value);
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.member(field, if value { "true" } else { "false" });
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        // JSON has no NaN or infinity.
        let json = serde_json::Number::from_f64(value).map_or("null".to_owned(), |n| n.to_string());
        self.member(field, &json);
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.member(field, "");
        self.string(&format!("{value:?}"));
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
    /// How many times the writer thread woke to write (for the tests).
    wakeups: std::sync::atomic::AtomicUsize,
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
            // Asleep while nothing is pending, so an idle ticketd does not wake every interval
            // (it did, 50 times a second); a line written into an empty buffer wakes it.
            if let Ok(lines) = pending.full.wait_while(lines, |lines| lines.is_empty()) {
                pending
                    .wakeups
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // Then the interval, so the lines of the next few milliseconds go out in one
                // write; sooner when the buffer fills.
                let _ = pending
                    .full
                    .wait_timeout_while(lines, WRITE_INTERVAL, |lines| lines.len() < EAGER_BYTES);
            }
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
            let first = lines.is_empty();
            lines.extend_from_slice(buf);
            // The writer sleeps until a first line arrives, and after it until the interval
            // ends or the buffer fills: one wake-up per batch, none per line.
            if first || lines.len() >= EAGER_BYTES {
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

    /// The lines the JSON subscriber `ticketd serve` installs writes while `f` runs, with
    /// `RUST_LOG=info`.
    fn json_lines(f: impl FnOnce()) -> Vec<serde_json::Value> {
        json_lines_filtered("info", f)
    }

    /// [`json_lines`] with this `RUST_LOG`.
    fn json_lines_filtered(filter: &str, f: impl FnOnce()) -> Vec<serde_json::Value> {
        let sink = Sink::default();
        let out = sink.clone();
        let subscriber = json_subscriber(
            log_filter(filter).expect("a valid filter"),
            move || out.clone(),
            false,
        );
        tracing::subscriber::with_default(subscriber, f);
        let bytes = sink.0.lock().expect("lock").0.clone();
        String::from_utf8(bytes)
            .expect("UTF-8")
            .lines()
            .map(|line| serde_json::from_str(line).expect("each line is JSON"))
            .collect()
    }

    #[test]
    fn lines_carry_their_spans_fields_including_values_recorded_later_the_last_one_winning() {
        let lines = json_lines(|| {
            let outer = tracing::info_span!("http.request", request_id = "r-1");
            let _outer = outer.enter();
            let span = tracing::info_span!(
                "tickets.create",
                quote = "say \"hi\"\n",
                operation.id = tracing::field::Empty,
                invgate.request_id = tracing::field::Empty,
            );
            let _in = span.enter();
            span.record("operation.id", tracing::field::display("op-1"));
            span.record("invgate.request_id", 7);
            span.record("invgate.request_id", 8_u64);
            tracing::info!(ok = true, "inside");
        });
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line["message"], "inside");
        assert_eq!(line["span"]["name"], "tickets.create");
        assert_eq!(line["span"]["quote"], "say \"hi\"\n");
        assert_eq!(line["span"]["operation.id"], "op-1");
        assert_eq!(line["span"]["invgate.request_id"], 8);
        assert_eq!(line["spans"][0]["request_id"], "r-1");
        assert_eq!(line["spans"][1]["operation.id"], "op-1");
    }

    /// The lines `f` logs through tracing-subscriber's own JSON format, with the options
    /// ticketd used before it wrote lines itself ([`JsonLines`]).
    fn reference_json_lines(f: impl FnOnce()) -> String {
        let sink = Sink::default();
        let out = sink.clone();
        let subscriber = tracing_subscriber::registry()
            .with(log_filter("trace").expect("a valid filter"))
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(move || out.clone())
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(true)
                    .fmt_fields(JsonSpanFields),
            );
        tracing::subscriber::with_default(subscriber, f);
        let bytes = sink.0.lock().expect("lock").0.clone();
        String::from_utf8(bytes).expect("UTF-8")
    }

    /// The lines `f` logs through the subscriber `ticketd serve` installs.
    fn ticketd_json_lines(f: impl FnOnce()) -> String {
        let sink = Sink::default();
        let out = sink.clone();
        let subscriber = json_subscriber(
            log_filter("trace").expect("a valid filter"),
            move || out.clone(),
            false,
        );
        tracing::subscriber::with_default(subscriber, f);
        let bytes = sink.0.lock().expect("lock").0.clone();
        String::from_utf8(bytes).expect("UTF-8")
    }

    /// `lines` with each line's timestamp (its first member) blanked.
    fn without_timestamps(lines: &str) -> Vec<String> {
        lines
            .lines()
            .map(|line| {
                let rest = line
                    .strip_prefix("{\"timestamp\":\"")
                    .and_then(|rest| rest.split_once('"'))
                    .map_or(line, |(_, rest)| rest);
                format!("{{\"timestamp\":\"…\"{rest}")
            })
            .collect()
    }

    /// Logs events of every kind of field, in and out of nested spans, with values recorded
    /// into spans after they were created (one of them twice).
    fn every_kind_of_line() {
        #[derive(Debug)]
        struct Odd {
            _n: u8,
        }
        let error = std::io::Error::other("disk \"full\"");
        tracing::info!("outside any span");
        let request = tracing::info_span!(
            "http.request",
            request_id = "r-1",
            http.method = %"POST",
            quote = "say \"hi\"\n\u{1}",
        );
        let _request = request.enter();
        tracing::warn!(
            text = "naïve ☃",
            signed = -3_i64,
            unsigned = 7_u64,
            ratio = 0.25,
            nan = f64::NAN,
            big = 1e300,
            yes = true,
            debug = ?Odd { _n: 1 },
            display = %"shown",
            error = &error as &(dyn std::error::Error + 'static),
            wide = 170_141_183_460_469_231_731_687_303_715_884_105_727_i128,
            "inside {}", "the request"
        );
        let create = tracing::info_span!(
            "tickets.create",
            operation.id = tracing::field::Empty,
            invgate.request_id = tracing::field::Empty,
        );
        let _create = create.enter();
        create.record("invgate.request_id", 7);
        create.record("operation.id", tracing::field::display("op-1"));
        create.record("invgate.request_id", "eight");
        tracing::error!(target: "ticketd::access", latency_ms = 1.5, "request finished");
        let empty = tracing::info_span!("binding");
        empty.in_scope(|| tracing::debug!("no fields in this span"));
        let other = tracing::info_span!(parent: None, "detached", n = 1);
        tracing::info!(parent: &other, "an explicit parent");
    }

    #[test]
    fn lines_are_byte_for_byte_those_of_tracing_subscriber_s_json_format() {
        let ours = ticketd_json_lines(every_kind_of_line);
        let reference = reference_json_lines(every_kind_of_line);
        assert_eq!(ours.lines().count(), 5, "{ours}");
        assert_eq!(without_timestamps(&ours), without_timestamps(&reference));
        // And the timestamps have the same shape: RFC 3339, microseconds, UTC.
        let stamp = |lines: &str| {
            let line: serde_json::Value =
                serde_json::from_str(lines.lines().next().expect("a line")).expect("JSON");
            line["timestamp"].as_str().expect("a timestamp").len()
        };
        assert_eq!(stamp(&ours), stamp(&reference));
    }

    #[test]
    fn a_value_recorded_again_replaces_the_first_where_it_stood() {
        for (object, name, member, expected) in [
            ("", "a", r#""a":1"#, r#"{"a":1}"#),
            ("{}", "a", r#""a":1"#, r#"{"a":1}"#),
            (r#"{"a":1}"#, "b", r#""b":"x""#, r#"{"a":1,"b":"x"}"#),
            (
                r#"{"a":1,"b":2}"#,
                "a",
                r#""a":"one""#,
                r#"{"a":"one","b":2}"#,
            ),
            (
                r#"{"a":"p,\"a\":q\\","ab":2,"b":3}"#,
                "b",
                r#""b":null"#,
                r#"{"a":"p,\"a\":q\\","ab":2,"b":null}"#,
            ),
            (
                r#"{"x":"\"a\":1","a":"s}t"}"#,
                "a",
                r#""a":true"#,
                r#"{"x":"\"a\":1","a":true}"#,
            ),
            (
                r#"{"q\"k":1,"b":2}"#,
                "q\"k",
                r#""q\"k":3"#,
                r#"{"q\"k":3,"b":2}"#,
            ),
        ] {
            let mut object = object.to_owned();
            set_member(&mut object, name, member);
            assert_eq!(object, expected);
        }
    }

    #[test]
    fn span_field_strings_are_escaped_exactly_as_serde_json_escapes_them() {
        let every_ascii: String = (0_u8..0x80).map(char::from).collect();
        for value in [
            "",
            "plain",
            "say \"hi\"\n",
            "back\\slash\ttab\r\u{8}\u{c}",
            "\u{0}\u{1f}\u{7f}",
            "naïve ☃ 🎫 \"mixed\" \u{2028}",
            every_ascii.as_str(),
        ] {
            let mut members = JsonMembers::default();
            members.string(value);
            let expected = serde_json::to_string(value).expect("a string serializes");
            assert_eq!(members.0, expected, "escaping {value:?}");
        }
    }

    #[test]
    fn a_filter_of_targets_and_levels_lets_through_only_what_it_names() {
        let lines = json_lines_filtered("warn,ticketd::access=info", || {
            let span = tracing::info_span!("http.request", request_id = "r-1");
            span.in_scope(|| {
                tracing::info!("not at this level");
                tracing::warn!("a warning");
            });
            tracing::info!(target: "ticketd::access", "request finished");
            tracing::info!(target: "ticketd::other", "another target");
            tracing::debug!(target: "ticketd::access", "too fine");
        });
        let messages: Vec<&str> = lines
            .iter()
            .filter_map(|line| line["message"].as_str())
            .collect();
        assert_eq!(messages, ["a warning", "request finished"]);
        assert!(
            lines[0]["spans"].is_null(),
            "the span was filtered out, so the warning sits in none: {}",
            lines[0]
        );
    }

    #[test]
    fn a_filter_with_a_span_directive_still_applies_it() {
        let lines = json_lines_filtered("info,[http.request]=debug", || {
            tracing::debug!("outside the request");
            let span = tracing::info_span!("http.request", request_id = "r-1");
            span.in_scope(|| tracing::debug!("inside the request"));
        });
        let messages: Vec<&str> = lines
            .iter()
            .filter_map(|line| line["message"].as_str())
            .collect();
        assert_eq!(messages, ["inside the request"]);
    }

    #[test]
    fn an_invalid_filter_is_refused() {
        assert!(log_filter("info,ticketd=loud").is_err());
    }

    #[test]
    fn a_span_created_without_values_gets_the_ones_recorded_later() {
        let lines = json_lines(|| {
            let span = tracing::info_span!("queue", queue.claimed = tracing::field::Empty);
            let _in = span.enter();
            span.record("queue.claimed", 3);
            tracing::info!("claimed");
        });
        assert_eq!(lines[0]["span"]["queue.claimed"], 3);
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

    /// A writer thread of its own, writing into a sink: its pending buffer, a writer into it,
    /// and the sink.
    fn writer_thread() -> (Arc<Pending>, LogWriter, Sink) {
        let pending = Arc::new(Pending::default());
        let writer = LogWriter {
            pending: pending.clone(),
        };
        let sink = Sink::default();
        let mut out = sink.clone();
        let shared = pending.clone();
        std::thread::spawn(move || write_periodically(&shared, &mut out));
        (pending, writer, sink)
    }

    fn wait_until_written(sink: &Sink) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while sink.0.lock().expect("lock").0.is_empty() {
            assert!(std::time::Instant::now() < deadline, "never written");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn the_writer_thread_writes_pending_lines_without_being_asked() {
        let (_pending, mut writer, sink) = writer_thread();
        writer
            .write_all(b"{\"message\":\"hi\"}\n")
            .expect("buffered");
        wait_until_written(&sink);
        assert_eq!(sink.0.lock().expect("lock").0, b"{\"message\":\"hi\"}\n");
    }

    #[test]
    fn the_writer_thread_sleeps_while_nothing_is_logged_and_wakes_when_a_line_is() {
        use std::sync::atomic::Ordering;
        let (pending, mut writer, sink) = writer_thread();
        // Five write intervals with nothing logged: a writer on a timer would have woken.
        std::thread::sleep(WRITE_INTERVAL * 5);
        assert_eq!(pending.wakeups.load(Ordering::Relaxed), 0);

        writer
            .write_all(b"{\"n\":1}\n{\"n\":2}\n")
            .expect("buffered");
        wait_until_written(&sink);
        // Written, and asleep again: no wake-up since.
        std::thread::sleep(WRITE_INTERVAL * 5);
        assert_eq!(sink.0.lock().expect("lock").0, b"{\"n\":1}\n{\"n\":2}\n");
        assert_eq!(pending.wakeups.load(Ordering::Relaxed), 1);
    }
}
