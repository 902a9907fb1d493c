"""FFI overhead: a 256-byte encrypt + decrypt round trip called from Python
through the raw `Session` (one call per message) and through the session
managers, next to the same work run natively in Rust, in one process; then
what one call across the boundary costs. Run it with
`bindings/uniffi/tests/run.sh bench` (release build).

The breakdown at the end times pieces of the generated Python module
(`_uniffi_*` internals of uniffi 0.32); they are diagnostics, skipped if a
later uniffi renames them.
"""

import ctypes
import statistics
import time

import ratchetbox as rb

MESSAGE_LEN = 256
ITERATIONS = 10_000
RUNS = 5
PLAINTEXT = bytes([0x42]) * MESSAGE_LEN


def timed(loop, iterations):
    start = time.perf_counter_ns()
    loop(iterations)
    return (time.perf_counter_ns() - start) / iterations


def managers():
    """Alice's and Bob's managers with a session, used once each way."""
    alice = rb.SessionManager(rb.Device.create(b"alice", 1))
    bob = rb.SessionManager(rb.Device.create(b"bob", 1))
    alice.process_bundle(b"bob", bob.new_bundle())
    (first,) = alice.encrypt(b"bob", b"hello", [1])
    bob.decrypt(b"alice", 1, first.message)
    (reply,) = bob.encrypt(b"alice", b"hi", [1])
    alice.decrypt(b"bob", 1, reply.message)
    return alice, bob


def sessions():
    """Alice's raw session and Bob's, used once each way."""
    bob_manager = rb.SessionManager(rb.Device.create(b"bob", 1))
    alice = rb.Session.initiate(rb.Device.create(b"alice", 1), b"bob", bob_manager.new_bundle())
    bob = bob_manager.accept_session(b"alice", 1, alice.encrypt(b"hello")).session
    alice.decrypt(bob.encrypt(b"hi"))
    return alice, bob


def python_session(iterations):
    """Session.encrypt -> bytes, Session.decrypt -> bytes."""
    alice, bob = sessions()
    encrypt, decrypt, plaintext = alice.encrypt, bob.decrypt, PLAINTEXT

    def loop(n):
        for _ in range(n):
            decrypt(encrypt(plaintext))

    return timed(loop, iterations)


def python_manager(iterations):
    """SessionManager.encrypt -> [OutgoingMessage], decrypt -> Decrypted."""
    alice, bob = managers()
    encrypt, decrypt, plaintext = alice.encrypt, bob.decrypt, PLAINTEXT
    to, me, devices = b"bob", b"alice", [1]

    def loop(n):
        for _ in range(n):
            for out in encrypt(to, plaintext, devices):
                decrypt(me, 1, out.message)

    return timed(loop, iterations)


def python_manager_fast(iterations):
    """SessionManager.encrypt_to_device -> bytes, decrypt -> Decrypted."""
    alice, bob = managers()
    encrypt, decrypt, plaintext = alice.encrypt_to_device, bob.decrypt, PLAINTEXT

    def loop(n):
        for _ in range(n):
            decrypt(b"alice", 1, encrypt(b"bob", 1, plaintext))

    return timed(loop, iterations)


def python_trivial_call(iterations):
    """The floor of one method call: no argument, a u32 back."""
    device_id = rb.Device.create(b"floor", 1).device_id

    def loop(n):
        for _ in range(n):
            device_id()

    return timed(loop, iterations)


def python_empty_call(iterations):
    """The interpreter's own pace: an empty Python function call."""

    def nothing():
        return None

    def loop(n):
        for _ in range(n):
            nothing()

    return timed(loop, iterations)


def crossings(round_trip):
    """How many FFI calls one round trip makes (every generated call goes
    through `_uniffi_rust_call_with_error`, looked up at call time)."""
    original = rb._uniffi_rust_call_with_error
    count = 0

    def counting(*args):
        nonlocal count
        count += 1
        return original(*args)

    rb._uniffi_rust_call_with_error = counting
    try:
        round_trip()
    finally:
        rb._uniffi_rust_call_with_error = original
    return count


def crossing_counts():
    s_alice, s_bob = sessions()
    m_alice, m_bob = managers()

    def session_rt():
        s_bob.decrypt(s_alice.encrypt(PLAINTEXT))

    def manager_rt():
        for out in m_alice.encrypt(b"bob", PLAINTEXT, [1]):
            m_bob.decrypt(b"alice", 1, out.message)

    def fast_rt():
        m_bob.decrypt(b"alice", 1, m_alice.encrypt_to_device(b"bob", 1, PLAINTEXT))

    device = rb.Device.create(b"count", 1)
    return {
        "session": crossings(session_rt),
        "manager": crossings(manager_rt),
        "fast": crossings(fast_rt),
        "trivial": crossings(device.device_id),
    }


