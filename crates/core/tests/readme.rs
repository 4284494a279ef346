//! The README's metric table is rendered from the core's table (`metrics::markdown_table`),
//! so documentation cannot drift from what the code computes. After changing the table,
//! regenerate it with `UPDATE_README=1 cargo test -p tracesift-core --test readme`.

// Helpers in test crates may panic: a panic here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use tracesift_core::metrics::markdown_table;

const START: &str = "<!-- metric-table: generated from crates/core/src/metrics.rs -->\n";
const END: &str = "<!-- metric-table end -->";

#[test]
fn the_readme_table_is_the_core_table() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let start = readme
        .find(START)
        .expect("the README has the table's start marker")
        + START.len();
    let end = start + readme[start..].find(END).expect("and its end marker");
    let table = markdown_table();
    if readme[start..end] == table {
        return;
    }
    if std::env::var_os("UPDATE_README").is_some() {
        let updated = format!("{}{table}{}", &readme[..start], &readme[end..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    panic!(
        "README.md's metric table differs from crates/core/src/metrics.rs; regenerate it with\n  \
         UPDATE_README=1 cargo test -p tracesift-core --test readme\nThe table should read:\n{table}"
    );
}
