#!/usr/bin/env python3
"""Independent implementation of ratchetbox v2 SPEC.md §11-§14 (safety numbers, trust
records, state at rest, device linking), written from SPEC.md alone. Reuses the §1-§3
primitives of tests/interop/spec_check.py, including its pure-Python HChaCha20 for the
XChaCha20-Poly1305 of §13.1. Reproduces tests/vectors/devices_v2.txt byte for byte, opens
what it stores, and exercises the stated error rules, including the v2 ones (slot-bound
blobs §13.1, the link secret §14, canonical X25519 keys §2.3, torsion-free keys §3.1).
Run: python3 tests/interop/devices_check.py"""
import hashlib, hmac as _hmac, os, secrets, struct, sys
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from spec_check import (Identity, Reader, ProtoError, RNG, DH, HKDF, AEAD_Seal, AEAD_Open,
                        XAEAD_Seal, XAEAD_Open, valid_point, load_vectors, clamp, x25519_pub,
                        is_canonical_x25519, Checker, flip, setb, put, noncanonical_variants,
                        torsion_point, pt_add, pt_encode, xchacha_selftest)
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.exceptions import InvalidTag

VEC = os.path.join(HERE, "..", "vectors", "devices_v2.txt")
SAFETY_NUMBER_LABEL = b"ratchetbox v2 safety number"
PROVISIONING_INFO = b"ratchetbox v2 provisioning"
PROVISIONING_CODE_LABEL = b"ratchetbox v2 provisioning code"
STATE_AT_REST_INFO = b"ratchetbox v2 state at rest"
assert len(SAFETY_NUMBER_LABEL) == 27
u8 = lambda v: bytes([v])
u32 = lambda v: struct.pack(">I", v)

class DevError(ProtoError):
    pass

def take(r, n):  # Reader.take with this script's error class
    try: return r.take(n)
    except ProtoError: raise DevError("truncated")

def end(r):
    if r.i != len(r.b): raise DevError("trailing bytes")

def account_id(a):
    if not 1 <= len(a) <= 64: raise DevError("malformed")
    return a

# ---------------- §11 safety numbers ----------------
def fingerprint(ik_enc, acct):
    h = hashlib.sha512(b"\x00\x02" + SAFETY_NUMBER_LABEL + ik_enc + u8(len(account_id(acct))) + acct).digest()
    for _ in range(5200): h = hashlib.sha512(h + ik_enc).digest()
    return h                                                          # F, 64 bytes

def digits30(F):
    return "".join("%05d" % (int.from_bytes(F[5 * j:5 * j + 5], "big") % 100000) for j in range(6))

def safety_number(F_local, F_remote):
    a, b = digits30(F_local), digits30(F_remote)
    return min(a, b) + max(a, b)                                       # 60 digits

def display(sn): return " ".join(sn[i:i + 5] for i in range(0, 60, 5))

def scannable(F_local, F_remote): return b"\x5a\x02" + F_local[:32] + F_remote[:32]

def compare_scanned(S, F_local, F_remote):
    """§11.3: returns 'match' / 'mismatch' / 'version mismatch', raises the error cases."""
    if len(S) == 0: raise DevError("truncated")
    if S[0] != 0x5A: raise DevError("unknown format")
    if len(S) == 1: raise DevError("truncated")
    if S[1] != 0x02: return "version mismatch"
    if len(S) < 66: raise DevError("truncated")
    if len(S) > 66: raise DevError("trailing bytes")
    ok1 = _hmac.compare_digest(S[2:34], F_remote[:32])
    ok2 = _hmac.compare_digest(S[34:66], F_local[:32])
    return "match" if ok1 & ok2 else "mismatch"

# ---------------- §12 trust records ----------------
UNVERIFIED, VERIFIED, CHANGED = 0, 1, 2

class Trust:
    def __init__(self, ik, state, previous=None, was_verified=False):
        self.ik, self.state, self.previous, self.was_verified = ik, state, previous, was_verified
    def blocks(self): return self.state == CHANGED and self.was_verified
    def encode(self):
        out = b"\x55\x01" + self.ik + u8(self.state)
        if self.state == CHANGED: out += self.previous + u8(int(self.was_verified))
        return out
    def __eq__(self, o): return vars(self) == vars(o)

