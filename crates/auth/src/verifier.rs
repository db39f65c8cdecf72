//! Checking a bearer token: its shape, its header, the key it names, the signature, the time and
//! origin claims, and finally the caller's e-mail address.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use std::borrow::Cow;

use jsonwebtoken::{Algorithm, AlgorithmFamily, Validation};
use serde_json::{Map, Value};
use ticketd_domain::EmailAddress;

use crate::jwks::JwksCache;
use crate::keys::{KeyError, VerifyingKey};
use secrecy::SecretString;

/// Tokens longer than this are refused unread: no identity provider issues them, and parsing
/// them costs memory.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// What a token must say besides being signed by a known key.
#[derive(Debug, Clone)]
pub struct TokenPolicy {
    /// Accepted `iss` values; any issuer when empty.
    pub issuers: Vec<String>,
    /// Accepted `aud` values (one must match); not checked when empty.
    pub audiences: Vec<String>,
    /// The claim holding the caller's e-mail address; an e-mail-shaped `sub` is the fallback.
    pub email_claim: String,
    /// Require `email_verified: true`.
    pub require_email_verified: bool,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        Self {
            issuers: Vec::new(),
            audiences: Vec::new(),
            email_claim: "email".to_owned(),
            require_email_verified: false,
            leeway: Duration::from_secs(60),
        }
    }
}

/// Who a valid token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub email: EmailAddress,
}

/// Why a token was refused. Goes to the log only: the client learns `invalid_token` and no more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is empty")]
    Empty,
    #[error("the token is longer than {MAX_TOKEN_BYTES} bytes")]
    Oversized,
    #[error("the token is not a compact JWS: {0}")]
    Malformed(String),
    #[error("the header lists critical extensions ticketd does not understand: {0:?}")]
    CriticalExtension(Vec<String>),
    #[error("no configured key verifies {algorithm:?} tokens{}", kid.as_ref().map(|k| format!(" with kid {k:?}")).unwrap_or_default())]
    NoKey {
        algorithm: Algorithm,
        kid: Option<String>,
    },
    #[error("the signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the issuer is not accepted")]
    WrongIssuer,
    #[error("the audience is not accepted")]
    WrongAudience,
    #[error("the required claim {0:?} is missing")]
    MissingClaim(String),
    #[error("neither the {0:?} claim nor sub is an e-mail address")]
    NoEmail(String),
    #[error("the e-mail address is not verified (email_verified)")]
    EmailNotVerified,
}

/// Why a request is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(#[from] TokenError),
}

/// Verifies bearer tokens against static keys (HMAC secrets, PEM public keys) and, when
/// configured, a provider's JWKS.
pub struct Verifier {
    keys: Vec<VerifyingKey>,
    jwks: Option<Arc<JwksCache>>,
    policy: TokenPolicy,
    /// The claim checks for each algorithm, built once: a `Validation` holds sets and lists
    /// that building it for every request would allocate.
    validations: Vec<(Algorithm, Validation)>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &self.keys)
            .field("jwks", &self.jwks)
            .field("policy", &self.policy)
            .finish()
    }
}

impl Verifier {
    #[must_use]
    pub fn new(keys: Vec<VerifyingKey>, jwks: Option<Arc<JwksCache>>, policy: TokenPolicy) -> Self {
        let validations = [
            AlgorithmFamily::Hmac,
            AlgorithmFamily::Rsa,
            AlgorithmFamily::Ec,
            AlgorithmFamily::Ed,
        ]
        .iter()
        .flat_map(AlgorithmFamily::algorithms)
        .map(|&algorithm| (algorithm, validation(&policy, algorithm)))
        .collect();
        Self {
            keys,
            jwks,
            policy,
            validations,
        }
    }

    /// One HMAC secret for HS256 and the default policy with `leeway`: the Go service's setup.
    ///
    /// # Errors
    /// When the secret is empty.
    pub fn hs256(secret: &SecretString, leeway: Duration) -> Result<Self, KeyError> {
        let key = VerifyingKey::hmac(secret, &[Algorithm::HS256], "JWT_SECRET")?;
        Ok(Self::new(
            vec![key],
            None,
            TokenPolicy {
                leeway,
                ..TokenPolicy::default()
            },
        ))
    }

