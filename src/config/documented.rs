//! The defaults docs/configuration.md states for the `raft` section are the code's: this test
//! reads the section's table and compares each documented default with what an omitted key
//! becomes when a `raft` section is parsed. Test-only (declared under `#[cfg(test)]`).

use serde_json::Value;

use super::RaftConfig;

/// One documented default: the key (`timeouts.heartbeat_ms`), its line in the document, and
/// the default cell as written.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    key: String,
    line: usize,
    default: String,
}

/// The rows of the table under `## \`raft\`` (up to the next heading). A key cell
/// `` `a.b_min_ms` / `_max_ms` `` with a default `x / y` becomes two rows.
fn raft_rows(doc: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut inside = false;
    for (i, line) in doc.lines().enumerate() {
        if line.starts_with("## ") {
            inside = line.trim() == "## `raft`";
            continue;
        }
        if !inside || !line.starts_with('|') {
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() < 2 || !cells[0].starts_with('`') {
            continue;
        }
        let keys: Vec<&str> = cells[0].split('/').map(|k| k.trim().trim_matches('`')).collect();
        let defaults: Vec<&str> = if keys.len() > 1 {
            cells[1].split('/').map(str::trim).collect()
        } else {
            vec![cells[1]]
        };
        for (n, k) in keys.iter().enumerate() {
            // `_max_ms` after `timeouts.election_timeout_min_ms`: the same key with its
            // suffix replaced.
            let key = match k.strip_prefix('_') {
                Some(suffix) => {
                    let first = keys[0];
                    let stem = &first[..first.rfind('_').and_then(|e| first[..e].rfind('_')).unwrap_or(0)];
                    format!("{stem}_{suffix}")
                }
                None => k.to_string(),
            };
            rows.push(Row {
                key,
                line: i + 1,
                default: defaults.get(n).unwrap_or(&cells[1]).to_string(),
            });
        }
    }
    rows
}

/// A documented default as a number: its leading figure with an optional unit
/// (`5000`, `3 MiB`, `0 (= ...)`, `10,000`).
fn number(cell: &str) -> Option<u64> {
    let digits: String = cell
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(|c| *c != ',')
        .collect();
    let n: u64 = digits.parse().ok()?;
    let rest = cell[cell
        .find(|c: char| !(c.is_ascii_digit() || c == ','))
        .unwrap_or(cell.len())..]
        .trim_start();
    Some(match rest.split_whitespace().next() {
        Some("KiB") => n << 10,
        Some("MiB") => n << 20,
        Some("GiB") => n << 30,
        _ => n,
    })
}

/// The `raft` section as the code fills it when only the required keys are given.
fn defaults() -> Value {
    let minimal = serde_json::json!({
        "id": 1, "secret": "0123456789abcdef0123", "peers": [{"id": 1, "api": "127.0.0.1:8080"}]
    });
    let cfg: RaftConfig = serde_json::from_value(minimal).unwrap();
    serde_json::to_value(cfg).unwrap()
}

/// Every number or flag of `defaults` (dotted key -> value), for the completeness check.
fn leaves(v: &Value, prefix: &str, out: &mut Vec<(String, Value)>) {
    if let Value::Object(m) = v {
        for (k, v) in m {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                Value::Object(_) => leaves(v, &key, out),
                Value::Number(_) | Value::Bool(_) => out.push((key, v.clone())),
                _ => {}
            }
        }
    }
}

fn lookup<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.pointer(&format!("/{}", key.replace('.', "/")))
}

/// Where the `raft` table of `doc` disagrees with the code: a documented default that is not
/// the code's, or a key with a default that the table leaves out.
fn mismatches(doc: &str) -> Vec<String> {
    let rows = raft_rows(doc);
    let code = defaults();
    let mut wrong = Vec::new();
    for r in &rows {
        // Required keys, paths and `tls.*` have no default value to compare.
        let Some(actual) = lookup(&code, &r.key).filter(|_| !r.default.starts_with("required")) else {
            continue;
        };
        let ok = match actual {
            Value::Number(n) => number(&r.default) == n.as_u64(),
            Value::Bool(b) => r.default == b.to_string(),
            _ => true,
        };
        if !ok {
            wrong.push(format!(
                "docs/configuration.md:{}: `raft.{}` documented as {:?}, the code's default is {actual}",
                r.line, r.key, r.default
            ));
        }
    }
    let mut all = Vec::new();
    leaves(&code, "", &mut all);
    for (key, v) in all {
        if key != "id" && !rows.iter().any(|r| r.key == key) {
            wrong.push(format!(
                "docs/configuration.md: `raft.{key}` (default {v}) is not in the table"
            ));
        }
    }
    wrong
}

#[test]
fn documented_raft_defaults_are_the_code_s() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    assert!(
        raft_rows(&doc).len() > 15,
        "the raft table of {} was not found",
        path.display()
    );
    let wrong = mismatches(&doc);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_table_reader_splits_pairs_and_reads_units() {
    let doc = "## `raft`\n\n| key | default | meaning |\n|---|---|---|\n\
               | `timeouts.election_timeout_min_ms` / `_max_ms` | 200 / 400 | |\n\
               | `timeouts.snapshot_chunk_bytes` | 3 MiB | |\n\n## next\n| `x` | 1 | |\n";
    let rows = raft_rows(doc);
    let got: Vec<(&str, &str, usize)> = rows
        .iter()
        .map(|r| (r.key.as_str(), r.default.as_str(), r.line))
        .collect();
    assert_eq!(
        got,
        [
            ("timeouts.election_timeout_min_ms", "200", 5),
            ("timeouts.election_timeout_max_ms", "400", 5),
            ("timeouts.snapshot_chunk_bytes", "3 MiB", 6),
        ]
    );
    assert_eq!(number("3 MiB"), Some(3 << 20));
    assert_eq!(number("0 (= `election_timeout_max_ms`)"), Some(0));
    assert_eq!(number("10,000"), Some(10_000));
    assert_eq!(number("required"), None);
}

/// The check catches the drift it exists for: issue 12's table (100 / 400 / 800 ms against
/// the code's 50 / 200 / 400), and a key left out.
#[test]
fn a_stale_table_is_caught() {
    let doc = "## `raft`\n| key | default | meaning |\n|---|---|---|\n\
               | `timeouts.heartbeat_ms` | 100 | |\n\
               | `timeouts.election_timeout_min_ms` / `_max_ms` | 400 / 800 | |\n";
    let wrong = mismatches(doc);
    for expected in [
        "docs/configuration.md:4: `raft.timeouts.heartbeat_ms` documented as \"100\", the code's default is 50",
        "docs/configuration.md:5: `raft.timeouts.election_timeout_min_ms` documented as \"400\", the code's default is 150",
        "docs/configuration.md:5: `raft.timeouts.election_timeout_max_ms` documented as \"800\", the code's default is 300",
        "docs/configuration.md: `raft.forward_timeout_ms` (default 5000) is not in the table",
    ] {
        assert!(wrong.iter().any(|w| w == expected), "{expected} not in {wrong:#?}");
    }
}
