//! The host's `CLOCK_MONOTONIC`, which pam_veil.so and veild share: the
//! module stamps the moment the conversation returned the last answer, and
//! veild starts the failure deadline there rather than at receipt, so
//! whatever the module does after the answers is inside the deadline.

use std::time::Duration;

use nix::time::{ClockId, clock_gettime};

/// The oldest stamp believed. Between the last answer and the request the
/// module does a few system calls (a millisecond at most); an older stamp
/// is a stalled process or a request not made by the module, and is
/// treated as "now" at receipt: that only makes the denial later (as
/// before the stamp existed), never earlier than the module's own work.
pub const MAX_ANSWER_AGE: Duration = Duration::from_secs(1);

/// `CLOCK_MONOTONIC` now, in nanoseconds (0 if the clock cannot be read,
/// which the clamp in [`answer_age`] then treats as "now").
pub fn now_ns() -> u64 {
    clock_gettime(ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        (t.tv_sec() as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(t.tv_nsec() as u64)
    })
}

/// How long before receipt (`received_ns`) the last answer was given
/// (`answered_ns`), both on `CLOCK_MONOTONIC`. A stamp in the future (a
/// lying or broken sender) or older than [`MAX_ANSWER_AGE`] counts as
/// given at receipt: zero.
pub fn answer_age(received_ns: u64, answered_ns: u64) -> Duration {
    match received_ns.checked_sub(answered_ns) {
        Some(age) if Duration::from_nanos(age) <= MAX_ANSWER_AGE => Duration::from_nanos(age),
        _ => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recent_stamp_is_believed_and_a_future_or_stale_one_is_now() {
        let ms = |n: u64| n * 1_000_000;
        let received = ms(50_000);
        assert_eq!(answer_age(received, received), Duration::ZERO);
        assert_eq!(
            answer_age(received, received - ms(30)),
            Duration::from_millis(30)
        );
        assert_eq!(answer_age(received, received - ms(1000)), MAX_ANSWER_AGE);
        assert_eq!(answer_age(received, received - ms(1001)), Duration::ZERO);
        assert_eq!(answer_age(received, received + 1), Duration::ZERO);
        assert_eq!(answer_age(received, 0), Duration::ZERO);
        assert_eq!(answer_age(0, received), Duration::ZERO);
    }

    #[test]
    fn the_clock_reads_and_never_goes_back() {
        let first = now_ns();
        let second = now_ns();
        assert!(first > 0 && second >= first);
    }
}