    /// The JWKS cache, to warm it up at start.
    #[must_use]
    pub fn jwks(&self) -> Option<&Arc<JwksCache>> {
        self.jwks.as_ref()
    }

    /// Authenticates the value of an `Authorization` header.
    ///
    /// # Errors
    /// [`AuthError::Missing`] without a bearer token, [`AuthError::Invalid`] for a bad one.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Identity, AuthError> {
        let value = authorization.ok_or(AuthError::Missing)?.trim();
        let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::Missing);
        }
        Ok(self.verify(token.trim()).await?)
    }

    /// Verifies one compact JWS.
    ///
    /// # Errors
    /// The first check the token fails.
    pub async fn verify(&self, token: &str) -> Result<Identity, TokenError> {
        if token.is_empty() {
            return Err(TokenError::Empty);
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Oversized);
        }
        if token.bytes().filter(|b| *b == b'.').count() != 2 {
            return Err(TokenError::Malformed(
                "not three dot-separated parts".into(),
            ));
        }
        // The header is read before any key is chosen; `alg: none` and unknown algorithms fail
        // to parse here.
        let header = KeyHeader::of(token)?;
        if let Some(crit) = header.crit {
            // RFC 7515 §4.1.11: extensions listed as critical must be understood; we know none.
            return Err(TokenError::CriticalExtension(crit));
        }
        let algorithm = header.alg;
        let kid = header.kid.as_deref();
        let provided = self.provider_keys(kid).await;
        // A key without a kid (a secret, a PEM file) may verify any token; a key with one only
        // tokens naming it, or naming none.
        let fits = |key: &&VerifyingKey| {
            key.allows(algorithm) && kid.is_none_or(|kid| key.kid().is_none_or(|own| own == kid))
        };
        let mut candidates = self
            .keys
            .iter()
            .chain(provided.iter().flat_map(|keys| keys.iter()))
            .filter(fits)
            .peekable();
        if candidates.peek().is_none() {
            return Err(TokenError::NoKey {
                algorithm,
                kid: header.kid,
            });
        }
        let validation = self.validation(algorithm);
        for key in candidates {
            match self.decode(token, key, &validation) {
                Ok(claims) => {
                    tracing::debug!(jwt.key = %key.origin(), "token verified");
                    return self.identity(&claims);
                }
                // With several keys (rotation), a signature mismatch or a key that cannot be
                // used means "try the next"; a claim failure is the token's, whatever the key.
                Err(e) if is_key_specific(e.kind()) => {
                    tracing::debug!(jwt.key = %key.origin(), error = %e, "key did not verify the token");
                }
                Err(e) => return Err(map_error(e.kind())),
            }
        }
        Err(TokenError::BadSignature)
    }

    /// The provider's current keys, refetched (within the cache's limits) when the token names a
    /// `kid` no key has.
    async fn provider_keys(&self, kid: Option<&str>) -> Option<Arc<Vec<VerifyingKey>>> {
        let jwks = self.jwks.as_ref()?;
        let keys = jwks.keys().await;
        match kid {
            Some(kid)
                if !self
                    .keys
                    .iter()
                    .chain(keys.iter())
                    .any(|k| k.kid() == Some(kid)) =>
            {
                Some(jwks.keys_after_miss(kid).await)
            }
            _ => Some(keys),
        }
    }

    /// The claim checks for tokens signed with `algorithm`.
    fn validation(&self, algorithm: Algorithm) -> Cow<'_, Validation> {
        self.validations
            .iter()
            .find(|(known, _)| *known == algorithm)
            .map_or_else(
                // An algorithm a later jsonwebtoken adds to its families.
                || Cow::Owned(validation(&self.policy, algorithm)),
                |(_, validation)| Cow::Borrowed(validation),
            )
    }

    /// Verifies `token` with `key` and reads the claims an identity needs.
    fn decode(
        &self,
        token: &str,
        key: &VerifyingKey,
        validation: &Validation,
    ) -> jsonwebtoken::errors::Result<IdentityClaims> {
        if self.policy.email_claim == StandardClaims::EMAIL {
            jsonwebtoken::decode::<StandardClaims>(token, key.decoding_key(), validation)
                .map(|data| IdentityClaims::Standard(data.claims))
        } else {
            jsonwebtoken::decode::<Map<String, Value>>(token, key.decoding_key(), validation)
                .map(|data| IdentityClaims::Any(data.claims))
        }
    }

    fn identity(&self, claims: &IdentityClaims) -> Result<Identity, TokenError> {
        let as_email = |name: &str| match claims.get(name) {
            Some(Value::String(s)) => EmailAddress::parse(s).ok(),
            _ => None,
        };
        let email = as_email(&self.policy.email_claim)
            .or_else(|| as_email("sub"))
            .ok_or_else(|| TokenError::NoEmail(self.policy.email_claim.clone()))?;
        if self.policy.require_email_verified {
            let verified = match claims.get("email_verified") {
                Some(Value::Bool(b)) => *b,
                // Some providers (Cognito, older Auth0) send it as a string.
                Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
                _ => false,
            };
            if !verified {
                return Err(TokenError::EmailNotVerified);
            }
        }
        Ok(Identity { email })
    }
}

