#!/usr/bin/env python3
"""ML-KEM-768 (FIPS 203) known answers through kyber-py, the ML-KEM of the independent
Python implementation (spec_check.py, SPEC.md §2 KEM_KeyGen / KEM_Encaps / KEM_Decaps and
§2.4). tests/ml_kem_fips203.rs runs the same values through libcrux-ml-kem, the crate
ratchetbox uses, so the two implementations are checked against the same public values
(tests/vectors/ml_kem_768_fips203.txt says where each comes from):

- NIST ACVP ML-KEM-768 keyGen (25 cases), encapsulation (3) and decapsulation (4, two of
  them implicit rejections, checked against J(z || c) = SHAKE256(z || c, 32) as well);
- the Go standard library's FIPS 140 self-test (d, z, m -> K);
- Go's accumulated test at 100 iterations (10 000 takes minutes in pure Python; the Rust
  test runs both).

Also the §2.4 modulus check: a key with a coefficient >= 3329 is refused by kyber-py's
encapsulation and by spec_check's own check. Needs kyber-py (pinned in .ci/run).
Run: python3 tests/interop/kem_check.py"""
import hashlib, os, sys, time
from kyber_py.ml_kem import ML_KEM_768

HERE = os.path.dirname(os.path.abspath(__file__))
VEC = os.path.join(HERE, "..", "vectors", "ml_kem_768_fips203.txt")


def load_sections(path):
    """`[section]` headers followed by `name = hex` lines; '#' starts a comment line."""
    out, cur = [], None
    for line in open(path):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            cur = (line.strip("[]"), {})
            out.append(cur)
            continue
        k, v = (x.strip() for x in line.split("=", 1))
        cur[1][k] = bytes.fromhex(v)
    return out


def keygen(d, z):
    return ML_KEM_768._keygen_internal(d, z)          # FIPS 203 Algorithm 16


def encaps(ek, m):
    k, c = ML_KEM_768._encaps_internal(ek, m)         # FIPS 203 Algorithm 17
    return k, c


def decaps(dk, c):
    return ML_KEM_768._decaps_internal(dk, c)         # FIPS 203 Algorithm 18


def accumulated(n):
    """Go's TestAccumulated (see the vector file's header)."""
    per = 64 + 32 + 1088
    s = hashlib.shake_128(b"").digest(n * per)        # the source stream is never written to
    o = hashlib.shake_128()
    p = 0
    for _ in range(n):
        seed = s[p:p + 64]; p += 64
        ek, dk = keygen(seed[:32], seed[32:])
        o.update(ek)
        m = s[p:p + 32]; p += 32
        k, c = encaps(ek, m)
        o.update(c); o.update(k)
        if decaps(dk, c) != k:
            return None
        c1 = s[p:p + 1088]; p += 1088
        o.update(decaps(dk, c1))
    return o.digest(32)


def modulus_ok(ek):
    """SPEC §2.4: ByteDecode_12 of ek[0..1152], every integer below q = 3329."""
    t = int.from_bytes(ek[:1152], "little")
    return all((t >> (12 * i)) & 0xFFF < 3329 for i in range(768))


def main():
    fails = n = 0

    def res(ok, label):
        nonlocal fails, n
        n += 1; fails += not ok
        print(f"{'PASS' if ok else 'FAIL'} {label}")

    secs = load_sections(VEC)
    get = lambda name: next(v for k, v in secs if k == name)
    sha = lambda b: hashlib.sha256(b).digest()

    kg = [(k, v) for k, v in secs if k.startswith("acvp keygen ")]
    ok = 0
    for name, v in kg:
        ek, dk = keygen(v["d"], v["z"])
        good = sha(ek) == v["ek_sha256"] and sha(dk) == v["dk_sha256"] and modulus_ok(ek)
        ok += good
        if not good: print(f"  {name}: mismatch")
    res(ok == len(kg) == 25, f"ACVP ML-KEM-768 keyGen: {ok}/{len(kg)} cases (d, z -> ek, dk)")

    en = [(k, v) for k, v in secs if k.startswith("acvp encap ")]
    ok = 0
    for name, v in en:
        k, c = encaps(v["ek"], v["m"])
        good = k == v["k"] and sha(c) == v["c_sha256"]
        ok += good
        if not good: print(f"  {name}: mismatch")
    res(ok == len(en) == 3, f"ACVP ML-KEM-768 encapsulation: {ok}/{len(en)} cases (ek, m -> c, K)")

    dk = get("acvp decap key")["dk"]
    de = [(k, v) for k, v in secs if k.startswith("acvp decap ") and k != "acvp decap key"]
    ok = rej = 0
    for name, v in de:
        k = decaps(dk, v["c"])
        good = k == v["k"]
        if v["modified"] == b"\x01":   # implicit rejection: K = J(z || c), z the last 32 bytes of dk
            good = good and k == hashlib.shake_256(dk[-32:] + v["c"]).digest(32)
            rej += 1
        ok += good
        if not good: print(f"  {name}: mismatch")
    res(ok == len(de) == 4 and rej == 2,
        f"ACVP ML-KEM-768 decapsulation: {ok}/{len(de)} cases (dk, c -> K), {rej} implicit rejections = J(z || c)")

    v = get("go cast")
    ek, dk = keygen(v["d"], v["z"])
    k, c = encaps(ek, v["m"])
    res(k == v["k"] and decaps(dk, c) == v["k"], "Go FIPS 140 self-test (d, z, m -> K), and Decaps gives K back")

    acc = get("go accumulated")
    t0 = time.time()
    got = accumulated(100)
    res(got == acc["iterations_100"],
        f"Go accumulated test, 100 iterations ({time.time() - t0:.1f} s; the 10 000-iteration value is checked in Rust)")

    # §2.4 modulus check: set coefficient 0 of the first ACVP key to 3329 (= q) and to 4095
    ek0 = next(v for k, v in secs if k.startswith("acvp encap "))["ek"]
    for coeff in (3329, 4095):
        bad = bytes([coeff & 0xFF, (ek0[1] & 0xF0) | (coeff >> 8)]) + ek0[2:]
        assert int.from_bytes(bad[:2], "little") & 0xFFF == coeff
        try:
            encaps(bad, bytes(32)); refused = False
        except ValueError:
            refused = True
        res(refused and not modulus_ok(bad) and modulus_ok(ek0),
            f"key with coefficient 0 = {coeff}: modulus check fails (kyber-py refuses to encapsulate)")
    # the highest coefficient (767: the top 12 bits of byte 1151) = 3329
    bad = ek0[:1150] + bytes([ek0[1150] & 0x0F | ((3329 & 0xF) << 4), 3329 >> 4]) + ek0[1152:]
    assert (int.from_bytes(bad[:1152], "little") >> (12 * 767)) == 3329
    try:
        encaps(bad, bytes(32)); refused = False
    except ValueError:
        refused = True
    res(refused and not modulus_ok(bad), "key with coefficient 767 = 3329: modulus check fails")
    res(modulus_ok(ek0[:1152] + b"\xff" * 32), "rho (the last 32 bytes) is unrestricted")

    print(f"{n - fails}/{n} checks passed")
    print("ALL PASS" if fails == 0 else f"{fails} FAILURE(S)")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
