"""A sender-key group of three members."""

import pytest

import ratchetbox as rb

GROUP = b"hiking club"
NAMES = [b"ann", b"ben", b"cat"]


def members(server):
    managers = {name: rb.SessionManager(rb.Device.create(name, 1)) for name in NAMES}
    for name, manager in managers.items():
        server.publish(manager, name, 1, count=len(NAMES))
    # Pairwise 1:1 sessions (a fetched bundle on one side; the first message
    # creates the session on the other).
    for i, a in enumerate(NAMES):
        for b in NAMES[i + 1 :]:
            managers[a].process_bundle(b, server.fetch(b, 1))
            (hello,) = managers[a].encrypt(b, b"hello", [1])
            managers[b].decrypt(a, 1, hello.message)
    return managers


def test_group_among_three(server):
    managers = members(server)
    # Every member joins and sends its distribution to the others, encrypted
    # over the 1:1 sessions.
    distributions = {name: m.create_group(GROUP) for name, m in managers.items()}
    for name, manager in managers.items():
        distribution = distributions[name]
        for other in NAMES:
            if other == name:
                continue
            (wire,) = manager.encrypt(other, distribution, [1])
            got = managers[other].decrypt(name, 1, wire.message)
            managers[other].process_group_distribution(GROUP, name, 1, got.plaintext)

    for sender in NAMES:
        text = b"hello from " + sender
        message = managers[sender].group_encrypt(GROUP, text)
        for reader in NAMES:
            if reader != sender:
                assert managers[reader].group_decrypt(GROUP, sender, 1, message) == text

    # A message is read once.
    message = managers[b"ann"].group_encrypt(GROUP, b"once")
    assert managers[b"ben"].group_decrypt(GROUP, b"ann", 1, message) == b"once"
    with pytest.raises(rb.RatchetboxError.DuplicateMessage):
        managers[b"ben"].group_decrypt(GROUP, b"ann", 1, message)
    # Claimed by the wrong sender, it does not verify.
    with pytest.raises(rb.RatchetboxError.NotAMember):
        managers[b"cat"].group_decrypt(GROUP, b"ann", 2, message)

    # Ben removes Cat: Cat's later messages are refused.
    managers[b"ben"].remove_group_member(GROUP, b"cat")
    late = managers[b"cat"].group_encrypt(GROUP, b"still here?")
    with pytest.raises(rb.RatchetboxError.NotAMember):
        managers[b"ben"].group_decrypt(GROUP, b"cat", 1, late)


def test_group_errors(server):
    manager = rb.SessionManager(rb.Device.create(b"ann", 1))
    with pytest.raises(rb.RatchetboxError.UnknownGroup):
        manager.group_encrypt(b"nope", b"x")
    manager.create_group(GROUP)
    with pytest.raises(rb.RatchetboxError.InvalidInput):
        manager.create_group(GROUP)
    with pytest.raises(rb.RatchetboxError.Decode):
        manager.process_group_distribution(GROUP, b"ben", 1, b"\x00garbage")
    other = rb.SessionManager(rb.Device.create(b"ben", 1))
    foreign = other.create_group(b"another group")
    with pytest.raises(rb.RatchetboxError.WrongGroup):
        manager.process_group_distribution(GROUP, b"ben", 1, foreign)
