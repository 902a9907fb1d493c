//! Crash safety: the driver (`tests/crash/driver.rs`) holds a three-party
//! conversation over SQLite files and is killed with SIGKILL at random
//! points, many times; every restart reopens the files and carries on. A
//! last run delivers everything still on the wire and checks the invariants
//! (see the driver's docs). This side checks that no message was ever
//! delivered twice, across all runs.
//!
//! `RATCHETBOX_CRASH_CYCLES` sets the number of killed runs (default 40).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashSet;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ratchetbox::rand_core::Rng;

const DRIVER: &str = env!("CARGO_BIN_EXE_crash_driver");

fn driver(args: &[&str]) -> Command {
    let mut command = Command::new(DRIVER);
    command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Records the deliveries a run printed (failing on any repeat); the number
/// of interrupted sends and group-key updates it finished.
fn record(output: &str, seen: &mut HashSet<String>) -> usize {
    for line in output.lines().filter(|l| l.starts_with("D ")) {
        assert!(seen.insert(line.to_string()), "delivered twice: {line}");
    }
    output.lines().filter(|l| l.starts_with("R ")).count()
}

#[test]
fn killed_at_random_points_the_conversation_survives() {
    let cycles: usize = std::env::var("RATCHETBOX_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let dir = support::TempDir::new("crash");
    let path = dir.path().to_str().unwrap();
    let start = Instant::now();
    let init = driver(&["init", path]).output().unwrap();
    assert!(
        init.status.success(),
        "init failed: {}",
        String::from_utf8_lossy(&init.stderr)
    );

    let mut rng = ratchetbox::os_rng();
    let mut seen = HashSet::new();
    let (mut killed, mut completed, mut recovered) = (0, 0, 0);
    for cycle in 0..cycles {
        let mut child = driver(&["run", path, "400"]).spawn().unwrap();
        // Early kills hit startup and recovery; late ones the steady state.
        let delay = Duration::from_millis(u64::from(rng.next_u32() % 400));
        let deadline = Instant::now() + delay;
        while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        let mut stdout = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        match status.signal() {
            Some(9) => killed += 1,
            _ if status.success() => completed += 1,
            _ => panic!("cycle {cycle}: driver failed ({status}): {stderr}"),
        }
        recovered += record(&stdout, &mut seen);
    }
    let finish = driver(&["finish", path]).output().unwrap();
    let stdout = String::from_utf8_lossy(&finish.stdout);
    assert!(
        finish.status.success(),
        "finish failed: {}\n{stdout}",
        String::from_utf8_lossy(&finish.stderr)
    );
    recovered += record(&stdout, &mut seen);
    let total: usize = stdout
        .lines()
        .find_map(|l| l.strip_prefix("OK "))
        .unwrap()
        .parse()
        .unwrap();
    eprintln!(
        "{cycles} runs ({killed} killed, {completed} completed), {total} messages, \
         {} deliveries seen, {recovered} interrupted operations finished on restart, {:?}",
        seen.len(),
        start.elapsed()
    );
    assert!(killed > 0, "no run was killed");
    assert!(total >= cycles, "the conversation made too little progress");
}
