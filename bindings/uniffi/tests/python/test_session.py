"""The hot path: raw sessions (one call per message) and the manager's
single-device encrypt."""

import pathlib

import pytest

import ratchetbox as rb

E = rb.RatchetboxError


@pytest.fixture
def sessions():
    """Alice starts a raw session from a bundle of Bob's manager; Bob's
    manager accepts it. One message each way."""
    alice_device = rb.Device.create(b"alice", 1)
    bob_device = rb.Device.create(b"bob", 2)
    bob_manager = rb.SessionManager(bob_device)
    alice = rb.Session.initiate(alice_device, b"bob", bob_manager.new_bundle())
    assert alice.remote_account() == b"bob"
    assert alice.remote_device_id() == 2
    assert alice.remote_identity() == bob_device.identity_key()
    assert alice.is_awaiting_reply()
    first = alice.encrypt(b"hello Bob")
    accepted = bob_manager.accept_session(b"alice", 1, first)
    assert accepted.plaintext == b"hello Bob"
    bob = accepted.session
    assert bob.remote_identity() == alice_device.identity_key()
    assert (bob.remote_account(), bob.remote_device_id()) == (b"alice", 1)
    assert alice.decrypt(bob.encrypt(b"hi Alice")) == b"hi Alice"
    assert not alice.is_awaiting_reply()
    return alice, bob, bob_manager, first


def test_conversation(sessions):
    alice, bob, _, _ = sessions
    for i in range(20):
        assert bob.decrypt(alice.encrypt(b"a%d" % i)) == b"a%d" % i
        if i % 3 == 0:
            assert alice.decrypt(bob.encrypt(b"b%d" % i)) == b"b%d" % i
    # Out of order, and a 64 KiB message.
    batch = [alice.encrypt(b"m%d" % i) for i in range(4)]
    for i in (3, 1, 0, 2):
        assert bob.decrypt(batch[i]) == b"m%d" % i
    big = bytes(range(256)) * 256
    assert alice.decrypt(bob.encrypt(big)) == big
    assert bob.decrypt(alice.encrypt(b"")) == b""


def test_tampered_and_replayed_messages(sessions):
    alice, bob, _, _ = sessions
    wire = alice.encrypt(b"keep me")
    forged = bytearray(wire)
    forged[-5] ^= 0x40
    with pytest.raises(E.DecryptionFailed):
        bob.decrypt(bytes(forged))
    with pytest.raises(E.Decode):
        bob.decrypt(b"\xffgarbage")
    with pytest.raises(E.Decode):
        bob.decrypt(b"")
    # Nothing changed: the real message decrypts, once.
    assert bob.decrypt(wire) == b"keep me"
    with pytest.raises(E.DuplicateMessage):
        bob.decrypt(wire)


def test_prekey_messages_are_accepted_once(sessions):
    _, bob, bob_manager, first = sessions
    # The first message again: the prekeys are spent, no second session.
    with pytest.raises(E.RepeatedPreKeyMessage):
        bob_manager.accept_session(b"alice", 1, first)
    with pytest.raises(E.DuplicateMessage):
        bob.decrypt(first)
    # Another session's first message is not this session's.
    other = rb.Session.initiate(rb.Device.create(b"carol", 1), b"bob", bob_manager.new_bundle())
    with pytest.raises(E.WrongSession):
        bob.decrypt(other.encrypt(b"hi"))
    # Relabelled as another sender, a prekey message does not decrypt.
    with pytest.raises(E.DecryptionFailed):
        bob_manager.accept_session(b"mallory", 1, other.encrypt(b"hi"))


def test_seal_and_open(sessions):
    alice, bob, _, _ = sessions
    key = rb.StorageKey.from_bytes(rb.generate_storage_key_bytes())
    sealed = bob.seal(key)
    restored = rb.Session.open(key, sealed)
    assert restored.remote_identity() == bob.remote_identity()
    assert restored.decrypt(alice.encrypt(b"after restore")) == b"after restore"
    assert alice.decrypt(restored.encrypt(b"and back")) == b"and back"
    wrong = rb.StorageKey.from_bytes(bytes(32))
    with pytest.raises(E.StorageWrongKey):
        rb.Session.open(wrong, sealed)
    altered = bytearray(sealed)
    altered[-1] ^= 1
    with pytest.raises(E.StorageWrongKey):
        rb.Session.open(key, bytes(altered))
    with pytest.raises(E.StorageCorrupt):
        rb.Session.open(key, b"not sealed")


