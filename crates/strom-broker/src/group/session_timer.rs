//! The session timer's next instant, and the locked group that re-arms it on release.

use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::Group;

/// The instant the session timer sleeps until: the earliest deadline it was told of.
#[derive(Default)]
pub(super) struct SessionTimer {
    next: Mutex<Option<Instant>>,
    pub(super) wake: Notify,
}

impl SessionTimer {
    pub(super) fn next(&self) -> MutexGuard<'_, Option<Instant>> {
        crate::sync::lock(&self.next)
    }

    /// Wake earlier when `deadline` comes before the instant the timer sleeps until.
    pub(super) fn arm(&self, deadline: Option<Instant>) {
        let Some(deadline) = deadline else { return };
        let mut next = self.next();
        if next.is_none_or(|at| deadline < at) {
            *next = Some(deadline);
            self.wake.notify_one();
        }
    }
}

/// A locked group; releasing it hands the group's next deadline to the session
/// timer, whatever the request did to its members.
pub(super) struct LockedGroup<'a> {
    pub(super) group: MutexGuard<'a, Group>,
    pub(super) sessions: &'a SessionTimer,
}

impl Deref for LockedGroup<'_> {
    type Target = Group;

    fn deref(&self) -> &Group {
        &self.group
    }
}

impl DerefMut for LockedGroup<'_> {
    fn deref_mut(&mut self) -> &mut Group {
        &mut self.group
    }
}

impl Drop for LockedGroup<'_> {
    fn drop(&mut self) {
        self.sessions.arm(self.group.next_deadline());
    }
}