/// The claims of a verified token that its identity is read from.
enum IdentityClaims {
    /// With the default e-mail claim: only the three claims read, every other skipped unread.
    /// Tokens carry a dozen claims (names, roles, groups); a map of all of them was 1% of a
    /// ticket's CPU.
    Standard(StandardClaims),
    /// With another e-mail claim, whose name is only known at run time: every claim.
    Any(Map<String, Value>),
}

impl IdentityClaims {
    fn get(&self, name: &str) -> Option<&Value> {
        match self {
            Self::Standard(claims) => match name {
                StandardClaims::EMAIL => claims.email.as_ref(),
                "sub" => claims.sub.as_ref(),
                "email_verified" => claims.email_verified.as_ref(),
                _ => None,
            },
            Self::Any(claims) => claims.get(name),
        }
    }
}

/// The claims [`Verifier::identity`] reads, when the e-mail is in `email`. Kept as JSON values,
/// so a claim of an unexpected type is ignored as it is in [`IdentityClaims::Any`], not an error.
/// A token that names one of them twice is refused (RFC 7519 §4 lets a parser refuse duplicate
/// claim names or take the last; the map of [`IdentityClaims::Any`] takes the last).
#[derive(serde::Deserialize)]
struct StandardClaims {
    email: Option<Value>,
    sub: Option<Value>,
    email_verified: Option<Value>,
}

impl StandardClaims {
    const EMAIL: &'static str = "email";
}

/// What `policy` asks of the claims of a token signed with `algorithm`.
fn validation(policy: &TokenPolicy, algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    let mut required = vec!["exp"];
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.leeway = policy.leeway.as_secs();
    if policy.issuers.is_empty() {
        validation.iss = None;
    } else {
        validation.set_issuer(&policy.issuers);
        required.push("iss");
    }
    if policy.audiences.is_empty() {
        validation.validate_aud = false;
    } else {
        validation.set_audience(&policy.audiences);
        required.push("aud");
    }
    validation.set_required_spec_claims(&required);
    validation
}

/// What a token's header says about the key that signed it. jsonwebtoken reads the whole header
/// again when it verifies the signature (and refuses what it cannot read); this reads only what
/// chooses the key, where `jsonwebtoken::decode_header` built the whole header a first time
/// (about 1% of ticketd's CPU per ticket).
#[derive(Debug, serde::Deserialize)]
struct KeyHeader {
    alg: Algorithm,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<Vec<String>>,
}

impl KeyHeader {
    /// The header of a compact JWS (three dot-separated parts, checked by the caller).
    fn of(token: &str) -> Result<Self, TokenError> {
        use base64::Engine as _;
        let encoded = token.split('.').next().unwrap_or_default();
        // The same encoding jsonwebtoken decodes: base64url without padding.
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|e| TokenError::Malformed(format!("header: {e}")))?;
        serde_json::from_slice(&json).map_err(|e| TokenError::Malformed(format!("header: {e}")))
    }
}

fn is_key_specific(kind: &ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::InvalidSignature
            | ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidEddsaKey
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidKeyFormat
            | ErrorKind::InvalidAlgorithm
            | ErrorKind::UnsupportedAlgorithm
            | ErrorKind::Provider(_)
    )
}

fn map_error(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) => TokenError::MissingClaim(claim.clone()),
        other => TokenError::Malformed(format!("{other:?}")),
    }
}