def breakdown(iterations):
    """What one call is made of, from the generated module's internals."""
    device = rb.Device.create(b"parts", 1)
    handle = device._uniffi_clone_handle()
    status = rb._UniffiRustCallStatus.default()
    raw = rb._UniffiLib.uniffi_ratchetbox_uniffi_fn_method_device_device_id
    byref = ctypes.byref
    new_status = rb._UniffiRustCallStatus.default
    to_buffer = rb._UniffiFfiConverterBytes.lower
    from_buffer = rb._UniffiFfiConverterBytes.lift
    by_ref = rb._UniffiFfiConverterByRefBytes.lower

    def clone_handle(n):
        for _ in range(n):
            device._uniffi_clone_handle()

    def raw_call(n):
        h = handle
        for _ in range(n):
            h = device._uniffi_clone_handle()  # the call consumes a handle
            raw(h, byref(status))

    def status_struct(n):
        for _ in range(n):
            new_status()

    def bytes_in_buffer(n):
        for _ in range(n):
            to_buffer(PLAINTEXT).free()

    def bytes_by_ref(n):
        for _ in range(n):
            by_ref(PLAINTEXT)

    def bytes_out(n):
        for _ in range(n):
            from_buffer(to_buffer(PLAINTEXT))

    raw(handle, byref(status))
    med = lambda loop: statistics.median(timed(loop, iterations) for _ in range(RUNS))  # noqa: E731
    clone = med(clone_handle)
    return {
        "one crossing (clone a handle, status checked)": clone,
        "  of which a bare ctypes call": med(raw_call) - clone,
        "  of which the call-status struct": med(status_struct),
        f"{MESSAGE_LEN} B argument as a RustBuffer (alloc+reserve+copy+free)": med(bytes_in_buffer),
        f"{MESSAGE_LEN} B argument as &[u8] (zero-copy ForeignBytes)": med(bytes_by_ref),
        f"{MESSAGE_LEN} B bytes returned (read + free), minus the argument": med(bytes_out)
        - med(bytes_in_buffer),
    }


def main():
    # Warm up every path once.
    rb.bench_rust_session_round_trips(1_000, MESSAGE_LEN)
    rb.bench_rust_round_trips(1_000, MESSAGE_LEN)
    for path in (python_session, python_manager, python_manager_fast):
        path(1_000)

    paths = {
        "rust session": lambda: rb.bench_rust_session_round_trips(ITERATIONS, MESSAGE_LEN),
        "rust manager": lambda: rb.bench_rust_round_trips(ITERATIONS, MESSAGE_LEN),
        "py session": lambda: python_session(ITERATIONS),
        "py fast": lambda: python_manager_fast(ITERATIONS),
        "py manager": lambda: python_manager(ITERATIONS),
    }
    samples = {name: [] for name in paths}
    for _ in range(RUNS):  # interleaved, so that load changes hit every path
        for name, run in paths.items():
            samples[name].append(run())
    t = {name: statistics.median(values) / 1000 for name, values in samples.items()}
    n = crossing_counts()
    floor = statistics.median(python_trivial_call(ITERATIONS) for _ in range(RUNS)) / 1000
    empty = statistics.median(python_empty_call(ITERATIONS) for _ in range(RUNS)) / 1000

    rs, rm = t["rust session"], t["rust manager"]
    print(f"{MESSAGE_LEN} B encrypt+decrypt round trip, median of {RUNS} runs x {ITERATIONS}:")
    print(f"  {'path':44s} {'us':>8s} {'vs Rust':>9s} {'+us':>8s} {'FFI calls':>9s}")
    rows = [
        ("Rust, raw sessions", rs, rs, None),
        ("Python, Session.encrypt/decrypt", t["py session"], rs, n["session"]),
        ("Rust, session managers", rm, rm, None),
        ("Python, manager encrypt_to_device/decrypt", t["py fast"], rm, n["fast"]),
        ("Python, manager encrypt/decrypt", t["py manager"], rm, n["manager"]),
    ]
    for label, value, base, calls in rows:
        calls = "" if calls is None else str(calls)
        print(f"  {label:44s} {value:8.2f} {value / base:8.2f}x {value - base:8.2f} {calls:>9s}")
    print(f"  one trivial UniFFI method call (device.device_id(), {n['trivial']} FFI calls): "
          f"{floor:.2f} us")
    print(f"  one empty Python function call (interpreter pace): {empty:.3f} us")
    per_call = (t["py session"] - rs) / n["session"]
    print(f"  Python session overhead per FFI call: {per_call:.2f} us "
          f"(trivial call / its calls: {floor / n['trivial']:.2f} us)")
    try:
        parts = breakdown(ITERATIONS)
    except AttributeError as missing:  # a later uniffi renamed an internal
        print(f"  breakdown skipped: {missing}")
        return
    print("  where one call's time goes:")
    for label, value in parts.items():
        print(f"    {label:66s} {value / 1000:6.2f} us")


if __name__ == "__main__":
    main()
