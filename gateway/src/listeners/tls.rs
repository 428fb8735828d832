//! Certificates for the HTTPS listener: the operator's PEM files, or a self-signed authority
//! generated once into the state directory; SNI selection; reload without dropping connections.
//!
//! Without configured files Orca generates a small certificate authority (name-constrained to
//! the domain) and issues a leaf for each SNI name under the domain on first use. A plain
//! self-signed `*.<domain>` certificate would be simpler, but clients refuse wildcards directly
//! under a single-label domain such as `localhost` (`*.localhost`), which is the default; with
//! an authority, `curl --cacert <state_dir>/tls/self-signed.crt https://demo.localhost:8443/`
//! verifies.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::{san, write_private};
use crate::config::TlsFiles;

/// Where the generated authority lives, under the state directory.
const SELF_SIGNED_DIR: &str = "tls";
/// The generated authority's certificate; the file to hand to clients as a trust anchor.
const SELF_SIGNED_CERT: &str = "self-signed.crt";
/// The generated authority's private key (mode 0600).
const SELF_SIGNED_KEY: &str = "self-signed.key";
/// How many issued leaves are kept; SNI names are chosen by clients, so the cache is bounded
/// and simply starts over when full.
const ISSUED_CACHE: usize = 1024;
/// How long an issued leaf is valid: under the 398 days browsers accept for a server
/// certificate (CA/Browser Forum), which `testssl.sh` rates HIGH when exceeded.
const LEAF_VALIDITY: time::Duration = time::Duration::days(397);
/// A leaf is issued again once this old, long before it expires, so a gateway running for years
/// never presents an expired one.
const LEAF_RENEWAL: Duration = Duration::from_secs(30 * 24 * 3600);
/// The issued-leaf cache's key for the default leaf (SNI names are never empty).
const DEFAULT_LEAF: &str = "";
/// How far back a leaf's validity starts, for clients whose clocks run a little behind.
const LEAF_BACKDATE: time::Duration = time::Duration::hours(1);

