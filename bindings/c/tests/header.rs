//! The committed header `include/ratchetbox.h` must be what cbindgen
//! generates from the sources now. `RATCHETBOX_BLESS=1` rewrites it.

use std::path::Path;

#[test]
fn committed_header_is_up_to_date() -> Result<(), Box<dyn std::error::Error>> {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))?;
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()?;
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let path = crate_dir.join("include/ratchetbox.h");
    if std::env::var_os("RATCHETBOX_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated)?;
        return Ok(());
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date: run RATCHETBOX_BLESS=1 cargo test -p ratchetbox-ffi --test header",
        path.display()
    );
    Ok(())
}
