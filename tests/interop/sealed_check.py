#!/usr/bin/env python3
"""Independent implementation of ratchetbox v2 SPEC.md §9 (sealed envelopes), written
from SPEC.md alone. Reuses the §1-§3 primitives of tests/interop/spec_check.py.
Reproduces tests/vectors/sealed_v2.txt byte for byte, validates and opens the stored
envelopes and parts, and checks the stated error rules, including the v2 ones
(canonical ephemeral keys §2.3, per-address wrap keys §9.6, torsion-free keys §3.1).
Run: python3 tests/interop/sealed_check.py"""
import hashlib, hmac as _hmac, os, struct, sys
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from spec_check import (Identity, RNG, Reader, ProtoError, DH, HKDF, HMAC, AEAD_Seal, AEAD_Open,
                        valid_point, verify_strict, remote_identity, load_vectors, clamp, x25519_pub,
                        is_canonical_x25519, Checker, flip, setb, put, noncanonical_variants,
                        torsion_point, pt_add, pt_encode)

VEC = os.path.join(HERE, "..", "vectors", "sealed_v2.txt")
SERVER_CERT_LABEL = b"ratchetbox v2 server certificate"
SENDER_CERT_LABEL = b"ratchetbox v2 sender certificate"
SEALED_EPHEMERAL_INFO = b"ratchetbox v2 sealed ephemeral"
SEALED_STATIC_INFO = b"ratchetbox v2 sealed static"
SEALED_MULTI_CONTENT_INFO = b"ratchetbox v2 sealed multi content"
SEALED_MULTI_WRAP_INFO = b"ratchetbox v2 sealed multi wrap"
SEALED_MULTI_AUTH_INFO = b"ratchetbox v2 sealed multi auth"
DELIVERY_KEY_INFO = b"ratchetbox v2 delivery access key"
TAG_SERVER_CERT, TAG_SENDER_CERT = b"\x12", b"\x13"
TAG_SINGLE, TAG_MULTI, TAG_PART = b"\x24", b"\x25", b"\x26"
u8 = lambda v: bytes([v])
u16 = lambda v: struct.pack(">H", v)
u32 = lambda v: struct.pack(">I", v)
u64 = lambda v: struct.pack(">Q", v)
ZERO32 = bytes(32)

class SealedError(ProtoError):
    pass

def take(r, n):  # Reader.take with the §9 error name
    try: return r.take(n)
    except ProtoError: raise SealedError("truncated")

def rd16(r): return struct.unpack(">H", take(r, 2))[0]
def rd64(r): return struct.unpack(">Q", take(r, 8))[0]

def rE(r):  # an ephemeral key: canonical (§2.3), else malformed (§9.8 step 3)
    E = take(r, 32)
    if not is_canonical_x25519(E): raise SealedError("malformed")
    return E

def rflag(r):
    f = take(r, 1)[0]
    if f > 1: raise SealedError("malformed")
    return f == 1

# ---------------- §9.1 addresses ----------------
def address(acct, dev):
    if not 1 <= len(acct) <= 64: raise SealedError("malformed")
    return u8(len(acct)) + acct + u32(dev)

def read_address(r):
    n = take(r, 1)[0]
    if not 1 <= n <= 64: raise SealedError("malformed")
    acct = take(r, n); dev = struct.unpack(">I", take(r, 4))[0]
    return (acct, dev), u8(n) + acct + u32(dev)       # (sort key, encoded bytes)

def parse_address(b):
    r = Reader(b); key, enc = read_address(r); r.end(); return key

# ---------------- §9.2 certificates ----------------
def server_certificate(root, root_id, key_id, server_pub):
    body = TAG_SERVER_CERT + u32(root_id) + u32(key_id) + server_pub
    return body + root.sign(SERVER_CERT_LABEL + body)       # signed bytes 0..41

