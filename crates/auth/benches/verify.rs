//! Token verification, the first thing every request pays for.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use secrecy::SecretString;
use ticketd_auth::{Verifier, mint_hs256_token};

fn verification(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let secret = SecretString::from("a-benchmark-secret-of-more-than-32-bytes");
    let verifier = Verifier::hs256(&secret, Duration::from_secs(60)).expect("a verifier");
    let token =
        mint_hs256_token(&secret, "alice@example.com", Duration::from_secs(3600)).expect("a token");
    let header = format!("Bearer {token}");
    c.bench_function("authenticate an HS256 bearer token", |b| {
        b.to_async(&runtime).iter(|| async {
            verifier
                .authenticate(Some(black_box(header.as_str())))
                .await
                .expect("valid")
        });
    });
    let forged = format!("{}x", &header[..header.len() - 1]);
    c.bench_function("refuse a token with a bad signature", |b| {
        b.to_async(&runtime).iter(|| async {
            verifier
                .authenticate(Some(black_box(forged.as_str())))
                .await
                .expect_err("forged")
        });
    });
}

criterion_group!(benches, verification);
criterion_main!(benches);
