//! The import-direction check: dependencies inside crate `hekate` point down the layer table
//! of docs/ARCHITECTURE.md ("Module layers"), never up. The table lives there, between the
//! `layers:begin` and `layers:end` markers, and nowhere else: this test reads it, reads every
//! file under `src/` (except the binaries, which sit above the library), and fails naming the
//! file and line of each `crate::<module>` path that reaches a higher layer, and of each
//! module the table does not place. Test-only (`#[cfg(test)]` in lib.rs).
//!
//! What it sees: `crate::` paths in code, including `use crate::{a, b::C}` groups, with
//! comments and string literals removed. What it does not: `super::` paths (they stay inside
//! a top-level module in this crate; reach another one with `crate::`).

use std::collections::BTreeMap;

/// The layers, top first: (name, the top-level modules of `src/` in it).
pub type Layers = Vec<(String, Vec<String>)>;

/// A `crate::` path into a higher layer (or into / from a module without a layer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Path under `src/`.
    pub file: String,
    /// 1-based.
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "src/{}:{}: {}", self.file, self.line, self.message)
    }
}

/// Why the layer table could not be read from the document.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TableError {
    #[error("no `<!-- layers:begin -->` ... `<!-- layers:end -->` block")]
    NoMarkers,
    #[error("the layer table has no rows")]
    Empty,
    #[error("row {0:?}: expected `| <layer> | `module`, ... |`")]
    BadRow(String),
    #[error("module `{0}` is in two layers")]
    Duplicate(String),
}

/// Reads the layer table from the architecture document: the markdown table rows between
/// the markers, `| layer name | `mod`, `mod` | ... |`, top layer first. Header and separator
/// rows (no backticked module) are skipped.
pub fn parse_table(doc: &str) -> Result<Layers, TableError> {
    let start = doc.find("<!-- layers:begin -->").ok_or(TableError::NoMarkers)?;
    let end = doc[start..]
        .find("<!-- layers:end -->")
        .ok_or(TableError::NoMarkers)?;
    let mut layers = Layers::new();
    let mut seen = BTreeMap::new();
    for row in doc[start..start + end].lines().map(str::trim) {
        if !row.starts_with('|') {
            continue;
        }
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() < 2 || cells[1].starts_with('-') || !cells[1].contains('`') {
            continue;
        }
        let modules: Vec<String> = cells[1]
            .split(',')
            .map(|m| m.trim().trim_matches('`').to_string())
            .collect();
        if cells[0].is_empty() || modules.iter().any(|m| !is_ident(m)) {
            return Err(TableError::BadRow(row.to_string()));
        }
        for m in &modules {
            if seen.insert(m.clone(), ()).is_some() {
                return Err(TableError::Duplicate(m.clone()));
            }
        }
        layers.push((cells[0].to_string(), modules));
    }
    if layers.is_empty() {
        return Err(TableError::Empty);
    }
    Ok(layers)
}

fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// Checks `files` ((path under `src/`, contents)) against `layers`. Paths under `bin/` and
/// `lib.rs` are skipped: the binaries and the crate root sit above every layer.
pub fn check(layers: &Layers, files: &[(String, String)]) -> Vec<Violation> {
    let rank: BTreeMap<&str, (usize, &str)> = layers
        .iter()
        .enumerate()
        .flat_map(|(i, (name, mods))| mods.iter().map(move |m| (m.as_str(), (i, name.as_str()))))
        .collect();
    let mut out = Vec::new();
    for (file, text) in files {
        if file == "lib.rs" || file.starts_with("bin/") {
            continue;
        }
        let module = file.split('/').next().unwrap_or_default().trim_end_matches(".rs");
        let Some(&(from_rank, from_layer)) = rank.get(module) else {
            out.push(Violation {
                file: file.clone(),
                line: 1,
                message: format!(
                    "module `{module}` has no layer: add it to the table in docs/ARCHITECTURE.md"
                ),
            });
            continue;
        };
        for (line, target) in crate_paths(text) {
            if target == module {
                continue;
            }
            match rank.get(target.as_str()) {
                None => out.push(Violation {
                    file: file.clone(),
                    line,
                    message: format!(
                        "`crate::{target}` is not a module of the layer table (docs/ARCHITECTURE.md)"
                    ),
                }),
                Some(&(to_rank, to_layer)) if to_rank < from_rank => out.push(Violation {
                    file: file.clone(),
                    line,
                    message: format!(
                        "`{module}` ({from_layer}) uses `crate::{target}` ({to_layer}), a higher layer"
                    ),
                }),
                Some(_) => {}
            }
        }
    }
    out
}

