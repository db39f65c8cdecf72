//! One test per attack on the bearer token, against real keys (test-only pairs in `tests/keys`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jsonwebtoken::{EncodingKey, Header};
use secrecy::SecretString;
use serde_json::{Value, json};
use ticketd_auth::{
    Algorithm, AuthError, HttpJwksSource, JwksCache, JwksPolicy, MockJwksSource, TokenError,
    TokenPolicy, Verifier, VerifyingKey,
};

const SECRET: &str = "first-secret-of-at-least-32-bytes!";
const NEXT_SECRET: &str = "second-secret-of-at-least-32-bytes";
const RSA_PUBLIC: &[u8] = include_bytes!("keys/rsa-public.pem");
const RSA_PRIVATE: &[u8] = include_bytes!("keys/rsa-private.pem");
const OTHER_RSA_PRIVATE: &[u8] = include_bytes!("keys/other-rsa-private.pem");
const EC_PUBLIC: &[u8] = include_bytes!("keys/ec-public.pem");
const EC_PRIVATE: &[u8] = include_bytes!("keys/ec-private.pem");
const ED_PUBLIC: &[u8] = include_bytes!("keys/ed-public.pem");
const ED_PRIVATE: &[u8] = include_bytes!("keys/ed-private.pem");
const RSA_JWK: &[u8] = include_bytes!("keys/rsa-public.jwk.json");
const OTHER_RSA_JWK: &[u8] = include_bytes!("keys/other-rsa-public.jwk.json");

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims() -> Value {
    json!({"email": "alice@example.com", "exp": now() + 3600})
}

fn hmac(secret: &str) -> VerifyingKey {
    VerifyingKey::hmac(
        &SecretString::from(secret.to_owned()),
        &[Algorithm::HS256, Algorithm::HS512],
        "test secret",
    )
    .expect("hmac key")
}

fn pem(bytes: &[u8]) -> VerifyingKey {
    VerifyingKey::from_pem(bytes, None, "test pem").expect("public key")
}

fn verifier(keys: Vec<VerifyingKey>) -> Verifier {
    Verifier::new(keys, None, TokenPolicy::default())
}

fn sign_with(header: &Header, claims: &Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(header, claims, key).expect("encodes")
}

fn hs256(claims: &Value, secret: &str) -> String {
    sign_with(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
}

fn rs256(claims: &Value, private: &[u8], kid: Option<&str>) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(ToOwned::to_owned);
    sign_with(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(private).expect("rsa"),
    )
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

async fn accepted_email(verifier: &Verifier, token: &str) -> String {
    match verifier.verify(token).await {
        Ok(identity) => identity.email.as_str().to_owned(),
        Err(e) => panic!("refused: {e:?}"),
    }
}

async fn refused(verifier: &Verifier, token: &str) -> TokenError {
    match verifier.verify(token).await {
        Err(e) => e,
        Ok(identity) => panic!("accepted as {identity:?}"),
    }
}

#[tokio::test]
async fn an_hs256_token_signed_with_any_configured_secret_is_accepted_for_rotation() {
    let v = verifier(vec![hmac(SECRET), hmac(NEXT_SECRET)]);
    for secret in [SECRET, NEXT_SECRET] {
        let identity = v.verify(&hs256(&claims(), secret)).await.expect("valid");
        assert_eq!(identity.email.as_str(), "alice@example.com");
    }
    assert_eq!(
        refused(&v, &hs256(&claims(), "a-third-secret-nobody-configured!!")).await,
        TokenError::BadSignature
    );
}

#[tokio::test]
async fn an_unsigned_alg_none_token_is_refused() {
    let v = verifier(vec![hmac(SECRET)]);
    let token = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims().to_string().as_bytes())
    );
    assert!(matches!(
        refused(&v, &token).await,
        TokenError::Malformed(_)
    ));
}

