//! The open-file limit: a gateway holds two descriptors per proxied connection (the client's
//! and the container's), so the soft limit a service manager hands out (1024 under systemd)
//! caps it at about 500 connections while the hard limit allows far more. `orca serve` raises
//! its soft limit to the hard one at start, as haproxy and nginx raise theirs.

/// The process's open-file limit after [`raise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct OpenFiles {
    /// The soft limit before.
    pub was: u64,
    /// The soft limit now (the hard limit, unless raising failed).
    pub soft: u64,
    /// The hard limit.
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit. Raising within the hard limit needs no
/// privilege; an error leaves the limits as they were.
#[cfg(target_os = "linux")]
pub(super) fn raise() -> Result<OpenFiles, nix::Error> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (was, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if was < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    Ok(OpenFiles { was, soft, hard })
}

/// Logs the outcome of [`raise`]: a failure is a warning (the gateway still runs, with fewer
/// connections possible), not a reason to stop.
pub(super) fn raise_and_log() {
    #[cfg(target_os = "linux")]
    match raise() {
        Ok(l) if l.was < l.soft => {
            tracing::info!(from = l.was, to = l.soft, "raised the open-file limit")
        }
        Ok(l) => tracing::debug!(soft = l.soft, hard = l.hard, "open-file limit"),
        Err(e) => tracing::warn!(
            error = %e,
            "cannot raise the open-file limit (RLIMIT_NOFILE) to its hard limit; the gateway \
             runs with the current one; raise it with `ulimit -n` or the service's LimitNOFILE"
        ),
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};

    #[test]
    fn a_lowered_soft_limit_is_raised_to_the_hard_limit() {
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        // As a service manager would hand it out: a low soft limit under a higher hard one.
        let low = hard.min(256);
        setrlimit(Resource::RLIMIT_NOFILE, low, hard).unwrap();
        let l = super::raise().unwrap();
        assert_eq!(l.was, low);
        assert_eq!((l.soft, l.hard), (hard, hard));
        assert_eq!(getrlimit(Resource::RLIMIT_NOFILE).unwrap(), (hard, hard));
    }
}
