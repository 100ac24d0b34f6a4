//! The actor runtime: one [`ProfileActor`] per messaging profile, routed by
//! the [`Dispatcher`].
//!
//! - [`profile`]: the actor, its messages, and the mailbox [`Ticket`].
//! - [`dispatcher`]: arbiters, the route table, bounded mailboxes.

pub mod dispatcher;
pub mod profile;

pub use dispatcher::{settle, DispatchError, Dispatcher, DispatcherConfig};
pub use profile::{ActorEnv, Panicked, ProfileActor, Ticket};
