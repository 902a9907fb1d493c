//! Sender certificates and the server certificates that vouch for them.
//!
//! A trust root (pinned by clients) certifies server keys; a server key issues
//! sender certificates binding (account id, device id, identity key, expiry).
//! Clients validate the chain against their pinned roots, their revocation list
//! of server-key ids, and the current time, which the caller passes in because a
//! `no_std` core has no clock.

use alloc::vec::Vec;

use crate::codec::{Reader, Writer};
use crate::crypto::{KEY_LEN, SIGNATURE_LEN, labels};
use crate::error::{CertificateError, DecodeError};
use crate::identity::{DeviceId, IdentityKey, IdentityKeyPair};
use crate::sealed::address::Address;

const SERVER_CERTIFICATE_TAG: u8 = 0x12;
const SENDER_CERTIFICATE_TAG: u8 = 0x13;

/// Encoded length of a server certificate.
pub const SERVER_CERTIFICATE_LEN: usize = 1 + 4 + 4 + KEY_LEN + SIGNATURE_LEN;
/// Most trust roots and revoked server keys a [`TrustStore`] holds.
pub const MAX_TRUST_ENTRIES: usize = 64;

/// A trust root: an id and an Ed25519 public key, pinned by clients.
///
/// The root's private key signs server keys and stays offline; its public key
/// ships with the app.
///
/// ```
/// use ratchetbox::sealed::{CertificateError, TrustRoot, TrustStore};
/// # use ratchetbox::IdentityKeyPair;
/// # use ratchetbox::sealed::*;
/// # let mut rng = ratchetbox::os_rng();
/// # let root = IdentityKeyPair::generate(&mut rng);
/// # let server = IdentityKeyPair::generate(&mut rng);
/// # let alice = IdentityKeyPair::generate(&mut rng);
/// # let server_cert = ServerCertificate::issue(1, &root, 7, server.public_key());
/// # let alice_addr = Address::new(b"alice", 1)?;
/// # let cert = SenderCertificate::issue(
/// #     alice_addr, alice.public_key(), 1_000, &server, server_cert,
/// # )?;
/// // `cert` chains to root 1 through server key 7.
/// let pinned = TrustStore::new(&[TrustRoot::new(1, *root.public_key())])?;
/// assert!(cert.validate(&pinned, 500).is_ok());
/// let other = TrustStore::new(&[TrustRoot::new(2, *root.public_key())])?;
/// assert_eq!(cert.validate(&other, 500), Err(CertificateError::WrongRoot { root_id: 1 }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrustRoot {
    id: u32,
    key: IdentityKey,
}

impl TrustRoot {
    /// A root with its id and public key.
    ///
    /// ```
    /// use ratchetbox::IdentityKey;
    /// use ratchetbox::sealed::TrustRoot;
    /// # let root_key_bytes = ratchetbox::IdentityKeyPair::generate(&mut ratchetbox::os_rng())
    /// #     .public_key()
    /// #     .to_bytes();
    /// // The root's 32-byte public key, as built into the app.
    /// let root = TrustRoot::new(1, IdentityKey::from_bytes(&root_key_bytes)?);
    /// assert_eq!(root.id(), 1);
    /// # Ok::<(), ratchetbox::DecodeError>(())
    /// ```
    pub fn new(id: u32, key: IdentityKey) -> Self {
        Self { id, key }
    }

    /// The root id, which server certificates name.
    ///
    /// ```
    /// # use ratchetbox::sealed::TrustRoot;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let root_key = *ratchetbox::IdentityKeyPair::generate(&mut rng).public_key();
    /// let root = TrustRoot::new(3, root_key);
    /// assert_eq!(root.id(), 3);
    /// ```
    pub fn id(&self) -> u32 {
        self.id
    }
}

