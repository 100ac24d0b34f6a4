//! Certificates from PEM files, for the TLS of the etcd client and of the
//! node-to-node client (both on ureq).

use std::path::Path;

use ureq::tls::{Certificate, PemItem};

/// The certificates in the PEM file at `path` (other items skipped); an
/// error naming the file when it cannot be read, does not parse, or holds
/// none.
pub(crate) fn certificates(path: &Path) -> Result<Vec<Certificate<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certificates = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(Ok(c)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!("{} holds no certificate", path.display()));
    }
    Ok(certificates)
}
