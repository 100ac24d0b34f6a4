//! Who may call the API: Bearer keys compared in constant time, and the
//! hosted service's ed25519 webhook signatures.

use actix_web::HttpRequest;
use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// Webhook timestamps older (or newer) than this are refused.
pub(crate) const SIGNATURE_TOLERANCE_SECS: u64 = 300;

/// The API keys a server accepts. Never logged.
#[derive(Clone, Default)]
pub struct ApiKeys(Vec<String>);

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} configured)", self.0.len())
    }
}

impl ApiKeys {
    /// The keys a server accepts (empty ones are ignored).
    pub fn new(keys: Vec<String>) -> Self {
        ApiKeys(keys.into_iter().filter(|k| !k.is_empty()).collect())
    }

    /// Whether no key is configured (the server is then open, on loopback only).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many keys are configured.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The first key (a cluster node uses it to call another node).
    pub fn first(&self) -> Option<&str> {
        self.0.first().map(String::as_str)
    }

    /// The keys for display: how many, and their lengths (never a character of one).
    pub fn describe(&self) -> String {
        let lengths: Vec<String> = self
            .0
            .iter()
            .map(|k| k.chars().count().to_string())
            .collect();
        format!(
            "{} configured (lengths {})",
            self.0.len(),
            lengths.join(", ")
        )
    }

    /// Whether `candidate` is one of the keys. Every key is compared, in
    /// constant time for keys of equal length.
    fn accepts(&self, candidate: &[u8]) -> bool {
        let mut ok = subtle::Choice::from(0);
        for key in &self.0 {
            ok |= key.as_bytes().ct_eq(candidate);
        }
        bool::from(ok)
    }

    /// Checks the request's `Authorization: Bearer <key>`. With no key
    /// configured every request passes (the server only allows that on loopback).
    pub fn check(&self, req: &HttpRequest) -> Result<(), ApiError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let header = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        // The scheme is case-insensitive (RFC 7235).
        let token = match header.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => "",
        };
        if !token.is_empty() && self.accepts(token.as_bytes()) {
            Ok(())
        } else {
            Err(ApiError::Unauthorized)
        }
    }
}

/// Why a public key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not base64.
    #[error("the webhook public key is not valid base64")]
    Base64,
    /// Not an ed25519 public key.
    #[error("the webhook public key is not a 32-byte ed25519 key")]
    Key,
}

/// Parses a base64 ed25519 public key.
pub fn webhook_key(base64: &str) -> Result<VerifyingKey, KeyError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(base64.trim())
        .map_err(|_| KeyError::Base64)?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Key)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::Key)
}

/// Whether the request carries a valid signature of `body` by `key`
/// (`telnyx-signature-ed25519` over `"{telnyx-timestamp}|{body}"`), with a
/// timestamp within the tolerance of `now_secs`.
pub(crate) fn signature_valid(
    req: &HttpRequest,
    body: &[u8],
    key: &VerifyingKey,
    now_secs: u64,
) -> bool {
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let (Some(signature), Some(timestamp)) = (
        header("telnyx-signature-ed25519"),
        header("telnyx-timestamp"),
    ) else {
        return false;
    };
    let Ok(ts) = timestamp.trim().parse::<u64>() else {
        return false;
    };
    if ts.abs_diff(now_secs) > SIGNATURE_TOLERANCE_SECS {
        return false;
    }
    let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    let Ok(sig) = Signature::from_slice(&sig) else {
        return false;
    };
    let mut signed = Vec::with_capacity(timestamp.len() + 1 + body.len());
    signed.extend_from_slice(timestamp.trim().as_bytes());
    signed.push(b'|');
    signed.extend_from_slice(body);
    key.verify(&signed, &sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn bearer_keys() {
        let keys = ApiKeys::new(vec!["secret-one".into(), "secret-two".into()]);
        let req = |h: &str| {
            TestRequest::default()
                .insert_header(("authorization", h))
                .to_http_request()
        };
        assert!(keys.check(&req("Bearer secret-two")).is_ok());
        assert!(keys.check(&req("Bearer secret")).is_err());
        assert!(keys.check(&req("secret-one")).is_err());
        assert!(keys
            .check(&TestRequest::default().to_http_request())
            .is_err());
        assert!(ApiKeys::new(vec![]).check(&req("anything")).is_ok());
        assert!(!format!("{keys:?}").contains("secret"));
        assert!(keys.check(&req("BEARER secret-one")).is_ok());
        assert!(keys.check(&req("bEaReR secret-one")).is_ok());
        assert!(keys.check(&req("Basic secret-one")).is_err());
        assert_eq!(keys.describe(), "2 configured (lengths 10, 10)");
    }
}
