//! What an operator may do to the scheduler through the admin API: end a user's session, stop
//! a container. Both go through the same paths as the limits do, so users see a reason and the
//! stop is recorded like any other.

use std::sync::Arc;

use super::state::{BindingKey, StopReason};
use super::{Effects, Inner, UserId};

/// The reason a user sees when an operator ends their session.
pub(crate) const ENDED_BY_ADMIN: &str = "an administrator ended your session";

/// Why an operator's request could not be carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// No binding for that user and image.
    #[error("user `{user}` has no session on image `{image}`; list them with GET /api/v1/sessions")]
    NoSession {
        /// The user id asked for.
        user: String,
        /// The image asked for.
        image: String,
    },
    /// No container of that name (or it is already gone).
    #[error("there is no container named `{0}`; list them with GET /api/v1/containers")]
    NoContainer(String),
    /// The container is already being stopped.
    #[error("container `{name}` is already stopping: {reason}")]
    AlreadyStopping {
        /// The container.
        name: String,
        /// Why it stops.
        reason: String,
    },
}

impl Inner {
    /// Ends every connection of `user` on `image` and unbinds them; returns the container
    /// they were on. A container that can take no one else stops as when a user leaves.
    pub(super) fn end_session_now(
        self: &Arc<Self>,
        user: &UserId,
        image: &str,
    ) -> Result<String, AdminError> {
        let key = BindingKey {
            user: user.clone(),
            image: image.to_string(),
        };
        let now = self.clock.now();
        let mut effects = Effects::default();
        let mut st = self.lock();
        let Some(container) = st.unbind(&key, ENDED_BY_ADMIN, now) else {
            return Err(AdminError::NoSession {
                user: user.to_string(),
                image: image.to_string(),
            });
        };
        tracing::info!(user = %user, image, container, "an administrator ended a session");
        self.metrics
            .kicks
            .with_label_values(&[image, "admin"])
            .inc();
        effects.persist = true;
        self.stop_if_finished(&mut st, &container, &mut effects);
        drop(st);
        self.run(effects);
        Ok(container)
    }

    /// Stops container `name` now (its users' sessions end with the reason), with the image's
    /// stop signal and grace.
    pub(super) fn stop_container_now(self: &Arc<Self>, name: &str) -> Result<(), AdminError> {
        let mut effects = Effects::default();
        let mut st = self.lock();
        let Some(c) = st.containers.get(name) else {
            return Err(AdminError::NoContainer(name.to_string()));
        };
        if !c.is_live() {
            let phase = c.phase();
            return Err(AdminError::AlreadyStopping {
                name: name.to_string(),
                reason: match phase {
                    super::Phase::Stopping(r) | super::Phase::Gone(r) => r.to_string(),
                    other => other.to_string(),
                },
            });
        }
        self.begin_stop(&mut st, name, StopReason::Admin, &mut effects);
        drop(st);
        self.run(effects);
        Ok(())
    }
}
