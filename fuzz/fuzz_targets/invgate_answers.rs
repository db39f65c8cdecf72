//! Any bytes as InvGate's answer to each call ticketd makes: read as the client reads it, never a
//! panic. The first two bytes pick the HTTP status.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ticketd_domain::EmailAddress;
use ticketd_invgate::fuzzing::{read_create_answer, read_incident_page, read_user_answer};

fuzz_target!(|data: &[u8]| {
    let (status, body) = match data {
        [a, b, rest @ ..] => (100 + (u16::from(*a) << 8 | u16::from(*b)) % 500, rest),
        _ => (200, data),
    };
    let retry_after = std::str::from_utf8(body)
        .ok()
        .and_then(|s| s.lines().next());
    if let Ok(created) = read_create_answer(status, retry_after, body) {
        let _ = ticketd_domain::service::extract_incident_id(&created);
    }
    if let Ok(email) = EmailAddress::parse("alice@example.com") {
        let _ = read_user_answer(body, &email);
    }
    let _ = read_incident_page(body);
});
