"""Alice (phone and linked desktop) and Bob (phone) through their managers."""

import pytest

import ratchetbox as rb
from conftest import deliver


def test_two_device_conversation(server):
    alice_phone_device = rb.Device.create(b"alice", 1)
    alice_desktop_device = alice_phone_device.link_device(2)
    assert alice_desktop_device.identity_key() == alice_phone_device.identity_key()
    phone = rb.SessionManager(alice_phone_device)
    desktop = rb.SessionManager(alice_desktop_device)
    bob = rb.SessionManager(rb.Device.create(b"bob", 1))
    managers = {(b"alice", 1): phone, (b"alice", 2): desktop, (b"bob", 1): bob}
    for (account, device_id), manager in managers.items():
        server.publish(manager, account, device_id)

    # Alice's phone starts sessions with Bob and with her own desktop, then
    # writes once: Bob's phone and her desktop each get a copy.
    started = phone.process_bundle(b"bob", server.fetch(b"bob", 1))
    assert started.address == rb.DeviceAddress(account=b"bob", device_id=1)
    assert started.identity_change is None
    phone.process_bundle(b"alice", server.fetch(b"alice", 2))
    outgoing = phone.encrypt(
        b"bob", b"Hi Bob, from my phone", server.devices(b"bob"), server.devices(b"alice")
    )
    assert {(o.account, o.device_id) for o in outgoing} == {(b"bob", 1), (b"alice", 2)}
    got = deliver(outgoing, managers, b"alice", 1, b"Hi Bob, from my phone")
    assert got[(b"bob", 1)].session == rb.SessionUse.CREATED

    # Bob does not know Alice's desktop yet: the typed mismatch names it.
    with pytest.raises(rb.RatchetboxError.DeviceListMismatch) as mismatch:
        bob.encrypt(b"alice", b"Hi Alice", server.devices(b"alice"))
    assert mismatch.value.missing == [rb.DeviceAddress(account=b"alice", device_id=2)]
    assert mismatch.value.stale == []
    for address in mismatch.value.missing:
        bob.process_bundle(address.account, server.fetch(address.account, address.device_id))
    outgoing = bob.encrypt(b"alice", b"Hi Alice, on both screens", server.devices(b"alice"))
    assert len(outgoing) == 2
    deliver(outgoing, managers, b"bob", 1, b"Hi Alice, on both screens")

    # The desktop answers; Bob and the phone read it.
    outgoing = desktop.encrypt(b"bob", b"And from my desktop", [1], [1])
    deliver(outgoing, managers, b"alice", 2, b"And from my desktop")
    assert bob.session_devices(b"alice") == [1, 2]
    assert phone.session_devices(b"bob") == [1]

    # Several messages in a row, and out of order.
    batch = [bob.encrypt(b"alice", b"m%d" % i, [1, 2]) for i in range(3)]
    for i in (2, 0, 1):
        deliver(batch[i], managers, b"bob", 1, b"m%d" % i)

    # A removed device is stale.
    desktop_gone = [1]
    with pytest.raises(rb.RatchetboxError.DeviceListMismatch) as mismatch:
        bob.encrypt(b"alice", b"?", desktop_gone)
    assert mismatch.value.stale == [rb.DeviceAddress(account=b"alice", device_id=2)]
    bob.remove_device(b"alice", 2)
    assert len(bob.encrypt(b"alice", b"just the phone", desktop_gone)) == 1


def test_unknown_device_needs_fresh_session(pair):
    alice, bob = pair
    (message,) = alice.encrypt(b"bob", b"x", [1])
    with pytest.raises(rb.RatchetboxError.NeedsFreshSession) as e:
        bob.decrypt(b"alice", 7, message.message)
    assert e.value.device_id == 7
    assert e.value.diverged is False