/// Why certificates could not be loaded or generated.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A configured PEM file cannot be read or parsed.
    #[error("cannot read the {what} `{path}`: {reason}; {fix}")]
    File {
        /// `certificate chain` or `private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
        /// What would be accepted.
        fix: &'static str,
    },
    /// The key is not one rustls can sign with, or does not belong to the certificate.
    #[error("the private key `{key}` does not fit the certificate `{cert}`: {reason}; {fix}")]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What was wrong.
        reason: String,
        /// What to do.
        fix: &'static str,
    },
    /// The self-signed authority cannot be generated or written.
    #[error(
        "cannot generate the self-signed certificate in `{path}`: {reason}; make the state directory writable or set [https] cert and key"
    )]
    Generate {
        /// The file or directory involved.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

/// The certificates the HTTPS listener presents, chosen per handshake by SNI.
///
/// A cheap handle: clones share one set, so [`Certificates::reload`] on any clone changes what
/// new handshakes get from every [`server_config`] built from it. Established connections keep
/// the certificate they were handshaken with.
#[derive(Clone)]
pub struct Certificates {
    inner: Arc<Inner>,
}

struct Inner {
    source: RwLock<Source>,
    current: RwLock<Arc<CertSet>>,
}

/// Where the set comes from, kept so a reload reads the same places again.
#[derive(Debug, Clone)]
enum Source {
    Files(Vec<TlsFiles>),
    SelfSigned { domain: String, dir: PathBuf },
}

/// One loaded generation of certificates; swapped whole on reload.
struct CertSet {
    entries: Vec<Entry>,
    authority: Option<Authority>,
}

/// A certificate chain with its key and the DNS names it covers.
struct Entry {
    names: Vec<String>,
    key: Arc<CertifiedKey>,
}

/// The generated authority: issues a leaf per SNI name under the domain.
struct Authority {
    domain: String,
    ca: CertificateDer<'static>,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// The names of the leaf served without SNI, for the bare domain, or outside the domain.
    default_names: Vec<String>,
    /// Leaves by SNI name (the default leaf under ""), with when each was issued.
    issued: Mutex<HashMap<String, (SystemTime, Arc<CertifiedKey>)>>,
}

impl Certificates {
    /// Loads `[https] cert`/`key` (`files`) when configured; otherwise the self-signed
    /// authority for `domain` from `<state_dir>/tls/`, generating it on first start or when it
    /// was made for another domain.
    pub fn load(
        files: Option<&TlsFiles>,
        domain: &str,
        state_dir: &Path,
    ) -> Result<Self, TlsError> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let certificates = Self::from_source(Source::of(files, &domain, state_dir))?;
        // Served anyway (it may be a deliberate stopgap), but every image name would fail
        // verification in browsers, so say so at start.
        let image_host = format!("image.{domain}");
        let covered = certificates
            .current()
            .entries
            .iter()
            .any(|e| e.names.iter().any(|p| san::covers(p, &image_host)));
        if let (false, Some(files)) = (covered, files) {
            tracing::warn!(
                cert = %files.cert.display(),
                domain,
                "the configured certificate does not cover *.{domain}; clients will refuse image hosts"
            );
        }
        Ok(certificates)
    }

    /// Loads several PEM chain/key pairs, chosen among by SNI; the first is the fallback for
    /// clients that send no SNI or a name none covers.
    pub fn from_files(files: &[TlsFiles]) -> Result<Self, TlsError> {
        Self::from_source(Source::Files(files.to_vec()))
    }

    fn from_source(source: Source) -> Result<Self, TlsError> {
        let set = source.load()?;
        Ok(Self {
            inner: Arc::new(Inner {
                source: RwLock::new(source),
                current: RwLock::new(Arc::new(set)),
            }),
        })
    }

    /// Reads the files again and swaps the set atomically for new handshakes. On error the
    /// old set stays in use and the error is returned, so a half-written renewal never takes
    /// the listener down.
    pub fn reload(&self) -> Result<(), TlsError> {
        let set = self.source().load()?;
        self.put(Arc::new(set));
        Ok(())
    }

    /// Like [`Certificates::reload`], from other files (a configuration reload changed
    /// `[https] cert`/`key`, or removed them for the self-signed authority). Loads first:
    /// on error nothing changes.
    pub fn reload_from(
        &self,
        files: Option<&TlsFiles>,
        domain: &str,
        state_dir: &Path,
    ) -> Result<(), TlsError> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let source = Source::of(files, &domain, state_dir);
        let set = source.load()?;
        *self
            .inner
            .source
            .write()
            .unwrap_or_else(PoisonError::into_inner) = source;
        self.put(Arc::new(set));
        Ok(())
    }

    fn source(&self) -> Source {
        self.inner
            .source
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn put(&self, set: Arc<CertSet>) {
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = set;
    }

    /// The generated authority certificate (PEM file) clients can trust, when self-signed.
    pub fn self_signed_path(&self) -> Option<PathBuf> {
        match self.source() {
            Source::SelfSigned { dir, .. } => Some(dir.join(SELF_SIGNED_CERT)),
            Source::Files(_) => None,
        }
    }

    fn current(&self) -> Arc<CertSet> {
        self.inner
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl fmt::Debug for Certificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = self.current();
        f.debug_struct("Certificates")
            .field("source", &self.source())
            .field(
                "names",
                &set.entries.iter().map(|e| &e.names).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let set = self.current();
        let sni = hello.server_name().map(str::to_ascii_lowercase);
        if let Some(authority) = &set.authority {
            let leaf = sni.as_deref().and_then(|name| authority.leaf_for(name));
            if let Some(key) = leaf.or_else(|| authority.default_leaf()) {
                return Some(key);
            }
        }
        set.select(sni.as_deref())
    }
}

/// Builds the rustls server configuration: TLS 1.2 and 1.3 on ring, certificates chosen by
/// `certificates` per handshake, ALPN `h2` then `http/1.1`.
pub fn server_config(certificates: &Certificates) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(certificates.clone()));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // The server's order of cipher suites (the provider's, strongest first), not whatever a
    // client lists first: a client preferring a weaker suite must not get it.
    config.ignore_client_order = true;
    Arc::new(config)
}

impl Source {
    fn of(files: Option<&TlsFiles>, domain: &str, state_dir: &Path) -> Self {
        match files {
            Some(files) => Source::Files(vec![files.clone()]),
            None => Source::SelfSigned {
                domain: domain.to_string(),
                dir: state_dir.join(SELF_SIGNED_DIR),
            },
        }
    }

    fn load(&self) -> Result<CertSet, TlsError> {
        match self {
            Source::Files(files) => {
                let entries = files.iter().map(load_pair).collect::<Result<_, _>>()?;
                Ok(CertSet {
                    entries,
                    authority: None,
                })
            }
            Source::SelfSigned { domain, dir } => Authority::load_or_generate(domain, dir),
        }
    }
}

