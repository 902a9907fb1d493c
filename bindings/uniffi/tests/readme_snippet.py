import ratchetbox as rb

# One device each; a SessionManager keeps its sessions (in memory here).
alice_device = rb.Device.create(b"alice", 1)
alice = rb.SessionManager(alice_device)
bob = rb.SessionManager(rb.Device.create(b"bob", 1))

# Bob publishes a prekey bundle; Alice fetches it and starts a session.
alice.process_bundle(b"bob", bob.new_bundle())

# Alice writes to every device of Bob's that the server lists (just 1).
for out in alice.encrypt(b"bob", b"hi Bob", to_devices=[1]):
    assert bob.decrypt(b"alice", 1, out.message).plaintext == b"hi Bob"
(reply,) = bob.encrypt(b"alice", b"hi Alice", to_devices=[1])
assert alice.decrypt(b"bob", 1, reply.message).plaintext == b"hi Alice"

# Both sides show the same safety number.
assert alice.safety_number(b"bob").digits() == bob.safety_number(b"alice").digits()

# At rest: seal the device and its store under a key from the keystore.
key = rb.StorageKey.from_bytes(rb.generate_storage_key_bytes())
sealed_device, sealed_store = alice_device.seal(key), alice.seal_store(key)
alice = rb.SessionManager.restore(rb.Device.open(key, sealed_device), key, sealed_store)

# Errors are typed exceptions: a replayed message raises DuplicateMessage.
try:
    alice.decrypt(b"bob", 1, reply.message)
    raise AssertionError("replay accepted")
except rb.RatchetboxError.DuplicateMessage:
    print("replay rejected")
