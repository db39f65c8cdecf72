//! The load: closed loop (a fixed number of clients, each sending its next request when the last
//! is answered) and open loop (requests sent on a fixed schedule, whatever the answers do, with
//! each latency measured from when the request was due, so a stall is not hidden: no coordinated
//! omission).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::Semaphore;

/// One request of a scenario: `Ok` when it was answered as it should be.
pub type Work =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// What a run measured.
#[derive(Debug)]
pub struct Outcome {
    pub ok: u64,
    pub errors: u64,
    /// Open loop only: requests that could not even be sent because too many were in flight.
    pub dropped: u64,
    pub elapsed: Duration,
    /// Latencies of the successful requests, in microseconds.
    pub latency: Histogram<u64>,
    pub first_error: Option<String>,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Outcome {
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentiles(&self) -> Percentiles {
        let ms = |q: f64| self.latency.value_at_quantile(q) as f64 / 1000.0;
        Percentiles {
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: self.latency.max() as f64 / 1000.0,
        }
    }
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 10 minutes, 3 significant figures.
    Histogram::new_with_bounds(1, 600_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

struct Tally {
    latency: Histogram<u64>,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn new() -> Self {
        Self {
            latency: histogram(),
            ok: 0,
            errors: 0,
            first_error: None,
        }
    }

    fn record(&mut self, result: Result<(), String>, took: Duration) {
        match result {
            Ok(()) => {
                self.ok += 1;
                let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
                let _ = self.latency.record(micros.min(600_000_000));
            }
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }
}

/// `concurrency` clients, each sending requests back to back, for `duration`.
pub async fn closed(work: Work, concurrency: usize, duration: Duration) -> Outcome {
    let start = Instant::now();
    let until = start + duration;
    let mut clients = Vec::new();
    for _ in 0..concurrency {
        let work = work.clone();
        clients.push(tokio::spawn(async move {
            let mut tally = Tally::new();
            while Instant::now() < until {
                let sent = Instant::now();
                let result = work().await;
                tally.record(result, sent.elapsed());
            }
            tally
        }));
    }
    let mut total = Tally::new();
    for client in clients {
        if let Ok(tally) = client.await {
            let _ = total.latency.add(&tally.latency);
            total.ok += tally.ok;
            total.errors += tally.errors;
            if total.first_error.is_none() {
                total.first_error = tally.first_error;
            }
        }
    }
    Outcome {
        ok: total.ok,
        errors: total.errors,
        dropped: 0,
        elapsed: start.elapsed(),
        latency: total.latency,
        first_error: total.first_error,
    }
}

/// `rate` requests a second on a fixed schedule for `duration`, at most `max_in_flight` at once.
/// A request's latency runs from when it was due, not from when it got sent.
pub async fn open(work: Work, rate: f64, duration: Duration, max_in_flight: usize) -> Outcome {
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let count = (duration.as_secs_f64() * rate).ceil() as u64;
    let tally = Arc::new(Mutex::new(Tally::new()));
    let slots = Arc::new(Semaphore::new(max_in_flight));
    let mut dropped = 0;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for i in 0..count {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            dropped += 1;
            continue;
        };
        let work = work.clone();
        let tally = tally.clone();
        tasks.push(tokio::spawn(async move {
            let result = work().await;
            let took = due.elapsed();
            drop(slot);
            if let Ok(mut t) = tally.lock() {
                t.record(result, took);
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = start.elapsed();
    let tally = Arc::try_unwrap(tally)
        .ok()
        .and_then(|m| m.into_inner().ok())
        .unwrap_or_else(Tally::new);
    Outcome {
        ok: tally.ok,
        errors: tally.errors,
        dropped,
        elapsed,
        latency: tally.latency,
        first_error: tally.first_error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeping(ms: u64) -> Work {
        Arc::new(move || {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(())
            })
        })
    }

    #[tokio::test]
    async fn a_closed_loop_counts_what_its_clients_finished() {
        let outcome = closed(sleeping(10), 4, Duration::from_millis(200)).await;
        assert_eq!(outcome.errors, 0);
        // Four clients of 10 ms requests for 200 ms: about 80, and never more.
        assert!(outcome.ok >= 8 && outcome.ok <= 84, "{}", outcome.ok);
        assert!(outcome.percentiles().p50_ms >= 10.0);
    }

    #[tokio::test]
    async fn an_open_loop_counts_a_stall_from_when_requests_were_due() {
        // One slot and 50 ms requests at 100/s: requests queue behind the slot or are dropped;
        // either way the latency of the sent ones includes waiting past their due time.
        let outcome = open(sleeping(50), 100.0, Duration::from_millis(300), 1).await;
        assert!(outcome.dropped > 0);
        assert!(outcome.ok >= 1);
        let failing: Work = Arc::new(|| Box::pin(async { Err("no".to_owned()) }));
        let failed = open(failing, 50.0, Duration::from_millis(100), 8).await;
        assert_eq!(failed.ok, 0);
        assert!(failed.errors >= 4);
        assert_eq!(failed.first_error.as_deref(), Some("no"));
    }
}
