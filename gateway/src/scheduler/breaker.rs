//! Launches of an image the engine refuses to create or start: no pile-up of creates.
//!
//! Without this, every user arriving for an image whose creates fail got a launch of their
//! own, and each launch tried `launch_attempts` times: twenty users at once meant a hundred
//! creates against an engine that was already failing, and each user waited out every retry.
//!
//! Once a create or start of an image fails, the image is *failing*: the launch that saw the
//! failure first goes on retrying (the trial), the other launches in flight for that image stop
//! before their next create with the engine's reason, and new users are refused at once (503
//! with `Retry-After`) instead of queueing launches. When the trial gives up, the image backs
//! off ([`FIRST_BACKOFF`], doubling per failed trial up to [`MAX_BACKOFF`]); the first user
//! after the back-off starts the next trial. A trial that creates and starts a container ends
//! the failing state.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// Back-off after the first failed trial.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_secs(5);
/// Longest back-off.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Failing {
    /// The engine's last error, for the users refused meanwhile.
    reason: String,
    /// Trials that gave up so far.
    failures: u32,
    /// No new trial before this.
    retry_at: Instant,
    /// The launch (container name) allowed to create while the image is failing.
    trial: Option<String>,
}

/// Why no container of an image may be created now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The engine's last error.
    pub(crate) reason: String,
    /// When to ask again.
    pub(crate) retry_after: Duration,
}

/// The failing images.
#[derive(Debug, Default)]
pub(crate) struct Breakers {
    failing: HashMap<String, Failing>,
}

impl Breakers {
    /// May a new container of `image` be queued at `now`?
    pub(crate) fn admit(&self, image: &str, now: Instant) -> Result<(), Refusal> {
        match self.failing.get(image) {
            None => Ok(()),
            Some(f) if f.trial.is_none() && now >= f.retry_at => Ok(()),
            Some(f) => Err(f.refusal(now)),
        }
    }

    /// Before each create of launch `name`: go on, or stop with the engine's reason. While the
    /// image is failing only its trial creates; a launch that finds no trial after the
    /// back-off becomes it.
    pub(crate) fn may_create(
        &mut self,
        image: &str,
        name: &str,
        now: Instant,
    ) -> Result<(), Refusal> {
        let Some(f) = self.failing.get_mut(image) else {
            return Ok(());
        };
        match &f.trial {
            Some(trial) if trial == name => Ok(()),
            None if now >= f.retry_at => {
                f.trial = Some(name.to_string());
                Ok(())
            }
            _ => Err(f.refusal(now)),
        }
    }

    /// A create or start of launch `name` failed with `reason`. The first launch to fail
    /// becomes the trial; the others stop at their next [`Breakers::may_create`].
    pub(crate) fn attempt_failed(&mut self, image: &str, name: &str, reason: String, now: Instant) {
        let f = self
            .failing
            .entry(image.to_string())
            .or_insert_with(|| Failing {
                reason: String::new(),
                failures: 0,
                retry_at: now,
                trial: Some(name.to_string()),
            });
        f.reason = reason;
    }

    /// Launch `name` ended without a running container (every attempt failed, or it was
    /// stopped): when it was the trial, the image backs off.
    pub(crate) fn launch_ended(&mut self, image: &str, name: &str, now: Instant) {
        if let Some(f) = self.failing.get_mut(image)
            && f.trial.as_deref() == Some(name)
        {
            f.trial = None;
            f.failures += 1;
            f.retry_at = now + backoff(f.failures);
        }
    }

    /// A container of `image` was created and started: the engine serves it again.
    pub(crate) fn succeeded(&mut self, image: &str) {
        self.failing.remove(image);
    }
}

impl Failing {
    fn refusal(&self, now: Instant) -> Refusal {
        // While a trial runs, its outcome is due within a few seconds.
        let wait = self.retry_at.saturating_duration_since(now);
        Refusal {
            reason: self.reason.clone(),
            retry_after: wait.max(Duration::from_secs(1)),
        }
    }
}

/// The back-off after `failures` failed trials.
fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_image_lets_only_its_trial_create_then_backs_off() {
        let t0 = Instant::now();
        let mut b = Breakers::default();
        assert!(b.admit("web", t0).is_ok());
        // Three launches were in flight; "a" fails first and becomes the trial.
        b.attempt_failed("web", "a", "no space left".into(), t0);
        b.attempt_failed("web", "b", "no space left on device".into(), t0);
        assert!(b.may_create("web", "a", t0).is_ok(), "the trial retries");
        let refused = b.may_create("web", "c", t0).unwrap_err();
        assert_eq!(refused.reason, "no space left on device");
        assert!(b.admit("web", t0).is_err(), "no new launch during a trial");
        assert!(
            b.admit("other", t0).is_ok(),
            "other images are not affected"
        );

        // "b" stopping does not end the trial; "a" giving up starts the back-off.
        b.launch_ended("web", "b", t0);
        assert!(b.admit("web", t0).is_err());
        b.launch_ended("web", "a", t0);
        let refused = b.admit("web", t0).unwrap_err();
        assert_eq!(refused.retry_after, FIRST_BACKOFF);
        assert!(b.may_create("web", "d", t0 + FIRST_BACKOFF / 2).is_err());

        // After the back-off the next launch is the new trial; its failure doubles the wait.
        let t1 = t0 + FIRST_BACKOFF;
        assert!(b.admit("web", t1).is_ok());
        assert!(b.may_create("web", "e", t1).is_ok());
        assert!(b.may_create("web", "f", t1).is_err(), "one trial at a time");
        b.attempt_failed("web", "e", "still full".into(), t1);
        b.launch_ended("web", "e", t1);
        assert_eq!(
            b.admit("web", t1).unwrap_err().retry_after,
            FIRST_BACKOFF * 2
        );

        // A trial that works ends it.
        let t2 = t1 + FIRST_BACKOFF * 2;
        assert!(b.may_create("web", "g", t2).is_ok());
        b.succeeded("web");
        assert!(b.admit("web", t2).is_ok());
        assert!(b.may_create("web", "h", t2).is_ok());
    }

    #[test]
    fn the_back_off_is_capped() {
        assert_eq!(backoff(1), FIRST_BACKOFF);
        assert_eq!(backoff(2), FIRST_BACKOFF * 2);
        assert_eq!(backoff(40), MAX_BACKOFF);
    }
}
