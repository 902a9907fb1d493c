//! Read access to session secrets for known-answer vectors (feature `hazmat`).

use rand_core::CryptoRng;

use super::{Session, SessionConfig};
use crate::bundle::VerifiedBundle;
use crate::crypto::KEY_LEN;
use crate::error::Error;
use crate::identity::IdentityKeyPair;
use crate::x3dh::{self, EphemeralKeyPair};

/// [`Session::initiate`] that also returns the X3DH shared secret SK and the
/// associated data AD.
///
/// # Errors
/// As [`Session::initiate`].
pub fn initiate_traced<R: CryptoRng + ?Sized>(
    rng: &mut R,
    identity: &IdentityKeyPair,
    bundle: &VerifiedBundle,
) -> Result<(Session, [u8; KEY_LEN], [u8; 2 * KEY_LEN]), Error> {
    let handshake = x3dh::initiate(identity, bundle, EphemeralKeyPair::generate(rng))?;
    let secret = *handshake.secret.as_bytes();
    let ad = handshake.associated_data;
    let session =
        Session::from_handshake(rng, identity, bundle, SessionConfig::default(), handshake)?;
    Ok((session, secret, ad))
}

/// The current root key.
pub fn root_key(session: &Session) -> [u8; KEY_LEN] {
    *session.root.as_bytes()
}

/// The current sending chain key.
pub fn sending_chain_key(session: &Session) -> [u8; KEY_LEN] {
    *session.sending.chain.as_bytes()
}

/// The current receiving chain key, if there is a receiving chain.
pub fn receiving_chain_key(session: &Session) -> Option<[u8; KEY_LEN]> {
    session.receiving.as_ref().map(|r| *r.chain.as_bytes())
}
