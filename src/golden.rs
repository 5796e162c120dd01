//! Golden files for unit tests: an expected output checked in beside the code (under a
//! `testdata/` directory) and compared exactly, so a change in a report or an error text shows
//! up as a diff in review. `HEKATE_BLESS=1 cargo test -p hekate --lib` rewrites the files
//! from the current output instead of comparing (then read the diff before committing).
//! Test-only (`#[cfg(test)]` in lib.rs).

use std::path::PathBuf;

/// The environment variable that turns comparisons into rewrites.
pub const BLESS: &str = "HEKATE_BLESS";

/// Compares `actual` with the file at `path` (relative to the crate root), or writes it when
/// `HEKATE_BLESS=1`. A missing file fails with the command that creates it.
pub fn check(path: &str, actual: &str) {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    if std::env::var(BLESS).as_deref() == Ok("1") {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(&file, actual).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        return;
    }
    let expected = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{path}: {e}; create it with {BLESS}=1 cargo test -p hekate --lib"));
    if expected != actual {
        panic!(
            "{path} differs from the output (rerun with {BLESS}=1 to accept it, then review the diff)\n\
             --- expected\n{expected}\n--- actual\n{actual}"
        );
    }
}

/// `value` as pretty JSON with a final newline, the form golden files take.
pub fn json<T: serde::Serialize>(value: &T) -> String {
    let mut s = serde_json::to_string_pretty(value).unwrap();
    s.push('\n');
    s
}
