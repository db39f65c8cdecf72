//! Verifying keys, each bound to the algorithms of its own kind, so that a token cannot choose how
//! a key is used (no RSA public key used as an HMAC secret, no `none`).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use secrecy::{ExposeSecret, SecretString};

/// RFC 7518 §3.2: an HMAC key shorter than the hash output weakens it.
pub const MIN_HMAC_SECRET_BYTES: usize = 32;

/// The algorithms an RSA public key verifies.
const RSA_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// DER of the named-curve OIDs, to tell a P-256 key from a P-384 one.
const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

/// One key that may verify token signatures, and with which algorithms.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: Option<String>,
    algorithms: Vec<Algorithm>,
    key: DecodingKey,
    /// Where the key came from, for logs ("JWT_SECRETS #2", a file name, "JWKS").
    origin: String,
}

impl std::fmt::Debug for VerifyingKey {
    // The key material stays out: for HMAC it is the secret itself.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// A key that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{origin}: {problem}")]
    Unusable { origin: String, problem: String },
}

fn unusable(origin: &str, problem: impl Into<String>) -> KeyError {
    KeyError::Unusable {
        origin: origin.to_owned(),
        problem: problem.into(),
    }
}

impl VerifyingKey {
    /// An HMAC secret for the given HS* algorithms.
    ///
    /// # Errors
    /// When the secret is empty or an algorithm is not an HMAC one.
    pub fn hmac(
        secret: &SecretString,
        algorithms: &[Algorithm],
        origin: &str,
    ) -> Result<Self, KeyError> {
        let bytes = secret.expose_secret().as_bytes();
        if bytes.is_empty() {
            return Err(unusable(origin, "is empty"));
        }
        if let Some(other) = algorithms.iter().find(|a| !is_hmac(**a)) {
            return Err(unusable(
                origin,
                format!("an HMAC secret cannot verify {other:?}"),
            ));
        }
        if algorithms.is_empty() {
            return Err(unusable(origin, "no HMAC algorithm is allowed"));
        }
        Ok(Self {
            kid: None,
            algorithms: algorithms.to_vec(),
            key: DecodingKey::from_secret(bytes),
            origin: origin.to_owned(),
        })
    }

    /// A public key in PEM (SubjectPublicKeyInfo, or PKCS#1 for RSA), its algorithms given by its
    /// kind: RSA → RS*/PS*, P-256 → ES256, P-384 → ES384, Ed25519 → EdDSA.
    ///
    /// # Errors
    /// When the PEM holds no public key of a supported kind (a private key included: ticketd
    /// must never hold one).
    pub fn from_pem(pem: &[u8], kid: Option<String>, origin: &str) -> Result<Self, KeyError> {
        let text = std::str::from_utf8(pem).map_err(|_| unusable(origin, "is not PEM text"))?;
        if text.contains("PRIVATE KEY") {
            return Err(unusable(
                origin,
                "holds a private key; give ticketd the public key only",
            ));
        }
        let build = |algorithms: Vec<Algorithm>, key: DecodingKey| Self {
            kid: kid.clone(),
            algorithms,
            key,
            origin: origin.to_owned(),
        };
        if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            return Ok(build(RSA_ALGORITHMS.to_vec(), key));
        }
        if let Ok(key) = DecodingKey::from_ec_pem(pem) {
            let der = pem_body(text).unwrap_or_default();
            let algorithm = if contains(&der, OID_P256) {
                Algorithm::ES256
            } else if contains(&der, OID_P384) {
                Algorithm::ES384
            } else {
                return Err(unusable(
                    origin,
                    "is an EC key on a curve other than P-256 or P-384",
                ));
            };
            return Ok(build(vec![algorithm], key));
        }
        if let Ok(key) = DecodingKey::from_ed_pem(pem) {
            return Ok(build(vec![Algorithm::EdDSA], key));
        }
        Err(unusable(
            origin,
            "holds no RSA, EC (P-256/P-384) or Ed25519 public key",
        ))
    }

    /// A key from a JWKS. Symmetric (`oct`) keys, encryption keys and unsupported kinds are
    /// refused: a URL must not hand out HMAC secrets.
    ///
    /// # Errors
    /// When the JWK is not a usable signature-verification public key.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, KeyError> {
        let origin = format!(
            "JWKS key {:?}",
            jwk.common.key_id.as_deref().unwrap_or("(no kid)")
        );
        if matches!(
            jwk.common.public_key_use,
            Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
        ) {
            return Err(unusable(&origin, "is not a signature key"));
        }
        let family: Vec<Algorithm> = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => RSA_ALGORITHMS.to_vec(),
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => vec![Algorithm::ES256],
                EllipticCurve::P384 => vec![Algorithm::ES384],
                _ => return Err(unusable(&origin, "uses an unsupported curve")),
            },
            AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
                vec![Algorithm::EdDSA]
            }
            AlgorithmParameters::OctetKey(_) => {
                return Err(unusable(&origin, "is a symmetric key"));
            }
            _ => return Err(unusable(&origin, "is of an unsupported kind")),
        };
        // A JWK naming its algorithm allows that one only (RFC 7517 §4.4).
        let algorithms = match jwk.common.key_algorithm {
            None => family,
            Some(named) => {
                let named = key_algorithm(named)
                    .ok_or_else(|| unusable(&origin, "names an unsupported algorithm"))?;
                if !family.contains(&named) {
                    return Err(unusable(&origin, "names an algorithm of another key kind"));
                }
                vec![named]
            }
        };
        check_jwk_sizes(&jwk.algorithm).map_err(|problem| unusable(&origin, problem))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| unusable(&origin, e.to_string()))?;
        Ok(Self {
            kid: jwk.common.key_id.clone(),
            algorithms,
            key,
            origin,
        })
    }

    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    #[must_use]
    pub fn allows(&self, algorithm: Algorithm) -> bool {
        self.algorithms.contains(&algorithm)
    }

    /// A public key (not an HMAC secret).
    #[must_use]
    pub fn is_public(&self) -> bool {
        !self.algorithms.iter().any(|a| is_hmac(*a))
    }

    #[must_use]
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }
}

