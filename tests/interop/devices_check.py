#!/usr/bin/env python3
"""Independent implementation of ratchetbox v1 SPEC.md §11-§14 (safety numbers, trust
records, state at rest, device linking), written from SPEC.md alone. Reuses the §1-§3
primitives of tests/interop/spec_check.py. Reproduces tests/vectors/devices_v1.txt byte
for byte, opens what it stores, and exercises the stated error rules.
Run: python3 tests/interop/devices_check.py"""
import hashlib, hmac as _hmac, os, secrets, struct, sys
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from spec_check import (Identity, Reader, ProtoError, DH, HKDF, AEAD_Seal, AEAD_Open,
                        valid_point, load_vectors, clamp, x25519_pub)
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.exceptions import InvalidTag

VEC = os.path.join(HERE, "..", "vectors", "devices_v1.txt")
SAFETY_NUMBER_LABEL = b"ratchetbox v1 safety number"
PROVISIONING_INFO = b"ratchetbox v1 provisioning"
PROVISIONING_CODE_LABEL = b"ratchetbox v1 provisioning code"
STATE_AT_REST_INFO = b"ratchetbox v1 state at rest"
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
    h = hashlib.sha512(b"\x00\x01" + SAFETY_NUMBER_LABEL + ik_enc + u8(len(account_id(acct))) + acct).digest()
    for _ in range(5200): h = hashlib.sha512(h + ik_enc).digest()
    return h                                                          # F, 64 bytes

def digits30(F):
    return "".join("%05d" % (int.from_bytes(F[5 * j:5 * j + 5], "big") % 100000) for j in range(6))

def safety_number(F_local, F_remote):
    a, b = digits30(F_local), digits30(F_remote)
    return min(a, b) + max(a, b)                                       # 60 digits

def display(sn): return " ".join(sn[i:i + 5] for i in range(0, 60, 5))

def scannable(F_local, F_remote): return b"\x5a\x01" + F_local[:32] + F_remote[:32]

def compare_scanned(S, F_local, F_remote):
    """§11.3: returns 'match' / 'mismatch' / 'version mismatch', raises the error cases."""
    if len(S) == 0: raise DevError("truncated")
    if S[0] != 0x5A: raise DevError("unknown format")
    if len(S) == 1: raise DevError("truncated")
    if S[1] != 0x01: return "version mismatch"
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
KINDS = {1, 2, 3, 4, 5, 6}

def storage_key(SK): return HKDF(bytes(32), SK, STATE_AT_REST_INFO, 32)

def seal_blob(SK, kind, nonce, plaintext):
    assert kind in KINDS and len(nonce) == 12
    head = b"\x7a\x01" + u8(kind)
    return head + nonce + ChaCha20Poly1305(storage_key(SK)).encrypt(nonce, plaintext, head)

def open_blob(SK, blob, k):
    # empty / 1-byte input: SPEC does not say; treated as truncated (checks run in byte order)
    if len(blob) < 1: raise DevError("truncated")
    if blob[0] != 0x7A: raise DevError("not sealed state")
    if len(blob) < 2: raise DevError("truncated")
    if blob[1] != 0x01: raise DevError("unsupported version")
    if len(blob) < 31: raise DevError("truncated")
    if blob[2] not in KINDS: raise DevError("wrong key or corrupted")
    if blob[2] != k: raise DevError("wrong kind")
    head, nonce, ct = blob[:3], blob[3:15], blob[15:]
    try: pt = ChaCha20Poly1305(storage_key(SK)).decrypt(nonce, ct, head)
    except InvalidTag: raise DevError("wrong key or corrupted")
    return DECODERS[k](pt)

def reseal(old_sk, new_sk, blob, k, nonce):
    open_blob(old_sk, blob, k)  # validates
    head, n, ct = blob[:3], blob[3:15], blob[15:]
    pt = ChaCha20Poly1305(storage_key(old_sk)).decrypt(n, ct, head)
    return seal_blob(new_sk, k, nonce, pt)

def decode_identity(b):   # §6.1
    r = Reader(b)
    if take(r, 1) != b"\x49": raise DevError("unknown kind")
    if take(r, 1) != b"\x01": raise DevError("unsupported version")
    seed = take(r, 32); end(r)
    return Identity(seed)

DECODERS = {1: decode_identity, 4: decode_trust}

# ---------------- §14 device linking ----------------
def link_request(secret):
    l = clamp(secret); L = x25519_pub(l)
    return l, L, b"\x60" + L

