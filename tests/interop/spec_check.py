#!/usr/bin/env python3
"""Independent ratchetbox v1 implementation written from SPEC.md only, without
reading the Rust source: the proof that SPEC.md is precise enough to interoperate.
Reproduces tests/vectors/session_v1.txt byte for byte. Needs the `cryptography`
package; `.ci/run` installs it. Run: python3 tests/interop/spec_check.py"""
import hashlib, os, struct, sys
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF as _HKDF
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.exceptions import InvalidSignature, InvalidTag

VEC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vectors", "session_v1.txt")
RAW = dict(encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw)

# ---------------- §2 primitives / constants ----------------
X3DH_INFO = b"ratchetbox v1 X3DH"
ROOT_INFO = b"ratchetbox v1 root ratchet"
X3DH_PREFIX = b"\xff" * 32
KEY_TYPE_X25519 = b"\x05"
U32_MAX = 2**32 - 1
u32 = lambda v: struct.pack(">I", v)

class ProtoError(Exception): pass

def clamp(k):
    b = bytearray(k); b[0] &= 248; b[31] &= 127; b[31] |= 64; return bytes(b)

def x25519_pub(priv):
    return X25519PrivateKey.from_private_bytes(priv).public_key().public_bytes(**RAW)

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

def AEAD_Seal(k, aad, p): return ChaCha20Poly1305(k).encrypt(bytes(12), p, aad)
def AEAD_Open(k, aad, c):
    try: return ChaCha20Poly1305(k).decrypt(bytes(12), c, aad)
    except InvalidTag: raise ProtoError("decryption failed")

# ---------------- pure-Python Ed25519 point arithmetic (for strict checks / map) ----------------
P = 2**255 - 19
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
    """RFC 8032 decoding; returns None if not a point. Non-canonical y (>= p) is reduced so
    that the caller can detect non-canonicity by re-encoding (as §3.1 defines it)."""
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

def valid_point(enc):
    """§3.1: canonical encoding (re-encoding gives the same bytes) and not small order."""
    pt = pt_decode(enc)
    if pt is None or pt_encode(pt) != enc: return None
    if pt_eq(pt_mul(8, pt), IDENT): return None
    return pt

def verify_strict(pk, msg, sig):
    if len(sig) != 64: return False
    A = valid_point(pk); R = valid_point(sig[:32]); S = int.from_bytes(sig[32:], "little")
    if A is None or R is None or S >= L: return False
    k = int.from_bytes(hashlib.sha512(sig[:32] + pk + msg).digest(), "little") % L
    ok = pt_eq(pt_mul(S, B_PT), pt_add(R, pt_mul(k, A)))  # cofactorless
    try:  # cross-check with the library's (OpenSSL) verifier
        Ed25519PublicKey.from_public_bytes(pk).verify(sig, msg); lib = True
    except InvalidSignature: lib = False
    assert ok == lib, "pure-Python and library Ed25519 verifiers disagree"
    return ok

def ed_to_x25519_pub(enc):
    y = int.from_bytes(enc, "little") & ((1 << 255) - 1)
    return ((1 + y) * pow((1 - y) % P, P - 2, P) % P).to_bytes(32, "little")

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
    def __init__(self, draws): self.draws = list(draws)
    def generate_dh(self):
        priv = clamp(self.draws.pop(0)); return (priv, x25519_pub(priv))

# ---------------- §4 wire formats ----------------
def encode_bundle(ik_enc, dev, spk_id, spk_pub, sig, opk=None):
    out = b"\x03" + ik_enc + u32(dev) + u32(spk_id) + spk_pub + sig
    return out + (b"\x01" + u32(opk[0]) + opk[1] if opk else b"\x00")

class Reader:
    def __init__(self, b): self.b, self.i = b, 0
    def take(self, n):
        if self.i + n > len(self.b): raise ProtoError("truncated")
        r = self.b[self.i:self.i + n]; self.i += n; return r
    def u32(self): return struct.unpack(">I", self.take(4))[0]
    def flag(self):
        f = self.take(1)[0]
        if f > 1: raise ProtoError("bad flag")
        return f == 1
    def rest(self): r = self.b[self.i:]; self.i = len(self.b); return r
    def end(self):
        if self.i != len(self.b): raise ProtoError("trailing bytes")