/// RSA moduli shorter than this are refused (RFC 7518 §3.3).
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// The sizes a JWK's parameters must have, checked before use: the crypto backend trusts them,
/// and a short Ed25519 key would make it panic on the first token.
fn check_jwk_sizes(parameters: &AlgorithmParameters) -> Result<(), String> {
    let decoded = |field: &str, value: &str| {
        URL_SAFE_NO_PAD
            .decode(value.trim_end_matches('='))
            .map_err(|_| format!("{field} is not base64url"))
    };
    match parameters {
        AlgorithmParameters::RSA(rsa) => {
            let n = decoded("n", &rsa.n)?;
            let significant = n.iter().skip_while(|b| **b == 0).count();
            if significant < MIN_RSA_MODULUS_BYTES {
                return Err(format!(
                    "has a {}-bit modulus; at least 2048 bits are required",
                    significant * 8
                ));
            }
            if decoded("e", &rsa.e)?.is_empty() {
                return Err("has an empty exponent".into());
            }
        }
        AlgorithmParameters::EllipticCurve(ec) => {
            let size = match ec.curve {
                EllipticCurve::P256 => 32,
                EllipticCurve::P384 => 48,
                _ => return Err("uses an unsupported curve".into()),
            };
            if decoded("x", &ec.x)?.len() != size || decoded("y", &ec.y)?.len() != size {
                return Err(format!("has coordinates that are not {size} bytes"));
            }
        }
        AlgorithmParameters::OctetKeyPair(okp) if decoded("x", &okp.x)?.len() != 32 => {
            return Err("has an Ed25519 key that is not 32 bytes".into());
        }
        _ => {}
    }
    Ok(())
}

/// The HMAC algorithms.
#[must_use]
pub fn is_hmac(algorithm: Algorithm) -> bool {
    matches!(
        algorithm,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    )
}

