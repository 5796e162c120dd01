//! JSON as Go's `encoding/json` writes it, which Heketi's responses are: serde_json's
//! compact output except that `<`, `>` and `&` inside strings become `\u003c`, `\u003e` and
//! `\u0026`. Escaped while writing, so a document is written once into its buffer: the API's
//! responses (`api::respond`) and `GET /topology`'s chunks (`views`), 230 MB at 100,000
//! volumes, where writing then scanning and copying cost a tenth of the build. The dump's
//! indented form (`to_string_pretty`) uses the same escapes.

use std::io;

use serde::Serialize;
use serde_json::ser::Formatter;

/// serde_json's compact formatter with Go's three extra escapes.
struct GoFormatter;

impl Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        write_escaped(w, fragment)
    }
}

/// Writes `text` with Go's three extra escapes (found with `memchr`: every string of a
/// 230 MB `GET /topology` passes here).
fn write_escaped<W: ?Sized + io::Write>(w: &mut W, text: &str) -> io::Result<()> {
    let bytes = text.as_bytes();
    let mut start = 0;
    for i in memchr::memchr3_iter(b'<', b'>', b'&', bytes) {
        let escape: &[u8] = match bytes[i] {
            b'<' => b"\\u003c",
            b'>' => b"\\u003e",
            _ => b"\\u0026",
        };
        w.write_all(&bytes[start..i])?;
        w.write_all(escape)?;
        start = i + 1;
    }
    w.write_all(&bytes[start..])
}

/// Appends `v` to `out`. Our shapes have string keys only, so serialization cannot fail;
/// were it to, `out` gets `null` in place of anything partial.
pub fn write_into<T: Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    let start = out.len();
    let mut ser = serde_json::Serializer::with_formatter(&mut *out, GoFormatter);
    if v.serialize(&mut ser).is_err() {
        out.truncate(start);
        out.extend_from_slice(b"null");
    }
}

/// `v` as Go writes it.
pub fn to_string<T: Serialize + ?Sized>(v: &T) -> String {
    let mut out = Vec::with_capacity(128);
    write_into(&mut out, v);
    // serde_json writes UTF-8 and the escapes are ASCII.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// `v` as Go's `json.MarshalIndent(v, "", "    ")` writes it. serde_json's pretty output,
/// then Go's escapes over the whole text: outside strings JSON has no `<>&`. None if `v`
/// cannot be serialized (a map with keys that are not strings).
pub fn to_string_pretty<T: Serialize + ?Sized>(v: &T) -> Option<String> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    v.serialize(&mut serde_json::Serializer::with_formatter(&mut out, fmt))
        .ok()?;
    let text = String::from_utf8(out).ok()?;
    if plain(&text) {
        return Some(text);
    }
    let mut escaped = Vec::with_capacity(text.len() + 64);
    write_escaped(&mut escaped, &text).ok()?;
    String::from_utf8(escaped).ok()
}

/// Whether serde_json alone writes `s` as Go does (nothing for Go's extra escapes).
pub fn plain(s: &str) -> bool {
    memchr::memchr3(b'<', b'>', b'&', s.as_bytes()).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_escapes_markup_characters_in_keys_and_values_only() {
        let v = serde_json::json!({"a<b": "x & <y> \"z\" \n é", "n": [1, 2.5, null, true]});
        assert_eq!(
            to_string(&v),
            r#"{"a\u003cb":"x \u0026 \u003cy\u003e \"z\" \n é","n":[1,2.5,null,true]}"#
        );
    }

    #[test]
    fn without_markup_it_is_serde_json_compact_output() {
        let v = serde_json::json!({"id": "0123abcd", "path": "/var/lib/heketi/mounts/vg_1/brick_2/brick", "size": 7});
        assert_eq!(to_string(&v), serde_json::to_string(&v).unwrap());
        assert!(plain("/var/lib/heketi/mounts") && !plain("a&b") && !plain(">"));
    }

    #[test]
    fn pretty_output_is_indented_by_four_and_escaped() {
        let v = serde_json::json!({"a": ["<b>"]});
        assert_eq!(
            to_string_pretty(&v).unwrap(),
            "{\n    \"a\": [\n        \"\\u003cb\\u003e\"\n    ]\n}"
        );
    }

    #[test]
    fn write_into_appends() {
        let mut out = b"[".to_vec();
        write_into(&mut out, "<");
        assert_eq!(out, br#"["\u003c""#);
    }
}
