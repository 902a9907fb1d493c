#!/usr/bin/env python3
"""Prints a Markdown table of medians and floor ratios from one criterion run of
benches/protocol.rs. Usage: report.py <criterion dir> <build flags label>."""
import json
import os
import sys

root, flags = sys.argv[1], sys.argv[2]


# Criterion names directories after ids with '/' replaced; map ids to folders.
FOLDERS = {}
for dirpath, _, files in os.walk(root):
    if os.path.basename(dirpath) == "new" and "benchmark.json" in files:
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            FOLDERS[json.load(f)["full_id"]] = dirpath


def median(bench_id):
    with open(os.path.join(FOLDERS[bench_id], "estimates.json")) as f:
        return json.load(f)["median"]["point_estimate"]  # nanoseconds


def fmt(ns):
    return f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.0f} ns"


f = {name: median(f"floor/{name}") for name in [
    "kdf_ck", "random_nonce", "random_nonce_os", "x25519_dh", "x25519_keygen", "hkdf_32",
    "hkdf_64", "sha256_200B", "ed25519_sign", "ed25519_verify_strict", "ed25519_key_checks",
    "ed25519_torsion_check", "ml_kem_768_keygen", "ml_kem_768_encaps", "ml_kem_768_decaps",
    "ml_kem_768_key_check", "sha256_1088B", "sha256_1185B"]}
# Accepting one received Ed25519 key (identity, certificate or group key).
key_in = f["ed25519_key_checks"] + f["ed25519_torsion_check"]
rows = []  # (measure, median, floor, ratio text, target)
for size in ["64B", "256B", "1KiB", "16KiB", "64KiB"]:
    seal, open_ = median(f"floor/aead_seal/{size}"), median(f"floor/aead_open/{size}")
    enc, dec = median(f"ratchet/encrypt/{size}"), median(f"ratchet/decrypt/{size}")
    both = median(f"ratchet/encrypt_decrypt/{size}")
    target = "≤ 1.3×" if size == "256B" else ("throughput ≥ 0.9× AEAD" if size == "64KiB" else "")
    rows.append((f"encrypt {size}", enc, f["kdf_ck"] + seal + f["random_nonce"], target))
    rows.append((f"decrypt {size}", dec, f["kdf_ck"] + open_, target))
    rows.append((f"encrypt+decrypt {size}", both,
                 2 * f["kdf_ck"] + seal + open_ + f["random_nonce"], target))
seal256, open256 = median("floor/aead_seal/256B"), median("floor/aead_open/256B")
rows.append(("alternating DH-ratchet step, 256 B", median("ratchet/alternating_step/256B"),
             f["x25519_keygen"] + 2 * f["x25519_dh"] + 2 * f["hkdf_64"], "≤ 1.1× (keygen + 2 DH + 2 KDF_RK)"))
rows.append(("decrypt 1000 ahead, 256 B", median("ratchet/decrypt_1000_ahead/256B"),
             1001 * f["kdf_ck"] + open256, "floor: 1001 KDF_CK + open"))
# The hybrid handshake (PQXDH). Floors are the classical work plus the KEM
# operation and the SHA-256 of the ciphertext (and of the KEM key) the AD binds.
rows.append(("bundle decoding (identity key + KEM key checks)", median("handshake/decode_bundle"),
             key_in + f["ml_kem_768_key_check"], "floor: received Ed25519 key + ML-KEM key check"))
verify_floor = 2 * f["ed25519_verify_strict"] + f["sha256_1185B"]
rows.append(("bundle verification (two signatures)", median("handshake/verify_bundle"), verify_floor,
             "floor: 2 verify + SHA-256 of the KEM key"))
init_floor = (2 * f["x25519_keygen"] + 5 * f["x25519_dh"] + f["hkdf_32"] + f["hkdf_64"]
              + f["sha256_200B"] + f["ml_kem_768_encaps"] + f["sha256_1088B"])
rows.append(("PQXDH initiator (session ready)", median("handshake/initiator"), init_floor,
             "≤ 1.1× (2 keygen + 5 DH + 2 HKDF + AD hash + encaps + SHA-256 of CT)"))
resp_floor = (5 * f["x25519_dh"] + f["hkdf_32"] + f["hkdf_64"] + f["sha256_200B"] + key_in
              + f["kdf_ck"] + open256 + f["ml_kem_768_decaps"] + f["sha256_1088B"])
rows.append(("PQXDH responder + first decrypt", median("handshake/responder_with_first_decrypt"),
             resp_floor, "≤ 1.1× (5 DH + 2 HKDF + AD hash + identity key checks + KDF_CK + open + decaps + SHA-256 of CT)"))
reply_floor = f["x25519_keygen"] + f["x25519_dh"] + f["hkdf_64"] + f["kdf_ck"] + seal256 + f["random_nonce"]
rows.append(("responder's first reply, 256 B (deferred sending step)", median("handshake/responder_first_reply"),
             reply_floor, "floor: keygen + DH + KDF_RK + KDF_CK + seal + nonce"))