fn key_algorithm(named: KeyAlgorithm) -> Option<Algorithm> {
    Some(match named {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

/// The DER bytes of the first PEM block.
fn pem_body(text: &str) -> Option<Vec<u8>> {
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    STANDARD.decode(body.trim()).ok()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA: &[u8] = include_bytes!("../tests/keys/rsa-public.pem");
    const EC: &[u8] = include_bytes!("../tests/keys/ec-public.pem");
    const ED: &[u8] = include_bytes!("../tests/keys/ed-public.pem");
    const RSA_PRIVATE: &[u8] = include_bytes!("../tests/keys/rsa-private.pem");

    #[test]
    fn each_kind_of_public_key_allows_only_its_own_algorithms() {
        let rsa = VerifyingKey::from_pem(RSA, None, "rsa").expect("rsa");
        assert!(rsa.allows(Algorithm::RS256) && rsa.allows(Algorithm::PS256));
        assert!(!rsa.allows(Algorithm::HS256) && !rsa.allows(Algorithm::ES256));
        let ec = VerifyingKey::from_pem(EC, None, "ec").expect("ec");
        assert!(ec.allows(Algorithm::ES256) && !ec.allows(Algorithm::ES384));
        assert!(!ec.allows(Algorithm::HS256));
        let ed = VerifyingKey::from_pem(ED, None, "ed").expect("ed");
        assert!(ed.allows(Algorithm::EdDSA) && !ed.allows(Algorithm::HS256));
    }

    #[test]
    fn a_private_key_or_garbage_is_refused_as_a_public_key() {
        assert!(VerifyingKey::from_pem(RSA_PRIVATE, None, "p").is_err());
        assert!(VerifyingKey::from_pem(b"not a key", None, "g").is_err());
    }

    #[test]
    fn an_hmac_secret_cannot_be_given_an_asymmetric_algorithm() {
        let secret = SecretString::from("s".repeat(32));
        assert!(VerifyingKey::hmac(&secret, &[Algorithm::RS256], "x").is_err());
        assert!(VerifyingKey::hmac(&secret, &[], "x").is_err());
        assert!(VerifyingKey::hmac(&SecretString::from(""), &[Algorithm::HS256], "x").is_err());
        let key = VerifyingKey::hmac(&secret, &[Algorithm::HS256], "x").expect("hmac");
        assert!(key.allows(Algorithm::HS256) && !key.allows(Algorithm::HS512));
    }

    #[test]
    fn the_debug_form_of_a_key_shows_no_key_material() {
        let secret = SecretString::from("super-secret-value-of-32-bytes!!");
        let key = VerifyingKey::hmac(&secret, &[Algorithm::HS256], "JWT_SECRET").expect("hmac");
        assert!(!format!("{key:?}").contains("super-secret"));
    }

    #[test]
    fn jwks_keys_of_the_wrong_size_are_refused_before_use() {
        let jwk = |value: serde_json::Value| -> Jwk { serde_json::from_value(value).expect("jwk") };
        let short_ed = jwk(serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}));
        assert!(VerifyingKey::from_jwk(&short_ed).is_err());
        let short_ec =
            jwk(serde_json::json!({"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}));
        assert!(VerifyingKey::from_jwk(&short_ec).is_err());
        let small_rsa = jwk(serde_json::json!({"kty": "RSA", "n": "AQAB".repeat(20), "e": "AQAB"}));
        assert!(VerifyingKey::from_jwk(&small_rsa).is_err());
    }

    #[test]
    fn jwks_keys_of_symmetric_or_encryption_use_are_refused() {
        let oct: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "oct", "k": "c2VjcmV0", "kid": "h"
        }))
        .expect("jwk");
        assert!(VerifyingKey::from_jwk(&oct).is_err());
        let mut rsa: serde_json::Value =
            serde_json::from_slice(include_bytes!("../tests/keys/rsa-public.jwk.json"))
                .expect("json");
        let usable: Jwk = serde_json::from_value(rsa.clone()).expect("jwk");
        let key = VerifyingKey::from_jwk(&usable).expect("usable");
        assert!(key.allows(Algorithm::RS256) && !key.allows(Algorithm::PS256));
        rsa["use"] = "enc".into();
        let enc: Jwk = serde_json::from_value(rsa.clone()).expect("jwk");
        assert!(VerifyingKey::from_jwk(&enc).is_err());
        rsa["use"] = "sig".into();
        rsa["alg"] = "ES256".into();
        let confused: Jwk = serde_json::from_value(rsa).expect("jwk");
        assert!(VerifyingKey::from_jwk(&confused).is_err());
    }
}
