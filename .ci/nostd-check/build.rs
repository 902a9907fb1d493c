// The binary supplies its own `_start`; don't link the C runtime's start files,
// but do link libc for `memcpy` and friends.
fn main() {
    println!("cargo:rustc-link-arg-bins=-nostartfiles");
    println!("cargo:rustc-link-arg-bins=-lc");
}
