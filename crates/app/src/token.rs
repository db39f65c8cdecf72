//! `ticketd token`: sign a caller token with `JWT_SECRET`, for operators and the demo.

use std::time::Duration;

use clap::Args;
use secrecy::SecretString;
use ticketd_domain::EmailAddress;

use crate::config::ConfigError;

#[derive(Clone, Args)]
pub struct TokenArgs {
    /// The caller's e-mail address (the token's `email` and `sub` claims).
    #[arg(long)]
    pub email: String,
    /// How long the token is valid: seconds, or a number with s, m, h or d [default: 1h]
    #[arg(long)]
    pub ttl: Option<String>,
    /// HS256 key (required; prefer the variable: flags show in `ps`)
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
}

impl std::fmt::Debug for TokenArgs {
    // The secret stays out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenArgs")
            .field("email", &self.email)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// Parses `90`, `90s`, `15m`, `1h`, `2d`.
///
/// # Errors
/// A message when the text is not such a duration, or is zero.
pub fn parse_ttl(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let (digits, unit) = raw.split_at(raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len()));
    let amount: u64 = digits
        .parse()
        .map_err(|_| format!("{raw:?} is not a duration like 3600, 30m, 1h or 7d"))?;
    let seconds = match unit {
        "" | "s" => Some(amount),
        "m" => amount.checked_mul(60),
        "h" => amount.checked_mul(3600),
        "d" => amount.checked_mul(86_400),
        _ => None,
    }
    .filter(|s| *s > 0)
    .ok_or_else(|| format!("{raw:?} is not a positive duration like 3600, 30m, 1h or 7d"))?;
    Ok(Duration::from_secs(seconds))
}

impl TokenArgs {
    /// Signs the token.
    ///
    /// # Errors
    /// A [`ConfigError`] naming a missing or bad argument.
    pub fn token(&self) -> Result<String, ConfigError> {
        let secret = self
            .jwt_secret
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| ConfigError {
                variable: "JWT_SECRET",
                flag: "jwt-secret",
                problem: "is required".into(),
            })?;
        let email = EmailAddress::parse(&self.email).map_err(|e| ConfigError {
            variable: "email",
            flag: "email",
            problem: e.to_string(),
        })?;
        let ttl =
            parse_ttl(self.ttl.as_deref().unwrap_or("1h")).map_err(|problem| ConfigError {
                variable: "ttl",
                flag: "ttl",
                problem,
            })?;
        ticketd_http::mint_hs256_token(&SecretString::from(secret.to_owned()), email.as_str(), ttl)
            .map_err(|e| ConfigError {
                variable: "JWT_SECRET",
                flag: "jwt-secret",
                problem: format!("cannot sign a token: {e}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_debug_form_of_the_arguments_does_not_show_the_secret() {
        let args = TokenArgs {
            email: "alice@example.com".into(),
            ttl: None,
            jwt_secret: Some("hunter2-operator-secret".into()),
        };
        let shown = format!("{args:?}");
        assert!(
            shown.contains("alice@example.com") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn ttls_read_seconds_and_units() {
        assert_eq!(parse_ttl("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("2d"), Ok(Duration::from_secs(172_800)));
        for bad in ["", "h", "0", "1w", "-5m", "1.5h", "99999999999999999999d"] {
            assert!(parse_ttl(bad).is_err(), "{bad:?}");
        }
    }
}
