#!/usr/bin/env python3
"""Independent ratchetbox v2 implementation written from SPEC.md only, without
reading the Rust source: the proof that SPEC.md is precise enough to interoperate.
Reproduces tests/vectors/session_v2.txt byte for byte (SPEC §8: the bundle, the PQXDH
secret and AD, the four messages, the root and chain keys), decrypts what it stores,
and checks the v2 rules a pure-spec implementation can test: canonical X25519 keys
(§2.3), the ML-KEM modulus check (§2.4), both bundle signatures (§4.1), torsion-free
identity keys (§3.1), the hashed session AD with the KEM key and ciphertext (§5.1), a
wrong KEM ciphertext failing like a forgery (§2.4, §5.6), the deferred sending step
(§5.4-§5.7), remembered base keys and the replay of a last-resort KEM prekey message
(§3.2, §5.6), and the stored session and prekey store sizes (§6.2, §6.3). Also holds
the shared primitives (§1-§3, and XChaCha20-Poly1305 built from a pure-Python
HChaCha20) used by sealed_check.py, devices_check.py and group_check.py. Needs the
`cryptography` package and kyber-py (ML-KEM-768, checked by kem_check.py).
Run: python3 tests/interop/spec_check.py"""
import copy, hashlib, os, struct, sys
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF as _HKDF
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.exceptions import InvalidSignature, InvalidTag
from kyber_py.ml_kem import ML_KEM_768

VEC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vectors", "session_v2.txt")
RAW = dict(encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw)

# ---------------- §2 primitives / constants ----------------
PQXDH_INFO = b"ratchetbox v2 PQXDH X25519 SHA-256 ML-KEM-768"
SESSION_AD_LABEL = b"ratchetbox v2 session"
ROOT_INFO = b"ratchetbox v2 root ratchet"
X3DH_PREFIX = b"\xff" * 32
KEY_TYPE_X25519 = b"\x05"
KEY_TYPE_ML_KEM_768 = b"\x0a"
assert (len(PQXDH_INFO), len(SESSION_AD_LABEL), len(ROOT_INFO)) == (45, 21, 26)
U32_MAX = 2**32 - 1
TAG_RATCHET, TAG_PREKEY, TAG_BUNDLE = 0x04, 0x05, 0x06
u8 = lambda v: bytes([v])
u32 = lambda v: struct.pack(">I", v)

class ProtoError(Exception): pass

def clamp(k):
    b = bytearray(k); b[0] &= 248; b[31] &= 127; b[31] |= 64; return bytes(b)

def x25519_pub(priv):
    return X25519PrivateKey.from_private_bytes(priv).public_key().public_bytes(**RAW)

P = 2**255 - 19

def is_canonical_x25519(pub):
    """§2.3: bit 255 clear and u < p."""
    return len(pub) == 32 and pub[31] & 0x80 == 0 and int.from_bytes(pub, "little") < P

def check_x25519(pub, err="non-canonical key"):
    if not is_canonical_x25519(pub): raise ProtoError(err)
    return pub

def DH(priv, pub):
    try:
        out = X25519PrivateKey.from_private_bytes(priv).exchange(X25519PublicKey.from_public_bytes(pub))
    except ValueError:  # cryptography refuses all-zero output itself
        raise ProtoError("non-contributory DH")
    if out == bytes(32): raise ProtoError("non-contributory DH")
    return out

def HKDF(salt, ikm, info, L):
    return _HKDF(algorithm=hashes.SHA256(), length=L, salt=salt, info=info).derive(ikm)

def HMAC(k, m):
    h = hmac.HMAC(k, hashes.SHA256()); h.update(m); return h.finalize()

def AEAD_SealN(k, n, aad, p): return ChaCha20Poly1305(k).encrypt(n, p, aad)
def AEAD_OpenN(k, n, aad, c):
    try: return ChaCha20Poly1305(k).decrypt(n, c, aad)
    except InvalidTag: raise ProtoError("decryption failed")
# the zero-nonce form, only for single-use keys (§2.2)
def AEAD_Seal(k, aad, p): return AEAD_SealN(k, bytes(12), aad, p)
def AEAD_Open(k, aad, c): return AEAD_OpenN(k, bytes(12), aad, c)

# ---------------- ML-KEM-768 (§2 KEM_*, §2.4) via kyber-py ----------------
KEM_EK_LEN, KEM_DK_LEN, KEM_CT_LEN, KEM_Q = 1184, 2400, 1088, 3329

def KEM_KeyGen(seed):
    """§2: ML-KEM.KeyGen_internal(d = seed[0..32], z = seed[32..64]) -> (ek, dk)."""
    assert len(seed) == 64
    return ML_KEM_768._keygen_internal(seed[:32], seed[32:])

def KEM_Encaps(ek, m):
    """§2: ML-KEM.Encaps_internal(ek, m) -> (SS, CT)."""
    assert len(m) == 32
    ss, ct = ML_KEM_768._encaps_internal(ek, m)
    return ss, ct

def KEM_Decaps(dk, ct):
    """§2: ML-KEM.Decaps_internal(dk, CT); never fails (implicit rejection)."""
    return ML_KEM_768._decaps_internal(dk, ct)

def kem_modulus_ok(ek):
    """§2.4: ByteDecode_12(ek[0..1152]): 768 12-bit integers, least significant bit first,
    each below q = 3329; rho = ek[1152..1184] unrestricted."""
    if len(ek) != KEM_EK_LEN: return False
    t = int.from_bytes(ek[:1152], "little")
    return all((t >> (12 * i)) & 0xFFF < KEM_Q for i in range(768))

def EncodeKEM(ek): return KEY_TYPE_ML_KEM_768 + ek          # §2.4, 1185 bytes
def sha256(b): return hashlib.sha256(b).digest()

def set_coefficient(ek, i, v):
    """ek with 12-bit integer i (bits 12i .. 12i+11) replaced by v (for the modulus-check tests)."""
    t = int.from_bytes(ek[:1152], "little")
    t = (t & ~(0xFFF << (12 * i))) | (v << (12 * i))
    return t.to_bytes(1152, "little") + ek[1152:]

# ---------------- HChaCha20 / XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03), pure Python ----------------
_SIGMA = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)
_M32 = 0xFFFFFFFF

def _qr(s, a, b, c, d):
    s[a] = (s[a] + s[b]) & _M32; s[d] ^= s[a]; s[d] = ((s[d] << 16) | (s[d] >> 16)) & _M32
    s[c] = (s[c] + s[d]) & _M32; s[b] ^= s[c]; s[b] = ((s[b] << 12) | (s[b] >> 20)) & _M32
    s[a] = (s[a] + s[b]) & _M32; s[d] ^= s[a]; s[d] = ((s[d] << 8) | (s[d] >> 24)) & _M32
    s[c] = (s[c] + s[d]) & _M32; s[b] ^= s[c]; s[b] = ((s[b] << 7) | (s[b] >> 25)) & _M32

def hchacha20(key, nonce16):
    """§2.2 of the draft: the ChaCha20 state with the 16-byte nonce in words 12..15, 20
    rounds, no final addition; output words 0..3 and 12..15, little-endian."""
    assert len(key) == 32 and len(nonce16) == 16
    s = list(_SIGMA) + list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))
    for _ in range(10):
        _qr(s, 0, 4, 8, 12); _qr(s, 1, 5, 9, 13); _qr(s, 2, 6, 10, 14); _qr(s, 3, 7, 11, 15)
        _qr(s, 0, 5, 10, 15); _qr(s, 1, 6, 11, 12); _qr(s, 2, 7, 8, 13); _qr(s, 3, 4, 9, 14)
    return struct.pack("<8I", *(s[0:4] + s[12:16]))

def _hchacha20_via_library(key, nonce16):
    """Independent cross-check: one ChaCha20 block (library) minus its input state is the
    round output; the library's 16-byte nonce is exactly state words 12..15."""
    ks = Cipher(algorithms.ChaCha20(key, nonce16), mode=None).encryptor().update(bytes(64))
    out = struct.unpack("<16I", ks)
    st = list(_SIGMA) + list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))
    w = [(o - i) & _M32 for o, i in zip(out, st)]
    return struct.pack("<8I", *(w[0:4] + w[12:16]))

def XAEAD_Seal(k, n, aad, p):
    """§2: ChaCha20-Poly1305(HChaCha20(k, n[0..16]), 0x00000000 ‖ n[16..24], aad, p)."""
    assert len(n) == 24
    return ChaCha20Poly1305(hchacha20(k, n[:16])).encrypt(bytes(4) + n[16:], p, aad)

def XAEAD_Open(k, n, aad, c):
    assert len(n) == 24
    try: return ChaCha20Poly1305(hchacha20(k, n[:16])).decrypt(bytes(4) + n[16:], c, aad)
    except InvalidTag: raise ProtoError("decryption failed")