#[tokio::test]
async fn an_hs256_token_keyed_with_the_rsa_public_key_is_refused() {
    // The classic confusion: the attacker signs with the public key as an HMAC secret.
    let v = verifier(vec![pem(RSA_PUBLIC)]);
    let forged = sign_with(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(RSA_PUBLIC),
    );
    assert_eq!(
        refused(&v, &forged).await,
        TokenError::NoKey {
            algorithm: Algorithm::HS256,
            kid: None
        }
    );
    // Even with an HMAC secret configured beside it, the public key is never an HMAC key.
    let both = verifier(vec![pem(RSA_PUBLIC), hmac(SECRET)]);
    assert_eq!(refused(&both, &forged).await, TokenError::BadSignature);
}

#[tokio::test]
async fn tokens_signed_by_rsa_pss_ec_and_ed25519_keys_verify_with_their_public_keys() {
    let v = verifier(vec![pem(RSA_PUBLIC), pem(EC_PUBLIC), pem(ED_PUBLIC)]);
    let cases = [
        (Algorithm::RS256, EncodingKey::from_rsa_pem(RSA_PRIVATE)),
        (Algorithm::PS256, EncodingKey::from_rsa_pem(RSA_PRIVATE)),
        (Algorithm::ES256, EncodingKey::from_ec_pem(EC_PRIVATE)),
        (Algorithm::EdDSA, EncodingKey::from_ed_pem(ED_PRIVATE)),
    ];
    for (algorithm, key) in cases {
        let token = sign_with(&Header::new(algorithm), &claims(), &key.expect("key"));
        let identity = v.verify(&token).await;
        assert!(identity.is_ok(), "{algorithm:?}: {identity:?}");
    }
}

#[tokio::test]
async fn a_token_signed_by_an_unknown_private_key_is_refused() {
    let v = verifier(vec![pem(RSA_PUBLIC)]);
    assert_eq!(
        refused(&v, &rs256(&claims(), OTHER_RSA_PRIVATE, None)).await,
        TokenError::BadSignature
    );
}

#[tokio::test]
async fn an_algorithm_no_configured_key_allows_is_refused_before_any_signature_check() {
    let v = verifier(vec![pem(EC_PUBLIC)]);
    assert!(matches!(
        refused(&v, &rs256(&claims(), RSA_PRIVATE, None)).await,
        TokenError::NoKey {
            algorithm: Algorithm::RS256,
            ..
        }
    ));
}

#[tokio::test]
async fn time_claims_are_enforced_with_the_leeway() {
    let v = verifier(vec![hmac(SECRET)]);
    let expired = json!({"email": "a@example.com", "exp": now() - 120});
    assert_eq!(
        refused(&v, &hs256(&expired, SECRET)).await,
        TokenError::Expired
    );
    let future = json!({"email": "a@example.com", "exp": now() + 3600, "nbf": now() + 600});
    assert_eq!(
        refused(&v, &hs256(&future, SECRET)).await,
        TokenError::NotYetValid
    );
    let no_exp = json!({"email": "a@example.com"});
    assert_eq!(
        refused(&v, &hs256(&no_exp, SECRET)).await,
        TokenError::MissingClaim("exp".into())
    );
    let just_expired = json!({"email": "a@example.com", "exp": now() - 30});
    assert!(v.verify(&hs256(&just_expired, SECRET)).await.is_ok());
}

#[tokio::test]
async fn issuer_and_audience_are_enforced_when_configured() {
    let policy = TokenPolicy {
        issuers: vec!["https://idp.example.com/".into()],
        audiences: vec!["ticketd".into()],
        ..TokenPolicy::default()
    };
    let v = Verifier::new(vec![hmac(SECRET)], None, policy);
    let with = |iss: Option<&str>, aud: Option<Value>| {
        let mut c = claims();
        if let Some(iss) = iss {
            c["iss"] = iss.into();
        }
        if let Some(aud) = aud {
            c["aud"] = aud;
        }
        hs256(&c, SECRET)
    };
    let good = with(
        Some("https://idp.example.com/"),
        Some(json!(["other", "ticketd"])),
    );
    assert!(v.verify(&good).await.is_ok());
    assert_eq!(
        refused(
            &v,
            &with(Some("https://evil.example.com/"), Some(json!("ticketd")))
        )
        .await,
        TokenError::WrongIssuer
    );
    assert_eq!(
        refused(
            &v,
            &with(Some("https://idp.example.com/"), Some(json!("other")))
        )
        .await,
        TokenError::WrongAudience
    );
    assert_eq!(
        refused(&v, &with(None, Some(json!("ticketd")))).await,
        TokenError::MissingClaim("iss".into())
    );
    assert_eq!(
        refused(&v, &with(Some("https://idp.example.com/"), None)).await,
        TokenError::MissingClaim("aud".into())
    );
}