/// What a client trusts: pinned roots and revoked server-key ids. It is part
/// of every [`Recipient`](super::Recipient) that opens envelopes.
///
/// ```
/// use ratchetbox::sealed::{CertificateError, TrustRoot, TrustStore};
/// # use ratchetbox::IdentityKeyPair;
/// # use ratchetbox::sealed::*;
/// # let mut rng = ratchetbox::os_rng();
/// # let root = IdentityKeyPair::generate(&mut rng);
/// # let server = IdentityKeyPair::generate(&mut rng);
/// # let alice = IdentityKeyPair::generate(&mut rng);
/// # let server_cert = ServerCertificate::issue(1, &root, 7, server.public_key());
/// # let alice_addr = Address::new(b"alice", 1)?;
/// # let cert = SenderCertificate::issue(
/// #     alice_addr, alice.public_key(), 1_000, &server, server_cert,
/// # )?;
/// let mut trust = TrustStore::new(&[TrustRoot::new(1, *root.public_key())])?;
/// assert!(cert.validate(&trust, 500).is_ok());
/// trust.revoke(7)?; // the server key that issued `cert`
/// assert_eq!(cert.validate(&trust, 500), Err(CertificateError::Revoked { key_id: 7 }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct TrustStore {
    roots: Vec<TrustRoot>,
    revoked: Vec<u32>,
}

impl TrustStore {
    /// A store pinning `roots`.
    ///
    /// ```
    /// use ratchetbox::DecodeError;
    /// use ratchetbox::sealed::{TrustRoot, TrustStore};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let old_key = *ratchetbox::IdentityKeyPair::generate(&mut rng).public_key();
    /// # let new_key = *ratchetbox::IdentityKeyPair::generate(&mut rng).public_key();
    /// let roots = [TrustRoot::new(1, old_key), TrustRoot::new(2, new_key)];
    /// let trust = TrustStore::new(&roots)?;
    /// let clash = [TrustRoot::new(1, old_key), TrustRoot::new(1, new_key)];
    /// let clash = TrustStore::new(&clash);
    /// assert!(matches!(clash, Err(DecodeError::InvalidValue { .. })));
    /// # let _ = trust;
    /// # Ok::<(), DecodeError>(())
    /// ```
    ///
    /// # Errors
    /// [`DecodeError::LimitExceeded`] beyond [`MAX_TRUST_ENTRIES`] roots;
    /// [`DecodeError::InvalidValue`] if two roots share an id. The roots are the
    /// app's own configuration, so either is a bug to fix in it, not to retry.
    pub fn new(roots: &[TrustRoot]) -> Result<Self, DecodeError> {
        if roots.len() > MAX_TRUST_ENTRIES {
            return Err(DecodeError::LimitExceeded {
                field: "trust roots",
                max: MAX_TRUST_ENTRIES as u64,
                found: roots.len() as u64,
            });
        }
        for (i, root) in roots.iter().enumerate() {
            if roots[..i].iter().any(|r| r.id == root.id) {
                return Err(DecodeError::InvalidValue {
                    field: "duplicate trust root id",
                });
            }
        }
        Ok(Self {
            roots: roots.to_vec(),
            revoked: Vec::new(),
        })
    }

    /// Revokes a server key id; certificates it issued stop validating.
    /// Revoking an id twice is a no-op.
    ///
    /// ```
    /// use ratchetbox::sealed::CertificateError;
    /// # use ratchetbox::IdentityKeyPair;
    /// # use ratchetbox::sealed::*;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let root = IdentityKeyPair::generate(&mut rng);
    /// # let server = IdentityKeyPair::generate(&mut rng);
    /// # let alice = IdentityKeyPair::generate(&mut rng);
    /// # let server_cert = ServerCertificate::issue(1, &root, 7, server.public_key());
    /// # let mut trust = TrustStore::new(&[TrustRoot::new(1, *root.public_key())])?;
    /// # let alice_addr = Address::new(b"alice", 1)?;
    /// # let cert = SenderCertificate::issue(
    /// #     alice_addr, alice.public_key(), 1_000, &server, server_cert,
    /// # )?;
    /// trust.revoke(7)?;
    /// trust.revoke(7)?; // no-op
    /// assert_eq!(cert.validate(&trust, 500), Err(CertificateError::Revoked { key_id: 7 }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`DecodeError::LimitExceeded`] beyond [`MAX_TRUST_ENTRIES`] revocations
    /// (nothing changes). A revocation list that long calls for a new trust
    /// root: ship one with the app and drop the old root and its revocations.
    pub fn revoke(&mut self, server_key_id: u32) -> Result<(), DecodeError> {
        if !self.revoked.contains(&server_key_id) {
            if self.revoked.len() == MAX_TRUST_ENTRIES {
                return Err(DecodeError::LimitExceeded {
                    field: "revoked server keys",
                    max: MAX_TRUST_ENTRIES as u64,
                    found: (MAX_TRUST_ENTRIES + 1) as u64,
                });
            }
            self.revoked.push(server_key_id);
        }
        Ok(())
    }

