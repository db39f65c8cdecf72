//! Bearer-token authentication: HS256 JWTs whose `email` claim (or an e-mail-shaped `sub`, as the
//! Go service issued them) names the caller.

use std::future::{Ready, ready};
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::AUTHORIZATION;
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use ticketd_domain::EmailAddress;

use crate::problem::{ApiError, Challenge};

/// Tokens longer than this are refused unread: no identity provider issues them, and parsing
/// them costs memory.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The authenticated caller, put into the request by the auth middleware.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub email: EmailAddress,
}

/// Why a request is not authenticated. The reason goes to the log, never to the client.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// Checks tokens: signature (HS256 only), `exp` (required), `nbf`, with a leeway for clock skew.
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithms", &self.validation.algorithms)
            .field("leeway", &self.validation.leeway)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Claims {
    email: Option<Value>,
    sub: Option<Value>,
}

impl JwtVerifier {
    #[must_use]
    pub fn hs256(secret: &SecretString, leeway: Duration) -> Self {
        // Only HS256: a token naming any other algorithm (`none` included) fails before its
        // signature is looked at.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.leeway = leeway.as_secs();
        Self {
            key: DecodingKey::from_secret(secret.expose_secret().as_bytes()),
            validation,
        }
    }

    /// Authenticates the value of an `Authorization` header.
    ///
    /// # Errors
    /// [`AuthError::Missing`] without a bearer token, [`AuthError::Invalid`] for a bad one.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, AuthError> {
        let value = authorization.ok_or(AuthError::Missing)?.trim();
        let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::Missing);
        }
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Invalid("empty bearer token".into()));
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Invalid(format!(
                "token longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?
            .claims;
        caller_from(&claims)
    }
}

fn caller_from(claims: &Claims) -> Result<Caller, AuthError> {
    let as_email = |claim: &Option<Value>| match claim {
        Some(Value::String(s)) => EmailAddress::parse(s).ok(),
        _ => None,
    };
    as_email(&claims.email)
        .or_else(|| as_email(&claims.sub))
        .map(|email| Caller { email })
        .ok_or_else(|| {
            AuthError::Invalid("neither the email claim nor sub is an e-mail address".into())
        })
}

/// Signs an HS256 token for `email` valid for `ttl`: for operators, the demo and tests.
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