#[tokio::test]
async fn an_oversized_token_is_refused_unread() {
    let v = verifier(vec![hmac(SECRET)]);
    let mut big = claims();
    big["padding"] = "x".repeat(9 * 1024).into();
    assert_eq!(
        refused(&v, &hs256(&big, SECRET)).await,
        TokenError::Oversized
    );
}

#[tokio::test]
async fn a_critical_header_extension_is_refused() {
    let v = verifier(vec![hmac(SECRET)]);
    let mut header = Header::new(Algorithm::HS256);
    header.crit = Some(vec!["http://example.com/needs-this".into()]);
    header.extras.insert("http://example.com/needs-this", true);
    let token = sign_with(
        &header,
        &claims(),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    );
    assert!(matches!(
        refused(&v, &token).await,
        TokenError::CriticalExtension(_)
    ));
}

#[tokio::test]
async fn the_email_claim_is_configurable_and_an_email_shaped_sub_is_the_fallback() {
    let policy = TokenPolicy {
        email_claim: "upn".into(),
        ..TokenPolicy::default()
    };
    let v = Verifier::new(vec![hmac(SECRET)], None, policy);
    let upn = json!({"upn": "bob@example.com", "email": "x@example.com", "exp": now() + 60});
    assert_eq!(
        v.verify(&hs256(&upn, SECRET))
            .await
            .expect("valid")
            .email
            .as_str(),
        "bob@example.com"
    );
    let sub = json!({"sub": "carol@example.com", "exp": now() + 60});
    assert_eq!(
        v.verify(&hs256(&sub, SECRET))
            .await
            .expect("valid")
            .email
            .as_str(),
        "carol@example.com"
    );
    let neither = json!({"sub": "user-123", "exp": now() + 60});
    assert_eq!(
        refused(&v, &hs256(&neither, SECRET)).await,
        TokenError::NoEmail("upn".into())
    );
}

#[tokio::test]
async fn an_email_claim_that_is_not_a_string_falls_back_to_the_sub_whatever_the_claim_s_name() {
    for claim in ["email", "upn"] {
        let v = Verifier::new(
            vec![hmac(SECRET)],
            None,
            TokenPolicy {
                email_claim: claim.into(),
                ..TokenPolicy::default()
            },
        );
        let mut odd = json!({"sub": "dave@example.com", "exp": now() + 60, "roles": ["a", "b"]});
        odd[claim] = json!({"address": "x@example.com"});
        assert_eq!(
            accepted_email(&v, &hs256(&odd, SECRET)).await,
            "dave@example.com",
            "{claim}"
        );
        odd[claim] = json!("erin@example.com");
        assert_eq!(
            accepted_email(&v, &hs256(&odd, SECRET)).await,
            "erin@example.com",
            "{claim}"
        );
    }
}

#[tokio::test]
async fn a_token_naming_its_email_claim_twice_is_refused_rather_than_read_either_way() {
    /// Claims that serialize `email` twice: a `serde_json::Value` cannot hold them.
    #[derive(serde::Serialize)]
    struct Twice {
        email: &'static str,
        #[serde(rename = "email")]
        again: &'static str,
        exp: i64,
    }
    let claims = Twice {
        email: "mallory@example.com",
        again: "alice@example.com",
        exp: now() + 60,
    };
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("encodes");
    // RFC 7519 §4: a parser must refuse duplicate claim names or take the last one; which
    // address a token means must not depend on the parser.
    assert!(matches!(
        refused(&verifier(vec![hmac(SECRET)]), &token).await,
        TokenError::Malformed(_)
    ));
}

