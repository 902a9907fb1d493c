//! Shared by the known-answer tests: an RNG that hands out scripted bytes in
//! order, so that every secret the protocol draws is a vector input, and hex
//! helpers for the vector files. Included with `#[path]`; not a test target.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;

use ratchetbox::rand_core::{TryCryptoRng, TryRng};

/// Scripted randomness. `next_u32`/`next_u64` take 4/8 bytes, little-endian.
pub struct ScriptedRng {
    pub bytes: Vec<u8>,
}

impl ScriptedRng {
    pub fn new(chunks: &[&[u8]]) -> Self {
        Self {
            bytes: chunks.concat(),
        }
    }

    pub fn assert_exhausted(&self) {
        assert!(self.bytes.is_empty(), "script not fully used");
    }
}

impl TryRng for ScriptedRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        assert!(self.bytes.len() >= dst.len(), "script exhausted");
        let rest = self.bytes.split_off(dst.len());
        dst.copy_from_slice(&self.bytes);
        self.bytes = rest;
        Ok(())
    }
}

impl TryCryptoRng for ScriptedRng {}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The `[inputs]` and `[outputs]` sections of a vector file, by name.
pub type Sections = (BTreeMap<String, Vec<u8>>, BTreeMap<String, Vec<u8>>);

/// Reads a vector file: `#` comments, `[inputs]` / `[outputs]` headers and
/// `name = hex` lines (an empty value is written `name =`).
pub fn read_vectors(path: &str) -> Sections {
    let text = std::fs::read_to_string(path).expect("vector file");
    let (mut inputs, mut outputs) = (BTreeMap::new(), BTreeMap::new());
    let mut section = None;
    for line in text.lines().map(str::trim) {
        match line {
            "" => {}
            l if l.starts_with('#') => {}
            "[inputs]" => section = Some(&mut inputs),
            "[outputs]" => section = Some(&mut outputs),
            l => {
                let (k, v) = l.split_once('=').expect("key = hex");
                let map = section.as_deref_mut().expect("section header first");
                map.insert(k.trim().to_string(), unhex(v.trim()));
            }
        }
    }
    (inputs, outputs)
}

/// Writes a vector file: `header` (comment lines), then both sections. Written
/// aside and renamed, so a test reading it concurrently never sees half a file.
pub fn write_vectors(
    path: &str,
    header: &str,
    input: &BTreeMap<&str, Vec<u8>>,
    output: &BTreeMap<String, Vec<u8>>,
) {
    let line = |k: &str, v: &[u8]| {
        if v.is_empty() {
            format!("{k} =\n")
        } else {
            format!("{k} = {}\n", hex(v))
        }
    };
    let mut text = format!("{header}\n[inputs]\n");
    for (k, v) in input {
        text += &line(k, v);
    }
    text += "\n[outputs]\n";
    for (k, v) in output {
        text += &line(k, v);
    }
    let partial = format!("{path}.partial");
    std::fs::write(&partial, text).expect("write vectors");
    std::fs::rename(&partial, path).expect("replace vectors");
}

/// Checks a vector file against what the code computes now, after rewriting
/// it when `RATCHETBOX_WRITE_VECTORS` is set: the same inputs, the same output
/// names, and every output byte for byte.
pub fn check_vectors(
    path: &str,
    header: &str,
    input: &BTreeMap<&str, Vec<u8>>,
    computed: &BTreeMap<String, Vec<u8>>,
) {
    if std::env::var_os("RATCHETBOX_WRITE_VECTORS").is_some() {
        write_vectors(path, header, input, computed);
    }
    let (stored_in, stored_out) = read_vectors(path);
    assert_eq!(stored_in.len(), input.len(), "number of inputs");
    for (k, v) in input {
        assert_eq!(hex(&stored_in[*k]), hex(v), "input {k}");
    }
    assert_eq!(
        stored_out.keys().collect::<Vec<_>>(),
        computed.keys().collect::<Vec<_>>(),
        "output names"
    );
    for (k, v) in computed {
        assert_eq!(hex(&stored_out[k]), hex(v), "output {k}");
    }
}