def decode_bundle(b, expected_ik=None):
    r = Reader(b)
    if r.take(1) != b"\x03": raise ProtoError("unknown tag")
    ik = r.take(32); dev = r.u32(); spk_id = r.u32(); spk = r.take(32); sig = r.take(64)
    opk = (r.u32(), r.take(32)) if r.flag() else None
    r.end()
    remote_identity(ik)
    if not verify_strict(ik, KEY_TYPE_X25519 + spk, sig): raise ProtoError("invalid signature")
    if expected_ik is not None and expected_ik != ik: raise ProtoError("identity mismatch")
    return dict(ik=ik, dev=dev, spk_id=spk_id, spk=spk, sig=sig, opk=opk)

def decode_ratchet_msg(b):
    r = Reader(b)
    if r.take(1) != b"\x01": raise ProtoError("unknown tag")
    dh = r.take(32); pn = r.u32(); n = r.u32()
    if len(b) < 57: raise ProtoError("truncated")
    return b[:41], dh, pn, n, r.rest()

def decode_prekey_msg(b):
    r = Reader(b)
    if r.take(1) != b"\x02": raise ProtoError("unknown tag")
    ik = r.take(32); ek = r.take(32); spk_id = r.u32(); has = r.flag(); opk_id = r.u32()
    if not has and opk_id != 0: raise ProtoError("malformed")
    return ik, ek, spk_id, (opk_id if has else None), r.rest()

# ---------------- §5 protocol ----------------
def x3dh_initiator(me, ek_priv, bundle):
    ik_b_x = remote_identity(bundle["ik"])
    ikm = X3DH_PREFIX + DH(me.x_priv, bundle["spk"]) + DH(ek_priv, ik_b_x) + DH(ek_priv, bundle["spk"])
    if bundle["opk"]: ikm += DH(ek_priv, bundle["opk"][1])
    return HKDF(bytes(32), ikm, X3DH_INFO, 32), me.enc + bundle["ik"]

def x3dh_responder(me, spk_priv, opk_priv, ik_a_enc, ek_pub):
    ik_a_x = remote_identity(ik_a_enc)
    ikm = X3DH_PREFIX + DH(spk_priv, ik_a_x) + DH(me.x_priv, ek_pub) + DH(spk_priv, ek_pub)
    if opk_priv is not None: ikm += DH(opk_priv, ek_pub)
    return HKDF(bytes(32), ikm, X3DH_INFO, 32), ik_a_enc + me.enc

def KDF_RK(rk, dh_out):
    o = HKDF(rk, dh_out, ROOT_INFO, 64); return o[:32], o[32:]

def KDF_CK(ck): return HMAC(ck, b"\x01"), HMAC(ck, b"\x02")

def aad(AD, H): return struct.pack(">H", 64) + AD + H