def sender_certificate(server, addr, ik_enc, expires, scert):
    body = TAG_SENDER_CERT + addr + ik_enc + u64(expires) + scert
    return body + server.sign(SENDER_CERT_LABEL + body)

def decode_sender_certificate(b):
    try:
        r = Reader(b)
        if take(r, 1) != TAG_SENDER_CERT: raise SealedError("malformed")
        start = r.i; key, addr = read_address(r)
        ik = take(r, 32); expires = rd64(r)
        s0 = r.i
        if take(r, 1) != TAG_SERVER_CERT: raise SealedError("malformed")
        root_id = struct.unpack(">I", take(r, 4))[0]; key_id = struct.unpack(">I", take(r, 4))[0]
        spub = take(r, 32); ssig = take(r, 64); sbody = b[s0:s0 + 41]
        body = b[:r.i]; sig = take(r, 64); r.end()
    except ProtoError:
        raise SealedError("certificate malformed")
    if valid_point(spub) is None or valid_point(ik) is None: raise SealedError("certificate malformed")
    return dict(addr=addr, addr_key=key, ik=ik, expires=expires, root_id=root_id, key_id=key_id,
                spub=spub, ssig=ssig, sbody=sbody, body=body, sig=sig)

def validate_certificate(c, trust, now):
    """§9.2 order: wrong root, bad signature (server cert), revoked, bad signature, expired."""
    root = trust["roots"].get(c["root_id"])
    if root is None: raise SealedError("certificate: wrong root")
    if not verify_strict(root, SERVER_CERT_LABEL + c["sbody"], c["ssig"]):
        raise SealedError("certificate: bad signature")
    if c["key_id"] in trust["revoked"]: raise SealedError("certificate: revoked")
    if not verify_strict(c["spub"], SENDER_CERT_LABEL + c["body"], c["sig"]):
        raise SealedError("certificate: bad signature")
    if not now < c["expires"]: raise SealedError("certificate: expired")

# ---------------- §9.3 content and Padmé ----------------
def padded_len(L):
    Lp = max(L, 64); E = Lp.bit_length() - 1; S = E.bit_length() - 1 + 1; z = E - S
    return (Lp + (1 << z) - 1) & ~((1 << z) - 1)

def is_padded_len(n): return n >= 64 and padded_len(n) == n

def pad(b): n = padded_len(len(b) + 1); return b + b"\x80" + bytes(n - len(b) - 1)

def unpad(p):
    s = p.rstrip(b"\x00")
    if not s or s[-1] != 0x80: raise SealedError("decode error: bad padding")
    return s[:-1]

def encode_content(cert, kind, hint, msg):
    assert len(msg) <= 2**24
    return u16(len(cert)) + cert + u8(kind) + u8(hint) + u32(len(msg)) + msg

def decode_content(b):
    try:
        r = Reader(b); cert = take(r, rd16(r)); kind, hint = take(r, 1)[0], take(r, 1)[0]
        n = struct.unpack(">I", take(r, 4))[0]
        if kind not in (1, 2, 3) or hint not in (0, 1, 2) or n > 2**24: raise SealedError("malformed")
        msg = take(r, n); r.end()
    except ProtoError as e:
        raise SealedError(f"decode error: {e}")
    return cert, kind, hint, msg

# ---------------- §9.4 delivery tokens ----------------
def access_key(secret): return HKDF(ZERO32, secret, DELIVERY_KEY_INFO, 16)

def xor_token(aks):
    out = bytes(16)
    for ak in aks: out = bytes(a ^ b for a, b in zip(out, ak))
    return out

