//! What tracing costs a created ticket: the spans a `POST /api/v1/tickets` opens (the request,
//! the token, the handler, binding, the use case, the InvGate call, the database statement), the
//! values recorded on them, and the access line, with the subscriber `ticketd serve` installs
//! writing to a sink. Each step awaits like the real one does (a task wake-up per network
//! answer), so the spans are entered and left as often as in a request. The other functions
//! split the cost: the spans' bookkeeping without any formatting, and the access line alone.
//!
//! The span tree mirrors `ticketd_http`'s middleware and handler, the domain's `create_ticket`,
//! the InvGate client and the PostgreSQL repository; keep it in step with them.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use ticketd::telemetry::{json_subscriber, log_filter};
use ticketd_http::log_access;
use tracing::Instrument;
use tracing::field::Empty;

/// An answer arriving: the task goes back to the runtime and is polled again.
async fn answer() {
    tokio::task::yield_now().await;
}

async fn request() {
    let started = Instant::now();
    let request_id = "0193a1f2-7c3e-7d41-9a55-1f0e2d3c4b5a";
    let span = tracing::info_span!(
        "http.request",
        request_id = %request_id,
        http.method = %"POST",
        http.path = %"/api/v1/tickets",
    );
    async {
        // The token is checked without waiting.
        async {}.instrument(tracing::info_span!("auth")).await;
        async {
            // The body: one read.
            answer().instrument(tracing::info_span!("binding")).await;
            async {
                let current = tracing::Span::current();
                current.record("invgate.user_id", 42);
                // The journal entry: a statement's answer.
                answer().await;
                current.record("operation.id", tracing::field::display(request_id));
                async {
                    // The request written, the answer's head, its body.
                    answer().await;
                    answer().await;
                    tracing::Span::current().record("http.status_code", 200);
                }
                .instrument(tracing::info_span!(
                    "invgate.create_incident",
                    http.status_code = Empty,
                    invgate.attachments = 0,
                ))
                .await;
                current.record("invgate.request_id", 1864);
                answer()
                    .instrument(tracing::info_span!(
                        "db.tickets.record_created",
                        invgate.request_id = 1864,
                    ))
                    .await;
            }
            .instrument(tracing::info_span!(
                "ticket.create",
                operation.id = Empty,
                invgate.user_id = Empty,
                invgate.request_id = Empty,
                ticket.attachments = 0,
            ))
            .await;
        }
        .instrument(tracing::info_span!("tickets.create"))
        .await;
    }
    .instrument(span.clone())
    .await;
    log_access(
        &span,
        request_id,
        "POST",
        "/api/v1/tickets",
        201,
        started.elapsed(),
    );
}

fn logging(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut group = c.benchmark_group("trace a created ticket");
    group.bench_function("without a subscriber (the awaits alone)", |b| {
        b.to_async(&runtime).iter(|| black_box(request()));
    });
    {
        use tracing_subscriber::layer::SubscriberExt;
        let bare = tracing_subscriber::registry()
            .with(log_filter("info").expect("valid"))
            .with(ticketd_http::StepTimes);
        let _default = tracing::subscriber::set_default(bare);
        group.bench_function(
            "spans kept, nothing formatted (registry, filter, step times)",
            |b| {
                b.to_async(&runtime).iter(|| black_box(request()));
            },
        );
    }
    let subscriber = json_subscriber(log_filter("info").expect("valid"), std::io::sink, false);
    let _default = tracing::subscriber::set_default(subscriber);
    group.bench_function(
        "JSON logs as ticketd serve writes them (RUST_LOG=info)",
        |b| {
            b.to_async(&runtime).iter(|| black_box(request()));
        },
    );
    // A request span whose steps all ran once, so the line carries their durations.
    let span = tracing::info_span!(
        "http.request",
        request_id = %"0193a1f2-7c3e-7d41-9a55-1f0e2d3c4b5a",
        http.method = %"POST",
        http.path = %"/api/v1/tickets",
    );
    span.in_scope(|| {
        tracing::info_span!("auth").in_scope(|| {});
        tracing::info_span!("binding").in_scope(|| {});
        tracing::info_span!("invgate.create_incident").in_scope(|| {});
        tracing::info_span!("db.tickets.record_created").in_scope(|| {});
    });
    group.bench_function("the access line alone", |b| {
        b.iter(|| {
            log_access(
                &span,
                "0193a1f2-7c3e-7d41-9a55-1f0e2d3c4b5a",
                "POST",
                "/api/v1/tickets",
                201,
                std::time::Duration::from_micros(1234),
            );
        });
    });
    group.finish();
}

criterion_group!(benches, logging);
criterion_main!(benches);
