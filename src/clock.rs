//! The wall clock, read in one place. Proposers (handlers, the runner, reconcile) stamp
//! commands and operations with it; `apply` never reads it (times come inside commands), and
//! JWTs are signed and checked against it. A module of its own so that reading the time does
//! not mean depending on authentication.

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// [`now_unix`] as the unsigned seconds stored in operations and commands.
pub fn now_secs() -> u64 {
    now_unix().max(0) as u64
}
