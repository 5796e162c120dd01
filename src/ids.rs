//! Object ids as Heketi makes them: 16 random bytes as 32 lowercase hex characters. Ids are
//! made by the proposer (the leader's handler), never inside `apply`, which must stay
//! deterministic.

pub fn new_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Heketi's route regex for ids: one or more hex characters (any case, any length).
pub fn is_route_id(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_32_lower_hex_and_distinct() {
        let a = new_id();
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_ne!(a, new_id());
        assert!(is_route_id("ABCdef0"));
        assert!(!is_route_id("not-a-hex-id"));
        assert!(!is_route_id(""));
    }
}
