//! The caller's database key and the two keys derived from it.

use core::fmt;

use hmac::{KeyInit, Mac};
use ratchetbox::at_rest::StorageKey;
use zeroize::Zeroizing;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

const SEALING_LABEL: &[u8] = b"ratchetbox-sqlite v1 sealing key";
const INDEX_LABEL: &[u8] = b"ratchetbox-sqlite v1 row-name key";

/// The 32-byte key a database is sealed under. The app keeps it in the
/// platform keystore (Keychain, Android Keystore), never beside the file.
///
/// Two independent keys are derived from it with HMAC-SHA256: the
/// [`StorageKey`] every row is sealed under, and the key that turns account and
/// group ids into row names.
///
/// ```
/// use ratchetbox_sqlite::DatabaseKey;
/// let key = DatabaseKey::generate(&mut ratchetbox::os_rng());
/// let same = DatabaseKey::from_bytes([7; 32]);
/// # let _ = (key, same);
/// ```
pub struct DatabaseKey(Zeroizing<[u8; 32]>);

impl DatabaseKey {
    /// A database key from its bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A fresh random database key.
    pub fn generate<R: ratchetbox::rand_core::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(bytes.as_mut());
        Self(bytes)
    }

    pub(crate) fn derive(&self) -> Keys {
        Keys {
            sealing: StorageKey::from_bytes(*hmac(&self.0, &[SEALING_LABEL])),
            index: hmac(&self.0, &[INDEX_LABEL]),
        }
    }
}

impl fmt::Debug for DatabaseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DatabaseKey([redacted])")
    }
}

/// The keys one open store works with.
pub(crate) struct Keys {
    pub(crate) sealing: StorageKey,
    index: Zeroizing<[u8; 32]>,
}

impl Keys {
    /// The row name of an id in `table`: HMAC-SHA256(index key, table ‖ 0 ‖ id).
    pub(crate) fn row_name(&self, table: &[u8], id: &[u8]) -> [u8; 32] {
        *hmac(&self.index, &[table, &[0], id])
    }
}

/// HMAC-SHA256 with a 32-byte key. HMAC zero-pads keys shorter than its
/// 64-byte block, so passing the padded block is the same MAC and cannot fail.
fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    let mut block = Zeroizing::new([0u8; 64]);
    block[..32].copy_from_slice(key);
    let mut mac = <HmacSha256 as KeyInit>::new((&*block).into());
    for part in parts {
        mac.update(part);
    }
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&mac.finalize().into_bytes());
    out
}