impl CertSet {
    /// Exact name first, then a wildcard, then the first certificate.
    fn select(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let by = |wildcard: bool| {
            let name = sni?;
            self.entries.iter().find(|e| {
                e.names
                    .iter()
                    .any(|p| p.starts_with("*.") == wildcard && san::covers(p, name))
            })
        };
        by(false)
            .or_else(|| by(true))
            .or(self.entries.first())
            .map(|e| e.key.clone())
    }
}

impl Authority {
    fn load_or_generate(domain: &str, dir: &Path) -> Result<CertSet, TlsError> {
        let cert_path = dir.join(SELF_SIGNED_CERT);
        let key_path = dir.join(SELF_SIGNED_KEY);
        if cert_path.exists() {
            match Self::reuse(domain, &cert_path, &key_path) {
                Ok(set) => return Ok(set),
                Err(reason) => tracing::warn!(
                    path = %cert_path.display(),
                    %reason,
                    "generating a new self-signed certificate"
                ),
            }
        }
        Self::generate(domain, dir, &cert_path, &key_path)
    }

    fn reuse(domain: &str, cert_path: &Path, key_path: &Path) -> Result<CertSet, String> {
        let ca = CertificateDer::from_pem_file(cert_path).map_err(|e| e.to_string())?;
        if !san::dns_names(&ca).iter().any(|n| n == domain) {
            return Err(format!("it was made for another domain than `{domain}`"));
        }
        let key_pem = std::fs::read_to_string(key_path).map_err(|e| e.to_string())?;
        let key = rcgen::KeyPair::from_pem(&key_pem).map_err(|e| e.to_string())?;
        // A key from elsewhere would issue leaves no client can chain to the stored certificate.
        let spki = rustls::server::ParsedCertificate::try_from(&ca)
            .map_err(|e| e.to_string())?
            .subject_public_key_info();
        if spki.as_ref() != rcgen::PublicKeyData::subject_public_key_info(&key).as_slice() {
            return Err("the key file does not belong to the certificate".to_string());
        }
        Self::assemble(domain, ca, key).map_err(|e| e.to_string())
    }

    fn generate(
        domain: &str,
        dir: &Path,
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<CertSet, TlsError> {
        let failed = |path: &Path, reason: String| TlsError::Generate {
            path: path.to_path_buf(),
            reason,
        };
        let key = rcgen::KeyPair::generate().map_err(|e| failed(dir, e.to_string()))?;
        let ca = authority_params(domain)
            .and_then(|p| p.self_signed(&key))
            .map_err(|e| failed(dir, e.to_string()))?;
        std::fs::create_dir_all(dir).map_err(|e| failed(dir, e.to_string()))?;
        write_private(key_path, key.serialize_pem().as_bytes())
            .map_err(|e| failed(key_path, e.to_string()))?;
        std::fs::write(cert_path, ca.pem()).map_err(|e| failed(cert_path, e.to_string()))?;
        tracing::info!(path = %cert_path.display(), domain, "generated a self-signed certificate");
        Self::assemble(domain, ca.der().clone(), key).map_err(|e| failed(dir, e.to_string()))
    }

    /// The set for a loaded or fresh authority: a default leaf for `<domain>`, `*.<domain>`
    /// (and loopback addresses for `localhost`), served without SNI or for names outside the
    /// domain, plus the authority to issue the rest.
    fn assemble(
        domain: &str,
        ca: CertificateDer<'static>,
        key: rcgen::KeyPair,
    ) -> Result<CertSet, rcgen::Error> {
        let mut names = vec![domain.to_string(), format!("*.{domain}")];
        if domain == "localhost" {
            names.extend(["127.0.0.1".to_string(), "::1".to_string()]);
        }
        let authority = Authority {
            domain: domain.to_string(),
            ca,
            issuer: rcgen::Issuer::new(authority_params(domain)?, key),
            default_names: names.clone(),
            issued: Mutex::new(HashMap::new()),
        };
        let default = authority.issue(names.clone())?;
        // The cache starts with this leaf, so the first handshake without SNI presents it
        // rather than issuing a second default leaf; renewal replaces it there.
        authority
            .issued
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                DEFAULT_LEAF.to_string(),
                (SystemTime::now(), default.clone()),
            );
        Ok(CertSet {
            entries: vec![Entry {
                names,
                key: default,
            }],
            authority: Some(authority),
        })
    }

    /// A leaf for exactly `name` when it lies under the domain, issued once and cached until
    /// it is due for renewal.
    fn leaf_for(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let under = name.strip_suffix(&self.domain)?.strip_suffix('.')?;
        if under.is_empty() {
            return None;
        }
        self.cached(name, || vec![name.to_string()])
    }

