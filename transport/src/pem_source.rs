//! Certificates and keys as OCM's configuration files give them: inline base64 (`caData`,
//! `clientCertData`, …) or a file path (`caFile`, `clientCertFile`, …), the inline form winning.
//! Files are read through a function the caller passes, so only binaries touch the disk.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use serde::Deserialize;

use crate::tls::PemIdentity;

/// The CA and client-certificate keys both of OCM's configuration files share. Its `Debug`
/// hides the inline key.
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsFiles {
    pub ca_file: Option<PathBuf>,
    pub ca_data: Option<String>,
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    pub client_cert_data: Option<String>,
    pub client_key_data: Option<String>,
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsFiles")
            .field("ca_file", &self.ca_file)
            .field("ca_data", &self.ca_data.as_ref().map(|_| "<PEM>"))
            .field("client_cert_file", &self.client_cert_file)
            .field("client_key_file", &self.client_key_file)
            .field(
                "client_cert_data",
                &self.client_cert_data.as_ref().map(|_| "<PEM>"),
            )
            .field(
                "client_key_data",
                &crate::grpc_config::redacted(self.client_key_data.as_ref()),
            )
            .finish()
    }
}

impl TlsFiles {
    /// The CA (if any) and the client identity (if any), read through `read`.
    pub fn resolve(
        self,
        read: &impl Fn(&Path) -> std::io::Result<String>,
    ) -> Result<(Option<String>, Option<PemIdentity>), PemSourceError> {
        let ca = load(self.ca_data, self.ca_file, "caData/caFile", read)?;
        let cert = load(
            self.client_cert_data,
            self.client_cert_file,
            "clientCertData/clientCertFile",
            read,
        )?;
        let key = load(
            self.client_key_data,
            self.client_key_file,
            "clientKeyData/clientKeyFile",
            read,
        )?;
        Ok((ca, identity(cert, key)?))
    }
}

/// Loads one PEM value from `data` (base64) or `file`; `what` names the keys in errors.
pub fn load(
    data: Option<String>,
    file: Option<PathBuf>,
    what: &'static str,
    read: &impl Fn(&Path) -> std::io::Result<String>,
) -> Result<Option<String>, PemSourceError> {
    match (data, file) {
        (Some(data), _) => {
            let base64 = |detail: String| PemSourceError::Base64 { what, detail };
            let bytes = STANDARD
                .decode(data.trim())
                .map_err(|e| base64(e.to_string()))?;
            String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| base64("not UTF-8".to_owned()))
        }
        (None, Some(path)) => read(&path).map(Some).map_err(|e| PemSourceError::File {
            what,
            path,
            detail: e.to_string(),
        }),
        (None, None) => Ok(None),
    }
}

/// A client identity from a certificate and a key: both or neither.
pub fn identity(
    cert: Option<String>,
    key: Option<String>,
) -> Result<Option<PemIdentity>, PemSourceError> {
    match (cert, key) {
        (Some(cert_chain), Some(key)) => Ok(Some(PemIdentity { cert_chain, key })),
        (None, None) => Ok(None),
        _ => Err(PemSourceError::HalfIdentity),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemSourceError {
    #[error("{what} is not base64: {detail}")]
    Base64 { what: &'static str, detail: String },
    #[error("{what}: cannot read {}: {detail}", path.display())]
    File {
        what: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error("a client certificate without its key, or a key without its certificate")]
    HalfIdentity,
}