# ---------------- §9.5 single-recipient ----------------
def seal_single(sender, rng, cert, r_addr, ik_r_enc, kind, hint, msg, token=None, c_identity=None):
    e_priv, e_pub = rng.generate_dh()
    H = TAG_SINGLE + r_addr + (b"\x01" + token if token is not None else b"\x00") + e_pub
    ik_r_x = remote_identity(ik_r_enc)
    ck = HKDF(ik_r_enc + e_pub, DH(e_priv, ik_r_x), SEALED_EPHEMERAL_INFO, 64)
    chain, k1 = ck[:32], ck[32:]
    C1 = AEAD_Seal(k1, H, c_identity or sender.enc)
    k2 = HKDF(chain + C1, DH(sender.x_priv, ik_r_x), SEALED_STATIC_INFO, 32)
    return H + C1 + AEAD_Seal(k2, H + C1, pad(encode_content(cert, kind, hint, msg)))

def parse_single(b):
    r = Reader(b)
    if take(r, 1) != TAG_SINGLE: raise SealedError("unknown version")
    key, addr = read_address(r)
    token = take(r, 16) if rflag(r) else None
    E = rE(r); hlen = r.i
    C1 = take(r, 48); C2 = r.rest()
    return dict(addr=addr, addr_key=key, token=token, E=E, H=b[:hlen], C1=C1, C2=C2)

# ---------------- §9.6 multi-recipient ----------------
def wrap_key(ik_enc, E, dh, addr):
    """§9.6: K_i, with the entry's encoded address appended to the info."""
    return HKDF(ik_enc + E, dh, SEALED_MULTI_WRAP_INFO + addr, 32)

def seal_multi(sender, rng, cert, recipients, kind, hint, msg, token=None, c_identity=None):
    """recipients: list of (addr bytes, Encode(IK_i), payload)."""
    M = rng.take(32)                                  # 32-byte content key, drawn first (not clamped)
    e_priv, e_pub = rng.generate_dh()                 # then E
    k = HKDF(ZERO32, M, SEALED_MULTI_CONTENT_INFO, 64); kc, ks = k[:32], k[32:]
    C_sender = AEAD_Seal(ks, e_pub, c_identity or sender.enc)
    C_content = AEAD_Seal(kc, e_pub + C_sender, pad(encode_content(cert, kind, hint, msg)))
    shared = C_sender + C_content; h_shared = hashlib.sha256(shared).digest()
    recipients = sorted(recipients, key=lambda t: parse_address(t[0]))
    out = TAG_MULTI + e_pub + u16(len(recipients))
    for addr, ik_enc, payload in recipients:
        assert len(payload) <= 57000
        ik_x = remote_identity(ik_enc)
        P = pad(payload) if payload else b""
        K = wrap_key(ik_enc, e_pub, DH(e_priv, ik_x), addr)
        W = AEAD_Seal(K, addr + e_pub, M + P)
        A = HKDF(sender.enc + ik_enc, DH(sender.x_priv, ik_x), SEALED_MULTI_AUTH_INFO, 32)
        T = HMAC(A, e_pub + addr + W + h_shared)[:16]
        out += addr + u16(len(W)) + W + T
    return out + (b"\x01" + token if token is not None else b"\x00") + shared

def read_entry(r):
    s = r.i; key, addr = read_address(r)
    wl = rd16(r)
    if wl < 48: raise SealedError("malformed")
    W = take(r, wl); T = take(r, 16)
    if wl - 48 != 0 and not is_padded_len(wl - 48): raise SealedError("invalid padding")
    return dict(addr=addr, addr_key=key, W=W, T=T, raw=r.b[s:r.i])

def parse_multi(b, max_n=None):
    r = Reader(b)
    if take(r, 1) != TAG_MULTI: raise SealedError("unknown version")
    E = rE(r); n = rd16(r)
    if n < 1: raise SealedError("no recipients")
    if max_n is not None and n > max_n: raise SealedError("too many recipients")
    entries = []
    for _ in range(n):
        e = read_entry(r)
        if entries and e["addr_key"] == entries[-1]["addr_key"]: raise SealedError("duplicate recipient")
        if entries and e["addr_key"] < entries[-1]["addr_key"]: raise SealedError("unsorted recipients")
        entries.append(e)
    token = take(r, 16) if rflag(r) else None
    C_sender = take(r, 48); C_content = r.rest()
    return dict(E=E, entries=entries, token=token, C_sender=C_sender, C_content=C_content)