    /// The leaf for the bare domain, for handshakes without SNI and for names outside the
    /// domain, renewed like the others.
    fn default_leaf(&self) -> Option<Arc<CertifiedKey>> {
        self.cached(DEFAULT_LEAF, || self.default_names.clone())
    }

    fn cached(&self, key: &str, names: impl FnOnce() -> Vec<String>) -> Option<Arc<CertifiedKey>> {
        let mut issued = self.issued.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((at, leaf)) = issued.get(key)
            && at.elapsed().is_ok_and(|age| age < LEAF_RENEWAL)
        {
            return Some(leaf.clone());
        }
        let names = names();
        let leaf = match self.issue(names.clone()) {
            Ok(leaf) => leaf,
            Err(error) => {
                tracing::warn!(?names, %error, "cannot issue a certificate for these names");
                return None;
            }
        };
        if issued.len() >= ISSUED_CACHE {
            issued.clear();
        }
        issued.insert(key.to_string(), (SystemTime::now(), leaf.clone()));
        Some(leaf)
    }

    fn issue(&self, names: Vec<String>) -> Result<Arc<CertifiedKey>, rcgen::Error> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(names.clone())?;
        if let Some(first) = names.first() {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, first.as_str());
        }
        params.use_authority_key_identifier_extension = true;
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - LEAF_BACKDATE;
        params.not_after = now + LEAF_VALIDITY;
        let cert = params.signed_by(&key, &self.issuer)?;
        let der = PrivateKeyDer::try_from(key.serialize_der()).map_err(|_| {
            rcgen::Error::CouldNotParseKeyPair // rcgen's own key always converts
        })?;
        let signer = any_supported_type(&der).map_err(|_| rcgen::Error::CouldNotParseKeyPair)?;
        Ok(Arc::new(CertifiedKey::new(
            vec![cert.der().clone(), self.ca.clone()],
            signer,
        )))
    }
}

/// The authority's parameters, rebuilt identically on every start so the stored key issues
/// leaves under the stored certificate's name. Name constraints keep a trusted Orca authority
/// from vouching for anything outside the domain.
fn authority_params(domain: &str) -> Result<rcgen::CertificateParams, rcgen::Error> {
    let mut params =
        rcgen::CertificateParams::new(vec![domain.to_string(), format!("*.{domain}")])?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("Orca self-signed authority for {domain}"),
    );
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    params.name_constraints = Some(rcgen::NameConstraints {
        permitted_subtrees: vec![rcgen::GeneralSubtree::DnsName(domain.to_string())],
        excluded_subtrees: Vec::new(),
    });
    Ok(params)
}