    fn root(&self, id: u32) -> Option<&TrustRoot> {
        self.roots.iter().find(|r| r.id == id)
    }
}

/// A server key certified by a trust root. Every [`SenderCertificate`] embeds
/// the one of the server key that issued it.
///
/// ```
/// use ratchetbox::IdentityKeyPair;
/// use ratchetbox::sealed::{SERVER_CERTIFICATE_LEN, ServerCertificate};
/// # let mut rng = ratchetbox::os_rng();
/// # let root = IdentityKeyPair::generate(&mut rng);
/// # let server = IdentityKeyPair::generate(&mut rng);
/// // Offline, with the root key: certify server key 7 under root 1.
/// let cert = ServerCertificate::issue(1, &root, 7, server.public_key());
/// let bytes = cert.encode();
/// assert_eq!(bytes.len(), SERVER_CERTIFICATE_LEN);
/// assert_eq!(ServerCertificate::decode(&bytes)?, cert);
/// # Ok::<(), ratchetbox::DecodeError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerCertificate {
    root_id: u32,
    key_id: u32,
    key: IdentityKey,
    signature: [u8; SIGNATURE_LEN],
}

impl ServerCertificate {
    /// The trust root signs a server key.
    ///
    /// ```
    /// # use ratchetbox::IdentityKeyPair;
    /// # use ratchetbox::sealed::ServerCertificate;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let root = IdentityKeyPair::generate(&mut rng);
    /// # let server = IdentityKeyPair::generate(&mut rng);
    /// let cert = ServerCertificate::issue(1, &root, 7, server.public_key());
    /// assert_eq!(cert.key_id(), 7);
    /// ```
    pub fn issue(root_id: u32, root: &IdentityKeyPair, key_id: u32, key: &IdentityKey) -> Self {
        let body = server_body(root_id, key_id, key);
        Self {
            root_id,
            key_id,
            key: *key,
            signature: root.sign(&signed_message(labels::SERVER_CERTIFICATE, &body)),
        }
    }

