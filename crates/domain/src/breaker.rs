//! A circuit breaker in front of InvGate: after repeated failures, calls are refused at once for a
//! cool-down (callers get a clear 503 instead of waiting for timeouts, and a struggling InvGate
//! gets room to recover); then one probe call decides whether to close again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;

use crate::caller::{EmailAddress, InvGateUserId};
use crate::comments::{Comment, NewComment, Reference, ReferenceList};
use crate::error::GatewayError;
use crate::operation::IncidentSummary;
use crate::ports::IncidentGateway;
use crate::reading::IncidentStatus;
use crate::ticket::{IncidentId, NewTicket};

/// When the breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failed calls that open the circuit.
    pub failure_threshold: u32,
    /// How long an open circuit refuses calls before letting a probe through.
    pub cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            cooldown: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is out; everyone else waits for its verdict.
    HalfOpen,
}

/// An [`IncidentGateway`] wrapped in a circuit breaker.
#[derive(Debug)]
pub struct CircuitBreaker<G> {
    inner: G,
    config: BreakerConfig,
    state: Mutex<State>,
}

/// Whether a failure says InvGate is unwell (rather than that our request was wrong).
fn counts_as_failure(err: &GatewayError) -> bool {
    matches!(
        err,
        GatewayError::Timeout
            | GatewayError::Unavailable(_)
            | GatewayError::NotSent(_)
            | GatewayError::RateLimited { .. }
    )
}

impl<G: IncidentGateway> CircuitBreaker<G> {
    pub fn new(inner: G, config: BreakerConfig) -> Self {
        Self {
            inner,
            config,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Lets a call through, or says how long to wait.
    fn admit(&self) -> Result<(), GatewayError> {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Ok(()),
            State::Open { until } => {
                let now = Instant::now();
                if now >= until {
                    *state = State::HalfOpen;
                    tracing::info!("InvGate circuit half-open: probing");
                    Ok(())
                } else {
                    Err(GatewayError::CircuitOpen {
                        retry_after: until - now,
                    })
                }
            }
            // The probe's verdict comes soon.
            State::HalfOpen => Err(GatewayError::CircuitOpen {
                retry_after: Duration::from_secs(1),
            }),
        }
    }

    fn record<T>(&self, outcome: &Result<T, GatewayError>) {
        let mut state = self.lock();
        let failed = outcome.as_ref().err().is_some_and(counts_as_failure);
        *state = match (*state, failed) {
            (State::HalfOpen, false) => {
                tracing::info!("InvGate circuit closed: the probe succeeded");
                State::Closed { failures: 0 }
            }
            (State::HalfOpen, true) => {
                tracing::warn!(
                    cooldown_secs = self.config.cooldown.as_secs(),
                    "InvGate circuit open again: the probe failed"
                );
                State::Open {
                    until: Instant::now() + self.config.cooldown,
                }
            }
            (State::Closed { .. }, false) => State::Closed { failures: 0 },
            (State::Closed { failures }, true) if failures + 1 >= self.config.failure_threshold => {
                tracing::error!(
                    failures = failures + 1,
                    cooldown_secs = self.config.cooldown.as_secs(),
                    "InvGate circuit open: calls are refused for the cool-down"
                );
                State::Open {
                    until: Instant::now() + self.config.cooldown,
                }
            }
            (State::Closed { failures }, true) => State::Closed {
                failures: failures + 1,
            },
            // A call admitted before the circuit opened changes nothing.
            (open @ State::Open { .. }, _) => open,
        };
    }

    async fn call<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, GatewayError>>,
    ) -> Result<T, GatewayError> {
        self.admit()?;
        let outcome = f.await;
        self.record(&outcome);
        outcome
    }
}

#[async_trait]
impl<G: IncidentGateway> IncidentGateway for CircuitBreaker<G> {
    async fn find_user_id_by_email(
        &self,
        email: &EmailAddress,
    ) -> Result<Option<InvGateUserId>, GatewayError> {
        self.call(self.inner.find_user_id_by_email(email)).await
    }

    async fn create_incident(
        &self,
        requester: InvGateUserId,
        ticket: &NewTicket,
    ) -> Result<Value, GatewayError> {
        self.call(self.inner.create_incident(requester, ticket))
            .await
    }

    async fn incidents_created_last_hour(&self) -> Result<Vec<IncidentSummary>, GatewayError> {
        self.call(self.inner.incidents_created_last_hour()).await
    }

    async fn open_incidents_of(
        &self,
        customer: InvGateUserId,
    ) -> Result<Vec<IncidentSummary>, GatewayError> {
        self.call(self.inner.open_incidents_of(customer)).await
    }

    async fn incident_status(
        &self,
        id: IncidentId,
    ) -> Result<Option<IncidentStatus>, GatewayError> {
        self.call(self.inner.incident_status(id)).await
    }

    async fn comments_of(&self, id: IncidentId) -> Result<Option<Vec<Comment>>, GatewayError> {
        self.call(self.inner.comments_of(id)).await
    }

    async fn add_comment(
        &self,
        id: IncidentId,
        author: InvGateUserId,
        comment: &NewComment,
    ) -> Result<Value, GatewayError> {
        self.call(self.inner.add_comment(id, author, comment)).await
    }

    async fn reference_list(&self, list: ReferenceList) -> Result<Vec<Reference>, GatewayError> {
        self.call(self.inner.reference_list(list)).await
    }
}
