//! Places for long requests (file transfers, event streams): a bounded number at once in all,
//! and fewer for any one user, so that one member's slow or idle clients never take them all.

use std::{collections::HashMap, sync::Mutex};

/// A kind of long request's places.
pub struct Places {
    /// Every user's.
    all: tokio::sync::Semaphore,
    /// Held per user.
    by_user: std::sync::LazyLock<Mutex<HashMap<i64, usize>>>,
    /// The most one user may hold.
    per_user: usize,
}

impl Places {
    /// `all` places, `per_user` of them at most for one user.
    pub const fn new(all: usize, per_user: usize) -> Self {
        Self {
            all: tokio::sync::Semaphore::const_new(all),
            by_user: std::sync::LazyLock::new(Default::default),
            per_user,
        }
    }

    /// A place for one more request of `user`, if there is one; held until dropped.
    pub fn take(&'static self, user: i64) -> Option<Place> {
        let mut users = self
            .by_user
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if users.get(&user).copied().unwrap_or(0) >= self.per_user {
            return None;
        }
        let permit = self.all.try_acquire().ok()?;
        *users.entry(user).or_default() += 1;
        Some(Place {
            _permit: permit,
            places: self,
            user,
        })
    }
}

/// One request's place, given back when it ends.
pub struct Place {
    _permit: tokio::sync::SemaphorePermit<'static>,
    places: &'static Places,
    user: i64,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut users = self
            .places
            .by_user
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = users.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                users.remove(&self.user);
            }
        }
    }
}