/// Every top-level module named by a `crate::` path in code: (1-based line, module).
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let code = strip(text);
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\n' {
            line += 1;
            i += 1;
            continue;
        }
        let starts_word =
            i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_' || b[i - 1] == b'$');
        if starts_word && code[i..].starts_with("crate") {
            let mut j = skip_ws(b, i + "crate".len());
            if code[j..].starts_with("::") {
                j = skip_ws(b, j + 2);
                if b.get(j) == Some(&b'{') {
                    // A group: the first segment of each top-level item.
                    let mut depth = 0;
                    let mut expect = true;
                    let mut l = line;
                    while j < b.len() {
                        match b[j] {
                            b'{' => {
                                depth += 1;
                                expect = depth == 1;
                            }
                            b'}' => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            b',' if depth == 1 => expect = true,
                            b'\n' => l += 1,
                            c if expect && (c.is_ascii_alphabetic() || c == b'_') => {
                                let id = ident_at(&code, j);
                                out.push((l, id.to_string()));
                                j += id.len();
                                expect = false;
                                continue;
                            }
                            _ => {}
                        }
                        j += 1;
                    }
                } else {
                    let id = ident_at(&code, j);
                    if !id.is_empty() {
                        out.push((line, id.to_string()));
                    }
                }
            }
        }
        i += 1;
    }
    out
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && (b[i] == b' ' || b[i] == b'\t' || b[i] == b'\r') {
        i += 1;
    }
    i
}

fn ident_at(code: &str, i: usize) -> &str {
    let end = code[i..]
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(code.len(), |n| i + n);
    &code[i..end]
}

/// A blanked-out character: a newline stays (line numbers hold), anything else is a space.
fn blank(out: &mut String, ch: char) {
    out.push(if ch == '\n' { '\n' } else { ' ' });
}

/// A (nested) block comment starting at `i`, blanked; the index after it.
fn skip_block_comment(c: &[char], mut i: usize, out: &mut String) -> usize {
    let mut depth = 0;
    while i < c.len() {
        if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            depth += 1;
            i += 2;
        } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                break;
            }
        } else {
            blank(out, c[i]);
            i += 1;
        }
    }
    i
}

/// A raw string (`r"..."`, `r#"..."#`) starting at `i` (the `r`), its contents blanked; the
/// index after it, or None when `r#` does not start one.
fn skip_raw_string(c: &[char], i: usize, out: &mut String) -> Option<usize> {
    let mut j = i + 1;
    let mut hashes = 0;
    while c.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    if c.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < c.len() {
        if c[j] == '"' && (1..=hashes).all(|h| c.get(j + h) == Some(&'#')) {
            j += 1 + hashes;
            break;
        }
        blank(out, c[j]);
        j += 1;
    }
    Some(j)
}