#[tokio::test]
async fn email_verified_is_required_only_when_configured() {
    let strict = Verifier::new(
        vec![hmac(SECRET)],
        None,
        TokenPolicy {
            require_email_verified: true,
            ..TokenPolicy::default()
        },
    );
    let mut c = claims();
    assert_eq!(
        refused(&strict, &hs256(&c, SECRET)).await,
        TokenError::EmailNotVerified
    );
    c["email_verified"] = false.into();
    assert_eq!(
        refused(&strict, &hs256(&c, SECRET)).await,
        TokenError::EmailNotVerified
    );
    c["email_verified"] = true.into();
    assert!(strict.verify(&hs256(&c, SECRET)).await.is_ok());
    c["email_verified"] = "true".into();
    assert!(strict.verify(&hs256(&c, SECRET)).await.is_ok());
    assert!(
        verifier(vec![hmac(SECRET)])
            .verify(&hs256(&claims(), SECRET))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn only_a_bearer_authorization_counts_as_credentials() {
    let v = verifier(vec![hmac(SECRET)]);
    let token = hs256(&claims(), SECRET);
    assert!(
        v.authenticate(Some(&format!("Bearer {token}")))
            .await
            .is_ok()
    );
    assert!(
        v.authenticate(Some(&format!("bearer  {token} ")))
            .await
            .is_ok()
    );
    assert_eq!(v.authenticate(None).await, Err(AuthError::Missing));
    assert_eq!(
        v.authenticate(Some("Basic YWxpY2U6cA==")).await,
        Err(AuthError::Missing)
    );
    assert_eq!(
        v.authenticate(Some("Bearer")).await,
        Err(AuthError::Invalid(TokenError::Empty))
    );
    for garbage in ["not.a.token", "a.b", "a.b.c.d.e", "....", "\u{1F600}.x.y"] {
        assert!(
            matches!(
                v.authenticate(Some(&format!("Bearer {garbage}"))).await,
                Err(AuthError::Invalid(_))
            ),
            "{garbage:?}"
        );
    }
}

fn jwks(keys: &[&[u8]]) -> Value {
    let keys: Vec<Value> = keys
        .iter()
        .map(|k| serde_json::from_slice(k).expect("jwk"))
        .collect();
    json!({ "keys": keys })
}

/// A JWKS source whose answers are scripted, counting fetches.
fn scripted(answers: Vec<anyhow::Result<Value>>) -> (Arc<MockJwksSource>, Arc<AtomicUsize>) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let answers = std::sync::Mutex::new(answers.into_iter());
    let mut source = MockJwksSource::new();
    source.expect_fetch().returning(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        answers
            .lock()
            .expect("lock")
            .next()
            .unwrap_or_else(|| Err(anyhow::anyhow!("no more answers")))
    });
    (Arc::new(source), fetches)
}

fn with_jwks(source: Arc<MockJwksSource>, policy: JwksPolicy) -> Verifier {
    Verifier::new(
        vec![],
        Some(Arc::new(JwksCache::new(source, policy))),
        TokenPolicy::default(),
    )
}