def parse_link_request(code):
    if len(code) < 1: raise DevError("truncated")
    if code[0] != 0x60: raise DevError("unknown format")
    if len(code) < 33: raise DevError("truncated")
    if len(code) > 33: raise DevError("trailing bytes")
    return code[1:]

def provisioning_key(dh, L, E): return HKDF(L + E, dh, PROVISIONING_INFO, 32)

def make_payload(code, e_secret, seed, acct, devices, extra=b""):
    L = parse_link_request(code)
    e = clamp(e_secret); E = x25519_pub(e)
    K = provisioning_key(DH(e, L), L, E)
    assert len(devices) <= 64
    header = b"\x61" + L + E
    body = seed + u8(len(account_id(acct))) + acct + u8(len(devices)) + b"".join(u32(d) for d in devices) + extra
    return header + AEAD_Seal(K, header, body), E

def confirmation_code(L, E, ik_enc):
    h = hashlib.sha512(PROVISIONING_CODE_LABEL + L + E + ik_enc).digest()
    for _ in range(5200): h = hashlib.sha512(h + L).digest()
    return "%08d" % (int.from_bytes(h[:8], "big") % 10**8)

class NewDevice:
    def __init__(self, secret):
        self.l, self.L, self.code = link_request(secret)
        self.done = False

    def accept(self, p):
        if self.done: raise DevError("already completed")
        if len(p) < 81: raise DevError("truncated")
        if p[0] != 0x61: raise DevError("unknown format")
        if not _hmac.compare_digest(p[1:33], self.L): raise DevError("wrong ephemeral key")
        header, E = p[:65], p[33:65]
        try: dh = DH(self.l, E)
        except ProtoError: raise DevError("invalid key")   # error name not in SPEC
        K = provisioning_key(dh, self.L, E)
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
        self.l, self.done = None, True           # erase l: accepts nothing again
        ident = Identity(seed)
        while True:                              # own id: random non-zero 31-bit, not listed
            my_id = secrets.randbelow(2**31 - 1) + 1
            if my_id not in devs: break
        return dict(identity=ident, account=acct, devices=devs, device_id=my_id,
                    code=confirmation_code(self.L, E, ident.enc))

