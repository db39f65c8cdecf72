//! Settings: from flags or environment variables (a flag wins), checked once at start. A missing or
//! bad setting stops the start with one line naming it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use secrecy::SecretString;
use ticketd_auth::{Algorithm, JwksPolicy, MIN_HMAC_SECRET_BYTES, TokenPolicy, VerifyingKey};
use ticketd_domain::{BreakerConfig, MarkerTemplate, ServiceConfig};
use ticketd_http::{AttachmentPolicy, Limits, RateLimit};
use ticketd_invgate::{InvGateConfig, RetryPolicy};

/// A setting that is missing or unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable} (--{flag}) {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub flag: &'static str,
    pub problem: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Logging settings, needed before anything else.
#[derive(Debug, Clone)]
pub struct LogSettings {
    pub filter: String,
    pub format: LogFormat,
    /// A JSON line for every finished span, with its duration, besides the access line's
    /// per-step totals.
    pub span_events: bool,
}

#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log filter (tracing's EnvFilter syntax, e.g. `info,ticketd=debug`) [default: info]
    #[arg(
        long = "log-filter",
        env = "RUST_LOG",
        hide_env_values = true,
        global = true
    )]
    pub log_filter: Option<String>,
    /// Log format: json (one object per line) or pretty [default: json; pretty for `demo`]
    #[arg(
        long,
        env = "TICKETD_LOG_FORMAT",
        hide_env_values = true,
        global = true
    )]
    pub log_format: Option<String>,
    /// Also log a line when each span ends, with its duration (`time.busy`, `time.idle`); the
    /// access line carries the per-step totals either way [default: false]
    #[arg(
        long,
        env = "TICKETD_LOG_SPAN_EVENTS",
        hide_env_values = true,
        global = true
    )]
    pub log_span_events: Option<String>,
}

impl LogArgs {
    /// # Errors
    /// When the format is neither `json` nor `pretty`.
    pub fn settings(&self, default: LogFormat) -> Result<LogSettings, ConfigError> {
        let format = match self.log_format.as_deref().map(str::trim) {
            None | Some("") => default,
            Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => {
                return Err(ConfigError {
                    variable: "TICKETD_LOG_FORMAT",
                    flag: "log-format",
                    problem: format!("must be json or pretty, got {other:?}"),
                });
            }
        };
        let filter = self
            .log_filter
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .unwrap_or("info")
            .to_owned();
        let span_events = flag(
            self.log_span_events.as_deref(),
            "TICKETD_LOG_SPAN_EVENTS",
            "log-span-events",
        )?;
        Ok(LogSettings {
            filter,
            format,
            span_events,
        })
    }
}

/// The database setting, shared by `serve` and `migrate`.
#[derive(Clone, Default, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL, e.g. postgres://user:password@host:5432/ticketd (required)
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

impl std::fmt::Debug for DatabaseArgs {
    // The URL may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseArgs")
            .field(
                "database_url",
                &self.database_url.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

impl DatabaseArgs {
    /// # Errors
    /// When the URL is missing or not a PostgreSQL URL.
    pub fn url(&self) -> Result<SecretString, ConfigError> {
        let err = |problem: &str| ConfigError {
            variable: "DATABASE_URL",
            flag: "database-url",
            problem: problem.to_owned(),
        };
        let url = self
            .database_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| err("is required"))?;
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            // The URL may hold a password: never echo it.
            return Err(err("must be a postgres:// or postgresql:// URL"));
        }
        Ok(SecretString::from(url.to_owned()))
    }
}

