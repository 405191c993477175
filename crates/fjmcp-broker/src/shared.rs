//! [`Shared`]: how a handler state stays cheap to clone.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A handler state. Axum clones the router's state for every request and
/// hands each handler and middleware its part, cloned again; behind one `Arc`,
/// each of those clones is one reference count however much the state holds.
pub struct Shared<T>(Arc<T>);

impl<T> Shared<T> {
    pub(crate) fn new(contents: T) -> Self {
        Shared(Arc::new(contents))
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: fmt::Debug> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
