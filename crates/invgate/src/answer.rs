//! Reading InvGate's answers: they say "error" in the body as often as in the status code.

use std::time::{Duration, SystemTime};

use serde_json::Value;

/// Longest piece of a raw answer we quote in an error message.
const QUOTE_MAX_CHARS: usize = 300;

/// `true` when a JSON answer reports failure in its `status` field, whatever the HTTP code.
pub(crate) fn reports_error(body: &Value) -> bool {
    body.get("status")
        .and_then(Value::as_str)
        .is_some_and(|s| s.eq_ignore_ascii_case("error"))
}

/// InvGate's explanation of a failure: `error`, else `info`, else the start of the raw body.
pub(crate) fn error_message(raw: &[u8]) -> String {
    if let Ok(body) = serde_json::from_slice::<Value>(raw) {
        for key in ["error", "info", "message"] {
            match body.get(key) {
                Some(Value::String(s)) if !s.trim().is_empty() => return quote(s.trim()),
                Some(other @ (Value::Object(_) | Value::Array(_))) => {
                    return quote(&other.to_string());
                }
                _ => {}
            }
        }
    }
    let text = String::from_utf8_lossy(raw);
    let text = text.trim();
    if text.is_empty() {
        "InvGate gave no reason".to_owned()
    } else {
        quote(text)
    }
}

fn quote(s: &str) -> String {
    if s.chars().count() <= QUOTE_MAX_CHARS {
        s.to_owned()
    } else {
        let mut cut: String = s.chars().take(QUOTE_MAX_CHARS).collect();
        cut.push('…');
        cut
    }
}

/// `Retry-After` as delay-seconds or an HTTP date.
pub(crate) fn retry_after(value: Option<&str>) -> Option<Duration> {
    let value = value?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// A user id from an id field: a number or a numeric string.
pub(crate) fn as_id(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|id| *id > 0)
}

/// InvGate spells booleans as `true`, `1` or `"1"` depending on endpoint and version.
pub(crate) fn truthy(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_i64().is_some_and(|n| n != 0),
        Some(Value::String(s)) => matches!(s.trim(), "1" | "true" | "TRUE" | "True"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_message_prefers_error_then_info_then_the_raw_body() {
        assert_eq!(
            error_message(br#"{"status":"ERROR","error":"e","info":"i"}"#),
            "e"
        );
        assert_eq!(
            error_message(r#"{"status":"ERROR","info":"Falta el parámetro"}"#.as_bytes()),
            "Falta el parámetro"
        );
        assert_eq!(error_message(b"Bad things"), "Bad things");
        assert_eq!(error_message(b""), "InvGate gave no reason");
    }

    #[test]
    fn long_raw_answers_are_cut() {
        let long = "x".repeat(5000);
        assert_eq!(
            error_message(long.as_bytes()).chars().count(),
            QUOTE_MAX_CHARS + 1
        );
    }

    #[test]
    fn status_error_is_recognised_in_any_case() {
        assert!(reports_error(&json!({"status": "ERROR"})));
        assert!(reports_error(&json!({"status": "error"})));
        assert!(!reports_error(&json!({"status": "OK"})));
        assert!(!reports_error(&json!({"request_id": 1})));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after(Some("12")), Some(Duration::from_secs(12)));
        assert_eq!(
            retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(Some("soon")), None);
        assert_eq!(retry_after(None), None);
    }

    #[test]
    fn booleans_are_read_in_every_spelling() {
        assert!(truthy(Some(&json!(true))) && truthy(Some(&json!(1))) && truthy(Some(&json!("1"))));
        assert!(
            !truthy(Some(&json!(false)))
                && !truthy(Some(&json!(0)))
                && !truthy(Some(&json!("0")))
                && !truthy(None)
        );
    }
}
