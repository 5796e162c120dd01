//! How stored records are versioned: a 2-byte big-endian version, then the bincode body.
//! A record type bumps `VERSION` on any incompatible change and keeps a decoder for the
//! previous version (migrate on read); an unknown version is a store error, never a guess.

use hekate_raft::{codec, StoreError};
use serde::{de::DeserializeOwned, Serialize};

pub trait Record: Serialize + DeserializeOwned {
    const KIND: &'static str;
    const VERSION: u16;
}

pub fn encode<T: Record>(v: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = T::VERSION.to_be_bytes().to_vec();
    out.extend(codec::encode(v)?);
    Ok(out)
}

pub fn decode<T: Record>(b: &[u8]) -> Result<T, StoreError> {
    if b.len() < 2 {
        return Err(StoreError::Invalid(format!("{} record is truncated", T::KIND)));
    }
    let version = u16::from_be_bytes([b[0], b[1]]);
    if version != T::VERSION {
        return Err(StoreError::Invalid(format!(
            "{} record version {version} is not known to this build (expects {})",
            T::KIND,
            T::VERSION
        )));
    }
    Ok(codec::decode(&b[2..])?)
}
