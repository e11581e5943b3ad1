//! The reload and the client check, with real handshakes in memory. The
//! PEM files under `src/webhook/testdata` are test-only keys: a CA, two
//! serving certificates (`a`, `b`) and two client certificates
//! (`apiserver.test`, `other.test`) it signed.

use std::path::{Path, PathBuf};

use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConnection};

use super::*;

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/webhook/testdata")
        .join(name)
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(testdata(name)).expect("test data")
}

/// A volume laid out as the kubelet lays out a Secret: `tls.crt` and
/// `tls.key` are symlinks through `..data`, itself a symlink to a versioned
/// directory, swapped by a rename.
struct Volume {
    dir: tempfile::TempDir,
    version: u32,
}

impl Volume {
    fn new(server: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        for f in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(format!("..data/{f}"), dir.path().join(f)).expect("symlink");
        }
        let mut v = Volume { dir, version: 0 };
        v.publish(
            &pem(&format!("server-{server}.crt")),
            &pem(&format!("server-{server}.key")),
        );
        v
    }

    fn publish(&mut self, cert: &[u8], key: &[u8]) {
        self.version += 1;
        let name = format!("..v{}", self.version);
        let version = self.dir.path().join(&name);
        std::fs::create_dir(&version).expect("version dir");
        std::fs::write(version.join("tls.crt"), cert).expect("cert");
        std::fs::write(version.join("tls.key"), key).expect("key");
        let tmp = self.dir.path().join("..data_tmp");
        std::os::unix::fs::symlink(&name, &tmp).expect("symlink");
        std::fs::rename(&tmp, self.dir.path().join("..data")).expect("swap");
    }

    fn files(&self, client_ca: Option<&str>, client_name: Option<&str>) -> Files {
        Files {
            cert: self.dir.path().join("tls.crt"),
            key: self.dir.path().join("tls.key"),
            client_ca: client_ca.map(testdata),
            client_name: client_name.map(String::from),
        }
    }
}

/// Runs a handshake in memory; the certificate the server presented, or
/// the error that ended the handshake.
fn handshake(server: Arc<ServerConfig>, client_cert: Option<&str>) -> Result<CertificateDer<'static>, rustls::Error> {
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&pem("ca.crt")) {
        roots.add(ca.expect("CA")).expect("root");
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let client = match client_cert {
        Some(name) => {
            let chain = CertificateDer::pem_slice_iter(&pem(&format!("client-{name}.crt")))
                .collect::<Result<Vec<_>, _>>()
                .expect("client chain");
            let key = PrivateKeyDer::from_pem_slice(&pem(&format!("client-{name}.key"))).expect("client key");
            builder.with_client_auth_cert(chain, key).expect("client auth")
        }
        None => builder.with_no_client_auth(),
    };
    let name = ServerName::try_from("webhook.test").expect("name");
    let mut c = ClientConnection::new(Arc::new(client), name).expect("client");
    let mut s = ServerConnection::new(server).expect("server");
    for _ in 0..10 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).expect("client write");
        }
        s.read_tls(&mut buf.as_slice()).expect("server read");
        s.process_new_packets()?;
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).expect("server write");
        }
        c.read_tls(&mut buf.as_slice()).expect("client read");
        c.process_new_packets()?;
        if !c.is_handshaking() && !s.is_handshaking() {
            break;
        }
    }
    assert!(!s.is_handshaking(), "handshake did not finish");
    Ok(c.peer_certificates().expect("server certificate")[0].clone())
}

fn serves(reloader: &Reloader, server: &str) -> bool {
    let served = handshake(reloader.tls.get_inner(), None).expect("handshake");
    let expected = CertificateDer::pem_slice_iter(&pem(&format!("server-{server}.crt")))
        .next()
        .expect("one certificate")
        .expect("PEM");
    served == expected
}