/// Everything `ticketd serve` reads (all unset by default: the defaults live in [`ServeArgs::settings`]).
#[derive(Clone, Default, Args)]
pub struct ServeArgs {
    /// Address to bind [default: 127.0.0.1:8080]
    #[arg(long, env = "TICKETD_LISTEN", hide_env_values = true)]
    pub listen: Option<String>,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// InvGate API base URL, e.g. https://acme.sd.cloud.invgate.net/api/v1 (required)
    #[arg(long, env = "INVGATE_BASE_URL", hide_env_values = true)]
    pub invgate_base_url: Option<String>,
    /// InvGate API user name for HTTP Basic auth (required)
    #[arg(long, env = "INVGATE_USERNAME", hide_env_values = true)]
    pub invgate_username: Option<String>,
    /// InvGate API key for HTTP Basic auth (required; prefer the variable: flags show in `ps`)
    #[arg(long, env = "INVGATE_PASSWORD", hide_env_values = true)]
    pub invgate_password: Option<String>,
    /// Whole-call timeout for InvGate, in seconds [default: 15]
    #[arg(long, env = "INVGATE_TIMEOUT_SECS", hide_env_values = true)]
    pub invgate_timeout_secs: Option<String>,
    /// HMAC secret that signs callers' tokens (prefer the variable: flags show in `ps`). One of
    /// JWT_SECRET, JWT_SECRETS, JWT_PUBLIC_KEYS or JWT_JWKS_URL is required
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// More HMAC secrets, comma-separated, all accepted at once (for rotation)
    #[arg(long, env = "JWT_SECRETS", hide_env_values = true)]
    pub jwt_secrets: Option<String>,
    /// Algorithms the HMAC secrets verify, comma-separated, of HS256, HS384, HS512 [default: HS256]
    #[arg(long, env = "JWT_HMAC_ALGORITHMS", hide_env_values = true)]
    pub jwt_hmac_algorithms: Option<String>,
    /// PEM public keys (RSA, EC P-256/P-384, Ed25519), comma-separated paths, each optionally
    /// `kid=path`
    #[arg(long, env = "JWT_PUBLIC_KEYS", hide_env_values = true)]
    pub jwt_public_keys: Option<String>,
    /// URL of the identity provider's JWKS (https://, or http:// to loopback)
    #[arg(long, env = "JWT_JWKS_URL", hide_env_values = true)]
    pub jwt_jwks_url: Option<String>,
    /// Seconds JWKS keys are kept before being refetched [default: 300]
    #[arg(long, env = "JWT_JWKS_TTL_SECS", hide_env_values = true)]
    pub jwt_jwks_ttl_secs: Option<String>,
    /// Least seconds between two JWKS fetches (unknown kid, failures) [default: 30]
    #[arg(long, env = "JWT_JWKS_REFETCH_SECS", hide_env_values = true)]
    pub jwt_jwks_refetch_secs: Option<String>,
    /// Accepted `iss` values, comma-separated; when set, tokens must carry one
    #[arg(long, env = "JWT_ISSUER", hide_env_values = true)]
    pub jwt_issuer: Option<String>,
    /// Accepted `aud` values, comma-separated; when set, tokens must carry one
    #[arg(long, env = "JWT_AUDIENCE", hide_env_values = true)]
    pub jwt_audience: Option<String>,
    /// Claim holding the caller's e-mail address (an e-mail-shaped `sub` is the fallback)
    /// [default: email]
    #[arg(long, env = "JWT_EMAIL_CLAIM", hide_env_values = true)]
    pub jwt_email_claim: Option<String>,
    /// Require `email_verified: true` in tokens (true or false) [default: false]
    #[arg(long, env = "JWT_REQUIRE_EMAIL_VERIFIED", hide_env_values = true)]
    pub jwt_require_email_verified: Option<String>,
    /// Requests per minute per caller on /api/v1; 0 switches the limit off [default: 120]
    #[arg(long, env = "TICKETD_RATE_LIMIT_PER_MINUTE", hide_env_values = true)]
    pub rate_limit_per_minute: Option<String>,
    /// Requests a caller may make at once before the per-minute rate applies [default: 30]
    #[arg(long, env = "TICKETD_RATE_LIMIT_BURST", hide_env_values = true)]
    pub rate_limit_burst: Option<String>,
    /// InvGate calls in flight at once, over all callers; more wait [default: 16]
    #[arg(long, env = "INVGATE_MAX_CONCURRENT_CALLS", hide_env_values = true)]
    pub invgate_max_concurrent_calls: Option<String>,
    /// Open connections per worker thread [default: 1024]
    #[arg(long, env = "TICKETD_MAX_CONNECTIONS", hide_env_values = true)]
    pub max_connections: Option<String>,
    /// HTTP worker threads [default: the number of cores]
    #[arg(long, env = "TICKETD_WORKERS", hide_env_values = true)]
    pub http_workers: Option<String>,
    /// Seconds an idle keep-alive connection is kept open [default: 5]
    #[arg(long, env = "TICKETD_KEEP_ALIVE_SECS", hide_env_values = true)]
    pub keep_alive_secs: Option<String>,
    /// Seconds a client has to send the request line and headers [default: 5]
    #[arg(long, env = "TICKETD_HEADER_TIMEOUT_SECS", hide_env_values = true)]
    pub header_timeout_secs: Option<String>,
    /// Seconds the request body may stall between two chunks [default: 15]
    #[arg(long, env = "TICKETD_BODY_IDLE_TIMEOUT_SECS", hide_env_values = true)]
    pub body_idle_timeout_secs: Option<String>,
    /// Bytes of all request headers together [default: 16384]
    #[arg(long, env = "TICKETD_MAX_HEADER_BYTES", hide_env_values = true)]
    pub max_header_bytes: Option<String>,
    /// Origins browsers may call ticketd from (CORS), comma-separated, or `*` [default: none]
    #[arg(long, env = "TICKETD_CORS_ORIGINS", hide_env_values = true)]
    pub cors_origins: Option<String>,
    /// File families attachments may be, comma-separated, of image, pdf, office, text, archive,
    /// audio, video, markup, other [default: image,pdf,office,text,archive]
    #[arg(long, env = "TICKETD_ATTACHMENT_TYPES", hide_env_values = true)]
    pub attachment_types: Option<String>,
    /// Clock skew allowed on exp/nbf (and on date_ocurred), in seconds [default: 60]
    #[arg(long, env = "JWT_LEEWAY_SECS", hide_env_values = true)]
    pub jwt_leeway_secs: Option<String>,
    /// Files per ticket [default: 10]
    #[arg(long, env = "TICKETD_MAX_ATTACHMENTS", hide_env_values = true)]
    pub max_attachments: Option<String>,
    /// Bytes per file [default: 20971520]
    #[arg(long, env = "TICKETD_MAX_ATTACHMENT_BYTES", hide_env_values = true)]
    pub max_attachment_bytes: Option<String>,
    /// Bytes of a JSON body or of a multipart body's fields [default: 1048576]
    #[arg(long, env = "TICKETD_MAX_JSON_BYTES", hide_env_values = true)]
    pub max_json_bytes: Option<String>,
    /// Consecutive InvGate failures that open the circuit breaker [default: 5]
    #[arg(long, env = "INVGATE_BREAKER_THRESHOLD", hide_env_values = true)]
    pub breaker_threshold: Option<String>,
    /// Seconds an open circuit refuses calls before probing InvGate again [default: 30]
    #[arg(long, env = "INVGATE_BREAKER_COOLDOWN_SECS", hide_env_values = true)]
    pub breaker_cooldown_secs: Option<String>,
    /// Directory of the durable spool for ticket records the database could not take [default:
    /// ./spool]
    #[arg(long, env = "TICKETD_SPOOL_DIR", hide_env_values = true)]
    pub spool_dir: Option<String>,
    /// How often background workers (spool replay, reconciler, queue) look for work, in
    /// milliseconds [default: 5000]
    #[arg(long, env = "TICKETD_WORKER_INTERVAL_MS", hide_env_values = true)]
    pub worker_interval_ms: Option<String>,
    /// Text appended to each incident's description to find it again if its creation answer is
    /// lost; `{id}` becomes the operation id [default: "\n\n[ticketd:{id}]"]
    #[arg(long, env = "TICKETD_OPERATION_MARKER", hide_env_values = true)]
    pub operation_marker: Option<String>,
}

