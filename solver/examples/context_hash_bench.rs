//! Build-context checksum speed: what a COPY's cache key costs on a large context.
//!
//! cargo run --release -p builder-solver --example context_hash_bench -- gen DIR [MiB]
//! cargo run --release -p builder-solver --example context_hash_bench -- hash DIR MODE [RUNS]
//!
//! `gen` writes a context of MiB (default 2048) in two halves: 8 large files (one core's
//! streaming case) and 64 KiB files in directories of 1,000 (the many-files case), filled with
//! xorshift bytes (no compression, no sparse files to cheat the reads).
//!
//! `sha` hashes 1 GiB in memory on one thread: SHA-256's own speed on this CPU.
//!
//! `hash` runs `SourceTree::checksum(["."])`, the call a `COPY . .` makes, and prints one line per
//! run: mode, files, MiB, seconds, MB/s, CPU seconds (this process, all threads). MODE:
//! - `cold`: an empty stat cache and the files evicted from the page cache first
//!   (`posix_fadvise(DONTNEED)` per file; clean pages only, so `gen` syncs): every byte is read
//!   from the disk and hashed.
//! - `cold-cached`: an empty stat cache, the page cache warm (read once before timing): the
//!   hashing cost without the disk.
//! - `warm`: the stat cache filled by a first pass and reloaded from disk (timed, and shown
//!   apart as `cache_load_s`), as a rebuild finds it: one `stat` per file, no reads.
//! - `floor`: no checksum: every directory listed and every entry `stat`ed relative to it, on
//!   every core, nothing else. The kernel's share that no walk of the tree can avoid, to set
//!   `warm` against (the list of directories is made before timing).

use std::error::Error;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use builder_solver::SourceTree;
use builder_solver::StatCache;

const SMALL: usize = 64 << 10;
const LARGE_FILES: usize = 8;
const PER_DIR: usize = 1000;

/// xorshift64: cheap and deterministic.
struct Rng(u64);

impl Rng {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            let v = self.0.to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

fn generate(dir: &Path, mib: usize) -> Result<(), Box<dyn Error>> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let half = (mib << 20) / 2;
    let large = half / LARGE_FILES;
    let mut buf = vec![0u8; 1 << 20];
    fs::create_dir_all(dir.join("large"))?;
    for i in 0..LARGE_FILES {
        let mut f = fs::File::create(dir.join(format!("large/blob{i}")))?;
        let mut left = large;
        while left > 0 {
            let n = left.min(buf.len());
            rng.fill(&mut buf[..n]);
            f.write_all(&buf[..n])?;
            left -= n;
        }
    }
    let small = half / SMALL;
    for i in 0..small {
        let sub = dir.join(format!("small/d{}", i / PER_DIR));
        if i % PER_DIR == 0 {
            fs::create_dir_all(&sub)?;
        }
        rng.fill(&mut buf[..SMALL]);
        fs::write(sub.join(format!("f{i}")), &buf[..SMALL])?;
    }
    // Evicting pages later needs them clean.
    unsafe { libc::sync() };
    println!("generated {mib} MiB: {LARGE_FILES} x {large} B + {small} x {SMALL} B");
    Ok(())
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            files(&e.path(), out)?;
        } else {
            out.push(e.path());
        }
    }
    Ok(())
}

fn evict(paths: &[PathBuf]) -> std::io::Result<()> {
    for p in paths {
        let f = fs::File::open(p)?;
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    }
    Ok(())
}

fn read_all(paths: &[PathBuf]) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    for p in paths {
        let mut f = fs::File::open(p)?;
        while f.read(&mut buf)? > 0 {}
    }
    Ok(())
}

fn cpu_seconds() -> f64 {
    let mut u = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let u = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, u.as_mut_ptr());
        u.assume_init()
    };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    s(u.ru_utime) + s(u.ru_stime)
}

fn directories(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    out.push(dir.to_path_buf());
    for e in fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            directories(&e.path(), out)?;
        }
    }
    Ok(())
}

