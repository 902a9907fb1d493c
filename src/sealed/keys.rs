//! The key schedule of sealed envelopes (SPEC.md §9.5–9.6): every key and tag
//! that the sender derives and the recipient derives again. Sealing and
//! opening both call these, so the two sides cannot drift apart.

use zeroize::Zeroizing;

use crate::crypto::{self, KEY_LEN, labels};
use crate::identity::IdentityKey;
use crate::sealed::wire::AUTH_TAG_LEN;

/// Keys of a single-recipient envelope's first (ephemeral) layer:
/// `HKDF(salt = Encode(IK_R) ‖ E, ikm = DH(E, IK_R), info, 64)` → (chain, key).
pub(crate) fn single_ephemeral_keys(
    recipient: &IdentityKey,
    ephemeral: &[u8; KEY_LEN],
    dh: &crypto::DhOutput,
) -> (Zeroizing<[u8; KEY_LEN]>, Zeroizing<[u8; KEY_LEN]>) {
    crypto::hkdf_sha256_pair(
        &[&recipient.to_bytes()[..], &ephemeral[..]].concat(),
        &[dh.as_bytes()],
        labels::SEALED_EPHEMERAL_INFO,
    )
}

/// The second (static) layer's key: `HKDF(salt = chain ‖ C1, ikm = DH(IK_S, IK_R), info, 32)`.
pub(crate) fn single_static_key(
    chain: &[u8; KEY_LEN],
    sender_block: &[u8],
    dh: &crypto::DhOutput,
) -> Zeroizing<[u8; KEY_LEN]> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    crypto::hkdf_sha256(
        &[&chain[..], sender_block].concat(),
        &[dh.as_bytes()],
        labels::SEALED_STATIC_INFO,
        key.as_mut(),
    );
    key
}

/// Content and sender keys of a multi-recipient envelope:
/// `HKDF(salt = 32 zero bytes, ikm = M, info, 64)` → (content key, sender key).
pub(crate) fn multi_content_keys(
    m: &[u8; KEY_LEN],
) -> (Zeroizing<[u8; KEY_LEN]>, Zeroizing<[u8; KEY_LEN]>) {
    crypto::hkdf_sha256_pair(&[0u8; KEY_LEN], &[m], labels::SEALED_MULTI_CONTENT_INFO)
}

/// `K_i = HKDF(salt = Encode(IK_i) ‖ E, ikm = DH(E, IK_i), info = WRAP_INFO ‖
/// address_i, 32)`. The devices of one account share `IK_i`, so the address is
/// what gives each entry its own key (every entry is sealed with the zero nonce).
pub(crate) fn multi_wrap_key(
    recipient: &IdentityKey,
    e_pub: &[u8],
    address: &[u8],
    dh: &crypto::DhOutput,
) -> Zeroizing<[u8; KEY_LEN]> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    crypto::hkdf_sha256(
        &[&recipient.to_bytes()[..], e_pub].concat(),
        &[dh.as_bytes()],
        &[labels::SEALED_MULTI_WRAP_INFO, address].concat(),
        key.as_mut(),
    );
    key
}

/// `A_i = HKDF(salt = Encode(IK_S) ‖ Encode(IK_i), ikm = DH(IK_S, IK_i), info, 32)`:
/// the key of recipient `i`'s sender authentication tag.
pub(crate) fn multi_auth_key(
    sender: &IdentityKey,
    recipient: &IdentityKey,
    dh: &crypto::DhOutput,
) -> Zeroizing<[u8; KEY_LEN]> {
    let mut auth_key = Zeroizing::new([0u8; KEY_LEN]);
    crypto::hkdf_sha256(
        &[&sender.to_bytes()[..], &recipient.to_bytes()[..]].concat(),
        &[dh.as_bytes()],
        labels::SEALED_MULTI_AUTH_INFO,
        auth_key.as_mut(),
    );
    auth_key
}

/// `T_i = HMAC(A_i, E ‖ address_i ‖ W_i ‖ SHA-256(shared))[0..16]`.
pub(crate) fn multi_auth_tag(
    auth_key: &[u8; KEY_LEN],
    e_pub: &[u8],
    address: &[u8],
    wrapped: &[u8],
    shared_hash: &[u8; 32],
) -> [u8; AUTH_TAG_LEN] {
    let mac = crypto::hmac_sha256(auth_key, &[e_pub, address, wrapped, shared_hash]);
    let mut tag = [0u8; AUTH_TAG_LEN];
    tag.copy_from_slice(&mac[..AUTH_TAG_LEN]);
    tag
}
