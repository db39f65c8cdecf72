//! Who is asking: the caller's e-mail address (from their token) and their InvGate user id.

use serde::Serialize;

/// An e-mail address in the shape InvGate can look up: `local@domain.tld`, no spaces, ≤ 254 bytes.
///
/// Deliberately not a full RFC 5322 parser: identity providers already validated the address;
/// this only keeps nonsense (a user name in `sub`, a blank claim) from reaching InvGate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

/// Why a string is not an e-mail address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not an e-mail address")]
pub struct EmailAddressError {
    pub input: String,
}

impl EmailAddress {
    /// # Errors
    /// [`EmailAddressError`] carrying the rejected input.
    pub fn parse(raw: &str) -> Result<Self, EmailAddressError> {
        let candidate = raw.trim();
        let invalid = || EmailAddressError {
            input: raw.to_owned(),
        };
        if candidate.len() > 254
            || candidate
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid());
        }
        let (local, domain) = candidate.rsplit_once('@').ok_or_else(invalid)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@');
        if local.is_empty() || local.contains('@') || !domain_ok {
            return Err(invalid());
        }
        Ok(Self(candidate.to_owned()))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key under which two spellings of one mailbox meet (`Alice@Example.com` = `alice@example.com`).
    #[must_use]
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }
}

impl std::fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A user id in InvGate: the ticket's creator and customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct InvGateUserId(i64);

impl InvGateUserId {
    #[must_use]
    pub fn new(id: i64) -> Self {
        Self(id)
    }

    #[must_use]
    pub fn get(self) -> i64 {
        self.0
    }
}

impl std::fmt::Display for InvGateUserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_addresses_are_accepted_and_trimmed() {
        assert_eq!(
            EmailAddress::parse(" alice@example.com ").map(|e| e.as_str().to_owned()),
            Ok("alice@example.com".to_owned())
        );
        assert!(EmailAddress::parse("first.last+tag@sub.example.co.uk").is_ok());
    }

    #[test]
    fn things_that_are_not_addresses_are_rejected() {
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "alice@localhost",
            "a b@example.com",
            "a@b@example.com",
            "alice@example.com.",
        ] {
            assert!(
                EmailAddress::parse(bad).is_err(),
                "{bad:?} must be rejected"
            );
        }
    }

    #[test]
    fn normalized_addresses_ignore_case() {
        let a = EmailAddress::parse("Alice@Example.COM").expect("valid");
        assert_eq!(a.normalized(), "alice@example.com");
    }
}