    /// The server key id: what [`TrustStore::revoke`] takes.
    ///
    /// ```
    /// # use ratchetbox::IdentityKeyPair;
    /// # use ratchetbox::sealed::ServerCertificate;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let root = IdentityKeyPair::generate(&mut rng);
    /// # let server = IdentityKeyPair::generate(&mut rng);
    /// let cert = ServerCertificate::issue(1, &root, 42, server.public_key());
    /// assert_eq!(cert.key_id(), 42);
    /// ```
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Encodes the certificate (SPEC.md §9.1): [`SERVER_CERTIFICATE_LEN`] bytes.
    ///
    /// ```
    /// # use ratchetbox::IdentityKeyPair;
    /// # use ratchetbox::sealed::{SERVER_CERTIFICATE_LEN, ServerCertificate};
    /// # let mut rng = ratchetbox::os_rng();
    /// # let root = IdentityKeyPair::generate(&mut rng);
    /// # let server = IdentityKeyPair::generate(&mut rng);
    /// let cert = ServerCertificate::issue(1, &root, 7, server.public_key());
    /// assert_eq!(cert.encode().len(), SERVER_CERTIFICATE_LEN);
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(SERVER_CERTIFICATE_LEN);
        w.bytes(&server_body(self.root_id, self.key_id, &self.key))
            .bytes(&self.signature);
        w.into_vec()
    }

    fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.tag(SERVER_CERTIFICATE_TAG)?;
        Ok(Self {
            root_id: r.u32("root id")?,
            key_id: r.u32("server key id")?,
            key: IdentityKey::from_bytes(&r.array("server key")?)?,
            signature: r.array("server certificate signature")?,
        })
    }

    /// Decodes a server certificate (structure only: its signature is checked
    /// when a sender certificate that embeds it is validated).
    ///
    /// ```
    /// use ratchetbox::DecodeError;
    /// # use ratchetbox::IdentityKeyPair;
    /// # use ratchetbox::sealed::ServerCertificate;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let root = IdentityKeyPair::generate(&mut rng);
    /// # let server = IdentityKeyPair::generate(&mut rng);
    /// let bytes = ServerCertificate::issue(1, &root, 7, server.public_key()).encode();
    /// assert_eq!(ServerCertificate::decode(&bytes)?.key_id(), 7);
    /// let cut = ServerCertificate::decode(&bytes[..40]);
    /// assert!(matches!(cut, Err(DecodeError::Truncated { .. })));
    /// # Ok::<(), DecodeError>(())
    /// ```
    ///
    /// # Errors
    /// [`DecodeError`] for malformed bytes (truncated, trailing bytes, a foreign
    /// tag, an invalid key): do not install the certificate; fetch it again.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let cert = Self::parse(&mut r)?;
        r.finish()?;
        Ok(cert)
    }

    fn validate(&self, trust: &TrustStore) -> Result<(), CertificateError> {
        let root = trust
            .root(self.root_id)
            .ok_or(CertificateError::WrongRoot {
                root_id: self.root_id,
            })?;
        let body = server_body(self.root_id, self.key_id, &self.key);
        root.key
            .verify(
                &signed_message(labels::SERVER_CERTIFICATE, &body),
                &self.signature,
            )
            .map_err(|_| CertificateError::BadSignature)?;
        if trust.revoked.contains(&self.key_id) {
            return Err(CertificateError::Revoked {
                key_id: self.key_id,
            });
        }
        Ok(())
    }
}

fn server_body(
    root_id: u32,
    key_id: u32,
    key: &IdentityKey,
) -> [u8; SERVER_CERTIFICATE_LEN - SIGNATURE_LEN] {
    let mut body = [0u8; SERVER_CERTIFICATE_LEN - SIGNATURE_LEN];
    body[0] = SERVER_CERTIFICATE_TAG;
    body[1..5].copy_from_slice(&root_id.to_be_bytes());
    body[5..9].copy_from_slice(&key_id.to_be_bytes());
    body[9..].copy_from_slice(&key.to_bytes());
    body
}

fn signed_message(label: &[u8], body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(label.len() + body.len());
    m.extend_from_slice(label);
    m.extend_from_slice(body);
    m
}

/// A server-issued certificate binding a sender's address, identity key and expiry.
///
/// A device fetches one from its server (typically valid for a day), keeps it,
/// and passes it to every [`seal`](super::seal); recipients validate it when they
/// [`open`](super::open) the envelope.
///
/// ```
/// # use ratchetbox::IdentityKeyPair;
/// # use ratchetbox::sealed::*;
/// # let mut rng = ratchetbox::os_rng();
/// # let root = IdentityKeyPair::generate(&mut rng);
/// # let server = IdentityKeyPair::generate(&mut rng);
/// # let alice = IdentityKeyPair::generate(&mut rng);
/// # let server_cert = ServerCertificate::issue(1, &root, 7, server.public_key());
/// # let trust = TrustStore::new(&[TrustRoot::new(1, *root.public_key())])?;
/// // Server side: certify Alice's device 1 until t = 1000.
/// let alice_addr = Address::new(b"alice", 1)?;
/// let cert =
///     SenderCertificate::issue(alice_addr, alice.public_key(), 1_000, &server, server_cert)?;
/// // Client side: what arrives is bytes; the chain is checked against pinned roots.
/// let received = SenderCertificate::decode(&cert.encode())?;
/// assert_eq!(received.validate(&trust, 999)?.account_id, b"alice");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SenderCertificate {
    account_id: Vec<u8>,
    device_id: DeviceId,
    identity_key: IdentityKey,
    expires: u64,
    server: ServerCertificate,
    signature: [u8; SIGNATURE_LEN],
}