establishment_floor = verify_floor + init_floor + resp_floor + f["kdf_ck"] + seal256 + f["random_nonce"]
rows.append(("full PQ establishment (verify, initiate, encrypt, accept)", median("handshake/establishment"),
             establishment_floor, ""))
for n in ["0", "1000"]:
    rows.append((f"session encode, {n} skipped", median(f"state/encode/{n}_skipped"), None, ""))
    rows.append((f"session decode, {n} skipped", median(f"state/decode/{n}_skipped"), None, ""))

rows.append(("seal single envelope, 256 B", median("envelope/seal_single/256B"),
             f["x25519_keygen"] + 2 * f["x25519_dh"] + f["hkdf_64"] + f["hkdf_32"], "floor: keygen + 2 DH + 2 HKDF"))
rows.append(("open single envelope, 256 B", median("envelope/open_single/256B"),
             2 * f["x25519_dh"] + f["hkdf_64"] + f["hkdf_32"] + 2 * f["ed25519_verify_strict"]
             + 3 * key_in,
             "floor: 2 DH + 2 HKDF + 2 verify (certificate chain) + 3 received Ed25519 keys"))
rows.append(("server validate, single", median("envelope/validate_single"), None, "≤ 100 ns, 0 allocations"))
for n in ["10", "100", "1000"]:
    per = int(n)
    rows.append((f"seal multi, {n} devices of {n} accounts", median(f"envelope/seal_multi/{n}"),
                 per * 2 * f["x25519_dh"] + f["x25519_keygen"], "floor: 2 DH per account + keygen"))
    if n == "10":
        rows.append(("seal multi, 4 devices of 1 account", median("envelope/seal_multi/1_account_4_devices"),
                     2 * f["x25519_dh"] + f["x25519_keygen"], "floor: 2 DH per account + keygen"))
    rows.append((f"server validate, {n} devices", median(f"envelope/validate_multi/{n}"), None, ""))
    rows.append((f"server validate + split, {n} devices", median(f"envelope/split_multi/{n}"), None, ""))

rows.append(("group encrypt, 256 B", median("group/encrypt/256B"),
             f["kdf_ck"] + seal256 + f["random_nonce"] + f["ed25519_sign"],
             "floor: KDF_CK + seal + nonce + sign"))
rows.append(("group decrypt, 256 B", median("group/decrypt/256B"),
             f["kdf_ck"] + open256 + f["ed25519_verify_strict"], "floor: KDF_CK + open + verify"))
batch, single = median("group/backlog_500/batch"), median("group/backlog_500/one_at_a_time")
rows.append(("backlog of 500, batch verification", batch, None, f"{single / batch:.2f}× faster than one at a time"))
rows.append(("backlog of 500, one at a time", single, None, ""))

dec256, enc256 = median("ratchet/decrypt/256B"), median("ratchet/encrypt/256B")
rows.append(("manager decrypt, 256 B (in-memory store)", median("devices/manager_decrypt/256B"),
             dec256, "floor: session decrypt"))
rows.append(("manager fan-out to 3 devices, 256 B", median("devices/fanout_encrypt_3_devices/256B"),
             3 * enc256, "floor: 3 session encrypts"))
rows.append(("safety number (2 fingerprints)", median("devices/safety_number"), None, ""))
rows.append(("seal session record at rest", median("devices/seal_session_record"), None, ""))
rows.append(("open session record at rest", median("devices/open_session_record"), None, ""))
rows.append(("link a device (provision + accept)", median("devices/link/provision_and_accept"), None, ""))

print(f"Build flags: {flags}. Medians from one run of `cargo bench --bench protocol`.\n")
print("| measure | median | floor | ratio | target |")
print("|---|---|---|---|---|")
for name, value, floor, target in rows:
    ratio = f"{value / floor:.2f}×" if floor else "–"
    print(f"| {name} | {fmt(value)} | {fmt(floor) if floor else '–'} | {ratio} | {target} |")
paired = os.path.join(os.path.dirname(os.path.normpath(root)), "paired-ratios.json")
if os.path.exists(paired):
    with open(paired) as handle:
        pairs = json.load(handle)
    print()
    print("Paired ratios (benches/protocol/paired.rs): each operation and its floor timed back")
    print("to back in 400 short rounds; the median of the per-round ratios, and the medians of")
    print("both sides. Steadier than the ratio of two criterion medians on a drifting machine.\n")
    print("| measure | paired ratio | operation | floor |")
    print("|---|---|---|---|")
    for name, (ratio, op, fl) in pairs.items():
        print(f"| {name} | {ratio:.3f}× | {fmt(op * 1e9)} | {fmt(fl * 1e9)} |")
print()
print("| floor primitive | median |")
print("|---|---|")
for name, value in f.items():
    print(f"| {name} | {fmt(value)} |")
for size in ["256B", "64KiB"]:
    print(f"| aead_seal {size} | {fmt(median(f'floor/aead_seal/{size}'))} |")
    print(f"| aead_open {size} | {fmt(median(f'floor/aead_open/{size}'))} |")