#[test]
fn a_renewal_swapping_the_volume_is_served_without_a_restart() {
    let mut volume = Volume::new("a");
    let mut reloader = Reloader::load(volume.files(None, None)).expect("load");
    assert!(serves(&reloader, "a"));
    assert!(matches!(reloader.refresh(), Refresh::Unchanged));
    volume.publish(&pem("server-b.crt"), &pem("server-b.key"));
    assert!(matches!(reloader.refresh(), Refresh::Reloaded));
    assert!(serves(&reloader, "b"));
    assert!(matches!(reloader.refresh(), Refresh::Unchanged));
}

#[test]
fn files_that_do_not_load_leave_the_last_good_certificate() {
    let mut volume = Volume::new("a");
    let mut reloader = Reloader::load(volume.files(None, None)).expect("load");
    // Half a renewal: b's certificate with a's key.
    volume.publish(&pem("server-b.crt"), &pem("server-a.key"));
    assert!(matches!(reloader.refresh(), Refresh::Kept(TlsError::Rustls { .. })));
    assert!(serves(&reloader, "a"));
    volume.publish(b"not PEM", &pem("server-b.key"));
    assert!(matches!(reloader.refresh(), Refresh::Kept(TlsError::Pem { .. })));
    assert!(serves(&reloader, "a"));
    // The rest of the renewal lands: served at the next check.
    volume.publish(&pem("server-b.crt"), &pem("server-b.key"));
    assert!(matches!(reloader.refresh(), Refresh::Reloaded));
    assert!(serves(&reloader, "b"));
}

/// A renewal whose second half lands without changing what a check
/// compares (the same modification time and length as the broken half) is
/// still loaded: files that did not load are tried at every check, and
/// reported once.
#[test]
fn files_that_did_not_load_are_tried_again_unchanged() {
    let mut volume = Volume::new("a");
    let mut reloader = Reloader::load(volume.files(None, None)).expect("load");
    volume.publish(&pem("server-b.crt"), &pem("server-a.key"));
    assert!(matches!(reloader.refresh(), Refresh::Kept(_)));
    assert!(matches!(reloader.refresh(), Refresh::StillKept), "reported once");
    assert!(serves(&reloader, "a"));
    // The rest lands, and the check's stamp does not tell.
    volume.publish(&pem("server-b.crt"), &pem("server-b.key"));
    reloader.seen = Stamp::of(&reloader.files);
    assert!(matches!(reloader.refresh(), Refresh::Reloaded));
    assert!(serves(&reloader, "b"));
    assert!(matches!(reloader.refresh(), Refresh::Unchanged));
}

#[test]
fn a_missing_file_fails_the_start() {
    let volume = Volume::new("a");
    let mut files = volume.files(None, None);
    files.key = volume.dir.path().join("absent.key");
    assert!(matches!(Reloader::load(files), Err(TlsError::Read { .. })));
}

#[test]
fn with_a_client_ca_a_caller_without_a_certificate_is_refused() {
    let volume = Volume::new("a");
    let reloader = Reloader::load(volume.files(Some("ca.crt"), None)).expect("load");
    let config = reloader.tls.get_inner();
    assert!(handshake(config.clone(), None).is_err());
    assert!(handshake(config.clone(), Some("apiserver")).is_ok());
    assert!(handshake(config, Some("other")).is_ok());
}

#[test]
fn a_client_name_admits_only_the_certificate_carrying_it() {
    let volume = Volume::new("a");
    let reloader = Reloader::load(volume.files(Some("ca.crt"), Some("apiserver.test"))).expect("load");
    let config = reloader.tls.get_inner();
    assert!(handshake(config.clone(), Some("apiserver")).is_ok());
    let refused = handshake(config.clone(), Some("other"));
    assert!(
        matches!(
            refused,
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
            ))
        ),
        "{refused:?}"
    );
    assert!(handshake(config, None).is_err());
}

#[test]
fn a_client_ca_that_is_not_a_certificate_fails_the_start() {
    let volume = Volume::new("a");
    let mut files = volume.files(None, None);
    files.client_ca = Some(testdata("server-a.key"));
    assert!(matches!(Reloader::load(files), Err(TlsError::Pem { .. })));
}
