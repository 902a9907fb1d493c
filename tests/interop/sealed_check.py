#!/usr/bin/env python3
"""Independent implementation of ratchetbox v1 SPEC.md §9 (sealed envelopes), written
from SPEC.md alone. Reuses the §1-§3 primitives of tests/interop/spec_check.py.
Reproduces tests/vectors/sealed_v1.txt byte for byte and opens the stored envelopes.
Run: python3 /work/interop/sealed_check.py"""
import hashlib, hmac as _hmac, os, struct, sys
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from spec_check import (Identity, RNG, Reader, ProtoError, DH, HKDF, HMAC, AEAD_Seal, AEAD_Open,
                        valid_point, verify_strict, remote_identity, load_vectors, clamp, x25519_pub)

VEC = os.path.join(HERE, "..", "vectors", "sealed_v1.txt")
SERVER_CERT_LABEL = b"ratchetbox v1 server certificate"
SENDER_CERT_LABEL = b"ratchetbox v1 sender certificate"
SEALED_EPHEMERAL_INFO = b"ratchetbox v1 sealed ephemeral"
SEALED_STATIC_INFO = b"ratchetbox v1 sealed static"
SEALED_MULTI_CONTENT_INFO = b"ratchetbox v1 sealed multi content"
SEALED_MULTI_WRAP_INFO = b"ratchetbox v1 sealed multi wrap"
SEALED_MULTI_AUTH_INFO = b"ratchetbox v1 sealed multi auth"
DELIVERY_KEY_INFO = b"ratchetbox v1 delivery access key"
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
    body = b"\x10" + u32(root_id) + u32(key_id) + server_pub
    return body + root.sign(SERVER_CERT_LABEL + body)       # signed bytes 0..41

def sender_certificate(server, addr, ik_enc, expires, scert):
    body = b"\x11" + addr + ik_enc + u64(expires) + scert
    return body + server.sign(SENDER_CERT_LABEL + body)

def decode_sender_certificate(b):
    try:
        r = Reader(b)
        if take(r, 1) != b"\x11": raise SealedError("malformed")
        start = r.i; key, addr = read_address(r)
        ik = take(r, 32); expires = rd64(r)
        s0 = r.i
        if take(r, 1) != b"\x10": raise SealedError("malformed")
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
def seal_single(sender, rng, cert, r_addr, ik_r_enc, kind, hint, msg, token=None):
    e_priv, e_pub = rng.generate_dh()
    H = b"\x21" + r_addr + (b"\x01" + token if token is not None else b"\x00") + e_pub
    ik_r_x = remote_identity(ik_r_enc)
    ck = HKDF(ik_r_enc + e_pub, DH(e_priv, ik_r_x), SEALED_EPHEMERAL_INFO, 64)
    chain, k1 = ck[:32], ck[32:]
    C1 = AEAD_Seal(k1, H, sender.enc)
    k2 = HKDF(chain + C1, DH(sender.x_priv, ik_r_x), SEALED_STATIC_INFO, 32)
    return H + C1 + AEAD_Seal(k2, H + C1, pad(encode_content(cert, kind, hint, msg)))

def parse_single(b):
    r = Reader(b)
    if take(r, 1) != b"\x21": raise SealedError("unknown version")
    key, addr = read_address(r)
    token = take(r, 16) if rflag(r) else None
    E = take(r, 32); hlen = r.i
    C1 = take(r, 48); C2 = r.rest()
    return dict(addr=addr, addr_key=key, token=token, E=E, H=b[:hlen], C1=C1, C2=C2)

