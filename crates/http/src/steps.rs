//! How long each step of a request took, for its access line.
//!
//! A request's steps (the token check, binding, InvGate calls, database statements, the spool)
//! are spans inside its `http.request` span. [`StepTimes`] is a tracing layer that, when such a
//! span closes, adds its wall time to its step's total on the request span. The access line then
//! carries `auth_ms`, `binding_ms`, `invgate_ms`, `db_ms` and `spool_ms`: the durations in one
//! line, where a line per finished span cost about 70 µs of CPU per ticket, an eighth of
//! ticketd's then (see docs/performance.md). `TICKETD_LOG_SPAN_EVENTS=true` adds those per-span
//! lines back.

use std::time::{Duration, Instant};

use tracing::Subscriber;
use tracing::span::{Attributes, Id};
use tracing_subscriber::Registry;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The name of the span each request runs in (see `middleware::request_context`).
pub(crate) const REQUEST_SPAN: &str = "http.request";

/// The steps whose durations an access line carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Auth,
    Binding,
    InvGate,
    Database,
    Spool,
}

impl Step {
    const COUNT: usize = 5;

    /// The step a span belongs to, by the span's name.
    #[must_use]
    pub fn of_span(name: &str) -> Option<Self> {
        match name {
            "auth" => Some(Self::Auth),
            "binding" => Some(Self::Binding),
            _ if name.starts_with("invgate.") => Some(Self::InvGate),
            _ if name.starts_with("db.") => Some(Self::Database),
            _ if name.starts_with("spool.") => Some(Self::Spool),
            _ => None,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The time spent in each step of one request so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepDurations([Option<Duration>; Step::COUNT]);

impl StepDurations {
    /// The time spent in `step`, in milliseconds; `None` when the request never took it.
    #[must_use]
    pub fn millis(&self, step: Step) -> Option<f64> {
        self.0[step.index()].map(|d| d.as_secs_f64() * 1000.0)
    }

    fn add(&mut self, step: Step, time: Duration) {
        let total = &mut self.0[step.index()];
        *total = Some(total.unwrap_or_default() + time);
    }

    /// What the [`StepTimes`] layer gathered on `span` (a request span); nothing when the layer
    /// is not installed.
    #[must_use]
    pub fn of(span: &tracing::Span) -> Self {
        span.with_subscriber(|(id, dispatch)| {
            let registry = dispatch.downcast_ref::<Registry>()?;
            let data = registry.span(id)?;
            data.extensions().get::<Self>().copied()
        })
        .flatten()
        .unwrap_or_default()
    }
}

/// Logs a request's access line (`target: "ticketd::access"`, `message: "request finished"`):
/// the request, its status and latency, and the time spent in each step under `request`, its
/// `http.request` span (docs/operations.md lists the fields).
pub fn log_access(
    request: &tracing::Span,
    request_id: &str,
    method: &str,
    path: &str,
    status: u16,
    latency: Duration,
) {
    let steps = StepDurations::of(request);
    tracing::info!(
        target: "ticketd::access",
        request_id = %request_id,
        http.method = %method,
        http.path = %path,
        http.status_code = status,
        latency_ms = latency.as_secs_f64() * 1000.0,
        auth_ms = steps.millis(Step::Auth),
        binding_ms = steps.millis(Step::Binding),
        invgate_ms = steps.millis(Step::InvGate),
        db_ms = steps.millis(Step::Database),
        spool_ms = steps.millis(Step::Spool),
        "request finished"
    );
}

/// When a step span opened.
struct Opened(Instant);

/// The layer that totals step durations on each request span (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct StepTimes;

impl<S> Layer<S> for StepTimes
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if Step::of_span(attrs.metadata().name()).is_none() {
            return;
        }
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().replace(Opened(Instant::now()));
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(step) = Step::of_span(span.name()) else {
            return;
        };
        let Some(opened) = span.extensions().get::<Opened>().map(|o| o.0) else {
            return;
        };
        let mut request = None;
        for ancestor in span.scope().skip(1) {
            // A step inside a step of the same kind (a statement inside a transaction's span)
            // is already counted by the outer one.
            if Step::of_span(ancestor.name()) == Some(step) {
                return;
            }
            if ancestor.name() == REQUEST_SPAN {
                request = Some(ancestor);
            }
        }
        if let Some(request) = request {
            let mut extensions = request.extensions_mut();
            match extensions.get_mut::<StepDurations>() {
                Some(durations) => durations.add(step, opened.elapsed()),
                None => {
                    let mut durations = StepDurations::default();
                    durations.add(step, opened.elapsed());
                    extensions.insert(durations);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    fn with_step_times<T>(f: impl FnOnce() -> T) -> T {
        let subscriber = tracing_subscriber::registry().with(StepTimes);
        tracing::subscriber::with_default(subscriber, f)
    }

    #[test]
    fn spans_are_sorted_into_steps_by_name() {
        assert_eq!(Step::of_span("auth"), Some(Step::Auth));
        assert_eq!(Step::of_span("binding"), Some(Step::Binding));
        assert_eq!(
            Step::of_span("invgate.create_incident"),
            Some(Step::InvGate)
        );
        assert_eq!(
            Step::of_span("db.tickets.record_created"),
            Some(Step::Database)
        );
        assert_eq!(Step::of_span("spool.put"), Some(Step::Spool));
        assert_eq!(Step::of_span("tickets.create"), None);
        assert_eq!(Step::of_span("authentication"), None);
    }

    #[test]
    fn a_request_span_totals_the_time_of_its_steps_by_kind() {
        let durations = with_step_times(|| {
            let request = tracing::info_span!("http.request");
            request.in_scope(|| {
                tracing::info_span!("auth")
                    .in_scope(|| std::thread::sleep(Duration::from_millis(2)));
                tracing::info_span!("tickets.create").in_scope(|| {
                    for _ in 0..2 {
                        tracing::info_span!("db.tickets.insert")
                            .in_scope(|| std::thread::sleep(Duration::from_millis(3)));
                    }
                });
            });
            StepDurations::of(&request)
        });
        assert!(durations.millis(Step::Auth).is_some_and(|ms| ms >= 2.0));
        assert!(durations.millis(Step::Database).is_some_and(|ms| ms >= 6.0));
        assert_eq!(durations.millis(Step::Binding), None);
        assert_eq!(durations.millis(Step::InvGate), None);
    }

    #[test]
    fn a_step_inside_a_step_of_the_same_kind_is_counted_once() {
        let (durations, wall) = with_step_times(|| {
            let request = tracing::info_span!("http.request");
            let started = Instant::now();
            request.in_scope(|| {
                tracing::info_span!("invgate.create_incident").in_scope(|| {
                    tracing::info_span!("invgate.user_by")
                        .in_scope(|| std::thread::sleep(Duration::from_millis(5)));
                });
            });
            (StepDurations::of(&request), started.elapsed())
        });
        // Counted twice, the total would be about twice the time the whole request took.
        let invgate = durations.millis(Step::InvGate).expect("counted");
        assert!(
            invgate <= wall.as_secs_f64() * 1000.0,
            "{invgate} ms in {wall:?}"
        );
    }

    #[test]
    fn steps_outside_a_request_and_spans_without_the_layer_count_nothing() {
        let durations = with_step_times(|| {
            tracing::info_span!("db.tickets.due_for_sync").in_scope(|| {});
            StepDurations::of(&tracing::info_span!("http.request"))
        });
        assert_eq!(durations, StepDurations::default());
        let request = tracing::info_span!("http.request");
        assert_eq!(StepDurations::of(&request), StepDurations::default());
    }
}