def xchacha_selftest():
    """Returns a list of (name, ok) for the draft's known answers."""
    res = []
    k = bytes(range(32)); n = bytes.fromhex("000000090000004a0000000031415927")
    want = bytes.fromhex("82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc")
    res.append(("HChaCha20 draft-irtf-cfrg-xchacha-03 §2.2.1 test vector", hchacha20(k, n) == want))
    ok = all(hchacha20(kk, nn) == _hchacha20_via_library(kk, nn) for kk, nn in
             [(k, n)] + [(hashlib.sha256(b"k%d" % i).digest(), hashlib.sha256(b"n%d" % i).digest()[:16]) for i in range(8)])
    res.append(("HChaCha20 agrees with a library ChaCha20 block minus its input (9 inputs)", ok))
    k = bytes(range(0x80, 0xA0)); n = bytes(range(0x40, 0x58)); aad = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
    pt = (b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for "
          b"the future, sunscreen would be it.")
    want = bytes.fromhex(
        "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa644"
        "0bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e"
        "3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e"
        "c0875924c1c7987947deafd8780acf49")
    res.append(("XChaCha20-Poly1305 draft-irtf-cfrg-xchacha-03 §A.3.1 AEAD test vector",
                XAEAD_Seal(k, n, aad, pt) == want and XAEAD_Open(k, n, aad, want) == pt))
    return res

# ---------------- pure-Python Ed25519 point arithmetic (strict checks, birational map) ----------------
L = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
IDENT = (0, 1, 1, 0)

def pt_add(a, b):
    X1, Y1, Z1, T1 = a; X2, Y2, Z2, T2 = b
    A = (Y1 - X1) * (Y2 - X2) % P; B = (Y1 + X1) * (Y2 + X2) % P
    C = 2 * T1 * T2 * D % P; Dd = 2 * Z1 * Z2 % P
    E, F, G, H = B - A, Dd - C, Dd + C, B + A
    return (E * F % P, G * H % P, F * G % P, E * H % P)

def pt_neg(a): return ((-a[0]) % P, a[1], a[2], (-a[3]) % P)

def pt_mul(s, pt):
    q = IDENT
    while s:
        if s & 1: q = pt_add(q, pt)
        pt = pt_add(pt, pt); s >>= 1
    return q

def pt_eq(a, b):
    return (a[0] * b[2] - b[0] * a[2]) % P == 0 and (a[1] * b[2] - b[1] * a[2]) % P == 0

def pt_encode(pt):
    zi = pow(pt[2], P - 2, P); x = pt[0] * zi % P; y = pt[1] * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")

