//! Minting tokens, for operators (`ticketd token`), the demo and tests; ticketd itself only
//! verifies.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};

/// Signs an HS256 token for `email` valid for `ttl`.
///
/// # Errors
/// When the token cannot be encoded.
pub fn mint_hs256_token(
    secret: &SecretString,
    email: &str,
    ttl: Duration,
) -> anyhow::Result<String> {
    let now = chrono::Utc::now().timestamp();
    let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
    let claims = serde_json::json!({
        "sub": email,
        "email": email,
        "iat": now,
        "nbf": now,
        "exp": now.saturating_add(ttl),
    });
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.expose_secret().as_bytes()),
    )?)
}