# ---------------- §9.6 multi-recipient ----------------
def seal_multi(sender, rng, cert, recipients, kind, hint, msg, token=None):
    """recipients: list of (addr bytes, Encode(IK_i), payload)."""
    M = rng.draws.pop(0)                              # 32-byte content key, drawn first (not clamped)
    e_priv, e_pub = rng.generate_dh()                 # then E
    k = HKDF(ZERO32, M, SEALED_MULTI_CONTENT_INFO, 64); kc, ks = k[:32], k[32:]
    C_sender = AEAD_Seal(ks, e_pub, sender.enc)
    C_content = AEAD_Seal(kc, e_pub + C_sender, pad(encode_content(cert, kind, hint, msg)))
    shared = C_sender + C_content; h_shared = hashlib.sha256(shared).digest()
    recipients = sorted(recipients, key=lambda t: parse_address(t[0]))
    out = b"\x22" + e_pub + u16(len(recipients))
    for addr, ik_enc, payload in recipients:
        assert len(payload) <= 57000
        ik_x = remote_identity(ik_enc)
        P = pad(payload) if payload else b""
        K = HKDF(ik_enc + e_pub, DH(e_priv, ik_x), SEALED_MULTI_WRAP_INFO, 32)
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
    if take(r, 1) != b"\x22": raise SealedError("unknown version")
    E = take(r, 32); n = rd16(r)
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
    return [b"\x23" + m["E"] + e["raw"] + m["C_sender"] + m["C_content"] for e in m["entries"]]

def parse_part(b):
    r = Reader(b)
    if take(r, 1) != b"\x23": raise SealedError("unknown version")
    E = take(r, 32); e = read_entry(r); C_sender = take(r, 48)
    return dict(E=E, entries=[e], token=None, C_sender=C_sender, C_content=r.rest())