#[tokio::test]
async fn a_rotated_key_is_fetched_once_when_a_token_names_its_unknown_kid() {
    let (source, fetches) = scripted(vec![
        Ok(jwks(&[RSA_JWK])),
        Ok(jwks(&[RSA_JWK, OTHER_RSA_JWK])),
    ]);
    let v = with_jwks(
        source,
        JwksPolicy {
            ttl: Duration::from_secs(3600),
            min_refetch_interval: Duration::ZERO,
        },
    );
    let old = rs256(&claims(), RSA_PRIVATE, Some("key-2026-a"));
    assert!(v.verify(&old).await.is_ok());
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    let rotated = rs256(&claims(), OTHER_RSA_PRIVATE, Some("key-2026-b"));
    assert!(v.verify(&rotated).await.is_ok());
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    // Both keys are cached now: no more fetches.
    assert!(v.verify(&old).await.is_ok() && v.verify(&rotated).await.is_ok());
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn made_up_kids_cannot_make_ticketd_refetch_more_than_once_per_interval() {
    let (source, fetches) = scripted(vec![Ok(jwks(&[RSA_JWK])), Ok(jwks(&[RSA_JWK]))]);
    let v = with_jwks(
        source,
        JwksPolicy {
            ttl: Duration::from_secs(3600),
            min_refetch_interval: Duration::from_secs(3600),
        },
    );
    for i in 0..20 {
        let token = rs256(&claims(), RSA_PRIVATE, Some(&format!("made-up-{i}")));
        assert!(matches!(
            refused(&v, &token).await,
            TokenError::NoKey { .. }
        ));
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "only the first fetch");
}

#[tokio::test]
async fn the_last_good_keys_are_kept_when_the_jwks_cannot_be_fetched() {
    let (source, fetches) = scripted(vec![
        Ok(jwks(&[RSA_JWK])),
        Err(anyhow::anyhow!("connection refused")),
        Ok(json!({"not": "a jwks"})),
    ]);
    let v = with_jwks(
        source,
        JwksPolicy {
            ttl: Duration::ZERO,
            min_refetch_interval: Duration::ZERO,
        },
    );
    let token = rs256(&claims(), RSA_PRIVATE, Some("key-2026-a"));
    // The first fetch is waited for; the refreshes (which fail) run in the background.
    for _ in 0..20 {
        assert!(v.verify(&token).await.is_ok());
        if fetches.load(Ordering::SeqCst) >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        fetches.load(Ordering::SeqCst) >= 3,
        "the failed refreshes happened"
    );
    assert!(v.verify(&token).await.is_ok(), "the first keys still serve");
}

#[tokio::test]
async fn a_jwks_is_fetched_over_http_and_symmetric_keys_in_it_are_ignored() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    let mut document = jwks(&[RSA_JWK]);
    document["keys"]
        .as_array_mut()
        .expect("array")
        .push(json!({"kty": "oct", "kid": "key-2026-a", "k": b64(SECRET.as_bytes())}));
    Mock::given(method("GET"))
        .and(path("/.well-known/jwks.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(document))
        .expect(1)
        .mount(&server)
        .await;
    let source = HttpJwksSource::new(
        &format!("{}/.well-known/jwks.json", server.uri()),
        Duration::from_secs(5),
    )
    .expect("source");
    let cache = Arc::new(JwksCache::new(Arc::new(source), JwksPolicy::default()));
    assert!(cache.warm_up().await);
    let v = Verifier::new(vec![], Some(cache), TokenPolicy::default());
    assert!(
        v.verify(&rs256(&claims(), RSA_PRIVATE, Some("key-2026-a")))
            .await
            .is_ok()
    );
    // The oct key with the same kid must not turn into an HMAC key.
    let forged = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("key-2026-a".into());
        sign_with(
            &header,
            &claims(),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
    };
    assert!(matches!(
        refused(&v, &forged).await,
        TokenError::NoKey { .. }
    ));
}

#[test]
fn a_jwks_url_must_be_https_unless_it_is_loopback() {
    let timeout = Duration::from_secs(1);
    assert!(HttpJwksSource::new("http://idp.example.com/jwks", timeout).is_err());
    assert!(HttpJwksSource::new("https://user:pw@idp.example.com/jwks", timeout).is_err());
    assert!(HttpJwksSource::new("https://idp.example.com/jwks", timeout).is_ok());
    assert!(HttpJwksSource::new("http://127.0.0.1:9/jwks", timeout).is_ok());
    assert!(HttpJwksSource::new("http://[::1]:9/jwks", timeout).is_ok());
}
