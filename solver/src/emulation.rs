//! Whether this host can run a RUN step built for another platform (issue #18), and how: the
//! CPU runs it natively, or the kernel hands its binaries to an emulator registered with
//! binfmt_misc (qemu-user-static, as Debian's `qemu-user-static` + `binfmt-support` or
//! `tonistiigi/binfmt` register it). Nothing else is needed at run time: the kernel does the
//! handing over, even inside the sandbox, when the handler carries the `F` flag (its
//! interpreter was opened when it was registered). Without a handler the step must fail before
//! it runs, naming the platform: never a native run of what was asked to be another platform.

use std::fs;
use std::path::Path;

use builder_store::Platform;

/// Where the kernel lists binfmt_misc handlers.
pub const BINFMT_MISC: &str = "/proc/sys/fs/binfmt_misc";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runs {
    Natively,
    /// Through the handler of this name (`qemu-aarch64`).
    Emulated(String),
}

/// How a step for `target` runs on `host`, or why it cannot.
pub fn how_to_run(target: &Platform, host: &Platform, binfmt_dir: &Path) -> Result<Runs, String> {
    if target.os != "linux" {
        return Err(format!(
            "a RUN step for {target} cannot run on this {host} host: only linux steps can run here"
        ));
    }
    if runs_natively(target, host) {
        return Ok(Runs::Natively);
    }
    let Some(name) = qemu_name(&target.architecture) else {
        return Err(format!(
            "a RUN step for {target} cannot run on this {host} host: no emulator is known for {}",
            target.architecture
        ));
    };
    let how_to_install = format!(
        "install an emulator for it: on Debian/Ubuntu `apt-get install qemu-user-static binfmt-support`, elsewhere `docker run --privileged --rm tonistiigi/binfmt --install {}`",
        target.architecture
    );
    let entries = match fs::read_dir(binfmt_dir) {
        Ok(e) => e,
        Err(_) => {
            return Err(format!(
                "a RUN step for {target} needs emulation on this {host} host, but binfmt_misc is not mounted at {} (`mount -t binfmt_misc binfmt_misc {}`), and {how_to_install}",
                binfmt_dir.display(),
                binfmt_dir.display()
            ));
        }
    };
    let wanted = format!("qemu-{name}");
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        if file == "register" || file == "status" {
            continue;
        }
        let Ok(text) = fs::read_to_string(entry.path()) else {
            continue;
        };
        let handler = Handler::parse(&text);
        let names_it = file == wanted
            || handler
                .interpreter
                .as_deref()
                .is_some_and(|i| i.ends_with(&wanted) || i.contains(&format!("/{name}-binfmt")));
        if !names_it {
            continue;
        }
        if !handler.enabled {
            return Err(format!(
                "a RUN step for {target} needs the binfmt_misc handler {file}, which is disabled (`echo 1 > {}`)",
                entry.path().display()
            ));
        }
        if !handler.flags.contains('F') {
            return Err(format!(
                "a RUN step for {target} needs the binfmt_misc handler {file} registered with the F flag (its interpreter {} would otherwise be looked for inside the build's root filesystem): re-register it with F, as `tonistiigi/binfmt` and Debian's qemu-user-static do",
                handler.interpreter.as_deref().unwrap_or("?")
            ));
        }
        return Ok(Runs::Emulated(file.to_string()));
    }
    Err(format!(
        "a RUN step for {target} cannot run on this {host} host: no binfmt_misc handler for {} is registered in {}; {how_to_install}",
        target.architecture,
        binfmt_dir.display()
    ))
}

/// The CPU executes these itself: the same architecture, or 32-bit x86 on x86-64.
fn runs_natively(target: &Platform, host: &Platform) -> bool {
    if target.architecture == host.architecture {
        return match (&target.variant, &host.variant) {
            // An older variant of the same architecture (arm64/v8 host, arm64/v8 target).
            (Some(t), Some(h)) => t <= h,
            _ => true,
        };
    }
    target.architecture == "386" && host.architecture == "amd64"
}

