//! The wall clock, read in one place. Logic takes `now` as a parameter
//! (ARCHITECTURE.md, rule 2); only veild's server loop and veilctl's commands call this.

/// Unix time now, in seconds.
#[allow(clippy::disallowed_methods)]
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