class Session:
    MAX_SKIP, MAX_STORED = 1000, 2000

    @classmethod
    def initiator(cls, me, rng, bundle):
        s = cls(); s.rng = rng; s.me = me
        ek_priv, ek_pub = rng.generate_dh()                      # draw 1: EK_A
        s.SK, s.AD = x3dh_initiator(me, ek_priv, bundle)
        s.base_key = ek_pub
        s.DHs = rng.generate_dh()                                # draw 2: first DHs
        s.DHr = bundle["spk"]
        s.RK, s.CKs = KDF_RK(s.SK, DH(s.DHs[0], bundle["spk"]))
        s.CKr = None; s.Ns = s.Nr = s.PN = 0
        s.pending = (bundle["spk_id"], bundle["opk"][0] if bundle["opk"] else None)
        s.prev, s.skipped = [], []
        return s

    @classmethod
    def responder(cls, me, rng, spk, opk_priv, ik_a_enc, ek_pub):
        s = cls(); s.rng = rng; s.me = me
        s.SK, s.AD = x3dh_responder(me, spk[0], opk_priv, ik_a_enc, ek_pub)
        s.base_key, s.remote_ik = ek_pub, ik_a_enc
        s.DHs = spk; s.RK = s.SK; s.DHr = None; s.CKr = None; s.CKs = None
        s.Ns = s.Nr = s.PN = 0; s.pending = None; s.prev, s.skipped = [], []
        return s

    def encrypt(self, pt):
        if self.Ns == U32_MAX: raise ProtoError("counter exhausted")
        H = b"\x01" + self.DHs[1] + u32(self.PN) + u32(self.Ns)
        mk, self.CKs = KDF_CK(self.CKs)
        out = H + AEAD_Seal(mk, aad(self.AD, H), pt)
        self.Ns += 1
        if self.pending is not None:
            spk_id, opk_id = self.pending
            out = (b"\x02" + self.me.enc + self.base_key + u32(spk_id) +
                   (b"\x01" + u32(opk_id) if opk_id is not None else b"\x00" + u32(0)) + out)
        return out

    def _chain(self, ck, start, end, dh):
        keys = []
        for i in range(start, end):
            mk, ck = KDF_CK(ck); keys.append(((dh, i), mk))
        return ck, keys

    def decrypt(self, msg):
        H, dh, pn, n, ct = decode_ratchet_msg(msg)
        A = aad(self.AD, H)
        if n == U32_MAX: raise ProtoError("counter exhausted")                     # 1
        if self.CKr is not None and dh == self.DHr and n >= self.Nr:               # 2
            if n - self.Nr > self.MAX_SKIP: raise ProtoError("too many skipped messages")
            ck, new = self._chain(self.CKr, self.Nr, n, dh)
            mk, ck = KDF_CK(ck)
            pt = AEAD_Open(mk, A, ct)
            self.CKr, self.Nr = ck, n + 1; self._store(new); self.pending = None
            return pt
        for idx, (key, mk) in enumerate(self.skipped):                              # 3
            if key == (dh, n):
                pt = AEAD_Open(mk, A, ct); del self.skipped[idx]; self.pending = None
                return pt
        if dh == self.DHr or dh in self.prev: raise ProtoError("duplicate message")
        gap_old = max(0, pn - self.Nr) if self.CKr is not None else 0               # 4
        if gap_old + n > self.MAX_SKIP: raise ProtoError("too many skipped messages")
        old = self._chain(self.CKr, self.Nr, pn, self.DHr)[1] if self.CKr is not None else []
        RK1, ck = KDF_RK(self.RK, DH(self.DHs[0], dh))
        self.last_ckr_prime = ck
        ck, new = self._chain(ck, 0, n, dh)
        mk, ck = KDF_CK(ck)
        pt = AEAD_Open(mk, A, ct)
        DHs2 = self.rng.generate_dh()                                               # 5
        RK2, CKs2 = KDF_RK(RK1, DH(DHs2[0], dh))
        if self.DHr is not None: self.prev = (self.prev + [self.DHr])[-4:]
        self.DHr, self.CKr, self.Nr = dh, ck, n + 1
        self.PN, self.Ns, self.DHs, self.CKs, self.RK = self.Ns, 0, DHs2, CKs2, RK2
        self._store(old + new); self.pending = None                                 # 6
        return pt

    def _store(self, keys):
        self.skipped += keys
        if len(self.skipped) > self.MAX_STORED: self.skipped = self.skipped[-self.MAX_STORED:]

class Device:
    """Responder-side prekey store (just enough for §5.6's acceptance rule)."""
    def __init__(self, ident, rng, dev_id, spk_id, spk_secret, opks):
        self.ident, self.rng, self.dev_id = ident, rng, dev_id
        priv = clamp(spk_secret)
        self.spks = {spk_id: (priv, x25519_pub(priv))}
        self.cur_spk = spk_id
        self.sig = ident.sign(KEY_TYPE_X25519 + x25519_pub(priv))
        self.opks = {i: clamp(k) for i, k in opks.items()}
        self.sessions = {}

    def bundle(self):
        oid = min(self.opks) if self.opks else None
        return encode_bundle(self.ident.enc, self.dev_id, self.cur_spk, self.spks[self.cur_spk][1],
                             self.sig, (oid, x25519_pub(self.opks[oid])) if oid else None)

    def receive(self, msg):
        if msg[:1] == b"\x01":
            raise ProtoError("ratchet message routing not needed for this check")
        ik_a, ek, spk_id, opk_id, inner = decode_prekey_msg(msg)
        key = (ik_a, ek)
        if key in self.sessions: return self.sessions[key], self.sessions[key].decrypt(inner)
        if spk_id not in self.spks or (opk_id is not None and opk_id not in self.opks):
            raise ProtoError("unknown prekey")
        s = Session.responder(self.ident, self.rng, self.spks[spk_id],
                              self.opks[opk_id] if opk_id is not None else None, ik_a, ek)
        pt = s.decrypt(inner)
        if opk_id is not None: del self.opks[opk_id]
        self.sessions[key] = s
        return s, pt

# ---------------- vector check ----------------
def load_vectors(path):
    v, sect = {"inputs": {}, "outputs": {}}, None
    for line in open(path):
        line = line.strip()
        if not line or line.startswith("#"): continue
        if line.startswith("["): sect = line.strip("[]"); continue
        k, val = (x.strip() for x in line.split("=", 1)); v[sect][k] = bytes.fromhex(val)
    return v["inputs"], v["outputs"]

