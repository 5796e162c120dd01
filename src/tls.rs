//! TLS for both trust boundaries a replica serves: the API (Heketi's `enable_tls`,
//! `cert_file`, `key_file`: server authentication only, as Heketi) and the peer network
//! (`raft.tls`: mutual TLS, both sides present a certificate signed by the cluster CA and
//! refuse any other). Also generates a CA and certificates for `hekate dev --tls` and the
//! tests, written 0600.
//!
//! rustls with the aws-lc-rs provider, TLS 1.2 and 1.3, ALPN `http/1.1` (Heketi's clients
//! speak HTTP/1.1).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Context};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The certificates of a PEM file (a chain: leaf first).
pub fn load_certs(path: &str, key: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| anyhow!("{key}: cannot read {path}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("{key}: {path} is not PEM: {e}"))?;
    if certs.is_empty() {
        anyhow::bail!("{key}: {path} holds no certificate");
    }
    Ok(certs)
}

pub fn load_key(path: &str, key: &str) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| anyhow!("{key}: no usable private key in {path}: {e}"))
}

fn server_builder() -> anyhow::Result<rustls::ConfigBuilder<ServerConfig, rustls::WantsVerifier>> {
    ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| anyhow!("TLS: {e}"))
}

/// The API's server config (Heketi's `cert_file`, `key_file`): no client certificates.
pub fn api_server_config(cert_file: &str, key_file: &str) -> anyhow::Result<Arc<ServerConfig>> {
    let certs = load_certs(cert_file, "cert_file")?;
    let key = load_key(key_file, "key_file")?;
    let mut cfg = server_builder()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| anyhow!("cert_file/key_file: {e}"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The peer listener's config: a client certificate signed by the cluster CA is required.
pub fn peer_server_config(t: &crate::config::PeerTlsConfig) -> anyhow::Result<Arc<ServerConfig>> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(&t.ca_file, "raft.tls.ca_file")? {
        roots.add(c).map_err(|e| anyhow!("raft.tls.ca_file: {e}"))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| anyhow!("raft.tls.ca_file: {e}"))?;
    let certs = load_certs(&t.cert_file, "raft.tls.cert_file")?;
    let key = load_key(&t.key_file, "raft.tls.key_file")?;
    let mut cfg = server_builder()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| anyhow!("raft.tls.cert_file/key_file: {e}"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The peer client's material (PEM bytes) for `hekate_raft`'s `PeerHttp`.
pub fn peer_client_material(
    t: &crate::config::PeerTlsConfig,
) -> anyhow::Result<hekate_raft::network::PeerTls> {
    let read = |p: &str, k: &str| std::fs::read(p).with_context(|| format!("{k}: cannot read {p}"));
    Ok(hekate_raft::network::PeerTls {
        ca_pem: read(&t.ca_file, "raft.tls.ca_file")?,
        cert_pem: read(&t.cert_file, "raft.tls.cert_file")?,
        key_pem: read(&t.key_file, "raft.tls.key_file")?,
    })
}

/// Writes `data` to `path` with mode 0600 (created so, never world-readable in between).
pub fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::fs::PermissionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(data)?;
    Ok(())
}

/// Files of a generated CA and the certificates it signed.
#[derive(Debug, Clone)]
pub struct GeneratedPki {
    pub ca_file: PathBuf,
    /// `(name, cert file, key file)` in the order asked.
    pub certs: Vec<(String, PathBuf, PathBuf)>,
}

impl GeneratedPki {
    pub fn cert(&self, name: &str) -> Option<(&Path, &Path)> {
        self.certs
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, c, k)| (c.as_path(), k.as_path()))
    }
}

/// Generates a CA (`ca.pem`, `ca-key.pem`) and, per name, `<name>.pem` / `<name>-key.pem`
/// valid for `sans` (IP addresses or DNS names) as server and client, all 0600, in `dir`.
/// Files that exist already are kept (a resumed dev cluster keeps its certificates).
pub fn generate(dir: &Path, names: &[&str], sans: &[String]) -> anyhow::Result<GeneratedPki> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        KeyUsagePurpose,
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let ca_file = dir.join("ca.pem");
    let done = ca_file.is_file()
        && names
            .iter()
            .all(|n| dir.join(format!("{n}.pem")).is_file() && dir.join(format!("{n}-key.pem")).is_file());
    let result = GeneratedPki {
        ca_file: ca_file.clone(),
        certs: names
            .iter()
            .map(|n| {
                (
                    n.to_string(),
                    dir.join(format!("{n}.pem")),
                    dir.join(format!("{n}-key.pem")),
                )
            })
            .collect(),
    };
    if done {
        return Ok(result);
    }
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "Hekate cluster CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key)?;
    write_private(&ca_file, ca_cert.pem().as_bytes())?;
    write_private(&dir.join("ca-key.pem"), ca_key.serialize_pem().as_bytes())?;
    let issuer = Issuer::new(ca, ca_key);
    for (name, cert_path, key_path) in &result.certs {
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::new(sans.to_vec())?;
        p.distinguished_name.push(DnType::CommonName, name.as_str());
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = p.signed_by(&key, &issuer)?;
        write_private(cert_path, cert.pem().as_bytes())?;
        write_private(key_path, key.serialize_pem().as_bytes())?;
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_files_are_private_and_load_into_both_configs() {
        let d = tempfile::tempdir().unwrap();
        let pki = generate(
            d.path(),
            &["replica-1"],
            &["127.0.0.1".into(), "localhost".into()],
        )
        .unwrap();
        for f in std::fs::read_dir(d.path()).unwrap() {
            let mode = f.unwrap().metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let (c, k) = pki.cert("replica-1").unwrap();
        let (c, k) = (c.to_str().unwrap(), k.to_str().unwrap());
        api_server_config(c, k).unwrap();
        let t = crate::config::PeerTlsConfig {
            ca_file: pki.ca_file.display().to_string(),
            cert_file: c.into(),
            key_file: k.into(),
        };
        peer_server_config(&t).unwrap();
        hekate_raft::network::PeerHttp::new("s", Some(&peer_client_material(&t).unwrap())).unwrap();
        // A second call keeps the existing files.
        let before = std::fs::read(&pki.ca_file).unwrap();
        generate(d.path(), &["replica-1"], &["127.0.0.1".into()]).unwrap();
        assert_eq!(before, std::fs::read(&pki.ca_file).unwrap());
    }

    #[test]
    fn a_missing_or_empty_file_is_a_clear_error() {
        let d = tempfile::tempdir().unwrap();
        let e = api_server_config("/nonexistent/c.pem", "/nonexistent/k.pem").unwrap_err();
        assert!(e.to_string().contains("cert_file"), "{e}");
        let empty = d.path().join("e.pem");
        std::fs::write(&empty, "").unwrap();
        let e = api_server_config(empty.to_str().unwrap(), empty.to_str().unwrap()).unwrap_err();
        assert!(e.to_string().contains("no certificate"), "{e}");
    }
}