impl std::fmt::Debug for ServeArgs {
    // Raw settings hold secrets as plain text (clap fills them); `Settings` is the form to show.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeArgs")
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

/// Checked settings for `serve`.
#[derive(Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    pub database_url: SecretString,
    pub invgate: InvGateConfig,
    pub auth: AuthSettings,
    pub server: ServerSettings,
    pub limits: Limits,
    pub operation_marker: MarkerTemplate,
    pub spool_dir: PathBuf,
    pub worker_interval: Duration,
    pub breaker: BreakerConfig,
    /// HTTP worker threads; the number of cores when `None`.
    pub workers: Option<usize>,
}

/// How callers' tokens are verified.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// HMAC secrets and PEM public keys, read and checked at start.
    pub keys: Vec<VerifyingKey>,
    /// The identity provider's JWKS, if any.
    pub jwks: Option<(String, JwksPolicy)>,
    pub policy: TokenPolicy,
    /// Things worth a warning at start (weak secrets).
    pub warnings: Vec<String>,
}

impl AuthSettings {
    /// One HMAC secret for HS256 with the default policy (the demo, tests).
    ///
    /// # Errors
    /// When the secret is empty.
    pub fn hs256(secret: &SecretString) -> Result<Self, ticketd_auth::KeyError> {
        Ok(Self {
            keys: vec![VerifyingKey::hmac(
                secret,
                &[Algorithm::HS256],
                "JWT_SECRET",
            )?],
            jwks: None,
            policy: TokenPolicy::default(),
            warnings: Vec::new(),
        })
    }
}

/// Limits of the HTTP server itself and of callers.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub max_connections: usize,
    pub keep_alive: Duration,
    pub header_timeout: Duration,
    pub rate_limit: RateLimit,
    pub cors_origins: Vec<String>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            keep_alive: Duration::from_secs(5),
            header_timeout: Duration::from_secs(5),
            rate_limit: RateLimit::default(),
            cors_origins: Vec::new(),
        }
    }
}

