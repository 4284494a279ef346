//! The Python package's checks: a virtual environment under `target/pyenv` with maturin,
//! pytest, pyarrow, pandas, polars and Ray Data; the extension built into it by
//! `maturin develop` in the shared target directory (so nothing is built twice); pytest
//! over `crates/python/tests`, its counts added to the tally.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

use crate::test::{Tally, cmd, workspace_root};

/// What the tests import, besides the package itself.
const PACKAGES: [&str; 6] = [
    "maturin",
    "pytest",
    "pyarrow",
    "pandas",
    "polars",
    "ray[data]",
];

fn venv() -> PathBuf {
    workspace_root().join("target").join("pyenv")
}

/// The venv's Python (with numpy, through pandas): the bench's json + numpy baseline runs
/// on it.
pub fn venv_python() -> anyhow::Result<String> {
    ensure_venv()?;
    Ok(venv_program("python"))
}

fn venv_program(name: &str) -> String {
    venv().join("bin").join(name).to_string_lossy().into_owned()
}

/// Creates the venv if needed and installs what is missing (pip skips what is there).
pub fn ensure_venv() -> anyhow::Result<()> {
    if !venv().join("bin").join("python").exists() {
        let path = venv().to_string_lossy().into_owned();
        cmd("python3", &["-m", "venv", &path])?;
    }
    let mut args = vec!["install", "--quiet"];
    args.extend(PACKAGES);
    cmd(&venv_program("pip"), &args)
}

/// PyTorch and sentence-transformers, for the bench's reference speed of the embedding
/// model: their own venv (`target/torch-venv`; PyPI's torch wheel brings CUDA libraries,
/// several GB, so only `cargo xtask bench` installs it, once).
const TORCH_PACKAGES: [&str; 2] = ["torch==2.15.0", "sentence-transformers==6.2.0"];

pub fn torch_python() -> anyhow::Result<String> {
    let venv = workspace_root().join("target").join("torch-venv");
    let program = |name: &str| venv.join("bin").join(name).to_string_lossy().into_owned();
    if !venv.join("bin").join("python").exists() {
        cmd("python3", &["-m", "venv", &venv.to_string_lossy()])?;
    }
    let mut args = vec!["install", "--quiet"];
    args.extend(TORCH_PACKAGES);
    cmd(&program("pip"), &args)?;
    Ok(program("python"))
}

/// Builds the CLI the tests compare against and the extension, then runs pytest. The CLI is
/// built as the native tests build it (same crates, same features), so after them this
/// builds nothing.
pub fn build_and_test() -> anyhow::Result<Tally> {
    cmd(
        "cargo",
        &crate::test::native_crates_args("test", &["--no-run"]),
    )?;
    let status = Command::new(venv_program("maturin"))
        .args(["develop", "-m", "crates/python/Cargo.toml"])
        .env("VIRTUAL_ENV", venv())
        .current_dir(workspace_root())
        .status()
        .context("cannot start maturin")?;
    if !status.success() {
        bail!("maturin develop failed with {status}");
    }
    let output = Command::new(venv_program("python"))
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "crates/python/tests",
        ])
        .current_dir(workspace_root())
        .output()
        .context("cannot start pytest")?;
    let text = String::from_utf8_lossy(&output.stdout);
    print!("{text}");
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    let tally = pytest_counts(&text);
    if !output.status.success() || tally.passed == 0 {
        bail!("pytest failed with {}", output.status);
    }
    Ok(tally)
}

/// The counts of pytest's closing line (`3 failed, 61 passed, 6 warnings in 139.44s`).
fn pytest_counts(output: &str) -> Tally {
    let Some(line) = output
        .lines()
        .rev()
        .find(|line| line.contains(" passed") || line.contains(" failed"))
    else {
        return Tally::default();
    };
    let count = |label: &str| {
        line.split(", ")
            .filter_map(|part| part.trim_matches(|c| c == '=' || c == ' ').split_once(' '))
            .find(|(_, name)| name.starts_with(label))
            .and_then(|(number, _)| number.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Tally {
        passed: count("passed"),
        failed: count("failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::pytest_counts;

    #[test]
    fn reads_pytest_counts() {
        let tally = pytest_counts("....\n3 failed, 61 passed, 6 warnings in 139.44s (0:02:19)\n");
        assert_eq!((tally.passed, tally.failed), (61, 3));
        let tally = pytest_counts("== 12 passed in 3.1s ==\n");
        assert_eq!((tally.passed, tally.failed), (12, 0));
        assert_eq!(pytest_counts("no tests ran").passed, 0);
    }
}
