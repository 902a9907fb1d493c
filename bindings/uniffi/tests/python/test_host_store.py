"""A store implemented in Python, used by a manager through the callback interface."""

import pytest

import ratchetbox as rb


class DictStore(rb.KeyValueStore):
    """A transactional dict: what a SQLite table would do in an app."""

    def __init__(self):
        self.data = {}
        self.commits = 0
        self.fail = False

    def get(self, key):
        return self.data.get(key)

    def keys_with_prefix(self, prefix):
        return [k for k in self.data if k.startswith(prefix)]

    def commit(self, writes):
        if self.fail:
            raise rb.HostStoreError.Unavailable(reason="disk full")
        staged = dict(self.data)
        for write in writes:
            if write.value is None:
                staged.pop(write.key, None)
            else:
                staged[write.key] = write.value
        self.data = staged
        self.commits += 1


def test_conversation_over_a_python_store():
    key = rb.StorageKey.from_bytes(rb.generate_storage_key_bytes())
    store = DictStore()
    alice_device = rb.Device.create(b"alice", 1)
    alice = rb.SessionManager.with_store(alice_device, store, key)
    assert list(store.data) == ["prekeys"]
    bob = rb.SessionManager(rb.Device.create(b"bob", 1))

    # Alice's first message is a prekey message; Bob answers; the ratchet turns.
    bob.process_bundle(b"alice", alice.new_bundle())
    (hello,) = bob.encrypt(b"alice", b"hello over a host store", [1])
    got = alice.decrypt(b"bob", 1, hello.message)
    assert got.plaintext == b"hello over a host store"
    assert got.session == rb.SessionUse.CREATED
    assert set(store.data) == {"prekeys", "trust/626f62", "session/626f62/1"}
    for i in range(3):
        (out,) = alice.encrypt(b"bob", b"reply %d" % i, [1])
        assert bob.decrypt(b"alice", 1, out.message).plaintext == b"reply %d" % i
        (back,) = bob.encrypt(b"alice", b"back %d" % i, [1])
        assert alice.decrypt(b"bob", 1, back.message).plaintext == b"back %d" % i
    assert alice.session_devices(b"bob") == [1]

    # Values are sealed: no plaintext, no key material the host can read,
    # and a value moved to another key does not open.
    for value in store.data.values():
        assert b"hello" not in value and b"bob" not in value

    # A second manager over the same store (an app restart) continues.
    again = rb.SessionManager.with_store(alice_device, store, key)
    (out,) = again.encrypt(b"bob", b"after restart", [1])
    assert bob.decrypt(b"alice", 1, out.message).plaintext == b"after restart"

    # Groups live in the host store too.
    again.create_group(b"g")
    assert "group/67" in store.data

    # Replays and failures are typed; a failed commit writes nothing.
    with pytest.raises(rb.RatchetboxError.DuplicateMessage):
        again.decrypt(b"bob", 1, hello.message)
    before = dict(store.data)
    store.fail = True
    with pytest.raises(rb.RatchetboxError.StoreUnavailable) as failed:
        again.encrypt(b"bob", b"lost", [1])
    assert failed.value.reason == "disk full"
    assert store.data == before
    store.fail = False

    with pytest.raises(rb.RatchetboxError.StorageWrongKey):
        rb.SessionManager.with_store(alice_device, store, rb.StorageKey.from_bytes(bytes(32)))
    with pytest.raises(rb.RatchetboxError.InvalidInput):
        rb.SessionManager.with_store(alice_device.link_device(2), store, key)
    with pytest.raises(rb.RatchetboxError.InvalidInput):
        again.seal_store(key)


def test_swapped_value_is_corrupt():
    key = rb.StorageKey.from_bytes(rb.generate_storage_key_bytes())
    store = DictStore()
    alice = rb.SessionManager.with_store(rb.Device.create(b"alice", 1), store, key)
    bob = rb.SessionManager(rb.Device.create(b"bob", 1))
    alice.process_bundle(b"bob", bob.new_bundle())
    store.data["trust/626f62"] = store.data["session/626f62/1"]
    with pytest.raises(rb.RatchetboxError.StoreCorrupt):
        alice.encrypt(b"bob", b"x", [1])


def test_host_exceptions_become_store_unavailable():
    class Broken(DictStore):
        def get(self, key):
            raise RuntimeError("database locked")

    with pytest.raises(rb.RatchetboxError.StoreUnavailable) as failed:
        rb.SessionManager.with_store(
            rb.Device.create(b"alice", 1), Broken(), rb.StorageKey.from_bytes(bytes(32))
        )
    assert "database locked" in failed.value.reason