impl Settings {
    /// The domain service's settings derived from these.
    #[must_use]
    pub fn service_config(&self) -> ServiceConfig {
        ServiceConfig {
            marker: self.operation_marker.clone(),
            // A create cannot outlast InvGate's timeout (retries included); twice that leaves
            // room for the local write before an unfinished operation counts as abandoned.
            call_lease: self.invgate.timeout * 2,
            ..ServiceConfig::default()
        }
    }
}

fn required(
    value: Option<&str>,
    variable: &'static str,
    flag: &'static str,
) -> Result<String, ConfigError> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(ToOwned::to_owned)
        .ok_or(ConfigError {
            variable,
            flag,
            problem: "is required".into(),
        })
}

fn list(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(ToOwned::to_owned)
        .collect()
}

fn flag(
    value: Option<&str>,
    variable: &'static str,
    flag: &'static str,
) -> Result<bool, ConfigError> {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("" | "false" | "0" | "no") => Ok(false),
        Some("true" | "1" | "yes") => Ok(true),
        Some(other) => Err(ConfigError {
            variable,
            flag,
            problem: format!("must be true or false, got {other:?}"),
        }),
    }
}

impl ServeArgs {
    fn auth(&self, leeway: Duration) -> Result<AuthSettings, ConfigError> {
        let mut warnings = Vec::new();
        let algorithms = list(self.jwt_hmac_algorithms.as_deref());
        let hmac_algorithms = if algorithms.is_empty() {
            vec![Algorithm::HS256]
        } else {
            algorithms
                .iter()
                .map(|a| match a.to_ascii_uppercase().as_str() {
                    "HS256" => Ok(Algorithm::HS256),
                    "HS384" => Ok(Algorithm::HS384),
                    "HS512" => Ok(Algorithm::HS512),
                    _ => Err(ConfigError {
                        variable: "JWT_HMAC_ALGORITHMS",
                        flag: "jwt-hmac-algorithms",
                        problem: format!("must list HS256, HS384 or HS512, got {a:?}"),
                    }),
                })
                .collect::<Result<_, _>>()?
        };
        let mut keys = Vec::new();
        let mut secrets: Vec<(String, String)> = Vec::new();
        if let Some(secret) = self
            .jwt_secret
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            secrets.push(("JWT_SECRET".into(), secret.to_owned()));
        }
        for (i, secret) in list(self.jwt_secrets.as_deref()).into_iter().enumerate() {
            secrets.push((format!("JWT_SECRETS #{}", i + 1), secret));
        }
        for (origin, secret) in secrets {
            if secret.len() < MIN_HMAC_SECRET_BYTES {
                warnings.push(format!(
                    "{origin} is shorter than {MIN_HMAC_SECRET_BYTES} bytes; use a longer random secret"
                ));
            }
            let secret = SecretString::from(secret);
            keys.push(
                VerifyingKey::hmac(&secret, &hmac_algorithms, &origin).map_err(|e| {
                    ConfigError {
                        variable: "JWT_SECRETS",
                        flag: "jwt-secrets",
                        problem: e.to_string(),
                    }
                })?,
            );
        }
        for entry in list(self.jwt_public_keys.as_deref()) {
            let bad = |problem: String| ConfigError {
                variable: "JWT_PUBLIC_KEYS",
                flag: "jwt-public-keys",
                problem,
            };
            let (kid, path) = match entry.split_once('=') {
                Some((kid, path)) if !kid.trim().is_empty() => {
                    (Some(kid.trim().to_owned()), path.trim().to_owned())
                }
                _ => (None, entry.clone()),
            };
            let pem = std::fs::read(&path).map_err(|e| bad(format!("cannot read {path}: {e}")))?;
            keys.push(VerifyingKey::from_pem(&pem, kid, &path).map_err(|e| bad(e.to_string()))?);
        }
        let jwks = match self
            .jwt_jwks_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
        {
            None => None,
            Some(url) => {
                let policy = JwksPolicy {
                    ttl: Duration::from_secs(number(
                        self.jwt_jwks_ttl_secs.as_deref(),
                        300,
                        1,
                        "JWT_JWKS_TTL_SECS",
                        "jwt-jwks-ttl-secs",
                    )?),
                    min_refetch_interval: Duration::from_secs(number(
                        self.jwt_jwks_refetch_secs.as_deref(),
                        30,
                        // Never 0: tokens with made-up kids would each cost a fetch.
                        1,
                        "JWT_JWKS_REFETCH_SECS",
                        "jwt-jwks-refetch-secs",
                    )?),
                };
                ticketd_auth::HttpJwksSource::check_url(url).map_err(|e| ConfigError {
                    variable: "JWT_JWKS_URL",
                    flag: "jwt-jwks-url",
                    problem: e.to_string(),
                })?;
                Some((url.to_owned(), policy))
            }
        };
        if keys.is_empty() && jwks.is_none() {
            return Err(ConfigError {
                variable: "JWT_SECRET",
                flag: "jwt-secret",
                problem: "is required (or JWT_SECRETS, JWT_PUBLIC_KEYS or JWT_JWKS_URL)".into(),
            });
        }
        let public_keys = jwks.is_some() || keys.iter().any(VerifyingKey::is_public);
        if public_keys
            && self
                .jwt_audience
                .as_deref()
                .is_none_or(|a| a.trim().is_empty())
        {
            warnings.push(
                "public keys or a JWKS are configured without JWT_AUDIENCE: every token the identity provider issues, for any application, is accepted".into(),
            );
        }
        let email_claim = self
            .jwt_email_claim
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .unwrap_or("email")
            .to_owned();
        Ok(AuthSettings {
            keys,
            jwks,
            policy: TokenPolicy {
                issuers: list(self.jwt_issuer.as_deref()),
                audiences: list(self.jwt_audience.as_deref()),
                email_claim,
                require_email_verified: flag(
                    self.jwt_require_email_verified.as_deref(),
                    "JWT_REQUIRE_EMAIL_VERIFIED",
                    "jwt-require-email-verified",
                )?,
                leeway,
            },
            warnings,
        })
    }

    fn server(&self) -> Result<ServerSettings, ConfigError> {
        let cors_origins = list(self.cors_origins.as_deref());
        for origin in &cors_origins {
            let plain = origin == "*"
                || ((origin.starts_with("https://") || origin.starts_with("http://"))
                    && !origin
                        .trim_end_matches('/')
                        .split_once("://")
                        .is_some_and(|(_, rest)| rest.contains('/')));
            if !plain {
                return Err(ConfigError {
                    variable: "TICKETD_CORS_ORIGINS",
                    flag: "cors-origins",
                    problem: format!(
                        "must list origins like https://portal.example.com, or *, got {origin:?}"
                    ),
                });
            }
        }
        Ok(ServerSettings {
            max_connections: number(
                self.max_connections.as_deref(),
                1024,
                1,
                "TICKETD_MAX_CONNECTIONS",
                "max-connections",
            )?,
            keep_alive: Duration::from_secs(number(
                self.keep_alive_secs.as_deref(),
                5,
                0,
                "TICKETD_KEEP_ALIVE_SECS",
                "keep-alive-secs",
            )?),
            header_timeout: Duration::from_secs(number(
                self.header_timeout_secs.as_deref(),
                5,
                1,
                "TICKETD_HEADER_TIMEOUT_SECS",
                "header-timeout-secs",
            )?),
            rate_limit: RateLimit {
                per_minute: number(
                    self.rate_limit_per_minute.as_deref(),
                    120,
                    0,
                    "TICKETD_RATE_LIMIT_PER_MINUTE",
                    "rate-limit-per-minute",
                )?,
                burst: number(
                    self.rate_limit_burst.as_deref(),
                    30,
                    1,
                    "TICKETD_RATE_LIMIT_BURST",
                    "rate-limit-burst",
                )?,
            },
            cors_origins: cors_origins
                .into_iter()
                .map(|o| o.trim_end_matches('/').to_owned())
                .collect(),
        })
    }
}

fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display>(
    value: Option<&str>,
    default: T,
    min: T,
    variable: &'static str,
    flag: &'static str,
) -> Result<T, ConfigError> {
    let Some(raw) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(default);
    };
    match raw.parse::<T>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(ConfigError {
            variable,
            flag,
            problem: format!("must be a whole number of at least {min}, got {raw:?}"),
        }),
    }
}

impl ServeArgs {
    /// Checks every setting.
    ///
    /// # Errors
    /// The first missing or bad setting.
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        let listen_raw = self
            .listen
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .unwrap_or("127.0.0.1:8080");
        let listen = listen_raw.parse::<SocketAddr>().map_err(|_| ConfigError {
            variable: "TICKETD_LISTEN",
            flag: "listen",
            problem: format!("must be an address like 127.0.0.1:8080, got {listen_raw:?}"),
        })?;
        let database_url = self.database.url()?;
        let base_url = required(
            self.invgate_base_url.as_deref(),
            "INVGATE_BASE_URL",
            "invgate-base-url",
        )?;
        ticketd_invgate::parse_base_url(&base_url).map_err(|_| ConfigError {
            variable: "INVGATE_BASE_URL",
            flag: "invgate-base-url",
            problem: format!("must be an absolute http(s) URL without credentials, like https://acme.sd.cloud.invgate.net/api/v1, got {base_url:?}"),
        })?;
        let username = required(
            self.invgate_username.as_deref(),
            "INVGATE_USERNAME",
            "invgate-username",
        )?;
        let password = required(
            self.invgate_password.as_deref(),
            "INVGATE_PASSWORD",
            "invgate-password",
        )?;
        let timeout_secs: u64 = number(
            self.invgate_timeout_secs.as_deref(),
            15,
            1,
            "INVGATE_TIMEOUT_SECS",
            "invgate-timeout-secs",
        )?;
        let leeway_secs: u64 = number(
            self.jwt_leeway_secs.as_deref(),
            60,
            0,
            "JWT_LEEWAY_SECS",
            "jwt-leeway-secs",
        )?;
        let auth = self.auth(Duration::from_secs(leeway_secs))?;
        let server = self.server()?;
        let max_concurrent_calls: usize = number(
            self.invgate_max_concurrent_calls.as_deref(),
            16,
            1,
            "INVGATE_MAX_CONCURRENT_CALLS",
            "invgate-max-concurrent-calls",
        )?;
        let attachment_policy = match self.attachment_types.as_deref().map(str::trim) {
            None | Some("") => AttachmentPolicy::default(),
            Some(list) => AttachmentPolicy::parse(list).map_err(|problem| ConfigError {
                variable: "TICKETD_ATTACHMENT_TYPES",
                flag: "attachment-types",
                problem,
            })?,
        };
        let body_idle_secs: u64 = number(
            self.body_idle_timeout_secs.as_deref(),
            15,
            1,
            "TICKETD_BODY_IDLE_TIMEOUT_SECS",
            "body-idle-timeout-secs",
        )?;
        let max_header_bytes: usize = number(
            self.max_header_bytes.as_deref(),
            16 * 1024,
            1024,
            "TICKETD_MAX_HEADER_BYTES",
            "max-header-bytes",
        )?;
        let max_attachments: usize = number(
            self.max_attachments.as_deref(),
            10,
            0,
            "TICKETD_MAX_ATTACHMENTS",
            "max-attachments",
        )?;
        let max_attachment_bytes: u64 = number(
            self.max_attachment_bytes.as_deref(),
            20 * 1024 * 1024,
            1,
            "TICKETD_MAX_ATTACHMENT_BYTES",
            "max-attachment-bytes",
        )?;
        let max_json_bytes: usize = number(
            self.max_json_bytes.as_deref(),
            1024 * 1024,
            1,
            "TICKETD_MAX_JSON_BYTES",
            "max-json-bytes",
        )?;
        let spool_dir = PathBuf::from(
            self.spool_dir
                .as_deref()
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .unwrap_or("spool"),
        );
        let http_workers = self
            .http_workers
            .as_deref()
            .filter(|w| !w.trim().is_empty())
            .map(|w| number(Some(w), 1, 1, "TICKETD_WORKERS", "http-workers"))
            .transpose()?;
        let worker_interval_ms: u64 = number(
            self.worker_interval_ms.as_deref(),
            5000,
            10,
            "TICKETD_WORKER_INTERVAL_MS",
            "worker-interval-ms",
        )?;
        let breaker_threshold: u32 = number(
            self.breaker_threshold.as_deref(),
            5,
            1,
            "INVGATE_BREAKER_THRESHOLD",
            "breaker-threshold",
        )?;
        let breaker_cooldown_secs: u64 = number(
            self.breaker_cooldown_secs.as_deref(),
            30,
            1,
            "INVGATE_BREAKER_COOLDOWN_SECS",
            "breaker-cooldown-secs",
        )?;
        let operation_marker = match self.operation_marker.as_deref() {
            None | Some("") => MarkerTemplate::default(),
            Some(raw) => MarkerTemplate::parse(raw).map_err(|problem| ConfigError {
                variable: "TICKETD_OPERATION_MARKER",
                flag: "operation-marker",
                problem,
            })?,
        };
        Ok(Settings {
            listen,
            database_url,
            invgate: InvGateConfig {
                base_url,
                username,
                password: SecretString::from(password),
                timeout: Duration::from_secs(timeout_secs),
                retry: RetryPolicy::default(),
                max_concurrent_calls,
            },
            auth,
            server,
            limits: Limits {
                max_attachments,
                max_attachment_bytes,
                max_json_bytes,
                leeway: chrono::Duration::seconds(
                    i64::try_from(leeway_secs).unwrap_or(i64::MAX / 1000),
                ),
                upload_dir: None::<PathBuf>,
                attachment_policy,
                body_idle_timeout: Duration::from_secs(body_idle_secs),
                max_header_bytes,
            },
            operation_marker,
            spool_dir,
            worker_interval: Duration::from_millis(worker_interval_ms),
            breaker: BreakerConfig {
                failure_threshold: breaker_threshold,
                cooldown: Duration::from_secs(breaker_cooldown_secs),
            },
            workers: http_workers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete() -> ServeArgs {
        ServeArgs {
            database: DatabaseArgs {
                database_url: Some("postgres://u:pw@localhost/db".into()),
            },
            invgate_base_url: Some("https://acme.sd.cloud.invgate.net/api/v1".into()),
            invgate_username: Some("api".into()),
            invgate_password: Some("key".into()),
            jwt_secret: Some("secret-of-at-least-thirty-two-bytes".into()),
            ..ServeArgs::default()
        }
    }

    #[test]
    fn complete_settings_get_the_documented_defaults() {
        let settings = complete().settings().expect("valid");
        assert_eq!(settings.listen, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(settings.invgate.timeout, Duration::from_secs(15));
        assert_eq!(settings.auth.policy.leeway, Duration::from_secs(60));
        assert_eq!(settings.auth.policy.email_claim, "email");
        assert_eq!(settings.auth.keys.len(), 1);
        assert!(settings.auth.warnings.is_empty());
        assert_eq!(
            settings.server.rate_limit,
            RateLimit {
                per_minute: 120,
                burst: 30
            }
        );
        assert_eq!(settings.invgate.max_concurrent_calls, 16);
        assert_eq!(
            settings.limits.attachment_policy,
            AttachmentPolicy::default()
        );
        assert_eq!(settings.limits.max_attachments, 10);
        assert_eq!(settings.limits.max_attachment_bytes, 20_971_520);
        assert_eq!(settings.limits.max_json_bytes, 1_048_576);
    }

    #[test]
    fn the_http_worker_count_defaults_to_the_cores_and_must_be_at_least_one() {
        assert_eq!(complete().settings().expect("valid").workers, None);
        let mut args = complete();
        args.http_workers = Some("1".into());
        assert_eq!(args.settings().expect("valid").workers, Some(1));
        args.http_workers = Some("0".into());
        assert!(
            args.settings()
                .expect_err("bad")
                .to_string()
                .starts_with("TICKETD_WORKERS")
        );
    }

    #[test]
    fn each_required_setting_is_named_when_missing() {
        type Remove = fn(&mut ServeArgs);
        let cases: [(Remove, &str); 5] = [
            (
                |a| a.database.database_url = None,
                "DATABASE_URL (--database-url) is required",
            ),
            (
                |a| a.invgate_base_url = Some(" ".into()),
                "INVGATE_BASE_URL (--invgate-base-url) is required",
            ),
            (
                |a| a.invgate_username = None,
                "INVGATE_USERNAME (--invgate-username) is required",
            ),
            (
                |a| a.invgate_password = None,
                "INVGATE_PASSWORD (--invgate-password) is required",
            ),
            (
                |a| a.jwt_secret = None,
                "JWT_SECRET (--jwt-secret) is required (or JWT_SECRETS, JWT_PUBLIC_KEYS or JWT_JWKS_URL)",
            ),
        ];
        for (remove, message) in cases {
            let mut args = complete();
            remove(&mut args);
            assert_eq!(args.settings().expect_err("missing").to_string(), message);
        }
    }

    #[test]
    fn bad_values_are_named_and_secrets_are_not_echoed() {
        let mut args = complete();
        args.invgate_timeout_secs = Some("0".into());
        assert!(
            args.settings()
                .expect_err("bad")
                .to_string()
                .starts_with("INVGATE_TIMEOUT_SECS")
        );

        let mut args = complete();
        args.listen = Some("localhost".into());
        assert!(
            args.settings()
                .expect_err("bad")
                .to_string()
                .starts_with("TICKETD_LISTEN")
        );

        let mut args = complete();
        args.invgate_base_url = Some("acme.invgate.net".into());
        assert!(
            args.settings()
                .expect_err("bad")
                .to_string()
                .starts_with("INVGATE_BASE_URL")
        );

        let mut args = complete();
        args.database.database_url = Some("mysql://u:hunter2@db/x".into());
        let message = args.settings().expect_err("bad").to_string();
        assert!(
            message.starts_with("DATABASE_URL") && !message.contains("hunter2"),
            "{message}"
        );
    }

    #[test]
    fn any_one_key_source_is_enough_and_keys_are_checked_at_start() {
        let keys = concat!(env!("CARGO_MANIFEST_DIR"), "/../auth/tests/keys");
        let mut args = complete();
        args.jwt_secret = None;
        args.jwt_public_keys = Some(format!("a={keys}/rsa-public.pem, {keys}/ed-public.pem"));
        let settings = args.settings().expect("valid");
        assert_eq!(settings.auth.keys.len(), 2);
        assert_eq!(settings.auth.keys[0].kid(), Some("a"));

        let mut args = complete();
        args.jwt_secret = None;
        args.jwt_jwks_url = Some("https://idp.example.com/.well-known/jwks.json".into());
        assert!(args.settings().expect("valid").auth.jwks.is_some());

        type Break = fn(&mut ServeArgs);
        let cases: [(Break, &str); 5] = [
            (
                |a| a.jwt_public_keys = Some("/nonexistent/key.pem".into()),
                "JWT_PUBLIC_KEYS",
            ),
            (
                |a| {
                    a.jwt_public_keys = Some(
                        concat!(
                            env!("CARGO_MANIFEST_DIR"),
                            "/../auth/tests/keys/rsa-private.pem"
                        )
                        .into(),
                    );
                },
                "JWT_PUBLIC_KEYS",
            ),
            (
                |a| a.jwt_jwks_url = Some("http://idp.example.com/jwks".into()),
                "JWT_JWKS_URL",
            ),
            (
                |a| a.jwt_hmac_algorithms = Some("HS256,RS256".into()),
                "JWT_HMAC_ALGORITHMS",
            ),
            (
                |a| a.jwt_require_email_verified = Some("maybe".into()),
                "JWT_REQUIRE_EMAIL_VERIFIED",
            ),
        ];
        for (break_it, variable) in cases {
            let mut args = complete();
            break_it(&mut args);
            let message = args.settings().expect_err("refused").to_string();
            assert!(message.starts_with(variable), "{message}");
        }
    }

    #[test]
    fn a_short_secret_is_accepted_with_a_warning_that_does_not_show_it() {
        let mut args = complete();
        args.jwt_secret = Some("hunter2".into());
        args.jwt_secrets = Some("a-long-enough-second-secret-0123456789".into());
        let settings = args.settings().expect("valid");
        assert_eq!(settings.auth.keys.len(), 2);
        assert_eq!(settings.auth.warnings.len(), 1);
        assert!(!settings.auth.warnings[0].contains("hunter2"));
        assert!(!format!("{settings:?}").contains("hunter2"));
        assert!(!format!("{args:?}").contains("hunter2"));
        assert!(!format!("{settings:?}").contains("a-long-enough-second-secret"));
    }

    #[test]
    fn public_keys_without_an_audience_are_accepted_with_a_warning() {
        let mut args = complete();
        args.jwt_secret = None;
        args.jwt_jwks_url = Some("https://idp.example.com/jwks".into());
        let warnings = args.settings().expect("valid").auth.warnings;
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("JWT_AUDIENCE"), "{warnings:?}");
        args.jwt_audience = Some("ticketd".into());
        assert!(args.settings().expect("valid").auth.warnings.is_empty());
    }

    #[test]
    fn cors_origins_and_attachment_families_are_checked() {
        let mut args = complete();
        args.cors_origins = Some("https://portal.example.com/, http://localhost:3000".into());
        assert_eq!(
            args.settings().expect("valid").server.cors_origins,
            ["https://portal.example.com", "http://localhost:3000"]
        );
        for bad in [
            "portal.example.com",
            "https://portal.example.com/app",
            "null",
        ] {
            let mut args = complete();
            args.cors_origins = Some(bad.into());
            assert!(args.settings().is_err(), "{bad}");
        }
        let mut args = complete();
        args.attachment_types = Some("image,executable".into());
        let message = args.settings().expect_err("refused").to_string();
        assert!(message.starts_with("TICKETD_ATTACHMENT_TYPES"), "{message}");
    }

    #[test]
    fn the_log_format_is_json_or_pretty() {
        let args = |f: &str| LogArgs {
            log_filter: None,
            log_format: Some(f.into()),
            log_span_events: None,
        };
        let format = |f: &str, default| args(f).settings(default).map(|s| s.format);
        assert_eq!(format("pretty", LogFormat::Json), Ok(LogFormat::Pretty));
        assert_eq!(format("json", LogFormat::Pretty), Ok(LogFormat::Json));
        assert_eq!(format("", LogFormat::Pretty), Ok(LogFormat::Pretty));
        assert!(format("xml", LogFormat::Json).is_err());
    }

    #[test]
    fn span_events_are_off_unless_asked_for() {
        let args = |v: Option<&str>| LogArgs {
            log_filter: None,
            log_format: None,
            log_span_events: v.map(Into::into),
        };
        let events = |v| args(v).settings(LogFormat::Json).map(|s| s.span_events);
        assert_eq!(events(None), Ok(false));
        assert_eq!(events(Some("true")), Ok(true));
        assert_eq!(events(Some("false")), Ok(false));
        let err = events(Some("sometimes")).expect_err("refused");
        assert_eq!(err.variable, "TICKETD_LOG_SPAN_EVENTS");
    }
}
