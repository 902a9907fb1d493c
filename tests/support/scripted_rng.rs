//! Shared by the known-answer tests: an RNG that hands out scripted bytes in
//! order, so that every secret the protocol draws is a vector input, and hex
//! helpers for the vector files. Included with `#[path]`; not a test target.
#![allow(dead_code)]

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
