//! Read access to session secrets for known-answer vectors (feature `hazmat`).

use rand_core::CryptoRng;

use super::{Session, SessionConfig};
use crate::account::{AccountId, DeviceAddress};
use crate::bundle::VerifiedBundle;
use crate::crypto::KEY_LEN;
use crate::error::Error;
use crate::local::LocalDevice;
use crate::x3dh::{self, AD_LEN, EphemeralKeyPair};

/// [`Session::initiate`] that also returns the X3DH shared secret SK and the
/// session associated data AD.
///
/// # Errors
/// As [`Session::initiate`].
pub fn initiate_traced<R: CryptoRng + ?Sized>(
    rng: &mut R,
    local: &LocalDevice,
    peer: &AccountId,
    bundle: &VerifiedBundle,
) -> Result<(Session, [u8; KEY_LEN], [u8; AD_LEN]), Error> {
    let peer = DeviceAddress::new(*peer, bundle.device_id());
    let ephemeral = EphemeralKeyPair::generate(rng);
    let handshake = x3dh::initiate(rng, local, &peer, bundle, ephemeral)?;
    let secret = *handshake.secret.as_bytes();
    let ad = handshake.associated_data;
    let session = Session::from_handshake(
        rng,
        local,
        peer,
        bundle,
        SessionConfig::default(),
        handshake,
    )?;
    Ok((session, secret, ad))
}

/// The session's associated data AD (SPEC.md §5.1).
pub fn associated_data(session: &Session) -> [u8; AD_LEN] {
    session.associated_data
}

/// The current root key.
pub fn root_key(session: &Session) -> [u8; KEY_LEN] {
    *session.root.as_bytes()
}

/// The current sending chain key (`None` while the sending half of a DH
/// ratchet step is due: it is made at the next send).
pub fn sending_chain_key(session: &Session) -> Option<[u8; KEY_LEN]> {
    match &session.sending {
        super::Sending::Ready(sending) => Some(*sending.chain.as_bytes()),
        super::Sending::Due => None,
    }
}

/// The current receiving chain key, if there is a receiving chain.
pub fn receiving_chain_key(session: &Session) -> Option<[u8; KEY_LEN]> {
    session.receiving.as_ref().map(|r| *r.chain.as_bytes())
}