# ---------------- §9.8 server validation ----------------
def server_validate(b, policy, registry):
    if len(b) > policy["max_size"]: raise SealedError("oversize")
    tag = b[:1]
    if tag not in (b"\x21", b"\x22"): raise SealedError("unknown version")
    if tag[0] not in policy["allowed"]: raise SealedError("version not allowed")
    if tag == b"\x21":
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
    if tag == b"\x21":
        env = parse_single(b)
        if env["addr"] != my_addr: raise SealedError("wrong recipient")
        E = env["E"]
        ck = HKDF(me.enc + E, DH(me.x_priv, E), SEALED_EPHEMERAL_INFO, 64)
        ik_s = dec(ck[32:], env["H"], env["C1"])
        if valid_point(ik_s) is None: raise SealedError("decryption failed")
        k2 = HKDF(ck[:32] + env["C1"], DH(me.x_priv, remote_identity(ik_s)), SEALED_STATIC_INFO, 32)
        padded = dec(k2, env["H"] + env["C1"], env["C2"])
        return finish_open(me, my_addr, ik_s, padded, trust, now)
    if tag == b"\x22": env = parse_multi(b)
    elif tag == b"\x23": env = parse_part(b)
    else: raise SealedError("unknown version")
    mine = [e for e in env["entries"] if e["addr"] == my_addr]
    if not mine: raise SealedError("wrong recipient")
    e, E = mine[0], env["E"]
    K = HKDF(me.enc + E, DH(me.x_priv, E), SEALED_MULTI_WRAP_INFO, 32)
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
    fails = 0
    def check(name, got, want=None):
        nonlocal fails
        want = O.get(name) if want is None else want
        ok = got == want; fails += not ok
        print(f"{'PASS' if ok else 'FAIL'} {name}" + ("" if ok or not isinstance(got, bytes) else
              f"\n  got  {got.hex()}\n  want {(want or b'').hex()}"))
    be = lambda k: int.from_bytes(I[k], "big")

    alice, bob, carol = (Identity(I[f"{n}_identity_seed"]) for n in ("alice", "bob", "carol"))
    root, server = Identity(I["root_identity_seed"]), Identity(I["server_identity_seed"])
    a_addr = address(I["alice_account_id"], be("alice_device_id"))
    b1 = address(I["bob_account_id"], be("bob_device_id_1"))
    b2 = address(I["bob_account_id"], be("bob_device_id_2"))
    c7 = address(I["carol_account_id"], be("carol_device_id"))
    trust = dict(roots={be("root_id"): root.enc}, revoked=set())
    expires = be("certificate_expires"); now = expires - 1   # vector gives no `now`; any now < expiry

    scert = server_certificate(root, be("root_id"), be("server_key_id"), server.enc)
    check("server_certificate", scert)
    cert = sender_certificate(server, a_addr, alice.enc, expires, scert)
    check("sender_certificate", cert)
    sc = decode_sender_certificate(O["sender_certificate"])
    try: validate_certificate(sc, trust, now); check("validate stored sender_certificate", True, True)
    except SealedError as e: print("FAIL validate stored sender_certificate:", e); fails += 1

    ak_b, ak_c = access_key(I["bob_delivery_secret"]), access_key(I["carol_delivery_secret"])
    check("bob_delivery_key", ak_b); check("carol_delivery_key", ak_c)
    check("multi_token", xor_token([ak_b, ak_c]))
    registry = {I["bob_account_id"]: O["bob_delivery_key"], I["carol_account_id"]: O["carol_delivery_key"]}

    single = seal_single(alice, RNG([I["single_ephemeral_secret"]]), cert, b1, bob.enc,
                         I["single_kind"][0], I["single_hint"][0], I["single_message"], token=ak_b)
    check("single_envelope", single)
    payloads = {b1: I["multi_payload_bob_1"], b2: I["multi_payload_bob_2"], c7: I["multi_payload_carol_7"]}
    rcpts = [(c7, carol.enc, payloads[c7]), (b2, bob.enc, payloads[b2]), (b1, bob.enc, payloads[b1])]
    multi = seal_multi(alice, RNG([I["multi_content_key"], I["multi_ephemeral_secret"]]), cert, rcpts,
                       I["multi_kind"][0], I["multi_hint"][0], I["multi_message"], token=xor_token([ak_b, ak_c]))
    check("multi_envelope", multi)

    policy = dict(max_size=1 << 20, allowed={0x21, 0x22}, max_recipients=100, require_token=True)
    for name in ("single_envelope", "multi_envelope"):
        try: server_validate(O[name], policy, registry); check(f"server accepts stored {name}", True, True)
        except SealedError as e: print(f"FAIL server accepts stored {name}: {e}"); fails += 1
    parts = split(O["multi_envelope"])
    for (nm, _), part in zip([("multi_part_bob_1", b1), ("multi_part_bob_2", b2), ("multi_part_carol_7", c7)], parts):
        check(nm, part)

    # opening the stored bytes as each recipient
    def check_open(label, who, my_addr, blob, msg, kind, hint, payload=None):
        nonlocal fails
        try: r = open_envelope(who, my_addr, blob, trust, now)
        except SealedError as e: print(f"FAIL {label}: {e}"); fails += 1; return
        ok = (r["msg"], r["kind"], r["hint"], r["sender"], r["ik_s"]) == \
             (msg, kind, hint, (I["alice_account_id"], be("alice_device_id")), alice.enc)
        if payload is not None: ok = ok and r["payload"] == payload
        check(label, ok, True)
    sk, sh, mk, mh = I["single_kind"][0], I["single_hint"][0], I["multi_kind"][0], I["multi_hint"][0]
    check_open("open single_envelope as bob/1", bob, b1, O["single_envelope"], I["single_message"], sk, sh)
    for who, addr, nm in ((bob, b1, "bob_1"), (bob, b2, "bob_2"), (carol, c7, "carol_7")):
        pl = I[f"multi_payload_{nm}"]
        check_open(f"open multi_envelope as {nm}", who, addr, O["multi_envelope"], I["multi_message"], mk, mh, pl)
        check_open(f"open multi_part_{nm} as {nm}", who, addr, O[f"multi_part_{nm}"], I["multi_message"], mk, mh, pl)

    # negative checks
    flip = lambda b, i: b[:i] + bytes([b[i] ^ 1]) + b[i + 1:]
    S, Mu, P1 = O["single_envelope"], O["multi_envelope"], O["multi_part_bob_1"]
    nop = dict(policy, require_token=False)
    def no_tok_multi(b):  # strip the token from a multi envelope (it sits just before C_sender ‖ C_content)
        m = parse_multi(b); sh = m["C_sender"] + m["C_content"]; return b[:len(b) - len(sh) - 17] + b"\x00" + sh
    negs = [
        ("oversize", lambda: server_validate(S, dict(policy, max_size=len(S) - 1), registry)),
        ("unknown version", lambda: server_validate(b"\x23" + S[1:], policy, registry)),
        ("version not allowed", lambda: server_validate(Mu, dict(policy, allowed={0x21}), registry)),
        ("truncated", lambda: server_validate(S[:60], policy, registry)),
        ("malformed", lambda: server_validate(S[:9] + b"\x02" + S[10:], policy, registry)),
        ("invalid padding", lambda: server_validate(S[:-1], policy, registry)),
        ("too many recipients", lambda: server_validate(Mu, dict(policy, max_recipients=2), registry)),
        ("no recipients", lambda: server_validate(Mu[:33] + b"\x00\x00" + Mu[35:], policy, registry)),
        ("missing token", lambda: server_validate(no_tok_multi(Mu), policy, registry)),
        ("wrong token", lambda: server_validate(flip(S, 12), policy, registry)),
        ("unknown recipient", lambda: server_validate(S, policy, {})),
        ("wrong recipient", lambda: open_envelope(bob, b2, S, trust, now)),
        ("wrong recipient", lambda: open_envelope(alice, a_addr, Mu, trust, now)),
        ("decryption failed", lambda: open_envelope(bob, b1, flip(S, len(S) - 1), trust, now)),
        ("decryption failed", lambda: open_envelope(bob, b1, flip(P1, len(P1) - 1), trust, now)),
        ("decryption failed", lambda: open_envelope(bob, b1, flip(P1, 33 + 1 + 3 + 4 + 2 + 112), trust, now)),  # T_i
        ("certificate: expired", lambda: open_envelope(bob, b1, S, trust, expires)),
        ("certificate: revoked", lambda: open_envelope(bob, b1, S, dict(trust, revoked={be("server_key_id")}), now)),
        ("certificate: wrong root", lambda: open_envelope(bob, b1, S, dict(trust, roots={}), now)),
        ("self send", lambda: open_envelope(alice, a_addr, seal_single(alice, RNG([I["single_ephemeral_secret"]]),
                       cert, a_addr, alice.enc, 3, 0, b"x"), trust, now)),
    ]
    # no token + no requirement: accepted
    try: server_validate(no_tok_multi(Mu), nop, registry); print("PASS token optional when not required")
    except SealedError as e: print("FAIL token optional:", e); fails += 1
    # unsorted / duplicate entries: swap bob_1 and bob_2 entries, and duplicate bob_1
    m = parse_multi(Mu); e1, e2, e3 = (e["raw"] for e in m["entries"]); tail = Mu[35 + len(e1 + e2 + e3):]
    negs += [("unsorted recipients", lambda: server_validate(Mu[:35] + e2 + e1 + e3 + tail, policy, registry)),
             ("duplicate recipient", lambda: server_validate(Mu[:35] + e1 + e1 + e3 + tail, policy, registry))]
    for want, fn in negs:
        try: fn(); print(f"FAIL negative {want}: accepted"); fails += 1
        except SealedError as e:
            ok = str(e) == want; fails += not ok
            print(f"{'PASS' if ok else 'FAIL'} negative {want}" + ("" if ok else f" (got {e})"))
    # Padmé sanity: L'=65..127 -> E=6, S=3, z=3 (multiples of 8); 1025 -> z=6
    check("padded_len sanity", [padded_len(n) for n in (1, 64, 65, 100, 1000, 1025)], [64, 64, 72, 104, 1024, 1088])
    print("ALL PASS" if fails == 0 else f"{fails} FAILURE(S)")
    return 1 if fails else 0

if __name__ == "__main__":
    sys.exit(main())
