//! `--memory`, `--cpus`, `--pids-limit` for `builder build` (every RUN step) and `builder run`.

use anyhow::Context as _;
use builder_sandbox::ResourceLimits;
use clap::Args;

use super::UsageError;

#[derive(Args, Clone, Debug, Default)]
pub struct LimitArgs {
    /// Memory limit per RUN step / container (e.g. 64m, 1g; b, k, m, g suffixes); no swap on top.
    #[arg(short = 'm', long)]
    memory: Option<String>,
    /// CPU limit in CPUs (e.g. 0.5 for half of one CPU).
    #[arg(long)]
    cpus: Option<String>,
    /// Most processes at once per RUN step / container.
    #[arg(long)]
    pids_limit: Option<u64>,
}

impl LimitArgs {
    /// The limits asked for, after checking that this host can apply them: a clear error
    /// before anything runs rather than a build that silently runs unlimited.
    pub fn resolve(&self) -> anyhow::Result<ResourceLimits> {
        let limits = ResourceLimits {
            memory: self.memory.as_deref().map(parse_memory).transpose()?,
            cpus: self.cpus.as_deref().map(parse_cpus).transpose()?,
            pids: self.pids_limit,
        };
        builder_sandbox::cgroup::check(&limits)
            .context("--memory/--cpus/--pids-limit cannot be honoured on this host")?;
        Ok(limits)
    }
}

fn parse_memory(s: &str) -> anyhow::Result<u64> {
    let bytes = parse_size("--memory", s)?;
    // docker's minimum: below this nothing, not even a shell, starts.
    if bytes < 6 << 20 {
        return Err(UsageError(format!("--memory {s:?} is below the minimum of 6m")).into());
    }
    Ok(bytes)
}

/// A size flag in docker's syntax ([`builder_store::units::ram_in_bytes`]), its errors naming `flag`.
pub fn parse_size(flag: &str, s: &str) -> anyhow::Result<u64> {
    builder_store::units::ram_in_bytes(s).map_err(|e| UsageError(format!("{flag}: {e}")).into())
}

fn parse_cpus(s: &str) -> anyhow::Result<f64> {
    match s.trim().parse::<f64>() {
        Ok(c) if c > 0.0 && c.is_finite() => Ok(c),
        _ => Err(UsageError(format!(
            "invalid --cpus {s:?}: expected a positive number such as 0.5"
        ))
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("64m").unwrap(), 64 << 20);
        assert_eq!(parse_memory("1G").unwrap(), 1 << 30);
        assert_eq!(parse_memory("10485760").unwrap(), 10 << 20);
        assert_eq!(parse_memory("8192k").unwrap(), 8 << 20);
        for bad in ["", "m", "12x", "-5m", "1k", "99999999999999g"] {
            assert!(parse_memory(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cpu_counts() {
        assert_eq!(parse_cpus("0.5").unwrap(), 0.5);
        for bad in ["0", "-1", "x", "inf"] {
            assert!(parse_cpus(bad).is_err(), "{bad}");
        }
    }
}