# ---------------- vector check ----------------
def main():
    I, O = load_vectors(VEC)
    fails = 0
    def check(name, got, want=None):
        nonlocal fails
        want = O.get(name) if want is None else want
        ok = got == want; fails += not ok
        show = lambda x: x.hex() if isinstance(x, (bytes, bytearray)) else repr(x)
        print(f"{'PASS' if ok else 'FAIL'} {name}" + ("" if ok else f"\n  got  {show(got)}\n  want {show(want)}"))
    def expect_err(desc, want, fn):
        nonlocal fails
        try: fn(); print(f"FAIL negative {desc}: accepted"); fails += 1
        except DevError as e:
            ok = want is None or str(e) == want; fails += not ok
            print(f"{'PASS' if ok else 'FAIL'} negative {desc} -> {e}" + ("" if ok else f" (want {want})"))
    flip = lambda b, i: b[:i] + bytes([b[i] ^ 1]) + b[i + 1:]
    setb = lambda b, i, v: b[:i] + bytes([v]) + b[i + 1:]

    alice = Identity(I["alice_identity_seed"]); bob = Identity(I["bob_identity_seed"])
    bob_new = Identity(I["bob_new_identity_seed"])
    A_id, B_id = I["alice_account_id"], I["bob_account_id"]

    # §11
    Fa, Fb = fingerprint(alice.enc, A_id), fingerprint(bob.enc, B_id)
    sn_a, sn_b = safety_number(Fa, Fb), safety_number(Fb, Fa)
    check("safety_number_digits", sn_a.encode())
    check("safety number same on both sides", sn_a, sn_b)
    check("safety number display (12 groups of 5)", [len(g) for g in display(sn_a).split(" ")], [5] * 12)
    check("alice_scannable", scannable(Fa, Fb)); check("bob_scannable", scannable(Fb, Fa))
    AS, BS = O["alice_scannable"], O["bob_scannable"]
    check("compare bob_scannable on alice's side", compare_scanned(BS, Fa, Fb), "match")
    check("compare alice_scannable on bob's side", compare_scanned(AS, Fb, Fa), "match")
    check("compare alice's own code on alice's side", compare_scanned(AS, Fa, Fb), "mismatch")
    check("compare bob_scannable version 0x02", compare_scanned(setb(BS, 1, 2), Fa, Fb), "version mismatch")
    check("compare 2-byte code version 0x02", compare_scanned(b"\x5a\x02", Fa, Fb), "version mismatch")
    check("compare bob_scannable F flipped", compare_scanned(flip(BS, 40), Fa, Fb), "mismatch")
    Fn = fingerprint(bob_new.enc, B_id)
    check("compare after bob's key change", compare_scanned(scannable(Fn, Fa), Fa, Fb), "mismatch")
    expect_err("scan empty", "truncated", lambda: compare_scanned(b"", Fa, Fb))
    expect_err("scan wrong format byte", "unknown format", lambda: compare_scanned(setb(BS, 0, 0x5B), Fa, Fb))
    expect_err("scan one byte", "truncated", lambda: compare_scanned(b"\x5a", Fa, Fb))
    expect_err("scan 65 bytes", "truncated", lambda: compare_scanned(BS[:-1], Fa, Fb))
    expect_err("scan 67 bytes", "trailing bytes", lambda: compare_scanned(BS + b"\0", Fa, Fb))

    # §12 trust records, built by running the §12.1 policy
    rec, out = key_arrives(None, bob.enc)
    check("trust_record_unverified", rec.encode()); check("first sight outcome", out, "ok")
    rec = mark_verified(rec, bob.enc); check("trust_record_verified", rec.encode())
    rec, out = key_arrives(rec, bob_new.enc)
    check("trust_record_changed", rec.encode()); check("verified -> changed blocks", out, "blocked")
    check("same key while blocked stays blocked", key_arrives(rec, bob_new.enc)[1], "blocked")
    third, _ = key_arrives(rec, alice.enc)
    check("second change keeps last verified key as previous", (third.previous, third.was_verified), (bob.enc, True))
    check("accept changed -> unverified", accept(rec, bob_new.enc).encode(), b"\x55\x01" + bob_new.enc + b"\x00")
    expect_err("accept other key", "key mismatch", lambda: accept(rec, bob.enc))
    r2, out = key_arrives(Trust(bob.enc, UNVERIFIED), bob_new.enc)
    check("unverified change is reported, not blocking", (out, r2.was_verified, r2.previous), ("reported", False, bob.enc))
    for nm in ("trust_record_unverified", "trust_record_verified", "trust_record_changed"):
        check(f"decode/re-encode {nm}", decode_trust(O[nm]).encode(), O[nm])
    TC, TU = O["trust_record_changed"], O["trust_record_unverified"]
    expect_err("trust record truncated", "truncated", lambda: decode_trust(TC[:-1]))
    expect_err("trust record trailing", "trailing bytes", lambda: decode_trust(TU + b"\0"))
    expect_err("trust record state 3", None, lambda: decode_trust(setb(TU, 34, 3)))
    expect_err("trust record previous == IK", None, lambda: decode_trust(TC[:35] + TC[2:34] + TC[-1:]))
    expect_err("trust record flag 2", None, lambda: decode_trust(setb(TC, 67, 2)))

    # §14 linking
    nd = NewDevice(I["link_request_secret"])
    check("link_request", nd.code)
    payload, E = make_payload(O["link_request"], I["provisioning_ephemeral_secret"], alice.seed, A_id,
                              [struct.unpack(">I", I["provisioning_devices"][i:i + 4])[0]
                               for i in range(0, len(I["provisioning_devices"]), 4)])
    check("provisioning_payload", payload)
    code = confirmation_code(nd.L, E, alice.enc)
    check("confirmation_code", code.encode())
    PP = O["provisioning_payload"]
    # negatives first, on the same device: failures must keep l
    expect_err("payload truncated (80 bytes)", "truncated", lambda: nd.accept(PP[:80]))
    expect_err("payload wrong tag", "unknown format", lambda: nd.accept(setb(PP, 0, 0x62)))
    expect_err("payload L changed", "wrong ephemeral key", lambda: nd.accept(flip(PP, 5)))
    expect_err("payload ciphertext byte flipped", "tampered", lambda: nd.accept(flip(PP, 70)))
    expect_err("payload tag flipped", "tampered", lambda: nd.accept(flip(PP, len(PP) - 1)))
    expect_err("payload E changed", "tampered", lambda: nd.accept(flip(PP, 40)))
    expect_err("payload E small order (u = 0)", None, lambda: nd.accept(PP[:33] + bytes(32) + PP[65:]))
    expect_err("payload body trailing byte", "tampered", lambda: nd.accept(
        make_payload(nd.code, I["provisioning_ephemeral_secret"], alice.seed, A_id, [1, 7], b"\0")[0]))
    other = NewDevice(bytes(range(32)))
    expect_err("payload for another link request", "wrong ephemeral key", lambda: other.accept(PP))
    got = nd.accept(PP)   # the real payload still opens after the forgeries
    check("open provisioning_payload: seed", got["identity"].seed, alice.seed)
    check("open provisioning_payload: identity key", got["identity"].enc, alice.enc)
    check("open provisioning_payload: account id", got["account"], A_id)
    check("open provisioning_payload: device list", got["devices"], [1, 7])
    check("new device's own id is fresh, non-zero, 31-bit",
          0 < got["device_id"] < 2**31 and got["device_id"] not in got["devices"], True)
    check("new device's confirmation code equals primary's", got["code"].encode(), O["confirmation_code"])
    expect_err("payload replay", "already completed", lambda: nd.accept(PP))
    expect_err("link request trailing", "trailing bytes", lambda: parse_link_request(O["link_request"] + b"\0"))
    expect_err("link request truncated", "truncated", lambda: parse_link_request(O["link_request"][:-1]))
    expect_err("link request wrong tag", "unknown format", lambda: parse_link_request(setb(O["link_request"], 0, 0x61)))

    # §13 state at rest
    SK = I["storage_key"]
    si = seal_blob(SK, 1, I["storage_nonce_identity"], b"\x49\x01" + alice.seed)
    check("sealed_identity", si)
    st = seal_blob(SK, 4, I["storage_nonce_trust"], O["trust_record_changed"])
    check("sealed_trust_record", st)
    SI, ST = O["sealed_identity"], O["sealed_trust_record"]
    check("blob is 31 bytes longer", (len(SI) - 34, len(ST) - 68), (31, 31))
    check("open sealed_identity", open_blob(SK, SI, 1).enc, alice.enc)
    check("open sealed_trust_record", open_blob(SK, ST, 4), decode_trust(O["trust_record_changed"]))
    expect_err("blob kind byte changed (opened as new kind)", "wrong key or corrupted", lambda: open_blob(SK, setb(SI, 2, 4), 4))
    expect_err("blob kind byte changed (opened as old kind)", "wrong kind", lambda: open_blob(SK, setb(SI, 2, 4), 1))
    expect_err("wrong kind requested", "wrong kind", lambda: open_blob(SK, SI, 4))
    expect_err("kind byte not in table", "wrong key or corrupted", lambda: open_blob(SK, setb(ST, 2, 7), 4))
    expect_err("blob truncated (30 bytes)", "truncated", lambda: open_blob(SK, SI[:30], 1))
    expect_err("blob truncated (last byte)", "wrong key or corrupted", lambda: open_blob(SK, SI[:-1], 1))
    expect_err("blob empty", "truncated", lambda: open_blob(SK, b"", 1))
    expect_err("blob first byte", "not sealed state", lambda: open_blob(SK, setb(SI, 0, 0x49), 1))
    expect_err("blob version byte", "unsupported version", lambda: open_blob(SK, setb(SI, 1, 2), 1))
    expect_err("blob nonce flipped", "wrong key or corrupted", lambda: open_blob(SK, flip(SI, 5), 1))
    expect_err("blob tag flipped", "wrong key or corrupted", lambda: open_blob(SK, flip(ST, len(ST) - 1), 4))
    expect_err("blob wrong storage key", "wrong key or corrupted", lambda: open_blob(flip(SK, 0), SI, 1))
    expect_err("blob object trailing bytes", "trailing bytes",
               lambda: open_blob(SK, seal_blob(SK, 1, bytes(12), b"\x49\x01" + alice.seed + b"\0"), 1))
    SK2 = bytes(32)
    rs = reseal(SK, SK2, ST, 4, bytes(range(12)))
    check("re-sealed blob opens under new key", open_blob(SK2, rs, 4).encode(), O["trust_record_changed"])
    expect_err("re-sealed blob under old key", "wrong key or corrupted", lambda: open_blob(SK, rs, 4))

    print("ALL PASS" if fails == 0 else f"{fails} FAILURE(S)")
    return 1 if fails else 0

if __name__ == "__main__":
    sys.exit(main())
