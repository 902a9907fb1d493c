#!/usr/bin/env python3
"""Independent implementation of ratchetbox v2 SPEC.md §10 (sender-key groups), written
from SPEC.md alone. Reuses the §1-§3 primitives of tests/interop/spec_check.py.
Reproduces tests/vectors/group_v2.txt byte for byte (distribution, messages, stored
sessions), decrypts and verifies its stored messages in the vector's order, decodes and
re-encodes the stored sessions, and checks the §10.2/§10.4/§10.5 rules, including the
v2 ones (a random nonce per group message §2.2/§10.3, torsion-free signing keys §3.1).
Run: python3 tests/interop/group_check.py"""
import copy, os, struct, sys
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from spec_check import (Identity, RNG, Reader, ProtoError, HMAC, AEAD_SealN, AEAD_OpenN, valid_point,
                        verify_strict, load_vectors, Checker, flip, setb, put, torsion_point, pt_add,
                        pt_encode, address, L, U32_MAX)

VEC = os.path.join(HERE, "..", "vectors", "group_v2.txt")
GROUP_CHAIN = b"ratchetbox v2 group chain"
TAG_DIST, TAG_MSG = 0x33, 0x34
u8 = lambda v: bytes([v])
u32 = lambda v: struct.pack(">I", v)

class GroupError(ProtoError): pass

def take(r, n):
    try: return r.take(n)
    except ProtoError: raise GroupError("truncated")
def rd32(r): return struct.unpack(">I", take(r, 4))[0]
def end(r):
    if r.i != len(r.b): raise GroupError("trailing bytes")

def group_id(gid):
    """GroupId = u8(len) ‖ id, 1-64 bytes."""
    if not 1 <= len(gid) <= 64: raise GroupError("malformed")
    return u8(len(gid)) + gid

def read_group_id(r):
    n = take(r, 1)[0]
    if not 1 <= n <= 64: raise GroupError("malformed")
    return take(r, n)

def read_address(r):
    n = take(r, 1)[0]
    if not 1 <= n <= 64: raise GroupError("malformed")
    acct = take(r, n); dev = rd32(r)
    return u8(n) + acct + u32(dev)

def addr_key(a):   # §9.1 order: account id bytes (a prefix first), then device id
    n = a[0]; return (a[1:1 + n], struct.unpack(">I", a[1 + n:])[0])

def read_signing_key(r):
    k = take(r, 32)
    if valid_point(k) is None: raise GroupError("invalid signing key")   # §3.1 (error name: not in SPEC)
    return k

# ---------------- §10.1 chain ----------------
def chain_step(ck):
    return HMAC(ck, b"\x01" + GROUP_CHAIN), HMAC(ck, b"\x02" + GROUP_CHAIN)   # MK, CK'

class OwnChain:
    def __init__(self, cid, iteration, ck, seed):
        self.cid, self.iteration, self.ck, self.seed = cid, iteration, ck, seed
        self.signer = Identity(seed)                  # Ed25519 from the seed (RFC 8032)
    @classmethod
    def generate(cls, rng):
        ck = rng.take(32); cid = rng.next_u32(); seed = rng.take(32)   # §10.1 draw order
        return cls(cid, 0, ck, seed)
    def encode(self): return u32(self.cid) + u32(self.iteration) + self.ck + self.seed

class Chain:
    def __init__(self, cid, spk, nxt, ck, skipped=None):
        self.cid, self.spk, self.next, self.ck, self.skipped = cid, spk, nxt, ck, skipped or []
    def encode(self):
        return (u32(self.cid) + self.spk + u32(self.next) + self.ck + u32(len(self.skipped)) +
                b"".join(u32(i) + mk for i, mk in self.skipped))

# ---------------- §10.2 / §10.3 wire formats ----------------
def decode_distribution(b):
    r = Reader(b)
    if take(r, 1) != u8(TAG_DIST): raise GroupError("unknown tag")
    gid = read_group_id(r); cid = rd32(r); it = rd32(r); ck = take(r, 32); spk = read_signing_key(r); end(r)
    return gid, cid, it, ck, spk