def decode_trust(b):
    r = Reader(b)
    if take(r, 1) != b"\x55": raise DevError("unknown kind")
    if take(r, 1) != b"\x01": raise DevError("unsupported version")
    ik = take(r, 32)
    if valid_point(ik) is None: raise DevError("invalid identity key")
    st = take(r, 1)[0]
    if st > 2: raise DevError("malformed")          # error name for a bad state code: not in SPEC
    prev, wv = None, False
    if st == CHANGED:
        prev = take(r, 32)
        if valid_point(prev) is None: raise DevError("invalid identity key")
        if prev == ik: raise DevError("malformed")    # "(≠ IK)"
        f = take(r, 1)[0]
        if f > 1: raise DevError("malformed")
        wv = f == 1
    end(r)
    return Trust(ik, st, prev, wv)

def key_arrives(rec, K):
    """§12.1 policy. Returns (new record, outcome) with outcome in
    {'ok', 'reported', 'blocked'}; the change is recorded even when blocked."""
    if rec is None: return Trust(K, UNVERIFIED), "ok"
    if K == rec.ik: return rec, ("blocked" if rec.blocks() else "ok")
    if rec.blocks() and K == rec.previous:      # back to the verified key: reported, not blocking
        return Trust(K, VERIFIED), "reported"
    if rec.state == VERIFIED or rec.blocks():
        prev = rec.previous if rec.blocks() else rec.ik
        new = Trust(K, CHANGED, prev, True); return new, "blocked"
    return Trust(K, CHANGED, rec.ik, False), "reported"

def mark_verified(rec, K):
    if K != rec.ik: raise DevError("key mismatch")
    return Trust(K, VERIFIED)

def accept(rec, K):
    if K != rec.ik: raise DevError("key mismatch")
    return Trust(K, UNVERIFIED) if rec.state == CHANGED else rec

# ---------------- §13 state at rest ----------------
KINDS = {1, 2, 3, 4, 5, 6, 7, 8, 9}
BLOB_OVERHEAD = 3 + 24 + 16

def storage_key(SK): return HKDF(bytes(32), SK, STATE_AT_REST_INFO, 32)

def seal_blob(SK, kind, nonce, slot, plaintext):
    """§13.1: head ‖ nonce ‖ XAEAD_Seal(K, nonce, head ‖ slot, plaintext)."""
    assert kind in KINDS and len(nonce) == 24
    head = b"\x7a\x02" + u8(kind)
    return head + nonce + XAEAD_Seal(storage_key(SK), nonce, head + slot, plaintext)

def _open_raw(SK, blob, k, slot):
    if len(blob) >= 1 and blob[0] != 0x7A: raise DevError("not sealed state")
    if len(blob) >= 2 and blob[1] != 0x02: raise DevError("unsupported version")
    if len(blob) < BLOB_OVERHEAD: raise DevError("truncated")
    if blob[2] not in KINDS: raise DevError("wrong key or corrupted")
    if blob[2] != k: raise DevError("wrong kind")
    head, nonce, ct = blob[:3], blob[3:27], blob[27:]
    try: return XAEAD_Open(storage_key(SK), nonce, head + slot, ct)
    except ProtoError: raise DevError("wrong key or corrupted")

def open_blob(SK, blob, k, slot):
    return DECODERS[k](_open_raw(SK, blob, k, slot))

def reseal(old_sk, new_sk, blob, k, slot, nonce):
    open_blob(old_sk, blob, k, slot)  # validates the object too
    return seal_blob(new_sk, k, nonce, slot, _open_raw(old_sk, blob, k, slot))

def decode_identity(b):   # §6.1
    r = Reader(b)
    if take(r, 1) != b"\x49": raise DevError("unknown kind")
    if take(r, 1) != b"\x01": raise DevError("unsupported version")
    seed = take(r, 32); end(r)
    return Identity(seed)

def encode_local_device(acct, dev, seed):   # §13.3
    return b"\x4c\x01" + u8(len(account_id(acct))) + acct + u32(dev) + seed