/// The auth middleware: no valid token, no entry.
pub(crate) async fn require_caller(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let verifier = req.app_data::<web::Data<JwtVerifier>>().cloned();
    let Some(verifier) = verifier else {
        tracing::error!("no JwtVerifier in the app data: refusing every request");
        return Ok(req.error_response(ApiError::Internal));
    };
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""));
    let outcome = {
        let _span = tracing::info_span!("auth").entered();
        verifier.authenticate(header)
    };
    match outcome {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.call(req)
                .await
                .map(ServiceResponse::map_into_boxed_body)
        }
        Err(AuthError::Missing) => {
            tracing::info!("request without a bearer token");
            Ok(req.error_response(ApiError::Unauthorized(Challenge::Missing)))
        }
        Err(err @ AuthError::Invalid(_)) => {
            tracing::info!(reason = %err, "bearer token refused");
            Ok(req.error_response(ApiError::Unauthorized(Challenge::InvalidToken)))
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Present whenever the route sits behind `require_caller`; refuse rather than guess.
        ready(
            req.extensions()
                .get::<Caller>()
                .cloned()
                .ok_or(ApiError::Unauthorized(Challenge::Missing)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secret() -> SecretString {
        SecretString::from("test-secret-of-reasonable-length")
    }

    fn verifier() -> JwtVerifier {
        JwtVerifier::hs256(&secret(), Duration::from_secs(60))
    }

    fn sign(claims: &Value, alg: Algorithm, key: &[u8]) -> String {
        jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(key))
            .expect("encodes")
    }

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    fn in_an_hour() -> i64 {
        chrono::Utc::now().timestamp() + 3600
    }

    #[test]
    fn a_minted_token_authenticates_its_email() {
        let token = mint_hs256_token(&secret(), "alice@example.com", Duration::from_secs(60))
            .expect("minted");
        let caller = verifier()
            .authenticate(Some(&bearer(&token)))
            .expect("valid");
        assert_eq!(caller.email.as_str(), "alice@example.com");
    }

    #[test]
    fn the_email_claim_wins_and_an_email_shaped_sub_is_the_fallback() {
        let both = sign(
            &json!({"email": "a@example.com", "sub": "b@example.com", "exp": in_an_hour()}),
            Algorithm::HS256,
            b"test-secret-of-reasonable-length",
        );
        assert_eq!(
            verifier()
                .authenticate(Some(&bearer(&both)))
                .expect("valid")
                .email
                .as_str(),
            "a@example.com"
        );
        let go_style = sign(
            &json!({"sub": "b@example.com", "exp": in_an_hour()}),
            Algorithm::HS256,
            b"test-secret-of-reasonable-length",
        );
        assert_eq!(
            verifier()
                .authenticate(Some(&bearer(&go_style)))
                .expect("valid")
                .email
                .as_str(),
            "b@example.com"
        );
        let no_email = sign(
            &json!({"sub": "user-123", "exp": in_an_hour()}),
            Algorithm::HS256,
            b"test-secret-of-reasonable-length",
        );
        assert!(matches!(
            verifier().authenticate(Some(&bearer(&no_email))),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn a_missing_header_or_another_scheme_is_missing_credentials() {
        assert!(matches!(
            verifier().authenticate(None),
            Err(AuthError::Missing)
        ));
        assert!(matches!(
            verifier().authenticate(Some("Basic YWxpY2U6cA==")),
            Err(AuthError::Missing)
        ));
    }

    #[test]
    fn tokens_failing_any_check_are_invalid() {
        let key = b"test-secret-of-reasonable-length";
        let now = chrono::Utc::now().timestamp();
        let cases = [
            (
                "wrong key",
                sign(
                    &json!({"email": "a@example.com", "exp": in_an_hour()}),
                    Algorithm::HS256,
                    b"another-secret",
                ),
            ),
            (
                "expired beyond leeway",
                sign(
                    &json!({"email": "a@example.com", "exp": now - 120}),
                    Algorithm::HS256,
                    key,
                ),
            ),
            (
                "no exp",
                sign(&json!({"email": "a@example.com"}), Algorithm::HS256, key),
            ),
            (
                "nbf beyond leeway",
                sign(
                    &json!({"email": "a@example.com", "exp": in_an_hour(), "nbf": now + 600}),
                    Algorithm::HS256,
                    key,
                ),
            ),
            (
                "HS512 instead of HS256",
                sign(
                    &json!({"email": "a@example.com", "exp": in_an_hour()}),
                    Algorithm::HS512,
                    key,
                ),
            ),
            ("garbage", "not.a.token".to_owned()),
            ("empty", String::new()),
            ("oversized", "a".repeat(MAX_TOKEN_BYTES + 1)),
        ];
        for (why, token) in cases {
            assert!(
                matches!(
                    verifier().authenticate(Some(&bearer(&token))),
                    Err(AuthError::Invalid(_))
                ),
                "{why}"
            );
        }
    }

    #[test]
    fn an_unsigned_alg_none_token_is_invalid() {
        use base64_like::encode;
        let header = encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload =
            encode(format!(r#"{{"email":"a@example.com","exp":{}}}"#, in_an_hour()).as_bytes());
        let token = format!("{header}.{payload}.");
        assert!(matches!(
            verifier().authenticate(Some(&bearer(&token))),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn expiry_within_the_leeway_is_tolerated() {
        let token = sign(
            &json!({"email": "a@example.com", "exp": chrono::Utc::now().timestamp() - 30}),
            Algorithm::HS256,
            b"test-secret-of-reasonable-length",
        );
        assert!(verifier().authenticate(Some(&bearer(&token))).is_ok());
    }

    /// Unpadded base64url, enough to forge a header by hand.
    mod base64_like {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

        pub fn encode(input: &[u8]) -> String {
            let mut out = String::new();
            for chunk in input.chunks(3) {
                let b = [
                    chunk[0],
                    *chunk.get(1).unwrap_or(&0),
                    *chunk.get(2).unwrap_or(&0),
                ];
                let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
                let chars = chunk.len() + 1;
                for i in 0..chars {
                    out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
                }
            }
            out
        }
    }
}
