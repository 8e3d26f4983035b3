//! Python for interop tests: a virtualenv per pinned requirement list, made on first
//! use and shared by every test (and test process) that asks for the same list.
//!
//! ```no_run
//! let python = entente_testkit::python::venv(&["cbor2==6.3.0"])?;
//! let status = std::process::Command::new(python).arg("check.py").status()?;
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! Venvs live under `<target dir>/py-venvs/<hash of the list>` (the target dir is
//! `CARGO_TARGET_DIR` if set, else the workspace's `target/`), so `cargo clean`
//! removes them. A venv is built in a temporary sibling directory and renamed into
//! place, so a directory under its final name is always complete; if another test won
//! the race, ours is deleted and theirs used.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

/// What to install when Python is missing, for error messages.
const INSTALL_HINT: &str = "the interop tests need CPython 3 with the venv module and pip \
     (Debian: apt-get install python3 python3-venv python3-pip) and access to PyPI";

/// The Python interpreter of a virtualenv holding exactly `requirements` (pinned
/// `name==version` strings), creating the venv on first use.
pub fn venv(requirements: &[&str]) -> Result<PathBuf> {
    let root = target_dir().join("py-venvs");
    let dir = root.join(format!("{:016x}", fnv1a(&requirements.join("\n"))));
    let python = interpreter(&dir);
    if python.exists() {
        return Ok(python);
    }
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;

    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = root.join(format!(".building-{}-{nanos}", std::process::id()));
    let built = build(&tmp, requirements);
    if let Err(e) = built {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if let Err(e) = std::fs::rename(&tmp, &dir) {
        let _ = std::fs::remove_dir_all(&tmp);
        // Losing the race to a concurrent test is fine: its venv is as good as ours.
        if !python.exists() {
            return Err(e).with_context(|| format!("moving the new venv to {}", dir.display()));
        }
    }
    Ok(python)
}

fn build(tmp: &Path, requirements: &[&str]) -> Result<()> {
    run(Command::new("python3").arg("-m").arg("venv").arg(tmp))
        .with_context(|| format!("creating a Python virtualenv: {INSTALL_HINT}"))?;
    if !requirements.is_empty() {
        run(Command::new(interpreter(tmp))
            .args(["-m", "pip", "install", "--disable-pip-version-check", "-q"])
            .args(requirements))
        .with_context(|| {
            format!(
                "installing {} into a Python virtualenv: {INSTALL_HINT}",
                requirements.join(" ")
            )
        })?;
    }
    std::fs::write(
        tmp.join("entente-requirements.txt"),
        requirements.join("\n"),
    )
    .context("recording the venv's requirements")?;
    Ok(())
}

/// Runs `command`; an error carries its output.
fn run(command: &mut Command) -> Result<Output> {
    let output = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output)
}

fn interpreter(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

/// `CARGO_TARGET_DIR` (relative to the workspace, as cargo reads it) or `target/`.
fn target_dir() -> PathBuf {
    // This crate lives in <workspace>/crates/entente-testkit.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest
        .ancestors()
        .nth(2)
        .unwrap_or(manifest)
        .to_path_buf();
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace.join(dir),
        _ => workspace.join("target"),
    }
}

/// FNV-1a, 64 bits: a short name for a requirement list that stays the same across
/// Rust versions (unlike `DefaultHasher`).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn venv_names_are_stable() {
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(fnv1a("cbor2==6.3.0"), fnv1a("cbor2==6.2.0"));
    }
}