/// The code of a Rust file with comments and string and character literals blanked out
/// (newlines kept, so line numbers hold).
fn strip(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < c.len() {
        let prev_ident = i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_');
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            i = skip_block_comment(&c, i, &mut out);
        } else if c[i] == 'r' && !prev_ident && matches!(c.get(i + 1), Some('"') | Some('#')) {
            match skip_raw_string(&c, i, &mut out) {
                Some(j) => i = j,
                None => {
                    out.push(c[i]);
                    i += 1;
                }
            }
        } else if c[i] == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    i += 1;
                }
                if let Some(&ch) = c.get(i) {
                    blank(&mut out, ch);
                }
                i += 1;
            }
            i += 1;
        } else if c[i] == '\'' {
            // A character literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if c.get(i + 1) == Some(&'\\') {
                i += 2;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if c.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                out.push(c[i]);
                i += 1;
            }
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Layers {
        parse_table(
            "text\n<!-- layers:begin -->\n| layer | modules |\n|---|---|\n\
             | 2 edge | `server`, `api` |\n| 1 middle | `ops` |\n| 0 base | `state`, `ids` |\n\
             <!-- layers:end -->\n",
        )
        .unwrap()
    }

    fn run(files: &[(&str, &str)]) -> Vec<String> {
        let files: Vec<(String, String)> = files
            .iter()
            .map(|(f, t)| (f.to_string(), t.to_string()))
            .collect();
        check(&table(), &files).iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn an_upward_import_is_named_with_file_and_line() {
        let v = run(&[(
            "state/command.rs",
            "//! header\nuse crate::ids;\nuse crate::ops::Thing;\n",
        )]);
        assert_eq!(
            v,
            ["src/state/command.rs:3: `state` (0 base) uses `crate::ops` (1 middle), a higher layer"]
        );
    }

    #[test]
    fn downward_and_same_layer_imports_pass() {
        let v = run(&[
            (
                "api/mod.rs",
                "use crate::server::X;\nuse crate::ops::Y;\nuse crate::state::{self, Z};\n",
            ),
            ("ops.rs", "fn f() { crate::state::apply(); crate::ids::new() }\n"),
            ("state/mod.rs", "use crate::ids;\nuse crate::state::x;\n"),
            (
                "bin/hekate.rs",
                "use hekate::server; fn f() { crate::anything() }\n",
            ),
        ]);
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn groups_paths_in_expressions_and_multiline_uses_are_seen() {
        let v = run(&[(
            "ids.rs",
            "use crate::{\n    state::X,\n    api::{self, Y},\n};\nfn f() -> u8 { crate :: ops::g() }\n",
        )]);
        assert_eq!(
            v,
            [
                "src/ids.rs:3: `ids` (0 base) uses `crate::api` (2 edge), a higher layer",
                "src/ids.rs:5: `ids` (0 base) uses `crate::ops` (1 middle), a higher layer",
            ]
        );
    }

    #[test]
    fn comments_strings_and_macros_are_not_imports() {
        let v = run(&[(
            "state/x.rs",
            "// crate::api\n/// [`crate::server`]\n/* crate::ops */\n\
             const S: &str = \"crate::api\";\nconst R: &str = r#\"crate::ops \"q\" \"#;\n\
             const C: char = '\"';\nfn f<'a>(x: &'a str) { $crate::api::m!(); }\nnot_crate::api();\n",
        )]);
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn modules_outside_the_table_are_reported() {
        let v = run(&[
            ("newmod.rs", "use crate::ids;\n"),
            ("ops.rs", "use crate::nowhere::X;\n"),
        ]);
        assert_eq!(
            v,
            [
                "src/newmod.rs:1: module `newmod` has no layer: add it to the table in docs/ARCHITECTURE.md",
                "src/ops.rs:1: `crate::nowhere` is not a module of the layer table (docs/ARCHITECTURE.md)",
            ]
        );
    }

    #[test]
    fn a_malformed_table_is_refused() {
        assert_eq!(parse_table("no table"), Err(TableError::NoMarkers));
        assert_eq!(
            parse_table("<!-- layers:begin -->\n| a | `x` |\n| b | `x`, `y` |\n<!-- layers:end -->"),
            Err(TableError::Duplicate("x".into()))
        );
        assert!(matches!(
            parse_table("<!-- layers:begin -->\n| a | `x y` |\n<!-- layers:end -->"),
            Err(TableError::BadRow(_))
        ));
        assert_eq!(
            parse_table("<!-- layers:begin -->\n<!-- layers:end -->"),
            Err(TableError::Empty)
        );
    }

    /// The check itself, on this crate: every file under `src/`, against docs/ARCHITECTURE.md.
    #[test]
    fn dependencies_point_down() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let doc = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap();
        let layers = parse_table(&doc).unwrap_or_else(|e| panic!("docs/ARCHITECTURE.md: {e}"));
        let src = root.join("src");
        let mut files = Vec::new();
        let mut stack = vec![src.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().and_then(|e| e.to_str()) == Some("rs") {
                    let rel = path.strip_prefix(&src).unwrap().display().to_string();
                    files.push((rel, std::fs::read_to_string(&path).unwrap()));
                }
            }
        }
        files.sort();
        assert!(files.len() > 50, "read only {} files under src/", files.len());
        let v = check(&layers, &files);
        let listing: Vec<String> = v.iter().map(|v| v.to_string()).collect();
        assert!(
            v.is_empty(),
            "imports against the layer table of docs/ARCHITECTURE.md:\n{}",
            listing.join("\n")
        );
    }
}