def decode_local_device(b):
    r = Reader(b)
    if take(r, 1) != b"\x4c": raise DevError("unknown kind")
    if take(r, 1) != b"\x01": raise DevError("unsupported version")
    n = take(r, 1)[0]
    if not 1 <= n <= 64: raise DevError("malformed")
    acct = take(r, n); dev = struct.unpack(">I", take(r, 4))[0]; seed = take(r, 32); end(r)
    return acct, dev, seed

DECODERS = {1: decode_identity, 4: decode_trust, 7: decode_local_device}

# ---------------- §14 device linking ----------------
def link_request(rng):
    """§14.1: (lk, LK) from the first draw (clamped), then the 32-byte link secret S."""
    l, L = rng.generate_dh(); S = rng.take(32)
    return l, L, S, b"\x62" + L + S

def parse_link_request(code):
    """§14.2: returns (LK, S)."""
    # In byte order: tag, LK (present, then canonical), S, nothing after.
    if len(code) < 1: raise DevError("truncated")
    if code[0] != 0x62: raise DevError("unknown format")
    if len(code) < 33: raise DevError("truncated")
    if not is_canonical_x25519(code[1:33]): raise DevError("malformed")
    if len(code) < 65: raise DevError("truncated")
    if len(code) > 65: raise DevError("trailing bytes")
    return code[1:33], code[33:65]

def provisioning_key(dh, S, L, E): return HKDF(L + E, dh + S, PROVISIONING_INFO, 32)

def make_payload(code, rng, seed, acct, devices, extra=b"", E_override=None):
    L, S = parse_link_request(code)
    e, E = rng.generate_dh()
    try: dh = DH(e, L)
    except ProtoError: raise DevError("non-contributory DH")
    K = provisioning_key(dh, S, L, E)
    assert len(devices) <= 64
    header = b"\x63" + L + (E_override or E)
    body = seed + u8(len(account_id(acct))) + acct + u8(len(devices)) + b"".join(u32(d) for d in devices) + extra
    return header + AEAD_Seal(K, header, body), E

def confirmation_code(L, E, ik_enc):
    h = hashlib.sha512(PROVISIONING_CODE_LABEL + L + E + ik_enc).digest()
    for _ in range(5200): h = hashlib.sha512(h + L).digest()
    return "%08d" % (int.from_bytes(h[:8], "big") % 10**8)

class NewDevice:
    def __init__(self, rng):
        self.l, self.L, self.S, self.code = link_request(rng)
        self.done = False

    def accept(self, p):
        """§14.3, checks in the stated order."""
        if self.done: raise DevError("already completed")
        if len(p) < 1: raise DevError("truncated")
        if p[0] != 0x63: raise DevError("unknown format")
        if len(p) < 81: raise DevError("truncated")
        if not _hmac.compare_digest(p[1:33], self.L): raise DevError("wrong ephemeral key")
        header, E = p[:65], p[33:65]
        if not is_canonical_x25519(E): raise DevError("malformed")
        try: dh = DH(self.l, E)
        except ProtoError: raise DevError("non-contributory DH")
        K = provisioning_key(dh, self.S, self.L, E)
        try: body = AEAD_Open(K, header, p[65:])
        except ProtoError: raise DevError("tampered")
        try:
            r = Reader(body)
            seed = take(r, 32); n = take(r, 1)[0]
            if not 1 <= n <= 64: raise DevError("tampered")
            acct = take(r, n); c = take(r, 1)[0]
            if c > 64: raise DevError("tampered")
            devs = [struct.unpack(">I", take(r, 4))[0] for _ in range(c)]
            end(r)
        except DevError: raise DevError("tampered")
        self.l, self.S, self.done = None, None, True      # erase lk and S: accepts nothing again
        ident = Identity(seed)
        while True:                              # own id: random non-zero 31-bit, not listed
            my_id = secrets.randbelow(2**31 - 1) + 1
            if my_id not in devs: break
        return dict(identity=ident, account=acct, devices=devs, device_id=my_id,
                    code=confirmation_code(self.L, E, ident.enc))