/// Lists every directory and stats each entry in it (`DirEntry::metadata`: `statx` relative to
/// the open directory, symlinks not followed), the directories shared out to every core.
fn floor(dir: &Path, runs: usize) -> Result<(), Box<dyn Error>> {
    let mut dirs = Vec::new();
    directories(dir, &mut dirs)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for _ in 0..runs {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let cpu0 = cpu_seconds();
        let t0 = Instant::now();
        let stated: usize = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| -> std::io::Result<usize> {
                        let mut n = 0;
                        while let Some(d) =
                            dirs.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                        {
                            for e in fs::read_dir(d)? {
                                std::hint::black_box(e?.metadata()?);
                                n += 1;
                            }
                        }
                        Ok(n)
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .sum::<std::io::Result<usize>>()
        })?;
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "mode=floor entries={stated} dirs={} threads={threads} seconds={secs:.3} cpu_s={:.2}",
            dirs.len(),
            cpu_seconds() - cpu0
        );
    }
    Ok(())
}

fn hash(dir: &Path, mode: &str, runs: usize) -> Result<(), Box<dyn Error>> {
    if mode == "floor" {
        return floor(dir, runs);
    }
    let mut paths = Vec::new();
    files(dir, &mut paths)?;
    let bytes: u64 = paths
        .iter()
        .map(|p| fs::metadata(p).map(|m| m.len()))
        .sum::<Result<_, _>>()?;
    let cache_dir = tempfile::tempdir()?;
    if mode == "warm" {
        let cache = StatCache::load(cache_dir.path(), dir);
        SourceTree::new(dir, None)
            .with_stat_cache(&cache)
            .checksum(&[".".into()])?;
        cache.save()?;
    }
    for _ in 0..runs {
        match mode {
            "cold" => evict(&paths)?,
            "cold-cached" => read_all(&paths)?,
            "warm" => {}
            other => return Err(format!("unknown mode {other}").into()),
        }
        let cpu0 = cpu_seconds();
        let t0 = Instant::now();
        let cache = if mode == "warm" {
            StatCache::load(cache_dir.path(), dir)
        } else {
            StatCache::disabled()
        };
        let load_secs = t0.elapsed().as_secs_f64();
        let sum = SourceTree::new(dir, None)
            .with_stat_cache(&cache)
            .checksum(&[".".into()])?;
        let secs = t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu0;
        println!(
            "mode={mode} files={} mib={} seconds={secs:.3} mb_s={:.0} cpu_s={cpu:.2} cache_load_s={load_secs:.3} sum={}",
            paths.len(),
            bytes >> 20,
            bytes as f64 / 1e6 / secs,
            sum.short()
        );
    }
    Ok(())
}

/// SHA-256 alone over 1 GiB in memory, on one thread: the ceiling for one core (with SHA-NI,
/// which sha2 detects at run time, well above 1 GB/s; without it, about a third of that).
fn sha_speed() -> Result<(), Box<dyn Error>> {
    let mut buf = vec![0u8; 1 << 20];
    Rng(1).fill(&mut buf);
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let mut h = builder_store::Hasher::new();
    for _ in 0..1024 {
        h.update(&buf);
    }
    let sum = h.finish();
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    println!(
        "mode=sha mib=1024 seconds={secs:.3} mb_s={:.0} cpu_s={cpu:.2} mb_per_cpu_s={:.0} sum={}",
        1024.0 * 1.048576 / secs,
        1024.0 * 1.048576 / cpu,
        sum.short()
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["gen", dir, rest @ ..] => generate(
            Path::new(dir),
            rest.first().map(|s| s.parse()).transpose()?.unwrap_or(2048),
        ),
        ["hash", dir, mode, rest @ ..] => hash(
            Path::new(dir),
            mode,
            rest.first().map(|s| s.parse()).transpose()?.unwrap_or(3),
        ),
        ["sha"] => sha_speed(),
        _ => Err(
            "usage: context_hash_bench gen DIR [MiB] | hash DIR cold|cold-cached|warm [RUNS] | sha"
                .into(),
        ),
    }
}