def parse_message(b):
    r = Reader(b)
    if take(r, 1) != u8(TAG_MSG): raise GroupError("unknown tag")
    gid = read_group_id(r); cid = rd32(r); n = rd32(r); nonce = take(r, 12)
    H = b[:r.i]; rest = b[r.i:]
    if len(rest) < 16 + 64: raise GroupError("truncated")
    return gid, cid, n, nonce, H, rest[:-64], rest[-64:]

def sign_message(signer, H, ct):
    return H + ct + signer.sign(H + ct)

# ---------------- §10.4 / §10.5 session ----------------
class GroupSession:
    def __init__(self, gid, own, max_jump=1000, max_skipped=2000, max_chains=4, rng=None):
        self.gid, self.own, self.rng = gid, own, rng
        self.max_jump, self.max_skipped, self.max_chains = max_jump, max_skipped, max_chains
        self.members = {}          # encoded address -> [Chain], oldest first
        self.removed = set()       # account ids

    @classmethod
    def create(cls, rng, gid, **cfg):
        return cls(gid, OwnChain.generate(rng), rng=rng, **cfg)

    def state(self): return self.encode()

    def distribution(self):
        o = self.own
        return (u8(TAG_DIST) + group_id(self.gid) + u32(o.cid) + u32(o.iteration) + o.ck +
                o.signer.enc)

    def process_distribution(self, sender_addr, b):
        gid, cid, it, ck, spk = decode_distribution(b)
        if gid != self.gid: raise GroupError("wrong group")
        if addr_key(sender_addr)[0] in self.removed: raise GroupError("not a member")
        chains = self.members.setdefault(sender_addr, [])
        if any(ch.cid == cid for ch in chains): return "ignored"
        chains.append(Chain(cid, spk, it, ck))
        if len(chains) > self.max_chains: del chains[0]            # the oldest is dropped
        return "added"

    def remove(self, acct):
        for a in [a for a in self.members if addr_key(a)[0] == acct]: del self.members[a]
        self.removed.add(acct)
        self.rotate()

    def readmit(self, acct): self.removed.discard(acct)

    def rotate(self):
        self.own = OwnChain.generate(self.rng)

    def encrypt(self, pt):
        o = self.own
        if o.iteration == U32_MAX: raise GroupError("counter exhausted")
        nonce = self.rng.nonce()                                   # draw: the message's nonce
        H = u8(TAG_MSG) + group_id(self.gid) + u32(o.cid) + u32(o.iteration) + nonce
        mk, ck2 = chain_step(o.ck)
        out = sign_message(o.signer, H, AEAD_SealN(mk, nonce, H, pt))
        o.ck, o.iteration = ck2, o.iteration + 1
        return out

    def decrypt(self, sender_addr, b):
        gid, cid, n, nonce, H, ct, sig = parse_message(b)                          # 1
        if gid != self.gid: raise GroupError("wrong group")
        ch = next((c for c in self.members.get(sender_addr, []) if c.cid == cid), None)
        if ch is None: raise GroupError("not a member")                            # 2
        if not verify_strict(ch.spk, H + ct, sig): raise GroupError("invalid signature")   # 3
        if n < ch.next:                                                            # 4
            for idx, (i, mk) in enumerate(ch.skipped):
                if i == n:
                    pt = self._open(mk, nonce, H, ct); del ch.skipped[idx]; return pt
            raise GroupError("duplicate message")
        if n == U32_MAX: raise GroupError("counter exhausted")                     # 5
        if n - ch.next > self.max_jump: raise GroupError("too many skipped messages")
        ck, new = ch.ck, []                                                        # 6
        for i in range(ch.next, n):
            mk, ck = chain_step(ck); new.append((i, mk))
        mk, ck = chain_step(ck)
        pt = self._open(mk, nonce, H, ct)
        ch.ck, ch.next = ck, n + 1
        ch.skipped = (ch.skipped + new)[-self.max_skipped:] if self.max_skipped else []
        return pt

    @staticmethod
    def _open(mk, nonce, H, ct):
        try: return AEAD_OpenN(mk, nonce, H, ct)
        except ProtoError: raise GroupError("decryption failed")

    def encode(self):
        out = (b"\x47\x01" + u32(self.max_jump) + u32(self.max_skipped) + u32(self.max_chains) +
               group_id(self.gid) + self.own.encode())
        mem = sorted(self.members.items(), key=lambda kv: addr_key(kv[0]))
        out += u32(len(mem))
        for a, chains in mem:
            out += a + u8(len(chains)) + b"".join(ch.encode() for ch in chains)
        rem = sorted(self.removed)
        return out + u32(len(rem)) + b"".join(u8(len(a)) + a for a in rem)

    @classmethod
    def decode(cls, b, rng=None):
        r = Reader(b)
        if take(r, 1) != b"\x47": raise GroupError("unknown kind")
        if take(r, 1) != b"\x01": raise GroupError("unsupported version")
        mj, ms, mc = rd32(r), rd32(r), rd32(r)
        if mj > 65536 or ms > 65536 or not 1 <= mc <= 255: raise GroupError("malformed")
        gid = read_group_id(r)
        own = OwnChain(rd32(r), rd32(r), take(r, 32), take(r, 32))
        s = cls(gid, own, mj, ms, mc, rng)
        m = rd32(r)
        if m > 131072: raise GroupError("malformed")
        prev = None
        for _ in range(m):
            a = read_address(r)
            if prev is not None and not addr_key(prev) < addr_key(a): raise GroupError("malformed")
            prev = a
            cc = take(r, 1)[0]
            if not 1 <= cc <= mc: raise GroupError("malformed")
            chains = []
            for _ in range(cc):
                cid = rd32(r); spk = read_signing_key(r); nxt = rd32(r); ck = take(r, 32); k = rd32(r)
                if k > ms: raise GroupError("malformed")
                chains.append(Chain(cid, spk, nxt, ck, [(rd32(r), take(r, 32)) for _ in range(k)]))
            s.members[a] = chains
        nr = rd32(r)
        if nr > 131072: raise GroupError("malformed")
        prev = None
        for _ in range(nr):
            a = read_group_id(r)          # same shape: u8(len) ‖ account id, 1-64 bytes
            if prev is not None and not prev < a: raise GroupError("malformed")
            prev = a; s.removed.add(a)
        end(r)
        return s

