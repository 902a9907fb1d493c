//! Replays every checked-in fuzz corpus file (`fuzz/corpus/<target>/*`) through
//! its target, so the stable test suite guards against regressions without a
//! fuzzer. `RATCHETBOX_WRITE_CORPUS=1` regenerates the seed files from
//! `ratchetbox::fuzzing::seed_corpus`.
#![cfg(feature = "std")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus");

#[test]
fn seeds_are_accepted_by_their_targets() {
    let seeds = ratchetbox::fuzzing::seed_corpus();
    let targets: std::collections::BTreeSet<_> = seeds.iter().map(|(t, _)| *t).collect();
    assert_eq!(targets.len(), 26, "every target has seeds");
    for (i, (target, data)) in seeds.iter().enumerate() {
        assert!(ratchetbox::fuzzing::run(target, data));
        if std::env::var_os("RATCHETBOX_WRITE_CORPUS").is_some() {
            let dir = Path::new(CORPUS).join(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("seed-{i:02}")), data).unwrap();
        }
    }
}

#[test]
fn checked_in_corpus_replays_cleanly() {
    let mut replayed = 0;
    for target in std::fs::read_dir(CORPUS).expect("fuzz/corpus exists") {
        let target = target.unwrap().path();
        let name = target.file_name().unwrap().to_str().unwrap().to_owned();
        for input in std::fs::read_dir(&target).unwrap() {
            let data = std::fs::read(input.unwrap().path()).unwrap();
            assert!(
                ratchetbox::fuzzing::run(&name, &data),
                "unknown target {name}"
            );
            replayed += 1;
        }
    }
    assert!(replayed >= 8, "only {replayed} corpus files");
}