# ---------------- vector check ----------------
def main():
    I, O = load_vectors(VEC)
    c = Checker(O)
    for name, ok in xchacha_selftest(): c.true(name, ok)

    alice = Identity(I["alice_identity_seed"]); bob = Identity(I["bob_identity_seed"])
    bob_new = Identity(I["bob_new_identity_seed"])
    A_id, B_id = I["alice_account_id"], I["bob_account_id"]

    # §11
    Fa, Fb = fingerprint(alice.enc, A_id), fingerprint(bob.enc, B_id)
    sn_a, sn_b = safety_number(Fa, Fb), safety_number(Fb, Fa)
    c.vec("safety_number_digits", sn_a.encode())
    c.eq("safety number same on both sides", sn_a, sn_b)
    c.eq("safety number display (12 groups of 5)", [len(g) for g in display(sn_a).split(" ")], [5] * 12)
    c.vec("alice_scannable", scannable(Fa, Fb)); c.vec("bob_scannable", scannable(Fb, Fa))
    AS, BS = O["alice_scannable"], O["bob_scannable"]
    c.eq("compare bob_scannable on alice's side", compare_scanned(BS, Fa, Fb), "match")
    c.eq("compare alice_scannable on bob's side", compare_scanned(AS, Fb, Fa), "match")
    c.eq("compare alice's own code on alice's side", compare_scanned(AS, Fa, Fb), "mismatch")
    c.eq("compare bob_scannable with the v1 version byte 0x01", compare_scanned(setb(BS, 1, 1), Fa, Fb), "version mismatch")
    c.eq("compare 2-byte code version 0x01", compare_scanned(b"\x5a\x01", Fa, Fb), "version mismatch")
    c.eq("compare bob_scannable F flipped", compare_scanned(flip(BS, 40), Fa, Fb), "mismatch")
    Fn = fingerprint(bob_new.enc, B_id)
    c.eq("compare after bob's key change", compare_scanned(scannable(Fn, Fa), Fa, Fb), "mismatch")
    c.err("scan empty", "truncated", lambda: compare_scanned(b"", Fa, Fb))
    c.err("scan wrong format byte", "unknown format", lambda: compare_scanned(setb(BS, 0, 0x5B), Fa, Fb))
    c.err("scan one byte", "truncated", lambda: compare_scanned(b"\x5a", Fa, Fb))
    c.err("scan 65 bytes", "truncated", lambda: compare_scanned(BS[:-1], Fa, Fb))
    c.err("scan 67 bytes", "trailing bytes", lambda: compare_scanned(BS + b"\0", Fa, Fb))

    # §12 trust records, built by running the §12.1 policy
    rec, out = key_arrives(None, bob.enc)
    c.vec("trust_record_unverified", rec.encode()); c.eq("first sight outcome", out, "ok")
    rec = mark_verified(rec, bob.enc); c.vec("trust_record_verified", rec.encode())
    rec, out = key_arrives(rec, bob_new.enc)
    c.vec("trust_record_changed", rec.encode()); c.eq("verified -> changed blocks", out, "blocked")
    c.eq("same key while blocked stays blocked", key_arrives(rec, bob_new.enc)[1], "blocked")
    third, _ = key_arrives(rec, alice.enc)
    c.eq("second change keeps last verified key as previous", (third.previous, third.was_verified), (bob.enc, True))
    back, out = key_arrives(rec, bob.enc)
    c.eq("blocking change, its previous (verified) key arrives: verified again, reported, not blocking",
         (back.encode(), out), (O["trust_record_verified"], "reported"))
    c.eq("accept changed -> unverified", accept(rec, bob_new.enc).encode(), b"\x55\x01" + bob_new.enc + b"\x00")
    c.err("accept other key", "key mismatch", lambda: accept(rec, bob.enc))
    r2, out = key_arrives(Trust(bob.enc, UNVERIFIED), bob_new.enc)
    c.eq("unverified change is reported, not blocking", (out, r2.was_verified, r2.previous), ("reported", False, bob.enc))
    for nm in ("trust_record_unverified", "trust_record_verified", "trust_record_changed"):
        c.eq(f"decode/re-encode {nm}", decode_trust(O[nm]).encode(), O[nm])
    TC, TU = O["trust_record_changed"], O["trust_record_unverified"]
    c.err("trust record truncated", "truncated", lambda: decode_trust(TC[:-1]))
    c.err("trust record trailing", "trailing bytes", lambda: decode_trust(TU + b"\0"))
    c.err("trust record state 3", None, lambda: decode_trust(setb(TU, 34, 3)))
    c.err("trust record previous == IK", None, lambda: decode_trust(TC[:35] + TC[2:34] + TC[-1:]))
    c.err("trust record flag 2", None, lambda: decode_trust(setb(TC, 67, 2)))
    T = torsion_point()
    BT = pt_encode(pt_add(valid_point(bob.enc), T))
    c.err("trust record whose key is IK_B + T (torsion component)", "invalid identity key", lambda: decode_trust(put(TU, 2, BT)))
    c.err("changed trust record whose previous key is IK_B + T", "invalid identity key", lambda: decode_trust(put(TC, 35, BT)))

    # §14 linking
    link_rng = lambda: RNG([I["link_request_secret"], I["link_request_link_secret"]])
    prim_rng = lambda: RNG([I["provisioning_ephemeral_secret"]])
    devices = [struct.unpack(">I", I["provisioning_devices"][i:i + 4])[0] for i in range(0, len(I["provisioning_devices"]), 4)]
    nd = NewDevice(link_rng())
    c.vec("link_request", nd.code)
    LR = O["link_request"]
    payload, E = make_payload(LR, prim_rng(), alice.seed, A_id, devices)
    c.vec("provisioning_payload", payload)
    code = confirmation_code(nd.L, E, alice.enc)
    c.vec("confirmation_code", code.encode())
    PP = O["provisioning_payload"]
    # negatives first, on the same device: failures must keep lk and S
    wrong_S = put(LR, 33, bytes(32))                 # same LK, another link secret
    c.err("payload made with a wrong link secret", "tampered", lambda: nd.accept(make_payload(wrong_S, prim_rng(), alice.seed, A_id, devices)[0]))
    dh_p = DH(clamp(I["provisioning_ephemeral_secret"]), nd.L)
    reseal_body = lambda K, body: PP[:65] + AEAD_Seal(K, PP[:65], body)   # PP's header, a chosen key and body
    body = AEAD_Open(provisioning_key(dh_p, nd.S, nd.L, E), PP[:65], PP[65:])
    c.err("payload keyed without S (the v1 derivation: ikm = dh only)", "tampered",
          lambda: nd.accept(reseal_body(HKDF(nd.L + E, dh_p, PROVISIONING_INFO, 32), body)))
    c.err("payload empty", "truncated", lambda: nd.accept(b""))
    c.err("payload truncated (80 bytes)", "truncated", lambda: nd.accept(PP[:80]))
    c.err("payload wrong tag (v1 0x61)", "unknown format", lambda: nd.accept(setb(PP, 0, 0x61)))
    c.err("payload wrong tag, 3 bytes", "unknown format", lambda: nd.accept(b"\x62\x00\x00"))
    c.err("payload L changed", "wrong ephemeral key", lambda: nd.accept(flip(PP, 5)))
    c.err("payload ciphertext byte flipped", "tampered", lambda: nd.accept(flip(PP, 70)))
    c.err("payload tag flipped", "tampered", lambda: nd.accept(flip(PP, len(PP) - 1)))
    c.err("payload E changed", "tampered", lambda: nd.accept(flip(PP, 40)))
    for vdesc, bad in noncanonical_variants(PP[33:65]):
        c.err(f"payload E {vdesc}", "malformed", lambda bad=bad: nd.accept(put(PP, 33, bad)))
    c.err("payload E small order (u = 0)", "non-contributory DH", lambda: nd.accept(put(PP, 33, bytes(32))))
    c.err("payload body trailing byte", "tampered", lambda: nd.accept(
        make_payload(nd.code, prim_rng(), alice.seed, A_id, devices, b"\0")[0]))
    K_p = provisioning_key(dh_p, nd.S, nd.L, E)
    c.err("payload body with 65 devices", "tampered",
          lambda: nd.accept(reseal_body(K_p, alice.seed + u8(5) + A_id + u8(65) + bytes(4 * 65))))
    c.err("payload body with an empty account id", "tampered",
          lambda: nd.accept(reseal_body(K_p, alice.seed + u8(0) + u8(0))))
    other = NewDevice(RNG([bytes(range(32)), bytes(range(32, 64))]))
    c.err("payload for another link request", "wrong ephemeral key", lambda: other.accept(PP))
    got = nd.accept(PP)   # the real payload still opens after the forgeries
    c.eq("open provisioning_payload: seed", got["identity"].seed, alice.seed)
    c.eq("its body is seed ‖ u8(5) ‖ 'alice' ‖ u8(2) ‖ 1 ‖ 7", body, alice.seed + u8(5) + A_id + u8(2) + u32(1) + u32(7))
    c.eq("open provisioning_payload: identity key", got["identity"].enc, alice.enc)
    c.eq("open provisioning_payload: account id", got["account"], A_id)
    c.eq("open provisioning_payload: device list", got["devices"], [1, 7])
    c.true("new device's own id is fresh, non-zero, 31-bit",
           0 < got["device_id"] < 2**31 and got["device_id"] not in got["devices"])
    c.eq("new device's confirmation code equals primary's", got["code"].encode(), O["confirmation_code"])
    c.true("lk and S erased after success", nd.l is None and nd.S is None)
    c.err("payload replay", "already completed", lambda: nd.accept(PP))
    c.err("link request trailing", "trailing bytes", lambda: parse_link_request(LR + b"\0"))
    bad_lk = LR[:32] + bytes([LR[32] | 0x80]) + LR[33:]
    c.err("link request: non-canonical LK comes before trailing bytes (byte order)", "malformed",
          lambda: parse_link_request(bad_lk + b"\0"))
    c.err("link request: non-canonical LK comes before a short secret (byte order)", "malformed",
          lambda: parse_link_request(bad_lk[:40]))
    c.err("link request truncated", "truncated", lambda: parse_link_request(LR[:-1]))
    c.err("link request of the v1 length (33 bytes)", "truncated", lambda: parse_link_request(LR[:33]))
    c.err("link request empty", "truncated", lambda: parse_link_request(b""))
    c.err("link request wrong tag (v1 0x60)", "unknown format", lambda: parse_link_request(setb(LR, 0, 0x60)))
    for vdesc, bad in noncanonical_variants(LR[1:33]):
        c.err(f"link request LK {vdesc}", "malformed", lambda bad=bad: parse_link_request(put(LR, 1, bad)))
    c.err("link request LK small order (u = 0): the primary's DH fails", "non-contributory DH",
          lambda: make_payload(put(LR, 1, bytes(32)), prim_rng(), alice.seed, A_id, devices))

    # §13 state at rest
    SK = I["storage_key"]; slot_i, slot_t = I["storage_slot_identity"], I["storage_slot_trust"]
    si = seal_blob(SK, 1, I["storage_nonce_identity"], slot_i, b"\x49\x01" + alice.seed)
    c.vec("sealed_identity", si)
    st = seal_blob(SK, 4, I["storage_nonce_trust"], slot_t, O["trust_record_changed"])
    c.vec("sealed_trust_record", st)
    SI, ST = O["sealed_identity"], O["sealed_trust_record"]
    c.eq("blob is 43 bytes longer", (len(SI) - 34, len(ST) - 68), (43, 43))
    c.eq("open sealed_identity", open_blob(SK, SI, 1, slot_i).enc, alice.enc)
    c.true("open sealed_trust_record", open_blob(SK, ST, 4, slot_t) == decode_trust(O["trust_record_changed"]))
    K = storage_key(SK); n = SI[3:27]
    def plain_chacha():
        try: ChaCha20Poly1305(K).decrypt(n[:12], SI[27:], SI[:3] + slot_i)
        except InvalidTag: raise DevError("decryption failed")
    c.err("sealed_identity is not plain ChaCha20-Poly1305 under n[0..12]", "decryption failed", plain_chacha)
    c.err("sealed_identity under another slot (the trust record's)", "wrong key or corrupted", lambda: open_blob(SK, SI, 1, slot_t))
    c.err("sealed_identity under the empty slot", "wrong key or corrupted", lambda: open_blob(SK, SI, 1, b""))
    c.err("sealed_trust_record under a longer slot", "wrong key or corrupted", lambda: open_blob(SK, ST, 4, slot_t + b"\0"))
    c.err("sealed_trust_record under slot 'alice'", "wrong key or corrupted", lambda: open_blob(SK, ST, 4, A_id))
    c.err("blob kind byte changed (opened as new kind)", "wrong key or corrupted", lambda: open_blob(SK, setb(SI, 2, 4), 4, slot_i))
    c.err("blob kind byte changed (opened as old kind)", "wrong kind", lambda: open_blob(SK, setb(SI, 2, 4), 1, slot_i))
    c.err("wrong kind requested", "wrong kind", lambda: open_blob(SK, SI, 4, slot_i))
    c.err("kind byte 10 not in table", "wrong key or corrupted", lambda: open_blob(SK, setb(ST, 2, 10), 4, slot_t))
    c.err("kind byte 0 not in table", "wrong key or corrupted", lambda: open_blob(SK, setb(ST, 2, 0), 4, slot_t))
    c.err("blob truncated (42 bytes)", "truncated", lambda: open_blob(SK, SI[:42], 1, slot_i))
    c.err("blob truncated (last byte)", "wrong key or corrupted", lambda: open_blob(SK, SI[:-1], 1, slot_i))
    c.err("blob empty", "truncated", lambda: open_blob(SK, b"", 1, slot_i))
    c.err("blob of one byte 0x7A", "truncated", lambda: open_blob(SK, b"\x7a", 1, slot_i))
    c.err("blob first byte", "not sealed state", lambda: open_blob(SK, setb(SI, 0, 0x49), 1, slot_i))
    c.err("blob first byte, 1-byte blob", "not sealed state", lambda: open_blob(SK, b"\x49", 1, slot_i))
    c.err("blob version byte 0x01 (v1)", "unsupported version", lambda: open_blob(SK, setb(SI, 1, 1), 1, slot_i))
    c.err("blob version byte 0x01, 2-byte blob", "unsupported version", lambda: open_blob(SK, b"\x7a\x01", 1, slot_i))
    c.err("blob nonce flipped (first 16 bytes: HChaCha20 input)", "wrong key or corrupted", lambda: open_blob(SK, flip(SI, 5), 1, slot_i))
    c.err("blob nonce flipped (last 8 bytes: ChaCha20 nonce)", "wrong key or corrupted", lambda: open_blob(SK, flip(SI, 25), 1, slot_i))
    c.err("blob tag flipped", "wrong key or corrupted", lambda: open_blob(SK, flip(ST, len(ST) - 1), 4, slot_t))
    c.err("blob wrong storage key", "wrong key or corrupted", lambda: open_blob(flip(SK, 0), SI, 1, slot_i))
    c.err("blob object trailing bytes", "trailing bytes",
          lambda: open_blob(SK, seal_blob(SK, 1, bytes(24), slot_i, b"\x49\x01" + alice.seed + b"\0"), 1, slot_i))
    SK2 = bytes(32)
    rs = reseal(SK, SK2, ST, 4, slot_t, bytes(range(24)))
    c.eq("re-sealed blob opens under new key, same slot", open_blob(SK2, rs, 4, slot_t).encode(), O["trust_record_changed"])
    c.err("re-sealed blob under old key", "wrong key or corrupted", lambda: open_blob(SK, rs, 4, slot_t))
    c.err("re-sealed blob under another slot", "wrong key or corrupted", lambda: open_blob(SK2, rs, 4, slot_i))
    ld = encode_local_device(A_id, 1, alice.seed)
    c.eq("local device (§13.3) is 44 bytes for a 5-byte account id", len(ld), 44)
    c.eq("local device sealed for slot 'local device' opens there",
         open_blob(SK, seal_blob(SK, 7, bytes(24), b"local device", ld), 7, b"local device"), (A_id, 1, alice.seed))
    c.err("... and not under slot 'local devicE'", "wrong key or corrupted",
          lambda: open_blob(SK, seal_blob(SK, 7, bytes(24), b"local device", ld), 7, b"local devicE"))
    return c.done()

if __name__ == "__main__":
    sys.exit(main())
