//! A writer the benchmark examples write into: it counts the bytes and throws them away, so the
//! output's size is known without a disk in the measurement.

use std::io::{self, Write};

pub struct Counter(pub u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
