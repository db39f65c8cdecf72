//! Per-caller rate limiting: a token bucket per authenticated e-mail address, so one noisy app
//! or stolen token cannot flood the service desk. Answers carry `RateLimit-*` headers
//! (draft-ietf-httpapi-ratelimit-headers) and a 429 carries `Retry-After`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::HttpMessage;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;

use crate::auth::Caller;
use crate::problem::ApiError;

/// Buckets are swept of idle callers when there are more than this many, at most once a second.
const SWEEP_ABOVE: usize = 4096;

/// The limit: `per_minute` requests on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_minute: u32,
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            per_minute: 120,
            burst: 30,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// What the limiter decided for one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    Allowed {
        remaining: u32,
        /// Until the bucket is full again.
        reset: Duration,
    },
    Limited {
        retry_after: Duration,
    },
}

/// Token buckets keyed by caller.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    per_second: f64,
    buckets: Mutex<(HashMap<String, Bucket>, Instant)>,
}

impl RateLimiter {
    /// `None` when the limit is off (a rate or burst of zero).
    #[must_use]
    pub fn new(limit: RateLimit) -> Option<Self> {
        (limit.per_minute > 0 && limit.burst > 0).then(|| Self {
            limit,
            per_second: f64::from(limit.per_minute) / 60.0,
            buckets: Mutex::new((HashMap::new(), Instant::now())),
        })
    }

    /// Takes one token from `caller`'s bucket if there is one.
    pub fn check(&self, caller: &str, now: Instant) -> Decision {
        let burst = f64::from(self.limit.burst);
        let mut guard = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (buckets, last_sweep) = &mut *guard;
        if buckets.len() > SWEEP_ABOVE && now.duration_since(*last_sweep) >= Duration::from_secs(1)
        {
            // A bucket that has refilled is the same as no bucket: forget it.
            let per_second = self.per_second;
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.updated).as_secs_f64() * per_second < burst
            });
            *last_sweep = now;
        }
        let bucket = buckets.entry(caller.to_owned()).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let refilled =
            now.saturating_duration_since(bucket.updated).as_secs_f64() * self.per_second;
        bucket.tokens = (bucket.tokens + refilled).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Decision::Allowed {
                remaining: bucket.tokens.floor() as u32,
                reset: Duration::from_secs_f64((burst - bucket.tokens) / self.per_second),
            }
        } else {
            Decision::Limited {
                retry_after: Duration::from_secs_f64((1.0 - bucket.tokens) / self.per_second),
            }
        }
    }

    fn headers(&self, decision: Decision, headers: &mut HeaderMap) {
        let (remaining, reset) = match decision {
            Decision::Allowed { remaining, reset } => (remaining, reset),
            Decision::Limited { retry_after } => (0, retry_after),
        };
        let window = (f64::from(self.limit.burst) / self.per_second).ceil() as u64;
        let mut set = |name: &'static str, value: String| {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        };
        set("ratelimit-limit", self.limit.burst.to_string());
        set("ratelimit-remaining", remaining.to_string());
        set("ratelimit-reset", ceil_secs(reset).to_string());
        set(
            "ratelimit-policy",
            format!("{};w={window}", self.limit.burst),
        );
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The middleware; sits inside `require_caller`, so the caller is known.
pub(crate) async fn rate_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let limiter = req.app_data::<web::Data<RateLimiter>>().cloned();
    let caller = req
        .extensions()
        .get::<Caller>()
        .map(|c| c.email.normalized());
    let (Some(limiter), Some(caller)) = (limiter, caller) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    let decision = limiter.check(&caller, Instant::now());
    let mut response = match decision {
        Decision::Allowed { .. } => next.call(req).await?.map_into_boxed_body(),
        Decision::Limited { retry_after } => {
            tracing::info!(
                retry_after_secs = ceil_secs(retry_after),
                "caller rate limited"
            );
            req.error_response(ApiError::RateLimited {
                retry_after: Duration::from_secs(ceil_secs(retry_after)),
            })
        }
    };
    limiter.headers(decision, response.headers_mut());
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_minute: u32, burst: u32) -> RateLimiter {
        RateLimiter::new(RateLimit { per_minute, burst }).expect("on")
    }

    #[test]
    fn a_burst_is_allowed_then_the_caller_waits_for_the_refill() {
        let l = limiter(60, 3);
        let t0 = Instant::now();
        for left in [2, 1, 0] {
            assert!(
                matches!(l.check("a", t0), Decision::Allowed { remaining, .. } if remaining == left)
            );
        }
        assert_eq!(
            l.check("a", t0),
            Decision::Limited {
                retry_after: Duration::from_secs(1)
            }
        );
        // Another caller has its own bucket.
        assert!(matches!(l.check("b", t0), Decision::Allowed { .. }));
        // One token per second comes back.
        assert!(matches!(
            l.check("a", t0 + Duration::from_secs(1)),
            Decision::Allowed { .. }
        ));
        assert!(matches!(
            l.check("a", t0 + Duration::from_secs(1)),
            Decision::Limited { .. }
        ));
    }

    #[test]
    fn a_rate_or_burst_of_zero_switches_the_limit_off() {
        assert!(
            RateLimiter::new(RateLimit {
                per_minute: 0,
                burst: 5
            })
            .is_none()
        );
        assert!(
            RateLimiter::new(RateLimit {
                per_minute: 5,
                burst: 0
            })
            .is_none()
        );
    }

    #[test]
    fn idle_callers_are_forgotten_so_memory_stays_bounded() {
        let l = limiter(60_000, 1);
        let t0 = Instant::now();
        for i in 0..=SWEEP_ABOVE {
            let _ = l.check(&format!("caller-{i}"), t0);
        }
        let _ = l.check("late", t0 + Duration::from_secs(2));
        let size = l.buckets.lock().expect("lock").0.len();
        assert_eq!(size, 1, "only the caller just seen");
    }
}
