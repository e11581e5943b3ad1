//! The webhook's TLS: its serving certificate and key, and the CA that
//! signs the API server's client certificate, read from files and read again
//! when they change. cert-manager renews by rewriting the Secret, and the
//! kubelet swaps the volume's `..data` symlink atomically; a reload builds a
//! whole new server configuration and swaps it in, so handshakes already
//! under way finish with the old one. Files that do not load (half-written,
//! key and certificate mismatched) leave the last good configuration in
//! force, with a warning.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum_server::tls_rustls::RustlsConfig;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme};
use thiserror::Error;

/// How often the files are checked for a change: a stat of each, cheap.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The files the TLS configuration is made of.
#[derive(Clone, Debug)]
pub struct Files {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// PEM CA certificates a caller's client certificate must chain to;
    /// `None` accepts any caller (no client certificate asked).
    pub client_ca: Option<PathBuf>,
    /// A DNS name the client certificate must carry as a subjectAltName.
    pub client_name: Option<String>,
}

/// Why a TLS configuration could not be made.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file holds no usable PEM object of the kind expected.
    #[error("{path}: no {what} in PEM")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was looked for.
        what: &'static str,
    },
    /// The key, the certificate, the CA or the name was refused.
    #[error("{what}")]
    Rustls {
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        #[source]
        source: rustls::Error,
    },
    /// The client CA could not make a verifier.
    #[error("client CA {path}")]
    Verifier {
        /// The CA file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
    /// `--webhook-client-name` is not a DNS name.
    #[error("{0:?} is not a DNS name")]
    Name(String),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok).collect();
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_owned(),
            what: "certificate",
        });
    }
    Ok(certs)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the whole server configuration from the files.
pub fn server_config(files: &Files) -> Result<ServerConfig, TlsError> {
    let provider = provider();
    let chain = certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?).map_err(|_| TlsError::Pem {
        path: files.key.clone(),
        what: "private key",
    })?;
    let rustls = |what| move |source| TlsError::Rustls { what, source };
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(rustls("the webhook key"))?;
    let certified = CertifiedKey::new(chain, signer);
    // A renewal caught between its two files must not serve a key that
    // does not match the certificate: every handshake would fail.
    certified
        .keys_match()
        .map_err(rustls("the webhook key and certificate"))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(rustls("TLS versions"))?;
    let builder = match &files.client_ca {
        Some(ca) => builder.with_client_cert_verifier(client_verifier(ca, files.client_name.as_deref(), provider)?),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(Fixed(Arc::new(certified))));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn client_verifier(
    ca: &Path,
    name: Option<&str>,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca)? {
        roots.add(cert).map_err(|source| TlsError::Rustls {
            what: "the client CA",
            source,
        })?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|source| TlsError::Verifier {
            path: ca.to_owned(),
            source,
        })?;
    let Some(name) = name else {
        return Ok(verifier);
    };
    let name = ServerName::try_from(name.to_owned()).map_err(|_| TlsError::Name(name.to_owned()))?;
    Ok(Arc::new(Named { inner: verifier, name }))
}

/// The one certificate of a configuration (the reload swaps configurations,
/// not certificates, so the client CA changes with them).
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// A client verifier that also requires a name in the client certificate:
/// a CA shared with other clients (a cluster CA) then admits only the API
/// server's certificate.
#[derive(Debug)]
struct Named {
    inner: Arc<dyn ClientCertVerifier>,
    name: ServerName<'static>,
}

impl ClientCertVerifier for Named {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
        cert.verify_is_valid_for_subject_name(&self.name)
            .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// One version of the files: where each path leads once its symlinks are
/// followed (the kubelet's swap changes it), its length and modification
/// time; `None` for a file that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp(Vec<Option<(PathBuf, u64, SystemTime)>>);

impl Stamp {
    fn of(files: &Files) -> Self {
        let paths = [Some(&files.cert), Some(&files.key), files.client_ca.as_ref()];
        Stamp(
            paths
                .into_iter()
                .flatten()
                .map(|p| {
                    let meta = std::fs::metadata(p).ok()?;
                    Some((std::fs::canonicalize(p).ok()?, meta.len(), meta.modified().ok()?))
                })
                .collect(),
        )
    }
}

/// What a check of the files did.
#[derive(Debug)]
pub enum Refresh {
    /// The files have not changed.
    Unchanged,
    /// They changed and the new configuration is in force.
    Reloaded,
    /// They changed but do not load: the last good configuration stays.
    Kept(TlsError),
    /// They still do not load, and have not changed since they were
    /// reported (`Kept`): tried again at each check, reported once.
    StillKept,
}

/// The configuration the server uses, and the files it was made from.
pub struct Reloader {
    files: Files,
    seen: Stamp,
    /// The files seen last did not load: they are tried again at each
    /// check even if they look unchanged. A renewal written in place can
    /// land within the same modification time and length as the half of it
    /// that was read; without the retry, the broken half would be the last
    /// word until the next renewal.
    failing: bool,
    /// What the server is given; reloads swap its configuration in place.
    pub tls: RustlsConfig,
}

impl Reloader {
    /// Loads the files once; failing here fails the start.
    pub fn load(files: Files) -> Result<Self, TlsError> {
        // Stamped before reading: a change during the read is seen next time.
        let seen = Stamp::of(&files);
        let config = server_config(&files)?;
        Ok(Reloader {
            files,
            seen,
            failing: false,
            tls: RustlsConfig::from_config(Arc::new(config)),
        })
    }

    /// Reloads if the files changed since the last check, or did not load
    /// then.
    pub fn refresh(&mut self) -> Refresh {
        let now = Stamp::of(&self.files);
        let changed = now != self.seen;
        if !changed && !self.failing {
            return Refresh::Unchanged;
        }
        // Recorded even when the load fails: one warning per change.
        self.seen = now;
        match server_config(&self.files) {
            Ok(config) => {
                self.tls.reload_from_config(Arc::new(config));
                self.failing = false;
                Refresh::Reloaded
            }
            Err(e) => {
                self.failing = true;
                if changed { Refresh::Kept(e) } else { Refresh::StillKept }
            }
        }
    }

    /// Checks the files every [`CHECK_EVERY`], forever.
    pub async fn watch(mut self) {
        let mut every = tokio::time::interval(CHECK_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match self.refresh() {
                Refresh::Unchanged | Refresh::StillKept => {}
                Refresh::Reloaded => tracing::info!(cert = %self.files.cert.display(), "webhook TLS files reloaded"),
                Refresh::Kept(e) => tracing::warn!(
                    error = %super::chain(&e),
                    "webhook TLS files changed but do not load; serving the previous certificate"
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests;