# ---------------- §9.7 split ----------------
def split(b):
    m = parse_multi(b)
    return [TAG_PART + m["E"] + e["raw"] + m["C_sender"] + m["C_content"] for e in m["entries"]]

def parse_part(b):
    r = Reader(b)
    if take(r, 1) != TAG_PART: raise SealedError("unknown version")
    E = rE(r); e = read_entry(r); C_sender = take(r, 48)
    return dict(E=E, entries=[e], token=None, C_sender=C_sender, C_content=r.rest())

# ---------------- §9.8 server validation ----------------
def server_validate(b, policy, registry):
    if len(b) > policy["max_size"]: raise SealedError("oversize")
    tag = b[:1]
    if tag not in (TAG_SINGLE, TAG_MULTI): raise SealedError("unknown version")
    if tag[0] not in policy["allowed"]: raise SealedError("version not allowed")
    if tag == TAG_SINGLE:
        env = parse_single(b); content, accounts = env["C2"], [env["addr_key"][0]]
    else:
        env = parse_multi(b, policy["max_recipients"]); content = env["C_content"]
        accounts = list(dict.fromkeys(e["addr_key"][0] for e in env["entries"]))   # distinct
    if len(content) < 16 or not is_padded_len(len(content) - 16): raise SealedError("invalid padding")
    if env["token"] is None:
        if policy["require_token"]: raise SealedError("missing token")
    else:
        if any(a not in registry for a in accounts): raise SealedError("unknown recipient")
        if not _hmac.compare_digest(xor_token(registry[a] for a in accounts), env["token"]):
            raise SealedError("wrong token")
    return env

# ---------------- §9.9 opening ----------------
def finish_open(me, my_addr, ik_s, padded, trust, now):
    cert_b, kind, hint, msg = decode_content(unpad(padded))
    c = decode_sender_certificate(cert_b)
    if c["ik"] != ik_s: raise SealedError("sender identity mismatch")
    validate_certificate(c, trust, now)
    if c["addr"] == my_addr: raise SealedError("self send")
    return dict(sender=c["addr_key"], ik_s=ik_s, kind=kind, hint=hint, msg=msg)

def dec(k, aad, c):
    try: return AEAD_Open(k, aad, c)
    except ProtoError: raise SealedError("decryption failed")

def open_envelope(me, my_addr, b, trust, now):
    tag = b[:1]
    if tag == TAG_SINGLE:
        env = parse_single(b)
        if env["addr"] != my_addr: raise SealedError("wrong recipient")
        E = env["E"]
        ck = HKDF(me.enc + E, DH(me.x_priv, E), SEALED_EPHEMERAL_INFO, 64)
        ik_s = dec(ck[32:], env["H"], env["C1"])
        if valid_point(ik_s) is None: raise SealedError("decryption failed")
        k2 = HKDF(ck[:32] + env["C1"], DH(me.x_priv, remote_identity(ik_s)), SEALED_STATIC_INFO, 32)
        padded = dec(k2, env["H"] + env["C1"], env["C2"])
        return finish_open(me, my_addr, ik_s, padded, trust, now)
    if tag == TAG_MULTI: env = parse_multi(b)
    elif tag == TAG_PART: env = parse_part(b)
    else: raise SealedError("unknown version")
    mine = [e for e in env["entries"] if e["addr"] == my_addr]
    if not mine: raise SealedError("wrong recipient")
    e, E = mine[0], env["E"]
    K = wrap_key(me.enc, E, DH(me.x_priv, E), my_addr)
    mp = dec(K, my_addr + E, e["W"])
    M, P = mp[:32], mp[32:]
    k = HKDF(ZERO32, M, SEALED_MULTI_CONTENT_INFO, 64); kc, ks = k[:32], k[32:]
    ik_s = dec(ks, E, env["C_sender"])
    if valid_point(ik_s) is None: raise SealedError("decryption failed")
    shared = env["C_sender"] + env["C_content"]
    A = HKDF(ik_s + me.enc, DH(me.x_priv, remote_identity(ik_s)), SEALED_MULTI_AUTH_INFO, 32)
    T = HMAC(A, E + my_addr + e["W"] + hashlib.sha256(shared).digest())[:16]
    if not _hmac.compare_digest(T, e["T"]): raise SealedError("decryption failed")
    payload = unpad(P) if P else b""
    padded = dec(kc, E + env["C_sender"], env["C_content"])
    out = finish_open(me, my_addr, ik_s, padded, trust, now)
    out["payload"] = payload
    return out

