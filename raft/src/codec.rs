//! The one place Hekate's replicated bytes are encoded: bincode 2 (serde, standard config)
//! with an allocation limit, so that a hostile or corrupt input cannot exhaust memory.

use serde::{de::DeserializeOwned, Serialize};

/// Upper bound of any decoded value (a snapshot chunk, an append batch, a stored record).
pub const DECODE_LIMIT: usize = 512 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("codec: {0}")]
pub struct CodecError(pub String);

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| CodecError(e.to_string()))
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, read) =
        bincode::serde::decode_from_slice::<T, _>(bytes, config()).map_err(|e| CodecError(e.to_string()))?;
    if read != bytes.len() {
        return Err(CodecError(format!("{} trailing bytes", bytes.len() - read)));
    }
    Ok(value)
}

/// Encodes `value` into `w` as [`encode`] would; the number of bytes written.
pub fn encode_into<T: Serialize, W: std::io::Write>(value: &T, w: &mut W) -> Result<usize, CodecError> {
    bincode::serde::encode_into_std_write(value, w, config()).map_err(|e| CodecError(e.to_string()))
}

/// Decodes a value that borrows from `bytes` (byte strings as slices of it), whole.
pub fn decode_borrowed<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, CodecError> {
    let (value, read) = bincode::serde::borrow_decode_from_slice::<T, _>(bytes, config())
        .map_err(|e| CodecError(e.to_string()))?;
    if read != bytes.len() {
        return Err(CodecError(format!("{} trailing bytes", bytes.len() - read)));
    }
    Ok(value)
}

/// Decodes the leading fields of a longer value: `T` is a prefix of what was encoded (a
/// struct's first fields), and the bytes after it are not read.
pub fn decode_head<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, _) =
        bincode::serde::decode_from_slice::<T, _>(bytes, config()).map_err(|e| CodecError(e.to_string()))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_trailing_bytes_refused() {
        let v: (u64, String) = (7, "x".into());
        let mut b = encode(&v).unwrap();
        assert_eq!(decode::<(u64, String)>(&b).unwrap(), v);
        b.push(0);
        assert!(decode::<(u64, String)>(&b).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode::<Vec<String>>(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