def test_bad_bundles():
    device = rb.Device.create(b"alice", 1)
    bob = rb.SessionManager(rb.Device.create(b"bob", 1))
    with pytest.raises(E.Decode):
        rb.Session.initiate(device, b"bob", b"not a bundle")
    tampered = bytearray(bob.new_bundle())
    tampered[1 + 32 + 4 + 4 + 32 + 5] ^= 1  # the signed prekey's signature
    with pytest.raises(E.InvalidSignature):
        rb.Session.initiate(device, b"bob", bytes(tampered))
    with pytest.raises(E.InvalidInput):
        rb.Session.initiate(device, b"", bob.new_bundle())


def test_accept_session_honours_trust():
    """A recorded identity binds the raw path too; a blocked one refuses."""
    alice_device = rb.Device.create(b"alice", 1)
    bob = rb.SessionManager(rb.Device.create(b"bob", 1))
    alice = rb.SessionManager(alice_device)
    bob.process_bundle(b"alice", alice.new_bundle())
    bob.mark_verified(b"alice", alice_device.identity_key())
    # Alice's account under another identity (a reinstall, or an impostor).
    impostor = rb.Session.initiate(rb.Device.create(b"alice", 1), b"bob", bob.new_bundle())
    with pytest.raises(E.IdentityMismatch):
        bob.accept_session(b"alice", 1, impostor.encrypt(b"it is me"))
    # The real identity is accepted.
    real = rb.Session.initiate(alice_device, b"bob", bob.new_bundle())
    assert bob.accept_session(b"alice", 1, real.encrypt(b"me")).plaintext == b"me"
    # Once the verified key changed (blocking), raw sessions are refused too.
    reinstalled = rb.SessionManager(rb.Device.create(b"alice", 1))
    with pytest.raises(E.UntrustedIdentity):
        bob.process_bundle(b"alice", reinstalled.new_bundle())
    again = rb.Session.initiate(alice_device, b"bob", bob.new_bundle())
    with pytest.raises(E.UntrustedIdentity):
        bob.accept_session(b"alice", 1, again.encrypt(b"?"))


def test_encrypt_to_device(pair):
    alice, bob = pair
    wire = alice.encrypt_to_device(b"bob", 1, b"fast path")
    assert isinstance(wire, bytes)
    got = bob.decrypt(b"alice", 1, wire)
    assert got.plaintext == b"fast path"
    assert got.session == rb.SessionUse.ACTIVE
    # Same checks as encrypt: an unknown device is missing, a known other
    # device would be stale.
    with pytest.raises(E.DeviceListMismatch) as mismatch:
        alice.encrypt_to_device(b"bob", 2, b"x")
    assert mismatch.value.missing == [rb.DeviceAddress(account=b"bob", device_id=2)]
    assert mismatch.value.stale == [rb.DeviceAddress(account=b"bob", device_id=1)]
    with pytest.raises(E.InvalidInput):
        alice.encrypt_to_device(b"", 1, b"x")


def test_encrypt_to_device_respects_blocked_identity(pair):
    alice, bob = pair
    alice.mark_verified(b"bob", alice.trust(b"bob").identity_key)
    new_bob = rb.SessionManager(rb.Device.create(b"bob", 1))
    with pytest.raises(E.UntrustedIdentity):
        alice.process_bundle(b"bob", new_bob.new_bundle())
    with pytest.raises(E.UntrustedIdentity):
        alice.encrypt_to_device(b"bob", 1, b"blocked")


def test_readme_hot_path_snippet_runs():
    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("### The hot path") :]
    snippet = section[section.index("```python\n") + 10 :]
    snippet = snippet[: snippet.index("```")]
    exec(compile(snippet, "README.md", "exec"), {})