# ---------------- vector check ----------------
def main():
    I, O = load_vectors(VEC)
    c = Checker(O)
    be = lambda k: int.from_bytes(I[k], "big")

    alice, bob, carol = (Identity(I[f"{n}_identity_seed"]) for n in ("alice", "bob", "carol"))
    root, server = Identity(I["root_identity_seed"]), Identity(I["server_identity_seed"])
    a_addr = address(I["alice_account_id"], be("alice_device_id"))
    b1 = address(I["bob_account_id"], be("bob_device_id_1"))
    b2 = address(I["bob_account_id"], be("bob_device_id_2"))
    c7 = address(I["carol_account_id"], be("carol_device_id"))
    trust = dict(roots={be("root_id"): root.enc}, revoked=set())
    expires = be("certificate_expires"); now = expires - 1   # vector gives no `now`; any now < expiry

    # §9.2 certificates
    scert = server_certificate(root, be("root_id"), be("server_key_id"), server.enc)
    c.vec("server_certificate", scert)
    cert = sender_certificate(server, a_addr, alice.enc, expires, scert)
    c.vec("sender_certificate", cert)
    sc = decode_sender_certificate(O["sender_certificate"])
    try: validate_certificate(sc, trust, now); c.true("validate stored sender_certificate", True)
    except SealedError as e: c.true(f"validate stored sender_certificate: {e}", False)

    # §9.4 delivery tokens
    ak_b, ak_c = access_key(I["bob_delivery_secret"]), access_key(I["carol_delivery_secret"])
    c.vec("bob_delivery_key", ak_b); c.vec("carol_delivery_key", ak_c)
    c.vec("multi_token", xor_token([ak_b, ak_c]))
    registry = {I["bob_account_id"]: O["bob_delivery_key"], I["carol_account_id"]: O["carol_delivery_key"]}

    # §9.5, §9.6, §9.7
    single = seal_single(alice, RNG([I["single_ephemeral_secret"]]), cert, b1, bob.enc,
                         I["single_kind"][0], I["single_hint"][0], I["single_message"], token=ak_b)
    c.vec("single_envelope", single)
    payloads = {b1: I["multi_payload_bob_1"], b2: I["multi_payload_bob_2"], c7: I["multi_payload_carol_7"]}
    rcpts = [(c7, carol.enc, payloads[c7]), (b2, bob.enc, payloads[b2]), (b1, bob.enc, payloads[b1])]
    multi_rng = lambda: RNG([I["multi_content_key"], I["multi_ephemeral_secret"]])
    multi = seal_multi(alice, multi_rng(), cert, rcpts, I["multi_kind"][0], I["multi_hint"][0],
                       I["multi_message"], token=xor_token([ak_b, ak_c]))
    c.vec("multi_envelope", multi)

    policy = dict(max_size=1 << 20, allowed={TAG_SINGLE[0], TAG_MULTI[0]}, max_recipients=100, require_token=True)
    for name in ("single_envelope", "multi_envelope"):
        try: server_validate(O[name], policy, registry); c.true(f"server accepts stored {name}", True)
        except SealedError as e: c.true(f"server accepts stored {name}: {e}", False)
    parts = split(O["multi_envelope"])
    for nm, part in zip(("multi_part_bob_1", "multi_part_bob_2", "multi_part_carol_7"), parts):
        c.vec(nm, part)

    # opening the stored bytes as each recipient
    def check_open(label, who, my_addr, blob, msg, kind, hint, payload=None):
        try: r = open_envelope(who, my_addr, blob, trust, now)
        except ProtoError as e: c.true(f"{label}: {e}", False); return
        ok = (r["msg"], r["kind"], r["hint"], r["sender"], r["ik_s"]) == \
             (msg, kind, hint, (I["alice_account_id"], be("alice_device_id")), alice.enc)
        if payload is not None: ok = ok and r["payload"] == payload
        c.true(label, ok)
    sk, sh, mk, mh = I["single_kind"][0], I["single_hint"][0], I["multi_kind"][0], I["multi_hint"][0]
    check_open("open single_envelope as bob/1", bob, b1, O["single_envelope"], I["single_message"], sk, sh)
    for who, addr, nm in ((bob, b1, "bob_1"), (bob, b2, "bob_2"), (carol, c7, "carol_7")):
        pl = I[f"multi_payload_{nm}"]
        check_open(f"open multi_envelope as {nm}", who, addr, O["multi_envelope"], I["multi_message"], mk, mh, pl)
        check_open(f"open multi_part_{nm} as {nm}", who, addr, O[f"multi_part_{nm}"], I["multi_message"], mk, mh, pl)

    S, Mu, P1, P2 = O["single_envelope"], O["multi_envelope"], O["multi_part_bob_1"], O["multi_part_bob_2"]

    # ---- §9.6 v2: per-address wrap keys for two devices of one account ----
    m = parse_multi(Mu); E = m["E"]
    ent = {e["addr"]: e for e in m["entries"]}
    dh_bob = DH(bob.x_priv, E)
    K1, K2 = wrap_key(bob.enc, E, dh_bob, b1), wrap_key(bob.enc, E, dh_bob, b2)
    K_v1 = HKDF(bob.enc + E, dh_bob, SEALED_MULTI_WRAP_INFO, 32)      # the v1 derivation (no address)
    c.true("bob/1 and bob/2 share salt and DH, yet their wrap keys differ (address in the info)", K1 != K2 and K_v1 not in (K1, K2))
    c.eq("W(bob/1) opens under K(bob/1): M ‖ P", dec(K1, b1 + E, ent[b1]["W"])[:32], I["multi_content_key"])
    c.eq("W(bob/2) opens under K(bob/2): M and an empty payload", dec(K2, b2 + E, ent[b2]["W"]), I["multi_content_key"])
    c.err("W(bob/1) under K(bob/2) (aad of bob/1)", "decryption failed", lambda: dec(K2, b1 + E, ent[b1]["W"]))
    c.err("W(bob/2) under K(bob/1) (aad of bob/2)", "decryption failed", lambda: dec(K1, b2 + E, ent[b2]["W"]))
    c.err("W(bob/1) under the v1 wrap key (info without address)", "decryption failed", lambda: dec(K_v1, b1 + E, ent[b1]["W"]))
    # bob/1's part relabelled as bob/2's (device id byte in the entry address) and opened by bob/2
    relabelled = put(P1, 1 + 32 + 1 + 3, (2).to_bytes(4, "big"))
    c.err("bob/1's part relabelled for bob/2, opened by bob/2", "decryption failed", lambda: open_envelope(bob, b2, relabelled, trust, now))

    # ---- §2.3: non-canonical ephemeral key in every envelope format ----
    E_OFF_SINGLE = 1 + len(b1) + 1 + 16
    for fmt, blob, off, who, addr in [("single_envelope", S, E_OFF_SINGLE, bob, b1),
                                      ("multi_envelope", Mu, 1, bob, b1),
                                      ("multi_part_bob_1", P1, 1, bob, b1)]:
        for vdesc, bad in noncanonical_variants(blob[off:off + 32]):
            altered = put(blob, off, bad)
            if blob[:1] != TAG_PART:
                c.err(f"server: {fmt} with E {vdesc}", "malformed", lambda a=altered: server_validate(a, policy, registry))
            c.err(f"recipient: {fmt} with E {vdesc}", "malformed", lambda a=altered, w=who, ad=addr: open_envelope(w, ad, a, trust, now))
    # a small-order (canonical) E passes the structural checks but fails the recipient's DH
    zeroE = put(S, E_OFF_SINGLE, bytes(32))
    c.true("server accepts single_envelope with E = 0 (canonical; the server does no DH)", server_validate(zeroE, policy, registry) is not None)
    c.err("recipient: single_envelope with E = 0 (small order)", "non-contributory DH", lambda: open_envelope(bob, b1, zeroE, trust, now))
    c.err("recipient: multi_part_bob_1 with E = 0", "non-contributory DH", lambda: open_envelope(bob, b1, put(P1, 1, bytes(32)), trust, now))

    # ---- §3.1 v2: torsion-free Ed25519 keys in certificates and hidden sender identities ----
    T = torsion_point()
    AT = pt_encode(pt_add(valid_point(alice.enc), T)); ST = pt_encode(pt_add(valid_point(server.enc), T))
    bad_scert = server_certificate(root, be("root_id"), be("server_key_id"), ST)
    c.err("sender certificate whose server key is S+T (torsion)", "certificate malformed",
          lambda: decode_sender_certificate(sender_certificate(server, a_addr, alice.enc, expires, bad_scert)))
    c.err("sender certificate whose sender identity is A+T (torsion)", "certificate malformed",
          lambda: decode_sender_certificate(sender_certificate(server, a_addr, AT, expires, scert)))
    c.err("single envelope whose C1 hides A+T", "decryption failed",
          lambda: open_envelope(bob, b1, seal_single(alice, RNG([I["single_ephemeral_secret"]]), cert, b1, bob.enc,
                                                     3, 0, b"x", c_identity=AT), trust, now))
    c.err("multi envelope whose C_sender hides A+T", "decryption failed",
          lambda: open_envelope(carol, c7, seal_multi(alice, multi_rng(), cert, rcpts, 3, 0, b"x", c_identity=AT), trust, now))

    # ---- the v1 error rules, on v2 bytes ----
    nop = dict(policy, require_token=False)
    def no_tok_multi(b):  # strip the token from a multi envelope (it sits just before C_sender ‖ C_content)
        m = parse_multi(b); sh = m["C_sender"] + m["C_content"]; return b[:len(b) - len(sh) - 17] + b"\x00" + sh
    e1, e2, e3 = (e["raw"] for e in m["entries"]); tail = Mu[35 + len(e1 + e2 + e3):]
    negs = [
        ("single_envelope over the size limit", "oversize", lambda: server_validate(S, dict(policy, max_size=len(S) - 1), registry)),
        ("server given a 0x26 part", "unknown version", lambda: server_validate(TAG_PART + S[1:], policy, registry)),
        ("server given the v1 single tag 0x21", "unknown version", lambda: server_validate(b"\x21" + S[1:], policy, registry)),   # v1 tag
        ("recipient given the v1 multi tag 0x22", "unknown version", lambda: open_envelope(bob, b1, b"\x22" + Mu[1:], trust, now)), # v1 tag
        ("multi_envelope where only 0x24 is allowed", "version not allowed", lambda: server_validate(Mu, dict(policy, allowed={TAG_SINGLE[0]}), registry)),
        ("single_envelope cut inside C1", "truncated", lambda: server_validate(S[:60], policy, registry)),
        ("single_envelope token flag 2", "malformed", lambda: server_validate(setb(S, 9, 2), policy, registry)),
        ("single_envelope one byte short (content length not padded)", "invalid padding", lambda: server_validate(S[:-1], policy, registry)),
        ("multi_envelope with 3 recipients, maximum 2", "too many recipients", lambda: server_validate(Mu, dict(policy, max_recipients=2), registry)),
        ("multi_envelope with count 0", "no recipients", lambda: server_validate(put(Mu, 33, b"\x00\x00"), policy, registry)),
        ("multi_envelope without token where required", "missing token", lambda: server_validate(no_tok_multi(Mu), policy, registry)),
        ("single_envelope token altered", "wrong token", lambda: server_validate(flip(S, 12), policy, registry)),
        ("single_envelope for an unregistered account", "unknown recipient", lambda: server_validate(S, policy, {})),
        ("multi_envelope entries bob/2 before bob/1", "unsorted recipients", lambda: server_validate(Mu[:35] + e2 + e1 + e3 + tail, policy, registry)),
        ("multi_envelope entry bob/1 twice", "duplicate recipient", lambda: server_validate(Mu[:35] + e1 + e1 + e3 + tail, policy, registry)),
        ("single_envelope opened by bob/2", "wrong recipient", lambda: open_envelope(bob, b2, S, trust, now)),
        ("multi_envelope opened by a non-recipient", "wrong recipient", lambda: open_envelope(alice, a_addr, Mu, trust, now)),
        ("bob/2's part opened by bob/1", "wrong recipient", lambda: open_envelope(bob, b1, P2, trust, now)),
        ("single_envelope C2 tag altered", "decryption failed", lambda: open_envelope(bob, b1, flip(S, len(S) - 1), trust, now)),
        ("single_envelope C1 altered", "decryption failed", lambda: open_envelope(bob, b1, flip(S, E_OFF_SINGLE + 32 + 3), trust, now)),   # C1
        ("multi_part_bob_1 C_content tag altered", "decryption failed", lambda: open_envelope(bob, b1, flip(P1, len(P1) - 1), trust, now)),
        ("multi_part_bob_1 T_i altered", "decryption failed", lambda: open_envelope(bob, b1, flip(P1, 33 + 1 + 3 + 4 + 2 + 112), trust, now)),  # T_i
        ("single_envelope opened at now = expiry", "certificate: expired", lambda: open_envelope(bob, b1, S, trust, expires)),
        ("single_envelope with the server key revoked", "certificate: revoked", lambda: open_envelope(bob, b1, S, dict(trust, revoked={be("server_key_id")}), now)),
        ("single_envelope with no pinned root", "certificate: wrong root", lambda: open_envelope(bob, b1, S, dict(trust, roots={}), now)),
        ("envelope from alice/1 to alice/1", "self send", lambda: open_envelope(alice, a_addr, seal_single(alice, RNG([I["single_ephemeral_secret"]]),
                       cert, a_addr, alice.enc, 3, 0, b"x"), trust, now)),
        ("carol's envelope carrying alice's certificate", "sender identity mismatch", lambda: open_envelope(bob, b1, seal_single(carol, RNG([I["single_ephemeral_secret"]]),
                       cert, b1, bob.enc, 3, 0, b"x"), trust, now)),
    ]
    try: server_validate(no_tok_multi(Mu), nop, registry); c.true("token optional when not required", True)
    except SealedError as e: c.true(f"token optional when not required: {e}", False)
    for desc, want, fn in negs: c.err(desc, want, fn)
    # Padmé sanity: L'=65..127 -> E=6, S=3, z=3 (multiples of 8); 1025 -> z=6
    c.eq("padded_len sanity", [padded_len(n) for n in (1, 64, 65, 100, 1000, 1025)], [64, 64, 72, 104, 1024, 1088])
    return c.done()

if __name__ == "__main__":
    sys.exit(main())
