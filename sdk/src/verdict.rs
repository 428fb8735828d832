//! Constructors and accessors on the WIT types, so resolvers read as sentences.

use crate::{Denial, Grant, HttpRequest, Identity, Issued, Verdict};

impl Identity {
    /// An identity with this id, no display name, no groups and no image restriction.
    pub fn new(id: impl Into<String>) -> Self {
        Identity {
            id: id.into(),
            display_name: None,
            groups: Vec::new(),
            images: None,
        }
    }

    /// With these groups.
    pub fn with_groups<S: Into<String>>(mut self, groups: impl IntoIterator<Item = S>) -> Self {
        self.groups = groups.into_iter().map(Into::into).collect();
        self
    }

    /// With a display name.
    pub fn with_display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }

    /// Limited to these images (by `orca.name`).
    pub fn with_images<S: Into<String>>(mut self, images: impl IntoIterator<Item = S>) -> Self {
        self.images = Some(images.into_iter().map(Into::into).collect());
        self
    }
}

impl Verdict {
    /// Allow as `who`; the answer is not cached.
    pub fn allow(who: Identity) -> Self {
        Verdict::Allow(Grant {
            who,
            cache_seconds: 0,
            set_cookie: None,
        })
    }

    /// Allow as `who`, and let the gateway reuse this answer for the same credential for
    /// `seconds`.
    pub fn allow_cached(who: Identity, seconds: u32) -> Self {
        Verdict::Allow(Grant {
            who,
            cache_seconds: seconds,
            set_cookie: None,
        })
    }

    /// Allow as `who` and set this cookie on the response (an anonymous visitor's new id, a
    /// renewed session).
    pub fn allow_with_cookie(who: Identity, cookie: Issued) -> Self {
        Verdict::Allow(Grant {
            who,
            cache_seconds: 0,
            set_cookie: Some(cookie),
        })
    }

    /// Deny; `reason` goes to the gateway's log, the user sees only "access denied".
    pub fn deny(reason: impl Into<String>) -> Self {
        Verdict::Deny(Denial {
            reason: reason.into(),
            message: None,
        })
    }

    /// Deny with a message for the user as well as a reason for the log.
    pub fn deny_with_message(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Verdict::Deny(Denial {
            reason: reason.into(),
            message: Some(message.into()),
        })
    }
}

impl HttpRequest {
    /// The first header named `name` (compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first cookie named `name`.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}
