//! Who is calling: bearer-token (JWT) verification for ticketd, free of any web framework.
//!
//! Keys come from HMAC secrets (several at once, for rotation), PEM public keys (RSA, P-256,
//! P-384, Ed25519) and an identity provider's JWKS. Each key verifies only the algorithms of its
//! kind, whatever a token's header says; see `docs/security.md`.

mod jwks;
mod keys;
mod mint;
mod verifier;

pub use jsonwebtoken::Algorithm;
#[cfg(feature = "mocks")]
pub use jwks::MockJwksSource;
pub use jwks::{HttpJwksSource, JwksCache, JwksPolicy, JwksSource, parse_jwks};
pub use keys::{KeyError, MIN_HMAC_SECRET_BYTES, VerifyingKey, is_hmac};
pub use mint::mint_hs256_token;
pub use verifier::{AuthError, Identity, MAX_TOKEN_BYTES, TokenError, TokenPolicy, Verifier};
