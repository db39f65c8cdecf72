//! Properties of the parse-don't-validate newtypes, over arbitrary (hostile) input: they never
//! panic, and whatever they accept keeps their invariants.

use proptest::prelude::*;
use ticketd_domain::attachment::NAME_MAX_BYTES;
use ticketd_domain::{
    AttachmentName, CategoryId, EmailAddress, IdempotencyKey, MarkerTemplate, PriorityId,
    Sha256Hex, TicketDescription, TicketTitle,
};
use unicode_normalization::is_nfc;

/// Strings heavy in the characters that break naive code: separators, dots, controls, direction
/// marks, combining accents, astral-plane emoji and letters of several scripts.
fn hostile_string() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        Just("/".to_owned()),
        Just("\\".to_owned()),
        Just(".".to_owned()),
        Just("..".to_owned()),
        Just(" ".to_owned()),
        Just("\u{0}".to_owned()),
        Just("\n".to_owned()),
        Just("\u{202E}".to_owned()),
        Just("\u{200B}".to_owned()),
        Just("\u{FEFF}".to_owned()),
        Just("e\u{301}".to_owned()),
        Just("😀".to_owned()),
        Just("報告".to_owned()),
        Just("تقرير".to_owned()),
        Just("CON".to_owned()),
        Just("@".to_owned()),
        "[a-zA-Z0-9_-]{1,8}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(pieces, 0..80).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_sanitized_attachment_name_is_always_safe(raw in hostile_string()) {
        let name = AttachmentName::sanitize(&raw);
        let s = name.as_str();
        prop_assert!(!s.is_empty());
        prop_assert!(s.len() <= NAME_MAX_BYTES);
        prop_assert!(!s.contains('/') && !s.contains('\\'));
        prop_assert!(!s.starts_with('.'));
        prop_assert!(!s.chars().any(char::is_control));
        let hidden = ['\u{202E}', '\u{200B}', '\u{FEFF}'];
        prop_assert!(!s.contains(hidden), "hidden characters in {:?}", s);
        prop_assert!(is_nfc(s));
    }

    #[test]
    fn sanitizing_a_sanitized_name_changes_nothing(raw in hostile_string()) {
        let once = AttachmentName::sanitize(&raw);
        let twice = AttachmentName::sanitize(once.as_str());
        prop_assert_eq!(once.as_str(), twice.as_str());
    }

    #[test]
    fn an_accepted_email_address_has_one_local_part_and_a_dotted_domain(raw in hostile_string()) {
        if let Ok(email) = EmailAddress::parse(&raw) {
            let (local, domain) = email.as_str().rsplit_once('@').expect("has an @");
            prop_assert!(!local.is_empty() && !local.contains('@'));
            prop_assert!(domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.'));
            prop_assert!(!email.as_str().chars().any(char::is_whitespace));
            prop_assert_eq!(EmailAddress::parse(email.as_str()).ok(), Some(email.clone()));
        }
    }

    #[test]
    fn an_accepted_idempotency_key_is_short_printable_ascii(raw in hostile_string()) {
        if let Ok(key) = IdempotencyKey::parse(&raw) {
            prop_assert!((1..=255).contains(&key.as_str().len()));
            prop_assert!(key.as_str().bytes().all(|b| (0x20..=0x7e).contains(&b)));
        }
    }

    #[test]
    fn titles_and_descriptions_are_trimmed_and_never_blank(raw in hostile_string()) {
        if let Ok(title) = TicketTitle::parse(&raw) {
            prop_assert!(!title.as_str().is_empty());
            prop_assert_eq!(title.as_str(), title.as_str().trim());
        }
        if let Ok(description) = TicketDescription::parse(&raw) {
            prop_assert!(!description.as_str().trim().is_empty());
        }
    }

    #[test]
    fn ids_and_codes_accept_exactly_their_ranges(n in any::<i64>()) {
        prop_assert_eq!(CategoryId::parse(n).is_ok(), n > 0);
        prop_assert_eq!(PriorityId::parse(n).is_ok(), (1..=5).contains(&n));
    }

    #[test]
    fn a_sha256_digest_is_exactly_64_lower_case_hex_digits(raw in "[0-9a-fA-F]{60,68}") {
        let accepted = Sha256Hex::parse(&raw).is_ok();
        let expected = raw.len() == 64 && !raw.bytes().any(|b| b.is_ascii_uppercase());
        prop_assert_eq!(accepted, expected);
    }

    #[test]
    fn a_marker_template_never_panics(raw in hostile_string()) {
        let _ = MarkerTemplate::parse(&raw);
    }
}