/// A sender whose certificate validated: who sent a sealed envelope.
///
/// [`open`](super::open) returns it in [`Opened::sender`](super::Opened::sender); compare
/// its identity key with the one the app trusts for that account before
/// showing the message as coming from it.
///
/// ```
/// # use ratchetbox::IdentityKeyPair;
/// # use ratchetbox::sealed::*;
/// # let mut rng = ratchetbox::os_rng();
/// # let root = IdentityKeyPair::generate(&mut rng);
/// # let server = IdentityKeyPair::generate(&mut rng);
/// # let alice = IdentityKeyPair::generate(&mut rng);
/// # let server_cert = ServerCertificate::issue(1, &root, 7, server.public_key());
/// # let trust = TrustStore::new(&[TrustRoot::new(1, *root.public_key())])?;
/// # let alice_addr = Address::new(b"alice", 1)?;
/// # let cert = SenderCertificate::issue(
/// #     alice_addr, alice.public_key(), 1_000, &server, server_cert,
/// # )?;
/// let sender = cert.validate(&trust, 500)?;
/// assert_eq!((&sender.account_id[..], sender.device_id), (&b"alice"[..], 1));
/// assert_eq!(&sender.identity_key, alice.public_key());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedSender {
    /// The sender's account id.
    pub account_id: Vec<u8>,
    /// The sender's device id.
    pub device_id: DeviceId,
    /// The sender's identity key.
    pub identity_key: IdentityKey,
}

impl VerifiedSender {
    /// The sender's device address.
    ///
    /// ```
    /// # use ratchetbox::IdentityKeyPair;
    /// # use ratchetbox::sealed::*;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let root = IdentityKeyPair::generate(&mut rng);
    /// # let server = IdentityKeyPair::generate(&mut rng);
    /// # let alice = IdentityKeyPair::generate(&mut rng);
    /// # let server_cert = ServerCertificate::issue(1, &root, 7, server.public_key());
    /// # let trust = TrustStore::new(&[TrustRoot::new(1, *root.public_key())])?;
    /// # let alice_addr = Address::new(b"alice", 1)?;
    /// # let cert = SenderCertificate::issue(
    /// #     alice_addr, alice.public_key(), 1_000, &server, server_cert,
    /// # )?;
    /// let sender = cert.validate(&trust, 500)?;
    /// assert_eq!(sender.address(), Address::new(b"alice", 1)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn address(&self) -> Address<'_> {
        Address::from_parts(&self.account_id, self.device_id)
    }
}

impl SenderCertificate {
    /// The server signs a sender's address, identity and expiry time.
    ///
    /// ```
    /// # use ratchetbox::IdentityKeyPair;
    /// # use ratchetbox::sealed::*;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let root = IdentityKeyPair::generate(&mut rng);
    /// # let server = IdentityKeyPair::generate(&mut rng);
    /// # let alice = IdentityKeyPair::generate(&mut rng);
    /// # let server_cert = ServerCertificate::issue(1, &root, 7, server.public_key());
    /// # let trust = TrustStore::new(&[TrustRoot::new(1, *root.public_key())])?;
    /// let alice_addr = Address::new(b"alice", 1)?;
    /// let expires = 1_000;
    /// let cert = SenderCertificate::issue(
    ///     alice_addr,
    ///     alice.public_key(),
    ///     expires,
    ///     &server, // the server's signing key
    ///     server_cert,
    /// )?;
    /// assert_eq!((cert.address(), cert.expires()), (alice_addr, expires));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// None in practice: an [`Address`] always holds a valid account id, so the
    /// [`DecodeError`] the signature allows (an empty or too long id) cannot occur.
    pub fn issue(
        sender: Address<'_>,
        identity_key: &IdentityKey,
        expires: u64,
        server_key: &IdentityKeyPair,
        server: ServerCertificate,
    ) -> Result<Self, DecodeError> {
        let mut cert = Self {
            account_id: sender.account_id().to_vec(),
            device_id: sender.device_id(),
            identity_key: *identity_key,
            expires,
            server,
            signature: [0; SIGNATURE_LEN],
        };
        let body = cert.body();
        cert.signature = server_key.sign(&signed_message(labels::SENDER_CERTIFICATE, &body));
        Ok(cert)
    }