/// The name qemu (and binfmt handlers) give an architecture Go names `arch`.
fn qemu_name(arch: &str) -> Option<&'static str> {
    Some(match arch {
        "amd64" => "x86_64",
        "386" => "i386",
        "arm64" => "aarch64",
        "arm" => "arm",
        "riscv64" => "riscv64",
        "ppc64le" => "ppc64le",
        "ppc64" => "ppc64",
        "s390x" => "s390x",
        "mips64le" => "mips64el",
        "mips64" => "mips64",
        "mipsle" => "mipsel",
        "mips" => "mips",
        "loong64" => "loongarch64",
        _ => return None,
    })
}

/// The parts of a `/proc/sys/fs/binfmt_misc/<name>` file we look at.
struct Handler {
    enabled: bool,
    interpreter: Option<String>,
    flags: String,
}

impl Handler {
    fn parse(text: &str) -> Handler {
        let mut h = Handler {
            enabled: false,
            interpreter: None,
            flags: String::new(),
        };
        for line in text.lines() {
            if line == "enabled" {
                h.enabled = true;
            } else if let Some(i) = line.strip_prefix("interpreter ") {
                h.interpreter = Some(i.trim().to_string());
            } else if let Some(f) = line.strip_prefix("flags:") {
                h.flags = f.trim().to_string();
            }
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    fn handler(dir: &Path, name: &str, enabled: bool, flags: &str) {
        let state = if enabled { "enabled" } else { "disabled" };
        fs::write(
            dir.join(name),
            format!("{state}\ninterpreter /usr/bin/{name}-static\nflags: {flags}\noffset 0\nmagic 7f454c46\n"),
        )
        .unwrap();
    }

    #[test]
    fn the_host_and_compatible_platforms_run_natively() {
        let dir = tempfile::tempdir().unwrap();
        let amd64 = p("linux/amd64");
        assert_eq!(how_to_run(&amd64, &amd64, dir.path()), Ok(Runs::Natively));
        assert_eq!(
            how_to_run(&p("linux/386"), &amd64, dir.path()),
            Ok(Runs::Natively)
        );
        let err = how_to_run(&p("windows/amd64"), &amd64, dir.path()).unwrap_err();
        assert!(err.contains("only linux"), "{err}");
    }

    #[test]
    fn a_foreign_platform_needs_an_enabled_handler_with_the_f_flag() {
        let dir = tempfile::tempdir().unwrap();
        let (host, arm64) = (p("linux/amd64"), p("linux/arm64"));
        fs::write(dir.path().join("register"), "").unwrap();
        fs::write(dir.path().join("status"), "enabled").unwrap();
        let err = how_to_run(&arm64, &host, dir.path()).unwrap_err();
        assert!(
            err.contains("linux/arm64") && err.contains("qemu-user-static"),
            "{err}"
        );

        handler(dir.path(), "qemu-aarch64", true, "OC");
        let err = how_to_run(&arm64, &host, dir.path()).unwrap_err();
        assert!(err.contains("F flag"), "{err}");
        handler(dir.path(), "qemu-aarch64", false, "POCF");
        let err = how_to_run(&arm64, &host, dir.path()).unwrap_err();
        assert!(err.contains("disabled"), "{err}");
        handler(dir.path(), "qemu-aarch64", true, "POCF");
        assert_eq!(
            how_to_run(&arm64, &host, dir.path()),
            Ok(Runs::Emulated("qemu-aarch64".into()))
        );
        // Another architecture's handler does not count.
        let err = how_to_run(&p("linux/s390x"), &host, dir.path()).unwrap_err();
        assert!(err.contains("s390x"), "{err}");
        let missing = dir.path().join("not-mounted");
        let err = how_to_run(&arm64, &host, &missing).unwrap_err();
        assert!(err.contains("not mounted"), "{err}");
    }
}
