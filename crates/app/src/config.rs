//! Settings: from flags or environment variables (a flag wins), checked once at start. A missing or
//! bad setting stops the start with one line naming it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use secrecy::SecretString;
use ticketd_domain::{BreakerConfig, MarkerTemplate, ServiceConfig};
use ticketd_http::Limits;
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
        Ok(LogSettings { filter, format })
    }
}

/// The database setting, shared by `serve` and `migrate`.
#[derive(Debug, Clone, Default, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL, e.g. postgres://user:password@host:5432/ticketd (required)
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
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
#[derive(Debug, Clone, Default, Args)]
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
    /// HS256 key that signs callers' tokens (required; prefer the variable: flags show in `ps`)
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
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

/// Checked settings for `serve`.
#[derive(Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    pub database_url: SecretString,
    pub invgate: InvGateConfig,
    pub jwt_secret: SecretString,
    pub jwt_leeway: Duration,
    pub limits: Limits,
    pub operation_marker: MarkerTemplate,
    pub spool_dir: PathBuf,
    pub worker_interval: Duration,
    pub breaker: BreakerConfig,
    /// HTTP worker threads; the number of cores when `None`.
    pub workers: Option<usize>,
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
        let jwt_secret = required(self.jwt_secret.as_deref(), "JWT_SECRET", "jwt-secret")?;
        let leeway_secs: u64 = number(
            self.jwt_leeway_secs.as_deref(),
            60,
            0,
            "JWT_LEEWAY_SECS",
            "jwt-leeway-secs",
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
        let leeway = Duration::from_secs(leeway_secs);
        let spool_dir = PathBuf::from(
            self.spool_dir
                .as_deref()
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .unwrap_or("spool"),
        );
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
            },
            jwt_secret: SecretString::from(jwt_secret),
            jwt_leeway: leeway,
            limits: Limits {
                max_attachments,
                max_attachment_bytes,
                max_json_bytes,
                leeway: chrono::Duration::seconds(
                    i64::try_from(leeway_secs).unwrap_or(i64::MAX / 1000),
                ),
                upload_dir: None::<PathBuf>,
            },
            operation_marker,
            spool_dir,
            worker_interval: Duration::from_millis(worker_interval_ms),
            breaker: BreakerConfig {
                failure_threshold: breaker_threshold,
                cooldown: Duration::from_secs(breaker_cooldown_secs),
            },
            workers: None,
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
            jwt_secret: Some("secret".into()),
            ..ServeArgs::default()
        }
    }

    #[test]
    fn complete_settings_get_the_documented_defaults() {
        let settings = complete().settings().expect("valid");
        assert_eq!(settings.listen, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(settings.invgate.timeout, Duration::from_secs(15));
        assert_eq!(settings.jwt_leeway, Duration::from_secs(60));
        assert_eq!(settings.limits.max_attachments, 10);
        assert_eq!(settings.limits.max_attachment_bytes, 20_971_520);
        assert_eq!(settings.limits.max_json_bytes, 1_048_576);
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
                "JWT_SECRET (--jwt-secret) is required",
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
    fn the_log_format_is_json_or_pretty() {
        let args = |f: &str| LogArgs {
            log_filter: None,
            log_format: Some(f.into()),
        };
        let format = |f: &str, default| args(f).settings(default).map(|s| s.format);
        assert_eq!(format("pretty", LogFormat::Json), Ok(LogFormat::Pretty));
        assert_eq!(format("json", LogFormat::Pretty), Ok(LogFormat::Json));
        assert_eq!(format("", LogFormat::Pretty), Ok(LogFormat::Pretty));
        assert!(format("xml", LogFormat::Json).is_err());
    }
}