    fn body(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(256);
        w.u8(SENDER_CERTIFICATE_TAG)
            .u8(self.account_id.len() as u8)
            .bytes(&self.account_id)
            .u32(self.device_id)
            .bytes(&self.identity_key.to_bytes())
            .u64(self.expires)
            .bytes(&self.server.encode());
        w.into_vec()
    }

    /// The certified identity key.
    ///
    /// ```
    /// # use ratchetbox::IdentityKeyPair;
    /// # use ratchetbox::sealed::*;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let root = IdentityKeyPair::generate(&mut rng);
    /// # let server = IdentityKeyPair::generate(&mut rng);
    /// # let alice = IdentityKeyPair::generate(&mut rng);
    /// # let server_cert = ServerCertificate::issue(1, &root, 7, server.public_key());
    /// # let trust = TrustStore::new(&[TrustRoot::new(1, *root.public_key())])?;
    /// # let alice_addr = Address::new(b"alice", 1)?;
    /// # let cert = SenderCertificate::issue(
    /// #     alice_addr, alice.public_key(), 1_000, &server, server_cert,
    /// # )?;
    /// assert_eq!(cert.identity_key(), alice.public_key());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn identity_key(&self) -> &IdentityKey {
        &self.identity_key
    }

    /// The certified address.
    ///
    /// ```
    /// # use ratchetbox::IdentityKeyPair;
    /// # use ratchetbox::sealed::*;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let root = IdentityKeyPair::generate(&mut rng);
    /// # let server = IdentityKeyPair::generate(&mut rng);
    /// # let alice = IdentityKeyPair::generate(&mut rng);
    /// # let server_cert = ServerCertificate::issue(1, &root, 7, server.public_key());
    /// # let trust = TrustStore::new(&[TrustRoot::new(1, *root.public_key())])?;
    /// # let alice_addr = Address::new(b"alice", 1)?;
    /// # let cert = SenderCertificate::issue(
    /// #     alice_addr, alice.public_key(), 1_000, &server, server_cert,
    /// # )?;
    /// assert_eq!(cert.address(), Address::new(b"alice", 1)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn address(&self) -> Address<'_> {
        Address::from_parts(&self.account_id, self.device_id)
    }

    /// Expiry time (seconds, in the caller's epoch). A device should fetch a new
    /// certificate before this, so that its envelopes still open on arrival.
    ///
    /// ```
    /// # use ratchetbox::IdentityKeyPair;
    /// # use ratchetbox::sealed::*;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let root = IdentityKeyPair::generate(&mut rng);
    /// # let server = IdentityKeyPair::generate(&mut rng);
    /// # let alice = IdentityKeyPair::generate(&mut rng);
    /// # let server_cert = ServerCertificate::issue(1, &root, 7, server.public_key());
    /// # let trust = TrustStore::new(&[TrustRoot::new(1, *root.public_key())])?;
    /// # let alice_addr = Address::new(b"alice", 1)?;
    /// # let cert = SenderCertificate::issue(
    /// #     alice_addr, alice.public_key(), 1_000, &server, server_cert,
    /// # )?;
    /// assert_eq!(cert.expires(), 1_000);
    /// assert!(cert.validate(&trust, cert.expires()).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn expires(&self) -> u64 {
        self.expires
    }

    /// Encodes the certificate (SPEC.md §9.2), as a server hands it to the device.
    ///
    /// ```
    /// # use ratchetbox::IdentityKeyPair;
    /// # use ratchetbox::sealed::*;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let root = IdentityKeyPair::generate(&mut rng);
    /// # let server = IdentityKeyPair::generate(&mut rng);
    /// # let alice = IdentityKeyPair::generate(&mut rng);
    /// # let server_cert = ServerCertificate::issue(1, &root, 7, server.public_key());
    /// # let trust = TrustStore::new(&[TrustRoot::new(1, *root.public_key())])?;
    /// # let alice_addr = Address::new(b"alice", 1)?;
    /// # let cert = SenderCertificate::issue(
    /// #     alice_addr, alice.public_key(), 1_000, &server, server_cert,
    /// # )?;
    /// let bytes = cert.encode();
    /// assert_eq!(SenderCertificate::decode(&bytes)?, cert);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = self.body();
        bytes.extend_from_slice(&self.signature);
        bytes
    }

    /// Decodes a sender certificate (structure only; see [`validate`](Self::validate)).
    ///
    /// ```
    /// use ratchetbox::DecodeError;
    /// # use ratchetbox::IdentityKeyPair;
    /// # use ratchetbox::sealed::*;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let root = IdentityKeyPair::generate(&mut rng);
    /// # let server = IdentityKeyPair::generate(&mut rng);
    /// # let alice = IdentityKeyPair::generate(&mut rng);
    /// # let server_cert = ServerCertificate::issue(1, &root, 7, server.public_key());
    /// # let trust = TrustStore::new(&[TrustRoot::new(1, *root.public_key())])?;
    /// # let alice_addr = Address::new(b"alice", 1)?;
    /// # let cert = SenderCertificate::issue(
    /// #     alice_addr, alice.public_key(), 1_000, &server, server_cert,
    /// # )?;
    /// let bytes = cert.encode();
    /// assert_eq!(SenderCertificate::decode(&bytes)?, cert);
    /// let cut = SenderCertificate::decode(&bytes[..bytes.len() - 1]);
    /// assert!(matches!(cut, Err(DecodeError::Truncated { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`DecodeError`] for malformed bytes (truncated, trailing bytes, a foreign
    /// tag, a bad account id or key). For a certificate fetched from the server,
    /// do not install it and fetch it again.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.tag(SENDER_CERTIFICATE_TAG)?;
        let address = Address::parse(&mut r)?;
        let identity_key = IdentityKey::from_bytes(&r.array("sender identity key")?)?;
        let expires = r.u64("expiry")?;
        let server = ServerCertificate::parse(&mut r)?;
        let signature = r.array("sender certificate signature")?;
        r.finish()?;
        Ok(Self {
            account_id: address.account_id().to_vec(),
            device_id: address.device_id(),
            identity_key,
            expires,
            server,
            signature,
        })
    }

    /// Validates the chain: the server certificate against a pinned root and the
    /// revocation list, this certificate against the server key, and expiry
    /// against `now` (valid while `now < expires`).
    ///
    /// ```
    /// use ratchetbox::sealed::CertificateError;
    /// # use ratchetbox::IdentityKeyPair;
    /// # use ratchetbox::sealed::*;
    /// # let mut rng = ratchetbox::os_rng();
    /// # let root = IdentityKeyPair::generate(&mut rng);
    /// # let server = IdentityKeyPair::generate(&mut rng);
    /// # let alice = IdentityKeyPair::generate(&mut rng);
    /// # let server_cert = ServerCertificate::issue(1, &root, 7, server.public_key());
    /// # let trust = TrustStore::new(&[TrustRoot::new(1, *root.public_key())])?;
    /// # let alice_addr = Address::new(b"alice", 1)?;
    /// # let cert = SenderCertificate::issue(
    /// #     alice_addr, alice.public_key(), 1_000, &server, server_cert,
    /// # )?;
    /// let sender = cert.validate(&trust, 999)?;
    /// assert_eq!(sender.address(), cert.address());
    /// let expired = CertificateError::Expired { expires: 1_000, now: 1_000 };
    /// assert_eq!(cert.validate(&trust, 1_000), Err(expired));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// The [`CertificateError`] naming the first defect found (never
    /// [`Malformed`](CertificateError::Malformed), which is for undecodable bytes):
    /// - [`WrongRoot`](CertificateError::WrongRoot): the chain leads to a root
    ///   the app does not pin; if it is a root the app should know, the app is
    ///   out of date (update it);
    /// - [`BadSignature`](CertificateError::BadSignature): forged or corrupted;
    /// - [`Expired`](CertificateError::Expired): for the device's own
    ///   certificate, fetch a new one (and if a fresh one fails too, check the
    ///   device clock);
    /// - [`Revoked`](CertificateError::Revoked): the issuing server key is
    ///   revoked; for the device's own certificate, fetch a new one.
    ///
    /// A received envelope whose certificate fails is dropped;
    /// [`open`](super::open) does this check for it.
    pub fn validate(
        &self,
        trust: &TrustStore,
        now: u64,
    ) -> Result<VerifiedSender, CertificateError> {
        self.server.validate(trust)?;
        self.server
            .key
            .verify(
                &signed_message(labels::SENDER_CERTIFICATE, &self.body()),
                &self.signature,
            )
            .map_err(|_| CertificateError::BadSignature)?;
        if now >= self.expires {
            return Err(CertificateError::Expired {
                expires: self.expires,
                now,
            });
        }
        Ok(VerifiedSender {
            account_id: self.account_id.clone(),
            device_id: self.device_id,
            identity_key: self.identity_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(expires: u64) -> (TrustStore, SenderCertificate) {
        let root = IdentityKeyPair::from_seed(&[1; 32]);
        let server = IdentityKeyPair::from_seed(&[2; 32]);
        let sender = IdentityKeyPair::from_seed(&[3; 32]);
        let server_cert = ServerCertificate::issue(7, &root, 42, server.public_key());
        let address = Address::new(b"alice", 1).expect("valid");
        let cert =
            SenderCertificate::issue(address, sender.public_key(), expires, &server, server_cert)
                .expect("valid");
        let trust = TrustStore::new(&[TrustRoot::new(7, *root.public_key())]).expect("fits");
        (trust, cert)
    }

    #[test]
    fn valid_chain_round_trips_and_validates() {
        let (trust, cert) = chain(100);
        let decoded = SenderCertificate::decode(&cert.encode()).expect("decodes");
        assert_eq!(decoded, cert);
        let sender = decoded.validate(&trust, 99).expect("valid");
        assert_eq!(sender.account_id, b"alice");
    }

    #[test]
    fn each_defect_has_its_error() {
        let (mut trust, cert) = chain(100);
        assert_eq!(
            cert.validate(&trust, 100),
            Err(CertificateError::Expired {
                expires: 100,
                now: 100
            })
        );
        let other = TrustStore::new(&[TrustRoot::new(8, *cert.identity_key())]).expect("fits");
        assert_eq!(
            cert.validate(&other, 0),
            Err(CertificateError::WrongRoot { root_id: 7 })
        );
        let impostor = TrustStore::new(&[TrustRoot::new(7, *cert.identity_key())]).expect("fits");
        assert_eq!(
            cert.validate(&impostor, 0),
            Err(CertificateError::BadSignature)
        );
        let mut forged = cert.clone();
        forged.expires = 1000;
        assert_eq!(
            forged.validate(&trust, 0),
            Err(CertificateError::BadSignature)
        );
        trust.revoke(42).expect("fits");
        assert_eq!(
            cert.validate(&trust, 0),
            Err(CertificateError::Revoked { key_id: 42 })
        );
    }

    #[test]
    fn truncations_are_malformed() {
        let (_, cert) = chain(100);
        let bytes = cert.encode();
        for len in 0..bytes.len() {
            assert!(SenderCertificate::decode(&bytes[..len]).is_err());
        }
    }
}