def pt_decode(s):
    """RFC 8032 §5.1.3 decoding; returns None if not a point. A non-canonical y (>= p) is
    reduced so that the caller detects non-canonicity by re-encoding (as §3.1 defines it)."""
    v = int.from_bytes(s, "little"); sign = v >> 255; y = (v & ((1 << 255) - 1)) % P
    u = (y * y - 1) % P; w = (D * y * y + 1) % P
    x = (u * pow(w, 3, P) * pow(u * pow(w, 7, P), (P - 5) // 8, P)) % P
    if (w * x * x - u) % P != 0:
        x = x * SQRT_M1 % P
        if (w * x * x - u) % P != 0: return None
    if x == 0 and sign: return None  # RFC 8032: x = 0 with sign bit set is invalid
    if (x & 1) != sign: x = P - x
    return (x, y, 1, x * y % P)

B_PT = pt_decode((4 * pow(5, P - 2, P) % P).to_bytes(32, "little"))

def small_order(pt): return pt_eq(pt_mul(8, pt), IDENT)
def torsion_free(pt): return pt_eq(pt_mul(L, pt), IDENT)

def valid_point(enc):
    """§3.1: canonical encoding (re-encoding gives the same bytes), not of small order and
    torsion-free ([ℓ]A = identity). Returns the point or None."""
    if len(enc) != 32: return None
    pt = pt_decode(enc)
    if pt is None or pt_encode(pt) != enc: return None
    if small_order(pt) or not torsion_free(pt): return None
    return pt

def verify_strict(pk, msg, sig):
    """§2.1, rule by rule."""
    if len(sig) != 64: return False
    A = valid_point(pk)
    if A is None: return False
    Rb, S = sig[:32], int.from_bytes(sig[32:], "little")
    if not S < L: return False                                         # rule 1
    R = pt_decode(Rb)
    if R is None or small_order(R): return False                       # rule 2
    k = int.from_bytes(hashlib.sha512(Rb + pk + msg).digest(), "little") % L
    ok = pt_encode(pt_add(pt_mul(S, B_PT), pt_neg(pt_mul(k, A)))) == Rb  # rule 3
    try:  # cross-check with the library's (OpenSSL) verifier on keys that pass §3.1
        Ed25519PublicKey.from_public_bytes(pk).verify(sig, msg); lib = True
    except InvalidSignature: lib = False
    # strict rejects a superset of what OpenSSL rejects (e.g. small-order R), never less
    assert lib or not ok, "pure-Python strict verifier accepts what the library rejects"
    return ok

def ed_to_x25519_pub(enc):
    y = int.from_bytes(enc, "little") & ((1 << 255) - 1)
    return ((1 + y) * pow((1 - y) % P, P - 2, P) % P).to_bytes(32, "little")

def torsion_point():
    """A point of order exactly 8: [ℓ]Q for a point Q off the prime-order subgroup."""
    y = 2
    while True:
        Q = pt_decode(y.to_bytes(32, "little"))
        if Q is not None:
            T = pt_mul(L, Q)
            if not pt_eq(pt_mul(4, T), IDENT): return T
        y += 1

# ---------------- §3 keys ----------------
class Identity:
    def __init__(self, seed):
        self.seed = seed
        self.sk = Ed25519PrivateKey.from_private_bytes(seed)
        self.enc = self.sk.public_key().public_bytes(**RAW)           # Encode(IK)
        self.x_priv = clamp(hashlib.sha512(seed).digest()[:32])        # §3.1 private
        self.x_pub = ed_to_x25519_pub(self.enc)                        # §3.1 public
        assert x25519_pub(self.x_priv) == self.x_pub, "birational map / scalar mismatch"
    def sign(self, m): return self.sk.sign(m)

def remote_identity(enc):
    if valid_point(enc) is None: raise ProtoError("invalid identity key")
    return ed_to_x25519_pub(enc)

class RNG:
    """A scripted CSPRNG: yields the vector's draws in order, each of the stated size."""
    def __init__(self, draws): self.draws = list(draws)
    def take(self, n):
        d = self.draws.pop(0); assert len(d) == n, f"draw of {len(d)} bytes where {n} expected"; return d
    def generate_dh(self):
        priv = clamp(self.take(32)); return (priv, x25519_pub(priv))
    def nonce(self): return self.take(12)
    def next_u32(self): return struct.unpack("<I", self.take(4))[0]   # little-endian (group vector header)

def address(acct, dev):
    """§9.1 / §1 Address(x)."""
    if not 1 <= len(acct) <= 64: raise ProtoError("malformed")
    return u8(len(acct)) + acct + u32(dev)

# ---------------- §4 wire formats ----------------
def encode_bundle(ik_enc, dev, spk_id, spk_pub, spk_sig, kem_id, pqpk, kem_sig, opk=None):
    """§4.1: 1390 bytes, or 1426 with a one-time prekey."""
    out = (u8(TAG_BUNDLE) + ik_enc + u32(dev) + u32(spk_id) + spk_pub + spk_sig +
           u32(kem_id) + pqpk + kem_sig)
    return out + (b"\x01" + u32(opk[0]) + opk[1] if opk else b"\x00")

class Reader:
    def __init__(self, b): self.b, self.i = b, 0
    def take(self, n):
        if self.i + n > len(self.b): raise ProtoError("truncated")
        r = self.b[self.i:self.i + n]; self.i += n; return r
    def u32(self): return struct.unpack(">I", self.take(4))[0]
    def flag(self):
        f = self.take(1)[0]
        if f > 1: raise ProtoError("malformed")
        return f == 1
    def x25519(self): return check_x25519(self.take(32))
    def identity(self):
        ik = self.take(32); remote_identity(ik); return ik
    def kem_key(self):
        ek = self.take(KEM_EK_LEN)
        if not kem_modulus_ok(ek): raise ProtoError("invalid KEM key")
        return ek
    def rest(self): r = self.b[self.i:]; self.i = len(self.b); return r
    def end(self):
        if self.i != len(self.b): raise ProtoError("trailing bytes")

def decode_bundle(b, expected_ik=None):
    """§4.1, fields checked in byte order (identity key, canonical prekeys, the KEM key's
    modulus check); then both signatures strictly (signed prekey's first, then the KEM
    prekey's), then the expected identity."""
    r = Reader(b)
    if r.take(1) != u8(TAG_BUNDLE): raise ProtoError("unknown tag")
    ik = r.identity(); dev = r.u32(); spk_id = r.u32(); spk = r.x25519(); sig = r.take(64)
    kem_id = r.u32(); pqpk = r.kem_key(); kem_sig = r.take(64)
    opk = (r.u32(), r.x25519()) if r.flag() else None
    r.end()
    if not verify_strict(ik, KEY_TYPE_X25519 + spk, sig): raise ProtoError("invalid signature")
    if not verify_strict(ik, EncodeKEM(pqpk), kem_sig): raise ProtoError("invalid signature")
    if expected_ik is not None and expected_ik != ik: raise ProtoError("identity mismatch")
    return dict(ik=ik, dev=dev, spk_id=spk_id, spk=spk, sig=sig, kem_id=kem_id, pqpk=pqpk,
                kem_sig=kem_sig, opk=opk)

def decode_ratchet_msg(b):
    """§4.2/§4.3. A message shorter than 69 bytes is 'unknown tag' if its first byte is not
    0x04, else 'truncated' (§4.3; an empty message is truncated)."""
    if len(b) < 69:
        if len(b) >= 1 and b[0] != TAG_RATCHET: raise ProtoError("unknown tag")
        raise ProtoError("truncated")
    r = Reader(b)
    if r.take(1) != u8(TAG_RATCHET): raise ProtoError("unknown tag")
    dh = r.x25519(); pn = r.u32(); n = r.u32(); nonce = r.take(12)
    return b[:53], dh, pn, n, nonce, r.rest()

PREKEY_PREFIX_LEN = 1166

def encode_prekey_prefix(ik_a, ek, spk_id, kem_id, ct, opk_id):
    """§4.4 prefix (1166 bytes)."""
    out = (u8(TAG_PREKEY) + ik_a + ek + u32(spk_id) + u32(kem_id) + ct +
           (b"\x01" + u32(opk_id) if opk_id is not None else b"\x00" + u32(0)))
    assert len(out) == PREKEY_PREFIX_LEN
    return out

def decode_prekey_msg(b):
    """§4.4: prefix fields in byte order, then the embedded ratchet message."""
    r = Reader(b)
    if r.take(1) != u8(TAG_PREKEY): raise ProtoError("unknown tag")
    ik = r.identity(); ek = r.x25519(); spk_id = r.u32(); kem_id = r.u32(); ct = r.take(KEM_CT_LEN)
    has = r.flag(); opk_id = r.u32()
    if not has and opk_id != 0: raise ProtoError("malformed")
    inner = r.rest(); decode_ratchet_msg(inner)
    return dict(ik=ik, ek=ek, spk_id=spk_id, kem_id=kem_id, ct=ct, opk_id=(opk_id if has else None),
                inner=inner)

# ---------------- §5 protocol ----------------
class Handshake:
    """§5.4 handshake_prekeys: the ids the handshake used and the two hashes."""
    def __init__(self, spk_id, kem_id, opk_id, pqpk_hash, ct_hash):
        self.spk_id, self.kem_id, self.opk_id, self.pqpk_hash, self.ct_hash = spk_id, kem_id, opk_id, pqpk_hash, ct_hash
    def key(self): return (self.spk_id, self.kem_id, self.opk_id, self.pqpk_hash, self.ct_hash)
    def __eq__(self, o): return isinstance(o, Handshake) and self.key() == o.key()

def session_ad(ik_a, ik_b, addr_a, addr_b, ek, hs):
    """§5.1 AD (32 bytes)."""
    return sha256(SESSION_AD_LABEL + ik_a + ik_b + addr_a + addr_b + ek + u32(hs.spk_id) +
                  u32(hs.kem_id) + hs.pqpk_hash + hs.ct_hash +
                  (b"\x01" + u32(hs.opk_id) if hs.opk_id is not None else b"\x00" + u32(0)))

def pqxdh_initiator(me, ek_priv, bundle, ss):
    ik_b_x = remote_identity(bundle["ik"])
    ikm = X3DH_PREFIX + DH(me.x_priv, bundle["spk"]) + DH(ek_priv, ik_b_x) + DH(ek_priv, bundle["spk"])
    if bundle["opk"]: ikm += DH(ek_priv, bundle["opk"][1])
    return HKDF(bytes(32), ikm + ss, PQXDH_INFO, 32)

def pqxdh_responder(me, spk_priv, opk_priv, ik_a_enc, ek_pub, ss):
    ik_a_x = remote_identity(ik_a_enc)
    ikm = X3DH_PREFIX + DH(spk_priv, ik_a_x) + DH(me.x_priv, ek_pub) + DH(spk_priv, ek_pub)
    if opk_priv is not None: ikm += DH(opk_priv, ek_pub)
    return HKDF(bytes(32), ikm + ss, PQXDH_INFO, 32)

def KDF_RK(rk, dh_out):
    o = HKDF(rk, dh_out, ROOT_INFO, 64); return o[:32], o[32:]

def KDF_CK(ck): return HMAC(ck, b"\x01"), HMAC(ck, b"\x02")

class Session:
    MAX_SKIP, MAX_STORED = 1000, 2000

    @classmethod
    def initiator(cls, me, my_addr, rng, bundle, peer_account):
        """§5.1 (initiator side) and §5.5 for Alice. Draws: EK_A, m, the first DHs."""
        s = cls(); s.rng = rng; s.me = me; s.role = "initiator"
        s.local_addr, s.remote_addr = my_addr, address(peer_account, bundle["dev"])
        s.remote_ik = bundle["ik"]
        ek_priv, ek_pub = rng.generate_dh()                      # draw: EK_A
        m = rng.take(32)                                         # draw: m
        s.SS, ct = KEM_Encaps(bundle["pqpk"], m)
        s.SK = pqxdh_initiator(me, ek_priv, bundle, s.SS)
        s.base_key = ek_pub
        s.hs = Handshake(bundle["spk_id"], bundle["kem_id"], bundle["opk"][0] if bundle["opk"] else None,
                         sha256(EncodeKEM(bundle["pqpk"])), sha256(ct))
        s.AD = session_ad(me.enc, bundle["ik"], s.local_addr, s.remote_addr, ek_pub, s.hs)
        s.DHs = rng.generate_dh()                                # draw: first DHs
        s.RK, s.CKs = KDF_RK(s.SK, DH(s.DHs[0], bundle["spk"]))
        s.DHr = None; s.CKr = None; s.Ns = s.Nr = s.PN = 0       # §5.5: DHr = none
        s.due = False
        s.pending = ct                                           # awaiting reply
        s.prev, s.skipped = [], []
        return s

    @classmethod
    def responder(cls, me, my_addr, rng, spk, opk_priv, ik_a_enc, ek_pub, sender_addr, hs, ss):
        """§5.1 (responder side) and §5.5 for Bob, before the embedded message is processed."""
        s = cls(); s.rng = rng; s.me = me; s.role = "responder"
        s.local_addr, s.remote_addr = my_addr, sender_addr
        s.SS = ss
        s.SK = pqxdh_responder(me, spk[0], opk_priv, ik_a_enc, ek_pub, ss)
        s.AD = session_ad(ik_a_enc, me.enc, sender_addr, my_addr, ek_pub, hs)
        s.base_key, s.remote_ik, s.hs = ek_pub, ik_a_enc, hs
        s.DHs = spk; s.RK = s.SK; s.DHr = None; s.CKr = None; s.CKs = None
        s.Ns = s.Nr = s.PN = 0; s.due = False; s.pending = None; s.prev, s.skipped = [], []
        return s

    def state(self):
        """Everything but the RNG and identity, for 'nothing changed' checks."""
        return copy.deepcopy({k: v for k, v in vars(self).items() if k not in ("rng", "me")})

    def encrypt(self, pt):
        """§5.6 sending."""
        if self.due:                                             # the sending half of the last DH step
            self.DHs = self.rng.generate_dh()                    # draw: the new DHs
            self.RK, self.CKs = KDF_RK(self.RK, DH(self.DHs[0], self.DHr))
            self.Ns = 0; self.due = False
        if self.Ns == U32_MAX: raise ProtoError("counter exhausted")
        n = self.rng.nonce()                                     # draw: the message's nonce
        H = u8(TAG_RATCHET) + self.DHs[1] + u32(self.PN) + u32(self.Ns) + n
        mk, self.CKs = KDF_CK(self.CKs)
        out = H + AEAD_SealN(mk, n, self.AD + H, pt)
        self.Ns += 1
        if self.pending is not None:
            out = encode_prekey_prefix(self.me.enc, self.base_key, self.hs.spk_id, self.hs.kem_id,
                                       self.pending, self.hs.opk_id) + out
        return out

    def _chain(self, ck, start, end, dh):
        keys = []
        for i in range(start, end):
            mk, ck = KDF_CK(ck); keys.append(((dh, i), mk))
        return ck, keys

    def decrypt(self, msg):
        """§5.7 receiving: works on copies, commits only after the tag verified; draws nothing."""
        H, dh, pn, n, nonce, ct = decode_ratchet_msg(msg)
        A = self.AD + H                                                             # §5.3: 85 bytes
        assert len(A) == 85
        if n == U32_MAX: raise ProtoError("counter exhausted")                     # 1
        if self.CKr is not None and dh == self.DHr and n >= self.Nr:               # 2
            if n - self.Nr > self.MAX_SKIP: raise ProtoError("too many skipped messages")
            ck, new = self._chain(self.CKr, self.Nr, n, dh)
            mk, ck = KDF_CK(ck)
            pt = AEAD_OpenN(mk, nonce, A, ct)
            self.CKr, self.Nr = ck, n + 1; self._store(new); self.pending = None   # commit, 6
            return pt
        for idx, (key, mk) in enumerate(self.skipped):                              # 3
            if key == (dh, n):
                pt = AEAD_OpenN(mk, nonce, A, ct); del self.skipped[idx]; self.pending = None
                return pt
        if dh == self.DHr or dh in self.prev: raise ProtoError("duplicate message")
        if self.due: raise ProtoError("decryption failed")                         # 4
        gap_old = max(0, pn - self.Nr) if self.CKr is not None else 0
        if gap_old + n > self.MAX_SKIP: raise ProtoError("too many skipped messages")
        old = self._chain(self.CKr, self.Nr, pn, self.DHr)[1] if self.CKr is not None else []
        RK1, ck = KDF_RK(self.RK, DH(self.DHs[0], dh))
        ck, new = self._chain(ck, 0, n, dh)
        mk, ck = KDF_CK(ck)
        pt = AEAD_OpenN(mk, nonce, A, ct)
        if self.DHr is not None: self.prev = (self.prev + [self.DHr])[-4:]          # 5
        self.DHr, self.CKr, self.Nr = dh, ck, n + 1
        self.PN, self.RK = self.Ns, RK1
        self.DHs = self.CKs = self.Ns = None; self.due = True
        self._store(old + new); self.pending = None                                 # 6
        return pt

    def _store(self, keys):
        self.skipped += keys
        if len(self.skipped) > self.MAX_STORED: self.skipped = self.skipped[-self.MAX_STORED:]

def encode_session(s):
    """§6.3 stored session (encoder only: used to check the layout and the sizes §6.3 states)."""
    out = (b"\x53\x02" + u32(s.MAX_SKIP) + u32(s.MAX_STORED) + u8(0 if s.role == "initiator" else 1) +
           s.me.enc + s.remote_ik + s.local_addr + s.remote_addr + s.base_key + s.RK)
    out += b"\x00" if s.due else b"\x01" + s.DHs[0] + s.CKs + u32(s.Ns)
    out += u32(s.PN)
    out += (b"\x01" + s.DHr + s.CKr + u32(s.Nr)) if s.CKr is not None else b"\x00"
    out += u8(len(s.prev)) + b"".join(s.prev)
    hs = s.hs
    out += u32(hs.spk_id) + u32(hs.kem_id)
    out += (b"\x01" + u32(hs.opk_id)) if hs.opk_id is not None else b"\x00" + u32(0)
    out += hs.pqpk_hash + hs.ct_hash
    out += (b"\x01" + s.pending) if s.pending is not None else b"\x00"
    out += u32(len(s.skipped)) + b"".join(dh + u32(n) + mk for (dh, n), mk in s.skipped)
    return out

class KemPrekey:
    """§3.2 signed KEM prekey: stored as its 64-byte seed."""
    def __init__(self, ident, kem_id, seed):
        self.kem_id, self.seed = kem_id, seed
        self.ek, self.dk = KEM_KeyGen(seed)
        self.sig = ident.sign(EncodeKEM(self.ek))
        self.ek_hash = sha256(EncodeKEM(self.ek))                 # computed once, when loaded (§5.1)
    def entry(self): return u32(self.kem_id) + self.seed + self.sig      # §6.2, 132 bytes

class Device:
    """Responder side: a prekey store (§3.2) with remembered accepted triples, and §5.6's rules."""
    MAX_REMEMBERED = 1000

    def __init__(self, ident, rng, acct, dev_id, n_opks=1, n_kems=1):
        """§3.2 draws: the signed prekey (id 1), the last-resort KEM prekey (KEM id 1), then the
        one-time prekeys in id order, then the one-time KEM prekeys in KEM id order (§8's order)."""
        self.ident, self.rng = ident, rng
        self.acct, self.dev_id, self.addr = acct, dev_id, address(acct, dev_id)
        self.spks = {1: rng.generate_dh()}                          # draw: signed prekey (id 1)
        self.sigs = {1: ident.sign(KEY_TYPE_X25519 + self.spks[1][1])}
        self.cur_spk = 1
        self.lr = KemPrekey(ident, 1, rng.take(64))                 # draw: last-resort KEM seed
        self.next_kem_id = 2
        self.opks = {i: rng.generate_dh()[0] for i in range(1, n_opks + 1)}   # draws: one-time prekeys
        self.next_opk_id = n_opks + 1
        self.ot_kems = {}
        for _ in range(n_kems):                                     # draws: one-time KEM seeds
            self.ot_kems[self.next_kem_id] = KemPrekey(ident, self.next_kem_id, rng.take(64))
            self.next_kem_id += 1
        self.sessions = []            # responder sessions
        self.remembered = []          # accepted (signed prekey id, KEM id, base key), oldest first

    def state(self):
        return copy.deepcopy((self.spks, self.opks, sorted(self.ot_kems), self.lr.kem_id,
                              self.remembered, [s.state() for s in self.sessions]))

    def bundle(self):
        """§4.1: the lowest one-time prekey and one-time KEM prekey, else the last-resort KEM prekey."""
        oid = min(self.opks) if self.opks else None
        kem = self.ot_kems[min(self.ot_kems)] if self.ot_kems else self.lr
        return encode_bundle(self.ident.enc, self.dev_id, self.cur_spk, self.spks[self.cur_spk][1],
                             self.sigs[self.cur_spk], kem.kem_id, kem.ek, kem.sig,
                             (oid, x25519_pub(self.opks[oid])) if oid else None)

    def encode_prekey_store(self):
        """§6.2 (nothing retired here; retired count 0)."""
        out = b"\x50\x02" + u32(self.dev_id)
        out += u32(self.cur_spk) + self.spks[self.cur_spk][0] + self.sigs[self.cur_spk]
        out += self.lr.entry() + u8(0)
        out += u32(self.next_opk_id) + u32(len(self.opks)) + b"".join(u32(i) + self.opks[i] for i in sorted(self.opks))
        out += u32(self.next_kem_id) + u32(len(self.ot_kems)) + b"".join(self.ot_kems[i].entry() for i in sorted(self.ot_kems))
        out += u32(len(self.remembered)) + b"".join(u32(a) + u32(b) + c for a, b, c in self.remembered)
        return out

    def kem_prekey(self, kem_id):
        if kem_id in self.ot_kems: return self.ot_kems[kem_id]
        if kem_id == self.lr.kem_id: return self.lr
        return None

    def receive(self, msg, sender_addr, expected_ik=None):
        if msg[:1] == u8(TAG_RATCHET):       # routed by sender address (§5.6 last paragraph)
            err = ProtoError("no session")
            for s in [s for s in self.sessions if s.remote_addr == sender_addr]:
                try: return s, s.decrypt(msg)
                except ProtoError as e: err = e
            raise err
        p = decode_prekey_msg(msg)
        ct_hash = sha256(p["ct"])
        for s in self.sessions:                                                    # 1. repeat
            if (s.role, s.remote_addr, s.remote_ik, s.base_key, s.hs.spk_id, s.hs.kem_id, s.hs.ct_hash, s.hs.opk_id) == \
               ("responder", sender_addr, p["ik"], p["ek"], p["spk_id"], p["kem_id"], ct_hash, p["opk_id"]):
                return s, s.decrypt(p["inner"])
        if any(bk == p["ek"] for _, _, bk in self.remembered):                     # 2. accepted before
            raise ProtoError("repeated prekey message")
        if expected_ik is not None and expected_ik != p["ik"]:                     # 3.
            raise ProtoError("identity mismatch")
        if p["spk_id"] not in self.spks: raise ProtoError("unknown signed prekey")  # 4.
        kem = self.kem_prekey(p["kem_id"])
        if kem is None: raise ProtoError("unknown KEM prekey")
        if p["opk_id"] is not None and p["opk_id"] not in self.opks: raise ProtoError("unknown one-time prekey")
        ss = KEM_Decaps(kem.dk, p["ct"])                                            # 5.
        hs = Handshake(p["spk_id"], p["kem_id"], p["opk_id"], kem.ek_hash, ct_hash)
        s = Session.responder(self.ident, self.addr, self.rng, self.spks[p["spk_id"]],
                              self.opks[p["opk_id"]] if p["opk_id"] is not None else None, p["ik"], p["ek"],
                              sender_addr, hs, ss)
        pt = s.decrypt(p["inner"])                                                  # 6.
        if p["opk_id"] is not None: del self.opks[p["opk_id"]]
        self.ot_kems.pop(p["kem_id"], None)                    # a last-resort KEM prekey stays
        self.remembered = (self.remembered + [(p["spk_id"], p["kem_id"], p["ek"])])[-self.MAX_REMEMBERED:]
        self.sessions.append(s)
        return s, pt

# ---------------- vector files ----------------
def load_vectors(path):
    v, sect = {"inputs": {}, "outputs": {}}, None
    for line in open(path):
        line = line.strip()
        if not line or line.startswith("#"): continue
        if line.startswith("["): sect = line.strip("[]"); continue
        k, val = (x.strip() for x in line.split("=", 1)); v[sect][k] = bytes.fromhex(val)
    return v["inputs"], v["outputs"]

class Checker:
    """PASS/FAIL printing shared by the four scripts."""
    def __init__(self, outputs=None, err_types=(ProtoError,)):
        self.O, self.fails, self.n, self.err_types = outputs or {}, 0, 0, err_types
    def _res(self, ok, line, detail=""):
        self.n += 1; self.fails += not ok
        print(f"{'PASS' if ok else 'FAIL'} {line}" + ("" if ok else detail))
    def vec(self, name, got):
        want = self.O.get(name)
        self._res(got == want, name, f"\n  got  {got.hex() if isinstance(got, bytes) else got}"
                                     f"\n  want {want.hex() if isinstance(want, bytes) else want}")
    def eq(self, label, got, want):
        show = lambda x: x.hex() if isinstance(x, (bytes, bytearray)) else repr(x)
        self._res(got == want, label, f"\n  got  {show(got)}\n  want {show(want)}")
    def true(self, label, cond): self._res(bool(cond), label)
    def err(self, label, want, fn):
        """fn must raise one of err_types; want None accepts any error text."""
        try: fn()
        except self.err_types as e:
            ok = want is None or str(e) == want
            self._res(ok, f"negative: {label} -> {e}", f" (want {want})"); return
        self._res(False, f"negative: {label}", ": accepted")
    def done(self):
        print(f"{self.n - self.fails}/{self.n} checks passed")
        print("ALL PASS" if self.fails == 0 else f"{self.fails} FAILURE(S)")
        return 1 if self.fails else 0

# byte-string helpers for the negative checks
def flip(b, i, bit=1): return b[:i] + bytes([b[i] ^ bit]) + b[i + 1:]
def setb(b, i, v): return b[:i] + bytes([v]) + b[i + 1:]
def put(b, i, s): return b[:i] + s + b[i + len(s):]
U_EQ_P = P.to_bytes(32, "little")                       # u = p: bit 255 clear, not < p
def noncanonical_variants(key):
    """The two non-canonical encodings the checks use: key with bit 255 set, and u = p."""
    assert is_canonical_x25519(key)
    return [("bit 255 set", setb(key, 31, key[31] | 0x80)), ("u = p", U_EQ_P)]

# offsets (§4.1, §4.4)
B_SPK, B_SIG, B_KEM_ID, B_PQPK, B_KEM_SIG, B_FLAG, B_OPK_ID, B_OPK = 41, 73, 137, 141, 1325, 1389, 1390, 1394
M_IK, M_EK, M_SPK_ID, M_KEM_ID, M_CT, M_FLAG, M_OPK_ID, M_INNER = 1, 33, 65, 69, 73, 1161, 1162, 1166

def seeded(label, n):
    """Deterministic test-only draws (not from the vector) for the extra scenarios."""
    return hashlib.sha512(label.encode()).digest()[:n]

def main():
    I, O = load_vectors(VEC)
    c = Checker(O)
    for name, ok in xchacha_selftest(): c.true(name, ok)

    alice = Identity(I["alice_identity_seed"]); bob = Identity(I["bob_identity_seed"])
    A_ACCT, B_ACCT = b"alice", b"bob"
    a_addr, b_addr = address(A_ACCT, 1), address(B_ACCT, 1)
    # §8 draw order. Alice: ephemeral, encapsulation randomness, ratchet 1, nonce 0, nonce 1,
    # ratchet 2, nonce 3; Bob: signed prekey, last-resort KEM seed, one-time prekey,
    # one-time KEM seed, ratchet 1, nonce 2.
    alice_draws = [I["alice_ephemeral_secret"], I["alice_kem_encapsulation_randomness"],
                   I["alice_ratchet_secret_1"], I["alice_nonce_0"], I["alice_nonce_1"],
                   I["alice_ratchet_secret_2"], I["alice_nonce_3"]]
    bob_draws = [I["bob_signed_prekey_secret"], I["bob_last_resort_kem_seed"], I["bob_one_time_prekey_secret"],
                 I["bob_one_time_kem_seed"], I["bob_ratchet_secret_1"], I["bob_nonce_2"]]
    fresh_bob = lambda: Device(bob, RNG(bob_draws), B_ACCT, 1)
    alice_rng = RNG(alice_draws)
    bob_dev = fresh_bob()
    c.eq("§6.2: Bob's prekey store with one one-time prekey and one one-time KEM prekey is 259 + 36 + 132 bytes",
         len(bob_dev.encode_prekey_store()), 259 + 36 + 132)

    # ---- §4.1 bundle ----
    bundle_bytes = bob_dev.bundle(); c.vec("bundle", bundle_bytes)
    c.eq("§4.1: the bundle with a one-time prekey is 1426 bytes", len(O["bundle"]), 1426)
    bundle = decode_bundle(O["bundle"], expected_ik=bob.enc)   # verify the *stored* bundle strictly
    c.eq("bundle names one-time KEM prekey (KEM id 2) and one-time prekey 1", (bundle["kem_id"], bundle["opk"][0]), (2, 1))
    no_opk = encode_bundle(bob.enc, 1, 1, bundle["spk"], bundle["sig"], 1, bob_dev.lr.ek, bob_dev.lr.sig)
    c.eq("§4.1: a bundle without a one-time prekey is 1390 bytes (and decodes)", (len(no_opk), decode_bundle(no_opk)["opk"]), (1390, None))

    # ---- §5.1 PQXDH and §5.5 initialization (Alice) ----
    a = Session.initiator(alice, a_addr, alice_rng, bundle, B_ACCT)
    c.vec("pqxdh_shared_secret", a.SK); c.vec("session_associated_data", a.AD)
    c.vec("alice_root_key_1", a.RK); c.vec("alice_sending_chain_key_1", a.CKs)
    st = encode_session(a)
    c.eq("§6.3: a fresh initiator session between alice/1 and bob/1 is 1402 bytes (1384 + addresses)",
         (len(st), len(st) - len(a_addr) - len(b_addr)), (1402, 1384))
    c.true("§6.3: ... it ends with pending flag 1, the 1088-byte CT and skipped count 0",
           st[-4 - 1088 - 1:] == b"\x01" + a.pending + u32(0) and sha256(a.pending) == a.hs.ct_hash)
    m0 = a.encrypt(I["plaintext_0"]); c.vec("message_0", m0)
    m1 = a.encrypt(I["plaintext_1"]); c.vec("message_1", m1)
    c.eq("§4.4: message_0 is 1166 + 69 + len(plaintext_0) bytes", len(O["message_0"]), 1166 + 69 + len(I["plaintext_0"]))
    c.true("message_0's prefix carries the KEM id 2 and the CT whose hash is in AD",
           O["message_0"][M_KEM_ID:M_CT] == u32(2) and sha256(O["message_0"][M_CT:M_FLAG]) == a.hs.ct_hash)
    c.true("§5.5: Alice's remaining draws are ratchet 2 and nonce 3",
           alice_rng.draws == [I["alice_ratchet_secret_2"], I["alice_nonce_3"]])

    # ---- Bob accepts message_0 (from the *stored* vector bytes), from alice/1 ----
    bs, p0 = bob_dev.receive(O["message_0"], a_addr)
    c.eq("decrypt message_0 as Bob (new session)", p0, I["plaintext_0"])
    c.vec("bob_root_key_1", bs.RK)
    c.vec("bob_receiving_chain_key_1", bs.CKr)
    c.eq("Bob's PQXDH secret and AD equal Alice's", (bs.SK, bs.AD), (O["pqxdh_shared_secret"], O["session_associated_data"]))
    c.true("§5.5/§5.7 step 5: Bob's session has the sending step due (no DHs, CKs, Ns), PN = 0",
           bs.due and bs.DHs is None and bs.CKs is None and bs.Ns is None and bs.PN == 0)
    c.eq("§6.3: a responder session after its first message is 296 bytes plus its two addresses (314)",
         len(encode_session(bs)), 314)
    c.true("§3.2/§5.6: one-time prekey 1 and one-time KEM prekey 2 deleted, last-resort KEM prekey 1 kept, "
           "triple (1, 2, EK_A) remembered",
           1 not in bob_dev.opks and 2 not in bob_dev.ot_kems and bob_dev.lr.kem_id == 1 and
           bob_dev.remembered == [(1, 2, O["message_0"][M_EK:M_EK + 32])])
    c.eq("§6.2: ... the prekey store is then 259 + 40 bytes (one accepted triple)", len(bob_dev.encode_prekey_store()), 299)
    c.true("§5.5: receiving drew nothing (Bob's remaining draws: ratchet 1, nonce 2)",
           bob_dev.rng.draws == [I["bob_ratchet_secret_1"], I["bob_nonce_2"]])
    bob_after_m0 = bob_dev.state()

    # altered prefixes of message_1 on the device that owns its session: never accepted,
    # nothing changes (§4.4, §5.6)
    M1 = O["message_1"]
    carol = Identity(bytes(range(0xC0, 0xE0)))
    neg_ik = setb(M1[1:33], 31, M1[32] ^ 0x80)            # -A: another valid key with the same X25519 form
    other_ek = x25519_pub(clamp(bytes(range(0x20, 0x40))))
    for desc, alt in [("IK_A -> -IK_A", put(M1, M_IK, neg_ik)),
                      ("IK_A -> another identity", put(M1, M_IK, carol.enc)),
                      ("EK_A -> another canonical key", put(M1, M_EK, other_ek)),
                      ("signed prekey id 1 -> 2", put(M1, M_SPK_ID, u32(2))),
                      ("KEM id 2 -> 1 (the last-resort KEM prekey)", put(M1, M_KEM_ID, u32(1))),
                      ("KEM ciphertext byte flipped", flip(M1, M_CT + 500)),
                      ("one-time prekey id 1 -> 2", put(M1, M_OPK_ID, u32(2))),
                      ("one-time prekey flag 1 -> 0, id 0", put(M1, M_FLAG, b"\x00" + u32(0)))]:
        c.err(f"message_1 with {desc}, on the session's own device", None,
              lambda alt=alt: bob_dev.receive(alt, a_addr))
        c.true(f"  ... Bob's device unchanged", bob_dev.state() == bob_after_m0)

    # ---- §5.7 step 4: a message under a new ratchet key while the sending step is due ----
    stale = copy.deepcopy(bs); stale.rng = RNG([])     # a copy of Bob's session before it sends
    stale_before = stale.state()
    c.err("§5.7 step 4: message_3 (Alice's new ratchet key) at Bob's copy that has not sent yet (due set)",
          "decryption failed", lambda: stale.decrypt(O["message_3"]))
    c.true("  ... nothing changed and nothing drawn", stale.state() == stale_before)

    bs2, p1 = bob_dev.receive(O["message_1"], a_addr)          # repeat prekey message -> same session
    c.eq("decrypt message_1 as Bob (repeat prekey msg, same session)", p1, I["plaintext_1"])
    c.true("repeat used the same session, no new session", bs2 is bs and len(bob_dev.sessions) == 1)
    c.true("... the sending step is still due after the repeat", bs.due and bs.Nr == 2)
    c.eq("§6.3: ... and the session is still 314 bytes (no skipped key)", len(encode_session(bs)), 314)
    m2 = bs.encrypt(I["plaintext_2"]); c.vec("message_2", m2)
    c.vec("bob_root_key_2", bs.RK)
    c.true("§5.6: Bob's first send did the sending half: DHs = ratchet 1, Ns = 1, due clear, PN = 0",
           bs.DHs[0] == clamp(I["bob_ratchet_secret_1"]) and bs.Ns == 1 and not bs.due and bs.PN == 0)
    c.eq("§6.3: once it has sent, the responder session is 68 bytes more (382)", len(encode_session(bs)), 382)

    # non-canonical ratchet key in message_2, before Alice decrypts it: decode error, nothing changes
    a_before = a.state()
    for vdesc, bad in noncanonical_variants(O["message_2"][1:33]):
        c.err(f"message_2 ratchet key {vdesc}", "non-canonical key", lambda bad=bad: a.decrypt(put(O["message_2"], 1, bad)))
    c.true("Alice's session unchanged by the rejected copies", a.state() == a_before)
    p2 = a.decrypt(O["message_2"])
    c.eq("decrypt message_2 as Alice", p2, I["plaintext_2"])
    c.vec("alice_root_key_2", a.RK)
    c.true("Alice no longer pending after the reply; her sending step is due; PN = 2",
           a.pending is None and a.due and a.PN == 2 and a.DHs is None)
    c.true("§5.5: receiving drew nothing (Alice's remaining draws: ratchet 2, nonce 3)",
           alice_rng.draws == [I["alice_ratchet_secret_2"], I["alice_nonce_3"]])
    a_due = a.state()
    c.err("§5.7 step 4: message under another new ratchet key at Alice while her sending step is due",
          "decryption failed", lambda: a.decrypt(put(O["message_2"], 1, other_ek)))
    c.true("  ... nothing changed", a.state() == a_due)
    m3 = a.encrypt(I["plaintext_3"]); c.vec("message_3", m3)
    c.vec("alice_root_key_3", a.RK)
    c.true("message_3 is a ratchet message (0x04) with PN = 2, N = 0", m3[0] == TAG_RATCHET and m3[33:41] == u32(2) + u32(0))
    _, p3 = bob_dev.receive(O["message_3"], a_addr)
    c.eq("decrypt message_3 as Bob", p3, I["plaintext_3"])
    c.true("every scripted draw used, in the §8 order", alice_rng.draws == [] and bob_dev.rng.draws == [])
    c.true("Bob after message_3: RK = alice_root_key_3, DHr = Alice's ratchet 2 key, sending step due, PN = 1",
           bs.RK == O["alice_root_key_3"] and bs.DHr == x25519_pub(clamp(I["alice_ratchet_secret_2"])) and
           bs.due and bs.PN == 1 and bs.prev == [x25519_pub(clamp(I["alice_ratchet_secret_1"]))])

    # out of order: message_1 first makes the session with one skipped key; message_0 is then a repeat
    d = fresh_bob()
    ds, p = d.receive(O["message_1"], a_addr)
    c.true("message_1 before message_0: a new session, with one skipped key (N = 0)",
           p == I["plaintext_1"] and len(ds.skipped) == 1 and ds.Nr == 2)
    c.eq("§6.3: ... 314 + 68 bytes (one skipped key)", len(encode_session(ds)), 314 + 68)
    c.true("... then message_0 is a repeat of the same session, decrypted from the skipped key",
           d.receive(O["message_0"], a_addr) == (ds, I["plaintext_0"]) and ds.skipped == [] and len(d.sessions) == 1)

    # ---- §3.2/§5.6 remembered base keys ----
    c.err("message_0 again while its session is held (repeat -> duplicate)", "duplicate message",
          lambda: bob_dev.receive(O["message_0"], a_addr))
    held = bob_dev.sessions; bob_dev.sessions = []            # the session is gone (archive drop, pruning)
    c.err("message_0 after its session is gone (base key remembered)", "repeated prekey message",
          lambda: bob_dev.receive(O["message_0"], a_addr))
    c.err("message_1 after its session is gone", "repeated prekey message",
          lambda: bob_dev.receive(O["message_1"], a_addr))
    bob_dev.sessions = held

    # ---- §3.2: replay of a prekey message that used the last-resort KEM prekey ----
    dave = Identity(seeded("dave identity", 32))
    lr_dev = Device(dave, RNG([seeded("dave spk", 32), seeded("dave lr kem", 64)]), b"dave", 7, n_opks=0, n_kems=0)
    c.eq("§6.2: a fresh prekey store (no one-time keys, nothing retired or accepted) is 259 bytes",
         len(lr_dev.encode_prekey_store()), 259)
    lr_bundle = decode_bundle(lr_dev.bundle())
    c.true("a bundle of a device with no one-time keys: 1390 bytes, the last-resort KEM prekey (KEM id 1)",
           len(lr_dev.bundle()) == 1390 and lr_bundle["kem_id"] == 1 and lr_bundle["opk"] is None)
    def lr_initiate(tag):
        s = Session.initiator(alice, a_addr, RNG([seeded(tag + " ek", 32), seeded(tag + " m", 32),
                                                   seeded(tag + " dhs", 32), seeded(tag + " nonce", 12)]),
                              lr_bundle, b"dave")
        return s.encrypt(b"first message " + tag.encode())
    lr_m = lr_initiate("x")
    _, pt = lr_dev.receive(lr_m, a_addr)
    c.true("last-resort prekey message accepted; the last-resort KEM prekey stays; triple (1, 1, EK_A) remembered",
           pt == b"first message x" and lr_dev.lr.kem_id == 1 and lr_dev.remembered == [(1, 1, lr_m[M_EK:M_EK + 32])])
    c.err("its replay while the session is held (repeat -> duplicate)", "duplicate message", lambda: lr_dev.receive(lr_m, a_addr))
    lr_dev.sessions = []
    before = lr_dev.state()
    c.err("its replay after the session is gone: nothing in it was spent, the base key decides",
          "repeated prekey message", lambda: lr_dev.receive(lr_m, a_addr))
    c.true("  ... nothing changed", lr_dev.state() == before)
    forgetful = copy.deepcopy(lr_dev); forgetful.remembered = []
    c.eq("(without the memory the replay would be a second new session delivering its first message again)",
         forgetful.receive(lr_m, a_addr)[1], b"first message x")
    lr_m2 = lr_initiate("y")
    c.eq("another initiator's message on the same last-resort KEM prekey is a new session",
         lr_dev.receive(lr_m2, a_addr)[1], b"first message y")

    # ---- §5.1: both addresses are in AD ----
    for desc, addr in [("mallory/1", address(b"mallory", 1)), ("alice/2", address(A_ACCT, 2)),
                       ("bob/1 (the recipient's own address)", b_addr)]:
        d = fresh_bob(); before = d.state()
        c.err(f"message_0 presented as from {desc}", "decryption failed", lambda d=d, addr=addr: d.receive(O["message_0"], addr))
        c.true(f"  ... no one-time prekey spent, no base key remembered, no session", d.state() == before)
    d = fresh_bob()
    c.err("message_0 from mallory/1 first", "decryption failed", lambda: d.receive(O["message_0"], address(b"mallory", 1)))
    c.eq("  ... then from alice/1 it still opens", d.receive(O["message_0"], a_addr)[1], I["plaintext_0"])
    c.eq("AD differs with the sender address (direct)",
         session_ad(alice.enc, bob.enc, address(b"mallory", 1), b_addr, O["message_0"][M_EK:M_EK + 32], a.hs) != a.AD, True)

    # ---- §2.4/§5.6: a wrong KEM ciphertext fails like a forgery ----
    M0 = O["message_0"]
    dk2 = fresh_bob().ot_kems[2].dk
    ss = KEM_Decaps(dk2, M0[M_CT:M_FLAG]); ss_bad = KEM_Decaps(dk2, flip(M0, M_CT + 17)[M_CT:M_FLAG])
    c.true("KEM_Decaps of message_0's CT gives Alice's SS; of an altered CT, another 32 bytes (implicit rejection)",
           ss == a.SS and len(ss_bad) == 32 and ss_bad != ss)
    for desc, alt in [("CT byte 17 flipped", flip(M0, M_CT + 17)), ("CT last byte flipped", flip(M0, M_FLAG - 1)),
                      ("CT replaced by a ciphertext for another key",
                       put(M0, M_CT, KEM_Encaps(fresh_bob().lr.ek, bytes(32))[1]))]:
        d = fresh_bob(); before = d.state()
        c.err(f"message_0 with {desc}", "decryption failed", lambda d=d, alt=alt: d.receive(alt, a_addr))
        c.true("  ... nothing spent or remembered; the genuine message_0 still opens",
               d.state() == before and d.receive(M0, a_addr)[1] == I["plaintext_0"])

    # ---- §4.4/§5.1: altering any prefix field makes a new session fail to decrypt ----
    c.eq("-IK_A is a valid identity key with the same X25519 form as IK_A (only AD tells them apart)",
         (valid_point(neg_ik) is not None, remote_identity(neg_ik) == alice.x_pub, neg_ik != alice.enc), (True, True, True))
    def twin_bob():   # signed prekey 2, one-time prekey 2 and one-time KEM prekey 3 hold the keys of 1, 1 and 2
        d = fresh_bob(); d.spks[2] = d.spks[1]; d.sigs[2] = d.sigs[1]; d.opks[2] = d.opks[1]
        k3 = copy.copy(d.ot_kems[2]); k3.kem_id = 3; d.ot_kems[3] = k3; d.next_kem_id = 4; return d
    for desc, alt, mk in [
            ("IK_A -> -IK_A (same SK, only AD differs)", put(M0, M_IK, neg_ik), fresh_bob),
            ("IK_A -> another identity", put(M0, M_IK, carol.enc), fresh_bob),
            ("EK_A -> another canonical key", put(M0, M_EK, other_ek), fresh_bob),
            ("signed prekey id 1 -> 2, id 2 holding the same key (only AD differs)", put(M0, M_SPK_ID, u32(2)), twin_bob),
            ("KEM id 2 -> 3, id 3 holding the same KEM key (same SS, only AD differs)", put(M0, M_KEM_ID, u32(3)), twin_bob),
            ("KEM id 2 -> 1, the last-resort KEM prekey (another SS)", put(M0, M_KEM_ID, u32(1)), fresh_bob),
            ("one-time prekey id 1 -> 2, id 2 holding the same key (only AD differs)", put(M0, M_OPK_ID, u32(2)), twin_bob),
            ("one-time prekey flag 1 -> 0, id 0", put(M0, M_FLAG, b"\x00" + u32(0)), fresh_bob)]:
        d = mk(); before = d.state()
        c.err(f"message_0 with {desc}", "decryption failed", lambda d=d, alt=alt: d.receive(alt, a_addr))
        c.true("  ... nothing spent or remembered; the genuine message_0 still opens",
               d.state() == before and d.receive(M0, a_addr)[1] == I["plaintext_0"])
    c.err("message_0 naming an unknown signed prekey id 2", "unknown signed prekey", lambda: fresh_bob().receive(put(M0, M_SPK_ID, u32(2)), a_addr))
    c.err("message_0 naming an unknown KEM id 3", "unknown KEM prekey", lambda: fresh_bob().receive(put(M0, M_KEM_ID, u32(3)), a_addr))
    c.err("message_0 naming an unknown one-time prekey id 2", "unknown one-time prekey", lambda: fresh_bob().receive(put(M0, M_OPK_ID, u32(2)), a_addr))
    c.err("message_0 naming an unknown signed prekey and KEM id: the signed prekey is looked up first",
          "unknown signed prekey", lambda: fresh_bob().receive(put(put(M0, M_SPK_ID, u32(2)), M_KEM_ID, u32(3)), a_addr))
    spent = fresh_bob(); spent.receive(M0, a_addr)
    other_m0 = put(M0, M_EK, other_ek)                # another base key, naming the spent one-time keys
    c.err("a prekey message with another base key naming the spent one-time KEM prekey 2", "unknown KEM prekey",
          lambda: spent.receive(other_m0, a_addr))
    c.err("... with the one-time KEM prekey still held but the one-time prekey spent", "unknown one-time prekey",
          lambda: spent.receive(put(other_m0, M_KEM_ID, u32(1)), a_addr))

    # ---- §2.4/§4.1: the KEM key's modulus check, both signatures ----
    B = O["bundle"]
    pq = B[B_PQPK:B_KEM_SIG]
    c.true("the bundle's KEM key passes the modulus check", kem_modulus_ok(pq))
    for i, v in [(0, 3329), (0, 4095), (383, 3329), (767, 3329)]:
        bad = set_coefficient(pq, i, v)
        assert not kem_modulus_ok(bad) and bad != pq
        c.err(f"bundle KEM key with coefficient {i} = {v}", "invalid KEM key", lambda bad=bad: decode_bundle(put(B, B_PQPK, bad)))
    edge = set_coefficient(pq, 767, 3328)
    c.err("bundle KEM key with coefficient 767 = 3328 passes the modulus check (then its signature fails)",
          "invalid signature", lambda: decode_bundle(put(B, B_PQPK, edge)))
    c.true("rho (the last 32 bytes of the key) is unrestricted", kem_modulus_ok(pq[:1152] + b"\xff" * 32))
    c.err("bundle KEM key failing the modulus check, with a bad signed-prekey signature too: the decode error comes first",
          "invalid KEM key", lambda: decode_bundle(flip(put(B, B_PQPK, set_coefficient(pq, 0, 3329)), B_SIG)))
    def resigned(kem_msg):  # the bundle with the KEM prekey signature over kem_msg
        return put(B, B_KEM_SIG, bob.sign(kem_msg))
    c.eq("a re-signed bundle over EncodeKEM(PQPK) verifies", decode_bundle(resigned(EncodeKEM(pq)))["kem_id"], 2)
    for desc, alt in [("KEM signature R flipped", flip(B, B_KEM_SIG)), ("KEM signature S flipped", flip(B, B_KEM_SIG + 40)),
                      ("KEM signature S + l", put(B, B_KEM_SIG + 32, (int.from_bytes(B[B_KEM_SIG + 32:B_FLAG], "little") + L).to_bytes(32, "little"))),
                      ("KEM signature over PQPK without its type byte", resigned(pq)),
                      ("KEM signature over 0x05 ‖ PQPK", resigned(KEY_TYPE_X25519 + pq)),
                      ("KEM signature = the signed prekey's signature", put(B, B_KEM_SIG, B[B_SIG:B_KEM_ID]))]:
        c.err(f"bundle {desc}", "invalid signature", lambda alt=alt: decode_bundle(alt))
    c.err("bundle with the signed prekey's signature flipped (checked first)", "invalid signature", lambda: decode_bundle(flip(B, B_SIG + 40)))

    # ---- §2.3: a non-canonical X25519 key is rejected in every field parsed ----
    for field, off in [("bundle signed prekey", B_SPK), ("bundle one-time prekey", B_OPK)]:
        for vdesc, bad in noncanonical_variants(B[off:off + 32]):
            c.err(f"{field} {vdesc}", "non-canonical key", lambda off=off, bad=bad: decode_bundle(put(B, off, bad)))
    for field, off in [("prekey message base key", M_EK), ("prekey message embedded ratchet key", M_INNER + 1)]:
        for vdesc, bad in noncanonical_variants(M0[off:off + 32]):
            d = fresh_bob(); before = d.state()
            c.err(f"{field} {vdesc}", "non-canonical key", lambda d=d, off=off, bad=bad: d.receive(put(M0, off, bad), a_addr))
            c.true("  ... nothing changes", d.state() == before)
    for vdesc, bad in noncanonical_variants(bs.DHr):
        c.err(f"ratchet message (decoder), ratchet key {vdesc}", "non-canonical key",
              lambda bad=bad: decode_ratchet_msg(put(O["message_2"], 1, bad)))
    # why: the X25519 function itself ignores bit 255 and reduces u mod p
    ek0 = M0[M_EK:M_EK + 32]
    spk_priv = clamp(I["bob_signed_prekey_secret"])
    c.true("(X25519 masks bit 255: DH(spk, EK_A | 2^255) = DH(spk, EK_A), so only §2.3 tells them apart)",
           DH(spk_priv, setb(ek0, 31, ek0[31] | 0x80)) == DH(spk_priv, ek0))
    c.true("(u = p + 9 is non-canonical though X25519 reads it as the base point u = 9)",
           not is_canonical_x25519((P + 9).to_bytes(32, "little")) and
           DH(spk_priv, (P + 9).to_bytes(32, "little")) == x25519_pub(spk_priv))
    c.true("u = p − 1 is canonical", is_canonical_x25519((P - 1).to_bytes(32, "little")))
    c.err("... but small order: a DH with it fails", "non-contributory DH", lambda: DH(spk_priv, (P - 1).to_bytes(32, "little")))
    c.err("bundle with a small-order (canonical) signed prekey is refused at the DH", "non-contributory DH",
          lambda: Session.initiator(alice, a_addr, RNG([bytes(32)] * 2 + [bytes(32)]), dict(bundle, spk=bytes(32)), B_ACCT))

    # ---- §3.1: torsion-free identity keys ----
    T = torsion_point(); Apt = valid_point(alice.enc)
    AT = pt_encode(pt_add(Apt, T))
    c.true("T has order 8", pt_eq(pt_mul(8, T), IDENT) and not pt_eq(pt_mul(4, T), IDENT))
    c.true("A+T is a canonical encoding of a point that is not of small order",
           pt_decode(AT) is not None and pt_encode(pt_decode(AT)) == AT and not small_order(pt_decode(AT)))
    c.true("A+T is rejected as an identity key (not torsion-free)", valid_point(AT) is None)
    c.err("bundle whose identity key is IK_B + T", "invalid identity key", lambda: decode_bundle(put(B, 1, pt_encode(pt_add(valid_point(bob.enc), T)))))
    c.err("prekey message whose initiator identity is IK_A + T", "invalid identity key", lambda: fresh_bob().receive(put(M0, M_IK, AT), a_addr))
    # why (§3.1): a signature under A+T verifies under the cofactored equation but not the
    # cofactorless one (unless k ≡ 0 mod 8)
    a_scalar = int.from_bytes(clamp(hashlib.sha512(alice.seed).digest()[:32]), "little")
    msg = b"torsion demo"
    for ctr in range(16):
        r = int.from_bytes(hashlib.sha512(b"r%d" % ctr).digest(), "little") % L
        Rb = pt_encode(pt_mul(r, B_PT))
        k = int.from_bytes(hashlib.sha512(Rb + AT + msg).digest(), "little") % L
        if k % 8: break
    S = (r + k * a_scalar) % L
    lhs, rhs = pt_mul(S, B_PT), pt_add(pt_decode(Rb), pt_mul(k, pt_decode(AT)))
    c.true("(a signature for A+T: the cofactored equation holds, the cofactorless one does not)",
           pt_eq(pt_mul(8, lhs), pt_mul(8, rhs)) and not pt_eq(lhs, rhs))

    # ---- the v1 strictness checks, on v2 bytes ----
    for desc, want, fn in [
        ("bundle trailing byte", "trailing bytes", lambda: decode_bundle(B + b"\0")),
        ("bundle truncated", "truncated", lambda: decode_bundle(B[:-1])),
        ("bundle truncated inside the KEM key", "truncated", lambda: decode_bundle(B[:B_PQPK + 600])),
        ("bundle v1 tag 0x03", "unknown tag", lambda: decode_bundle(setb(B, 0, 0x03))),
        ("bundle bad sig (R flipped)", "invalid signature", lambda: decode_bundle(flip(B, B_SIG))),
        ("bundle bad sig (S flipped)", "invalid signature", lambda: decode_bundle(flip(B, B_SIG + 32))),
        ("bundle S >= l", "invalid signature", lambda: decode_bundle(put(B, B_SIG + 32, (int.from_bytes(B[B_SIG + 32:B_KEM_ID], "little") + L).to_bytes(32, "little")))),
        ("bundle small-order IK", "invalid identity key", lambda: decode_bundle(put(B, 1, (1).to_bytes(32, "little")))),
        ("bundle non-canonical IK (y + p)", "invalid identity key", lambda: decode_bundle(put(B, 1, (1 + P).to_bytes(32, "little")))),
        ("bundle flag 2", "malformed", lambda: decode_bundle(setb(B, B_FLAG, 2))),
        ("bundle of another identity than expected", "identity mismatch", lambda: decode_bundle(B, expected_ik=alice.enc)),
        ("prekey message, flag 0 with id 1", "malformed", lambda: decode_prekey_msg(setb(M0, M_FLAG, 0))),
        ("prekey message, flag 2", "malformed", lambda: decode_prekey_msg(setb(M0, M_FLAG, 2))),
        ("prekey message, truncated inside the KEM ciphertext", "truncated", lambda: decode_prekey_msg(M0[:M_CT + 1000])),
        ("prekey message, v1 tag 0x02", "unknown tag", lambda: decode_prekey_msg(setb(M0, 0, 0x02))),
        ("prekey message, embedded message v1 tag 0x01", "unknown tag", lambda: decode_prekey_msg(setb(M0, M_INNER, 0x01))),
        ("prekey message, embedded message truncated to 68 bytes", "truncated", lambda: decode_prekey_msg(M0[:M_INNER + 68])),
        ("ratchet message of 68 bytes", "truncated", lambda: decode_ratchet_msg(O["message_2"][:68])),
        ("ratchet message of 68 bytes, v1 tag 0x01", "unknown tag", lambda: decode_ratchet_msg(setb(O["message_2"][:68], 0, 0x01))),
        ("ratchet message, empty", "truncated", lambda: decode_ratchet_msg(b"")),
        ("message_0 from alice/1 expecting another identity", "identity mismatch",
         lambda: fresh_bob().receive(M0, a_addr, expected_ik=carol.enc)),
        ("message_0 ciphertext flipped", "decryption failed", lambda: fresh_bob().receive(flip(M0, M_INNER + 56), a_addr)),
        ("message_0 header nonce flipped (the nonce is the AEAD nonce and in AAD)", "decryption failed",
         lambda: fresh_bob().receive(flip(M0, M_INNER + 46), a_addr)),
        ("replay message_2", "duplicate message", lambda: a.decrypt(O["message_2"])),
    ]:
        c.err(desc, want, fn)
    # the nonce is used as the AEAD nonce, not only authenticated: re-seal with another nonce
    mk0 = KDF_CK(O["alice_sending_chain_key_1"])[0]
    H0 = M0[M_INNER:M_INNER + 53]; ct0 = M0[M_INNER + 53:]
    c.eq("message_0's ciphertext is AEAD(MK_0, header nonce, AD ‖ H)", AEAD_OpenN(mk0, H0[41:53], O["session_associated_data"] + H0, ct0), I["plaintext_0"])
    c.err("... and does not open under the zero nonce", "decryption failed", lambda: AEAD_Open(mk0, O["session_associated_data"] + H0, ct0))
    return c.done()

if __name__ == "__main__":
    sys.exit(main())
