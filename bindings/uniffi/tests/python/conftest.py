"""Shared fixtures: a tiny in-test "server" that hands out bundles once."""

import pytest

import ratchetbox as rb


class Server:
    """Keeps each device's published bundles and hands each out once."""

    def __init__(self):
        self.bundles = {}

    def publish(self, manager, account, device_id, count=2):
        queue = self.bundles.setdefault((account, device_id), [])
        queue.extend(manager.new_bundle() for _ in range(count))

    def fetch(self, account, device_id):
        return self.bundles[(account, device_id)].pop(0)

    def devices(self, account):
        return sorted(d for (a, d) in self.bundles if a == account)


def deliver(messages, managers, sender_account, sender_device, expected):
    """Decrypts each outgoing message at the manager of its recipient."""
    results = {}
    for out in messages:
        got = managers[(out.account, out.device_id)].decrypt(
            sender_account, sender_device, out.message
        )
        assert got.plaintext == expected
        results[(out.account, out.device_id)] = got
    return results


@pytest.fixture
def server():
    return Server()


@pytest.fixture
def pair(server):
    """Alice and Bob, one device each, with a session both ways."""
    alice = rb.SessionManager(rb.Device.create(b"alice", 1))
    bob = rb.SessionManager(rb.Device.create(b"bob", 1))
    server.publish(bob, b"bob", 1)
    alice.process_bundle(b"bob", server.fetch(b"bob", 1))
    (first,) = alice.encrypt(b"bob", b"hello", [1])
    bob.decrypt(b"alice", 1, first.message)
    (reply,) = bob.encrypt(b"alice", b"hi", [1])
    alice.decrypt(b"bob", 1, reply.message)
    return alice, bob
