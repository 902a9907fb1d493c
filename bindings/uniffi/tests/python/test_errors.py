"""Bad input raises specific typed exceptions, and leaves sessions usable."""

import pytest

import ratchetbox as rb

E = rb.RatchetboxError


def raises(kind, call, *args):
    with pytest.raises(kind) as caught:
        call(*args)
    assert type(caught.value) is kind
    assert isinstance(caught.value, E)
    return caught.value


def test_garbage_and_truncated_messages(pair):
    alice, bob = pair
    (message,) = alice.encrypt(b"bob", b"a message worth keeping", [1])
    wire = message.message
    raises(E.Decode, bob.decrypt, b"alice", 1, b"")
    raises(E.Decode, bob.decrypt, b"alice", 1, b"\xffgarbage" * 8)
    raises(E.Decode, bob.decrypt, b"alice", 1, wire[:10])
    # A ratchet message no session decrypts (truncated, forged) is reported as
    # diverged sessions: the manager cannot tell a forgery from a lost state.
    cut = raises(E.NeedsFreshSession, bob.decrypt, b"alice", 1, wire[:-1])
    assert (cut.account, cut.device_id, cut.diverged) == (b"alice", 1, True)
    forged = bytearray(wire)
    forged[-5] ^= 0x40
    raises(E.NeedsFreshSession, bob.decrypt, b"alice", 1, bytes(forged))
    # None of that changed the session: the real message still decrypts, once.
    assert bob.decrypt(b"alice", 1, wire).plaintext == b"a message worth keeping"
    raises(E.DuplicateMessage, bob.decrypt, b"alice", 1, wire)


def test_bad_arguments(pair):
    alice, bob = pair
    raises(E.InvalidInput, rb.Device.create, b"", 1)
    raises(E.InvalidInput, rb.Device.create, b"x" * 65, 1)
    raises(E.InvalidInput, alice.encrypt, b"", b"x", [1])
    raises(E.InvalidInput, alice.mark_verified, b"bob", b"\x01" * 31)
    raises(E.Decode, alice.process_bundle, b"bob", b"not a bundle")
    raises(E.InvalidInput, rb.StorageKey.from_bytes, b"")
    raises(E.InvalidInput, rb.Device.create(b"a", 1).link_device, 1)
    carol_key = rb.Device.create(b"carol", 1).identity_key()
    raises(E.UnknownContact, alice.accept_identity, b"carol", carol_key)
    raises(E.Decode, alice.accept_identity, b"bob", b"\x01" * 32)


def test_bundle_errors():
    alice_device = rb.Device.create(b"alice", 1)
    alice = rb.SessionManager(alice_device)
    bundle = alice.new_bundle()
    raises(E.SelfSend, alice.process_bundle, b"alice", bundle)
    # A bundle whose signed-prekey signature has a flipped bit.
    bob = rb.SessionManager(rb.Device.create(b"bob", 1))
    tampered = bytearray(bob.new_bundle())
    tampered[1 + 32 + 4 + 4 + 32 + 5] ^= 1  # tag, identity, ids, prekey: signature
    raises(E.InvalidSignature, alice.process_bundle, b"bob", bytes(tampered))
    # Claiming Bob's bundle is Alice's own account: a foreign identity.
    other = rb.SessionManager(rb.Device.create(b"mallory", 2))
    raises(E.IdentityMismatch, alice.process_bundle, b"alice", other.new_bundle())


def test_error_messages_are_readable(pair):
    alice, _ = pair
    with pytest.raises(E.DeviceListMismatch) as caught:
        alice.encrypt(b"bob", b"x", [1, 2])
    assert caught.value.missing == [rb.DeviceAddress(account=b"bob", device_id=2)]
    assert "missing" in str(caught.value)
