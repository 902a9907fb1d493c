"""Safety numbers, and state sealed at rest."""

import pytest

import ratchetbox as rb


def test_safety_numbers_match(pair):
    alice, bob = pair
    on_alice = alice.safety_number(b"bob")
    on_bob = bob.safety_number(b"alice")
    assert on_alice.digits() == on_bob.digits()
    assert len(on_alice.digits()) == 60 and on_alice.digits().isdigit()
    assert on_alice.display().replace(" ", "") == on_alice.digits()
    assert on_alice.compare_scanned(on_bob.scannable()) == rb.SafetyNumberComparison.MATCH()
    assert on_alice.compare_scanned(on_alice.scannable()) == rb.SafetyNumberComparison.MISMATCH()
    with pytest.raises(rb.RatchetboxError.Decode):
        on_alice.compare_scanned(b"not a code")
    with pytest.raises(rb.RatchetboxError.UnknownContact):
        alice.safety_number(b"carol")


def test_safety_number_without_manager():
    ann = rb.Device.create(b"ann", 1)
    ben = rb.Device.create(b"ben", 1)
    one = rb.safety_number(ann, b"ben", ben.identity_key())
    two = rb.safety_number(ben, b"ann", ann.identity_key())
    assert one.digits() == two.digits()
    with pytest.raises(rb.RatchetboxError.InvalidInput):
        rb.safety_number(ann, b"ben", b"short")


def test_sealed_state_round_trip(pair):
    alice, bob = pair
    # The pair fixture's devices are inside the managers; seal fresh ones.
    device = rb.Device.create(b"dora", 3)
    manager = rb.SessionManager(device)
    manager.process_bundle(b"bob", bob.new_bundle())
    (first,) = manager.encrypt(b"bob", b"before", [1])
    assert bob.decrypt(b"dora", 3, first.message).plaintext == b"before"

    key = rb.StorageKey.from_bytes(rb.generate_storage_key_bytes())
    sealed_device = device.seal(key)
    sealed_store = manager.seal_store(key)
    del manager, device

    restored_device = rb.Device.open(key, sealed_device)
    assert restored_device.account() == b"dora" and restored_device.device_id() == 3
    restored = rb.SessionManager.restore(restored_device, key, sealed_store)
    assert restored.session_devices(b"bob") == [1]
    (second,) = restored.encrypt(b"bob", b"after", [1])
    got = bob.decrypt(b"dora", 3, second.message)
    assert got.plaintext == b"after" and got.session == rb.SessionUse.ACTIVE
    (reply,) = bob.encrypt(b"dora", b"welcome back", [3])
    assert restored.decrypt(b"bob", 1, reply.message).plaintext == b"welcome back"

    # A wrong key, a swapped blob, a mangled blob: each its own exception.
    wrong = rb.StorageKey.from_bytes(bytes(32))
    with pytest.raises(rb.RatchetboxError.StorageWrongKey):
        rb.Device.open(wrong, sealed_device)
    with pytest.raises(rb.RatchetboxError.StorageWrongKey):
        rb.SessionManager.restore(restored_device, wrong, sealed_store)
    with pytest.raises(rb.RatchetboxError.StorageCorrupt):
        rb.Device.open(key, sealed_store)
    with pytest.raises(rb.RatchetboxError.StorageCorrupt):
        rb.Device.open(key, b"garbage")
    with pytest.raises(rb.RatchetboxError.StorageCorrupt):
        rb.Device.open(key, sealed_device[:20])
    flipped = bytearray(sealed_device)
    flipped[-1] ^= 1
    with pytest.raises(rb.RatchetboxError.StorageWrongKey):
        rb.Device.open(key, bytes(flipped))
    with pytest.raises(rb.RatchetboxError.InvalidInput):
        rb.StorageKey.from_bytes(b"too short")
    # The store of one device cannot be restored under another.
    with pytest.raises(rb.RatchetboxError.InvalidInput):
        rb.SessionManager.restore(restored_device.link_device(4), key, sealed_store)