# ---------------- vector check ----------------
def main():
    I, O = load_vectors(VEC)
    c = Checker(O)
    gid = I["group_id"]
    s_addr = address(I["sender_account"], int.from_bytes(I["sender_device"], "big"))
    sender_draws = [I["sender_chain_key"], I["sender_chain_id_draw"], I["sender_signing_seed"],
                    I["sender_nonce_0"], I["sender_nonce_1"], I["sender_nonce_2"]]
    receiver_draws = [I["receiver_chain_key"], I["receiver_chain_id_draw"], I["receiver_signing_seed"]]
    fresh_receiver = lambda: GroupSession.create(RNG(receiver_draws), gid)

    # sender
    sender_rng = RNG(sender_draws)
    snd = GroupSession.create(sender_rng, gid)
    c.vec("sender_chain_id", u32(snd.own.cid))
    c.vec("sender_signing_public_key", snd.own.signer.enc)
    dist = snd.distribution(); c.vec("distribution", dist)
    c.eq("distribution is 74 + len(group id) bytes", len(dist), 74 + len(gid))
    for i in range(3):
        c.vec(f"message_{i}", snd.encrypt(I[f"plaintext_{i}"]))
        c.eq(f"message_{i} overhead is 102 + len(group id)", len(O[f"message_{i}"]) - len(I[f"plaintext_{i}"]), 102 + len(gid))
    c.vec("sender_state", snd.encode())
    c.true("every scripted sender draw used", sender_rng.draws == [])

    # receiver, from the stored bytes, in the vector's order
    rcv = fresh_receiver()
    c.eq("receiver's own chain id is its draw read little-endian", rcv.own.cid, int.from_bytes(I["receiver_chain_id_draw"], "little"))
    c.eq("process stored distribution from alice/1", rcv.process_distribution(s_addr, O["distribution"]), "added")
    c.eq("decrypt message_2 first", rcv.decrypt(s_addr, O["message_2"]), I["plaintext_2"])
    c.eq("decrypt message_0 (skipped key)", rcv.decrypt(s_addr, O["message_0"]), I["plaintext_0"])
    c.vec("receiver_state_after_2_0", rcv.encode())
    c.eq("decrypt message_1 (last skipped key)", rcv.decrypt(s_addr, O["message_1"]), I["plaintext_1"])
    c.vec("receiver_state_final", rcv.encode())
    for nm in ("sender_state", "receiver_state_after_2_0", "receiver_state_final"):
        c.eq(f"decode/re-encode {nm}", GroupSession.decode(O[nm]).encode(), O[nm])
    c.eq("decoded sender_state re-derives the signing public key from its seed",
         GroupSession.decode(O["sender_state"]).own.signer.enc, O["sender_signing_public_key"])

    # stored states continue: the decoded sender encrypts a 4th message the decoded receiver reads
    s2 = GroupSession.decode(O["sender_state"], rng=RNG([bytes(range(12))]))
    r2 = GroupSession.decode(O["receiver_state_final"])
    m3 = s2.encrypt(b"fourth")
    c.eq("decoded sender_state's 4th message (iteration 3) decrypts on decoded receiver_state_final",
         r2.decrypt(s_addr, m3), b"fourth")
    c.err("... and only once", "duplicate message", lambda: r2.decrypt(s_addr, m3))

    # ---- §2.2 v2: two copies of one sender state, one message position ----
    ca = GroupSession.decode(O["sender_state"], rng=RNG([b"\xaa" * 12]))
    cb = GroupSession.decode(O["sender_state"], rng=RNG([b"\xbb" * 12]))
    pa, pb = b"copy A says this", b"copy B says that"
    ma, mb = ca.encrypt(pa), cb.encrypt(pb)
    hl = 1 + 1 + len(gid) + 8
    xor = lambda x, y: bytes(i ^ j for i, j in zip(x, y))
    c.true("stale copies encrypt one iteration under different nonces, so the ciphertext XOR is not the plaintext XOR",
           ma[hl:hl + 12] != mb[hl:hl + 12] and xor(ma[hl + 12:hl + 12 + len(pa)], mb[hl + 12:hl + 12 + len(pb)]) != xor(pa, pb))
    r3 = GroupSession.decode(O["receiver_state_final"])
    c.eq("receiver accepts copy A's message", r3.decrypt(s_addr, ma), pa)
    c.err("... and reports copy B's for the same iteration as a duplicate", "duplicate message", lambda: r3.decrypt(s_addr, mb))

    # ---- §10.4 receiving rules ----
    sk = Identity(I["sender_signing_seed"])
    M0, M2 = O["message_0"], O["message_2"]
    off_cid = 1 + 1 + len(gid); off_n = off_cid + 4; off_nonce = off_n + 4; off_ct = off_nonce + 12
    def resign(b, off, val):
        """Alter bytes at off, then re-sign with the sender's signing key (passes step 3)."""
        gid_, cid, n, nonce, H, ct, sig = parse_message(put(b, off, val))
        return sign_message(sk, H, ct)
    rf = lambda: (lambda r: (r.process_distribution(s_addr, O["distribution"]), r)[1])(fresh_receiver())
    other = GroupSession.create(RNG(receiver_draws), b"another group")
    other.members[s_addr] = [Chain(snd.own.cid, sk.enc, 0, I["sender_chain_key"])]
    negs = [
        ("message_0 for another group", "wrong group", lambda: other.decrypt(s_addr, M0)),
        ("distribution for another group", "wrong group", lambda: other.process_distribution(s_addr, O["distribution"])),
        ("message_0 from bob/1 (never distributed)", "not a member", lambda: rf().decrypt(address(b"bob", 1), M0)),
        ("message_0 from alice/2", "not a member", lambda: rf().decrypt(address(b"alice", 2), M0)),
        ("message_0 with an unknown chain id", "not a member", lambda: rf().decrypt(s_addr, flip(M0, off_cid))),
        ("message_0 before any distribution", "not a member", lambda: fresh_receiver().decrypt(s_addr, M0)),
        ("message_0 ciphertext flipped", "invalid signature", lambda: rf().decrypt(s_addr, flip(M0, off_ct))),
        ("message_0 nonce flipped (the nonce is signed)", "invalid signature", lambda: rf().decrypt(s_addr, flip(M0, off_nonce))),
        ("message_0 iteration changed", "invalid signature", lambda: rf().decrypt(s_addr, put(M0, off_n, u32(1)))),
        ("message_0 signature R flipped", "invalid signature", lambda: rf().decrypt(s_addr, flip(M0, len(M0) - 64))),
        ("message_0 signature S + ℓ", "invalid signature", lambda: rf().decrypt(s_addr, M0[:-32] + (int.from_bytes(M0[-32:], "little") + L).to_bytes(32, "little"))),
        ("message_0 nonce flipped and re-signed (the nonce is the AEAD nonce)", "decryption failed",
         lambda: rf().decrypt(s_addr, resign(M0, off_nonce, bytes([M0[off_nonce] ^ 1])))),
        ("message_0 ciphertext flipped and re-signed", "decryption failed",
         lambda: rf().decrypt(s_addr, resign(M0, off_ct, bytes([M0[off_ct] ^ 1])))),
        ("message_0 re-signed at iteration 2^32 - 1", "counter exhausted",
         lambda: rf().decrypt(s_addr, resign(M0, off_n, u32(U32_MAX)))),
        ("message_0 re-signed at iteration 1001 (MAX_JUMP 1000)", "too many skipped messages",
         lambda: rf().decrypt(s_addr, resign(M0, off_n, u32(1001)))),
        ("message_0 truncated into the signature", "truncated", lambda: parse_message(M0[:off_ct + 79])),
        ("message_0 with the v1 tag 0x32", "unknown tag", lambda: parse_message(setb(M0, 0, 0x32))),
        ("distribution with the v1 tag 0x31", "unknown tag", lambda: decode_distribution(setb(O["distribution"], 0, 0x31))),
        ("distribution trailing byte", "trailing bytes", lambda: decode_distribution(O["distribution"] + b"\0")),
        ("distribution with group id length 0", "malformed", lambda: decode_distribution(setb(O["distribution"], 1, 0))),
    ]
    for desc, want, fn in negs: c.err(desc, want, fn)

    # replay after the final state: the message is a duplicate; message_0 after iteration 3's distribution too
    c.err("replay message_1 after receiver_state_final", "duplicate message", lambda: GroupSession.decode(O["receiver_state_final"]).decrypt(s_addr, O["message_1"]))
    late = fresh_receiver(); late.process_distribution(s_addr, GroupSession.decode(O["sender_state"]).distribution())
    c.err("message_0 on a receiver whose distribution is at iteration 3", "duplicate message", lambda: late.decrypt(s_addr, M0))
    # a jump of exactly MAX_JUMP is accepted
    ck = I["sender_chain_key"]
    for _ in range(1000): ck = chain_step(ck)[1]
    far = GroupSession.decode(O["sender_state"], rng=RNG([bytes(12)])); far.own.iteration, far.own.ck = 1000, ck
    rj = rf()
    c.eq("iteration 1000 after a distribution at 0 (n - next = MAX_JUMP) decrypts", rj.decrypt(s_addr, far.encrypt(b"far")), b"far")
    c.eq("... leaving 1000 skipped keys", len(rj.members[s_addr][0].skipped), 1000)

    # a known chain id is ignored: neither erases keys nor re-opens old messages
    r4 = GroupSession.decode(O["receiver_state_after_2_0"]); before = r4.encode()
    c.eq("stored distribution again on receiver_state_after_2_0", r4.process_distribution(s_addr, O["distribution"]), "ignored")
    c.true("... state unchanged", r4.encode() == before)
    c.err("... message_2 still a duplicate", "duplicate message", lambda: r4.decrypt(s_addr, M2))
    c.eq("... message_1 still opens", r4.decrypt(s_addr, O["message_1"]), I["plaintext_1"])

    # MAX_CHAINS: a fifth chain drops the oldest
    r5 = rf()
    for i in range(4):
        d = put(O["distribution"], off_cid, u32(1000 + i))
        r5.process_distribution(s_addr, d)
    c.eq("five chains from one device, MAX_CHAINS 4: the oldest is dropped",
         [ch.cid for ch in r5.members[s_addr]], [1000, 1001, 1002, 1003])
    c.err("... so message_0 of the first chain is refused", "not a member", lambda: r5.decrypt(s_addr, M0))

    # removal (§10.4)
    r6 = GroupSession.create(RNG(receiver_draws + [bytes(32), bytes(4), bytes(range(32))]), gid)
    r6.process_distribution(s_addr, O["distribution"])
    old_cid = r6.own.cid
    r6.remove(I["sender_account"])
    c.true("removing alice deletes her chains and rotates the own chain", s_addr not in r6.members and r6.own.cid != old_cid)
    c.err("message_0 from the removed account", "not a member", lambda: r6.decrypt(s_addr, M0))
    c.err("distribution from the removed account", "not a member", lambda: r6.process_distribution(s_addr, O["distribution"]))
    c.true("the removed account is stored (§10.5) and survives decode",
           GroupSession.decode(r6.encode()).removed == {I["sender_account"]})
    r6.readmit(I["sender_account"])
    c.eq("after readmission the distribution is accepted", r6.process_distribution(s_addr, O["distribution"]), "added")

    # ---- §3.1 v2: torsion-free group signing keys ----
    T = torsion_point()
    AT = pt_encode(pt_add(valid_point(O["sender_signing_public_key"]), T))
    c.err("distribution whose signing key is A+T (torsion component)", "invalid signing key",
          lambda: rf().process_distribution(s_addr, put(O["distribution"], len(O["distribution"]) - 32, AT)))
    c.err("distribution whose signing key has small order", "invalid signing key",
          lambda: rf().process_distribution(s_addr, put(O["distribution"], len(O["distribution"]) - 32, (1).to_bytes(32, "little"))))
    RS = O["receiver_state_final"]
    spk_off = RS.index(O["sender_signing_public_key"])
    c.err("stored group session whose member signing key is A+T", "invalid signing key", lambda: GroupSession.decode(put(RS, spk_off, AT)))

    # ---- §10.5 stored-form rules ----
    SS = O["sender_state"]
    for desc, want, blob in [
        ("stored session trailing byte", "trailing bytes", SS + b"\0"),
        ("stored session truncated", "truncated", SS[:-1]),
        ("stored session kind 0x48", "unknown kind", setb(SS, 0, 0x48)),
        ("stored session version 0x02", "unsupported version", setb(SS, 1, 2)),
        ("stored session MAX_JUMP 65537", "malformed", put(SS, 2, u32(65537))),
        ("stored session MAX_CHAINS 0", "malformed", put(SS, 10, u32(0))),
        ("stored session MAX_CHAINS 256", "malformed", put(SS, 10, u32(256))),
        ("stored member with chain count 0", "malformed", put(RS, RS.index(s_addr) + len(s_addr), b"\x00")),
    ]:
        c.err(desc, want, lambda blob=blob: GroupSession.decode(blob))
    return c.done()

if __name__ == "__main__":
    sys.exit(main())