def main():
    I, O = load_vectors(VEC)
    fails = 0
    def check(name, got):
        nonlocal fails
        ok = got == O.get(name)
        fails += not ok
        print(f"{'PASS' if ok else 'FAIL'} {name}" + ("" if ok else f"\n  got  {got.hex()}\n  want {O.get(name, b'').hex()}"))
    def check_pt(name, got, want):
        nonlocal fails
        ok = got == want; fails += not ok
        print(f"{'PASS' if ok else 'FAIL'} {name}")

    alice = Identity(I["alice_identity_seed"]); bob = Identity(I["bob_identity_seed"])
    alice_rng = RNG([I["alice_ephemeral_secret"], I["alice_ratchet_secret_1"], I["alice_ratchet_secret_2"]])
    bob_rng = RNG([I["bob_ratchet_secret_1"]])
    bob_dev = Device(bob, bob_rng, 1, 1, I["bob_signed_prekey_secret"], {1: I["bob_one_time_prekey_secret"]})

    bundle_bytes = bob_dev.bundle(); check("bundle", bundle_bytes)
    bundle = decode_bundle(O["bundle"], expected_ik=bob.enc)   # verify the *stored* bundle strictly
    a = Session.initiator(alice, alice_rng, bundle)
    check("x3dh_shared_secret", a.SK); check("x3dh_associated_data", a.AD)
    check("alice_root_key_1", a.RK); check("alice_sending_chain_key_1", a.CKs)
    m0 = a.encrypt(I["plaintext_0"]); check("message_0", m0)
    m1 = a.encrypt(I["plaintext_1"]); check("message_1", m1)

    # Bob decrypts from the *stored* vector bytes
    bs, p0 = bob_dev.receive(O["message_0"])
    check_pt("decrypt message_0 as Bob", p0, I["plaintext_0"])
    check("bob_root_key_1", bs.RK)
    check("bob_receiving_chain_key_1", bs.CKr)
    bs2, p1 = bob_dev.receive(O["message_1"])          # repeat prekey message -> same session
    check_pt("decrypt message_1 as Bob (repeat prekey msg, same session)", p1, I["plaintext_1"])
    assert bs2 is bs and 1 not in bob_dev.opks
    m2 = bs.encrypt(I["plaintext_2"]); check("message_2", m2)

    p2 = a.decrypt(O["message_2"])
    check_pt("decrypt message_2 as Alice", p2, I["plaintext_2"])
    check("alice_root_key_2", a.RK)
    check_pt("Alice pending cleared after reply", a.pending is None, True)

    # a few negative checks of the strictness the spec asks for
    flip = lambda b, i: b[:i] + bytes([b[i] ^ 1]) + b[i + 1:]
    for desc, fn in [
        ("bundle trailing byte", lambda: decode_bundle(O["bundle"] + b"\0")),
        ("bundle truncated", lambda: decode_bundle(O["bundle"][:-1])),
        ("bundle bad sig (R flipped)", lambda: decode_bundle(flip(O["bundle"], 73))),
        ("bundle bad sig (S flipped)", lambda: decode_bundle(flip(O["bundle"], 105))),
        ("bundle S >= l", lambda: decode_bundle(O["bundle"][:105] + (int.from_bytes(O["bundle"][105:137], "little") + L).to_bytes(32, "little") + O["bundle"][137:])),
        ("bundle small-order IK", lambda: decode_bundle(b"\x03" + (1).to_bytes(32, "little") + O["bundle"][33:])),
        ("bundle flag 2", lambda: decode_bundle(O["bundle"][:137] + b"\x02" + O["bundle"][138:])),
        ("message_0 prefix altered", lambda: Device(bob, RNG([I["bob_ratchet_secret_1"]]), 1, 1, I["bob_signed_prekey_secret"], {1: I["bob_one_time_prekey_secret"]}).receive(flip(O["message_0"], 40))),
        ("replay message_2", lambda: a.decrypt(O["message_2"])),
    ]:
        try: fn(); print(f"FAIL negative: {desc} accepted"); fails += 1
        except ProtoError as e: print(f"PASS negative: {desc} -> {e}")
    print("ALL PASS" if fails == 0 else f"{fails} FAILURE(S)")
    return 1 if fails else 0

if __name__ == "__main__":
    sys.exit(main())
