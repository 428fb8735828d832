//! Time, injectable: every timer and timestamp in Orca goes through [`Clock`].
//!
//! Deadlines use `tokio::time::Instant`, so tests drive idle, lifespan and linger logic with
//! `tokio::time::pause()` and `advance()`. Wall-clock times (persisted across restarts, shown to
//! operators) are derived from the same monotonic source anchored once at start, so they move
//! with paused time too and never jump backwards when the system clock is adjusted.

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// A monotonic clock with a wall-clock anchor.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    anchor_instant: Instant,
    anchor_wall: SystemTime,
}

impl Clock {
    /// A clock anchored at the current tokio instant and system time.
    pub fn new() -> Self {
        Self {
            anchor_instant: Instant::now(),
            anchor_wall: SystemTime::now(),
        }
    }

    /// The current monotonic instant (tokio's, so paused time applies).
    pub fn now(&self) -> Instant {
        Instant::now()
    }

    /// The wall-clock time that corresponds to `instant`.
    pub fn wall_at(&self, instant: Instant) -> SystemTime {
        if instant >= self.anchor_instant {
            self.anchor_wall + (instant - self.anchor_instant)
        } else {
            self.anchor_wall - (self.anchor_instant - instant)
        }
    }

    /// The current wall-clock time.
    pub fn wall(&self) -> SystemTime {
        self.wall_at(self.now())
    }

    /// The monotonic instant that corresponds to a wall-clock time, clamped to the anchor
    /// range tokio can represent (times far in the past map to "long ago").
    pub fn instant_at(&self, wall: SystemTime) -> Instant {
        match wall.duration_since(self.anchor_wall) {
            Ok(ahead) => self.anchor_instant + ahead,
            Err(e) => self
                .anchor_instant
                .checked_sub(e.duration())
                .unwrap_or(self.anchor_instant),
        }
    }

    /// Milliseconds since the clock's anchor: a compact monotonic timestamp for atomics.
    pub fn millis(&self) -> u64 {
        u64::try_from((self.now() - self.anchor_instant).as_millis()).unwrap_or(u64::MAX)
    }

    /// The instant for a value returned by [`Clock::millis`].
    pub fn instant_from_millis(&self, ms: u64) -> Instant {
        self.anchor_instant + Duration::from_millis(ms)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Seconds since the Unix epoch, for persisted and displayed timestamps.
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The wall-clock time for Unix seconds.
pub fn from_unix_secs(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn wall_time_moves_with_paused_tokio_time() {
        let clock = Clock::new();
        let w0 = clock.wall();
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(
            clock.wall().duration_since(w0).unwrap(),
            Duration::from_secs(90)
        );
        assert_eq!(clock.millis(), 90_000);
        let i = clock.instant_at(w0 + Duration::from_secs(30));
        assert_eq!(i, clock.instant_from_millis(30_000));
    }
}
