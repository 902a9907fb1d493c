"""Bob reinstalls with a new identity key: verified contacts block, others get a notice."""

import pytest

import ratchetbox as rb


def test_identity_change(server):
    alice_phone = rb.Device.create(b"alice", 1)
    phone = rb.SessionManager(alice_phone)
    desktop = rb.SessionManager(alice_phone.link_device(2))
    bob_device = rb.Device.create(b"bob", 1)
    bob = rb.SessionManager(bob_device)
    server.publish(bob, b"bob", 1, count=2)
    phone.process_bundle(b"bob", server.fetch(b"bob", 1))
    desktop.process_bundle(b"bob", server.fetch(b"bob", 1))
    old_key = bob_device.identity_key()
    assert phone.trust(b"bob") == rb.Trust(identity_key=old_key, level=rb.TrustLevel.UNVERIFIED())
    assert phone.trust(b"carol") is None

    # The phone verifies Bob (after comparing safety numbers); the desktop does not.
    on_bob = rb.safety_number(bob_device, b"alice", alice_phone.identity_key())
    assert phone.safety_number(b"bob").digits() == on_bob.digits()
    with pytest.raises(rb.RatchetboxError.IdentityMismatch):
        phone.mark_verified(b"bob", alice_phone.identity_key())
    phone.mark_verified(b"bob", old_key)
    assert phone.trust(b"bob").level == rb.TrustLevel.VERIFIED()

    # Bob reinstalls: new identity, new bundles.
    new_bob_device = rb.Device.create(b"bob", 1)
    new_bob = rb.SessionManager(new_bob_device)
    new_key = new_bob_device.identity_key()
    server.bundles[(b"bob", 1)] = []
    server.publish(new_bob, b"bob", 1, count=3)

    # Verified: blocked, with a typed exception naming both keys.
    bundle = server.fetch(b"bob", 1)
    with pytest.raises(rb.RatchetboxError.UntrustedIdentity) as blocked:
        phone.process_bundle(b"bob", bundle)
    assert blocked.value.account == b"bob"
    assert blocked.value.previous_identity == old_key
    assert blocked.value.new_identity == new_key
    assert phone.trust(b"bob").level == rb.TrustLevel.CHANGED(
        previous_identity=old_key, was_verified=True
    )
    with pytest.raises(rb.RatchetboxError.UntrustedIdentity):
        phone.encrypt(b"bob", b"Bob?", [1])
    new_number = phone.safety_number(b"bob").digits()
    assert new_number != on_bob.digits()

    # Accepting the new key unblocks it; the same bundle now starts a session.
    phone.accept_identity(b"bob", blocked.value.new_identity)
    assert phone.trust(b"bob").level == rb.TrustLevel.UNVERIFIED()
    phone.process_bundle(b"bob", bundle)
    (message,) = phone.encrypt(b"bob", b"welcome back", [1])
    assert new_bob.decrypt(b"alice", 1, message.message).plaintext == b"welcome back"
    assert new_bob.safety_number(b"alice").digits() == new_number

    # Unverified (the desktop): not blocked, only a notice.
    started = desktop.process_bundle(b"bob", server.fetch(b"bob", 1))
    change = started.identity_change
    assert change == rb.IdentityChange(
        account=b"bob", previous_identity=old_key, new_identity=new_key, was_verified=False
    )
    level = desktop.trust(b"bob").level
    assert level == rb.TrustLevel.CHANGED(previous_identity=old_key, was_verified=False)
    (message,) = desktop.encrypt(b"bob", b"noted", [1])
    got = new_bob.decrypt(b"alice", 2, message.message)
    assert got.plaintext == b"noted" and got.session == rb.SessionUse.CREATED


def test_new_session_from_blocked_key_is_refused(server):
    alice = rb.SessionManager(rb.Device.create(b"alice", 1))
    bob_device = rb.Device.create(b"bob", 1)
    bob = rb.SessionManager(bob_device)
    alice.process_bundle(b"bob", bob.new_bundle())
    alice.mark_verified(b"bob", bob_device.identity_key())
    # Bob reinstalls and writes first: Alice's decrypt refuses the new key.
    new_bob = rb.SessionManager(rb.Device.create(b"bob", 1))
    new_bob.process_bundle(b"alice", alice.new_bundle())
    (message,) = new_bob.encrypt(b"alice", b"it's me", [1])
    with pytest.raises(rb.RatchetboxError.UntrustedIdentity):
        alice.decrypt(b"bob", 1, message.message)
    trust = alice.trust(b"bob")
    alice.accept_identity(b"bob", trust.identity_key)
    assert alice.decrypt(b"bob", 1, message.message).plaintext == b"it's me"