/// Reads one configured chain and key.
fn load_pair(files: &TlsFiles) -> Result<Entry, TlsError> {
    const CERT_FIX: &str =
        "set [https] cert to a PEM file holding the server certificate first, then its chain";
    const KEY_FIX: &str =
        "set [https] key to a PEM file holding a PKCS#8, RSA or SEC1 (EC) private key";
    let cert_error = |reason: String| TlsError::File {
        what: "certificate chain",
        path: files.cert.clone(),
        reason,
        fix: CERT_FIX,
    };
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| cert_error(e.to_string()))?;
    let Some(leaf) = chain.first() else {
        return Err(cert_error("it holds no CERTIFICATE block".to_string()));
    };
    let names = san::dns_names(leaf);
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::File {
        what: "private key",
        path: files.key.clone(),
        reason: e.to_string(),
        fix: KEY_FIX,
    })?;
    let mismatch = |reason: String, fix| TlsError::Mismatch {
        cert: files.cert.clone(),
        key: files.key.clone(),
        reason,
        fix,
    };
    let signer = any_supported_type(&key).map_err(|e| {
        mismatch(
            e.to_string(),
            "use an RSA, ECDSA (P-256/P-384) or Ed25519 key",
        )
    })?;
    let key = CertifiedKey::new(chain, signer);
    key.keys_match().map_err(|e| {
        mismatch(
            e.to_string(),
            "point [https] key at the key the certificate was issued for",
        )
    })?;
    Ok(Entry {
        names,
        key: Arc::new(key),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(domain: &str, state: &Path) -> Certificates {
        Certificates::load(None, domain, state).unwrap()
    }

    #[test]
    fn self_signed_is_generated_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let certs = self_signed("localhost", dir.path());
        let path = certs.self_signed_path().unwrap();
        let first = std::fs::read(&path).unwrap();
        let key = std::fs::read(dir.path().join("tls/self-signed.key")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(dir.path().join("tls/self-signed.key")).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        }
        self_signed("localhost", dir.path());
        assert_eq!(std::fs::read(&path).unwrap(), first);
        assert_eq!(
            std::fs::read(dir.path().join("tls/self-signed.key")).unwrap(),
            key
        );
        // Another domain: the old authority does not cover it, so a new one is made.
        self_signed("example.com", dir.path());
        let names = san::dns_names(&CertificateDer::from_pem_file(&path).unwrap());
        assert_eq!(names, ["example.com", "*.example.com"]);
    }

    #[test]
    fn names_under_the_domain_get_their_own_leaf() {
        let dir = tempfile::tempdir().unwrap();
        let certs = self_signed("localhost", dir.path());
        let set = certs.current();
        let authority = set.authority.as_ref().unwrap();
        let leaf = authority.leaf_for("demo.localhost").unwrap();
        assert_eq!(
            san::dns_names(leaf.end_entity_cert().unwrap()),
            ["demo.localhost"]
        );
        assert!(Arc::ptr_eq(
            &leaf,
            &authority.leaf_for("demo.localhost").unwrap()
        ));
        assert!(authority.leaf_for("localhost").is_none());
        assert!(authority.leaf_for("evil.example").is_none());
        assert!(authority.leaf_for("xlocalhost").is_none());
    }

    #[test]
    fn leaves_are_renewed_long_before_they_expire() {
        let dir = tempfile::tempdir().unwrap();
        let certs = self_signed("localhost", dir.path());
        let set = certs.current();
        let authority = set.authority.as_ref().unwrap();
        let default = authority.default_leaf().unwrap();
        assert_eq!(
            san::dns_names(default.end_entity_cert().unwrap()),
            ["localhost", "*.localhost"]
        );
        let leaf = authority.leaf_for("demo.localhost").unwrap();
        // Age both cached leaves past the renewal time: the next handshake gets fresh ones.
        let old = SystemTime::now() - LEAF_RENEWAL - Duration::from_secs(1);
        for (at, _) in authority.issued.lock().unwrap().values_mut() {
            *at = old;
        }
        let renewed = authority.leaf_for("demo.localhost").unwrap();
        assert!(!Arc::ptr_eq(&leaf, &renewed));
        assert!(!Arc::ptr_eq(&default, &authority.default_leaf().unwrap()));
        assert!(Arc::ptr_eq(
            &renewed,
            &authority.leaf_for("demo.localhost").unwrap()
        ));
        assert!(LEAF_VALIDITY.whole_days() < 398 && LEAF_RENEWAL.as_secs() < 60 * 24 * 3600);
    }

    fn entry(names: &[&str]) -> Entry {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let pair = rcgen::generate_simple_self_signed(names.clone()).unwrap();
        let der = PrivateKeyDer::try_from(pair.signing_key.serialize_der()).unwrap();
        let key = CertifiedKey::new(
            vec![pair.cert.der().clone()],
            any_supported_type(&der).unwrap(),
        );
        Entry {
            names,
            key: Arc::new(key),
        }
    }

    #[test]
    fn sni_prefers_an_exact_name_then_a_wildcard_then_the_first() {
        let set = CertSet {
            entries: vec![
                entry(&["*.example.com"]),
                entry(&["a.example.com"]),
                entry(&["other.test"]),
            ],
            authority: None,
        };
        let chosen = |sni| {
            let key = set.select(sni).unwrap();
            set.entries
                .iter()
                .position(|e| Arc::ptr_eq(&e.key, &key))
                .unwrap()
        };
        assert_eq!(chosen(Some("a.example.com")), 1);
        assert_eq!(chosen(Some("b.example.com")), 0);
        assert_eq!(chosen(Some("other.test")), 2);
        assert_eq!(chosen(Some("unknown.test")), 0);
        assert_eq!(chosen(None), 0);
    }

    #[test]
    fn a_broken_key_file_names_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        let key = dir.path().join("k.pem");
        let pair = rcgen::generate_simple_self_signed(vec!["a.test".to_string()]).unwrap();
        std::fs::write(&cert, pair.cert.pem()).unwrap();
        std::fs::write(&key, "not a key").unwrap();
        let error = Certificates::from_files(&[TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }])
        .unwrap_err()
        .to_string();
        assert!(error.contains("k.pem"), "{error}");
        assert!(error.contains("PKCS#8"), "{error}");

        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&key, other.serialize_pem()).unwrap();
        let error = Certificates::from_files(&[TlsFiles { cert, key }])
            .unwrap_err()
            .to_string();
        assert!(error.contains("does not fit"), "{error}");
    }
}
