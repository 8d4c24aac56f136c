//! [`MongoUserRepository`]: users and roles in MongoDB, on the official driver.
//!
//! Documents are read as raw BSON and decoded one by one, so a document that does not fit
//! the record type is reported as [`RepositoryError::Corrupt`](crate::RepositoryError::Corrupt)
//! naming its `_id`, and never fails a batch anonymously or panics.
//!
//! Adopters' databases are read as they are: `_id`s may be ObjectIds or strings, collections
//! and fields may have other names, and writes `$set` only the fields the record type owns
//! (see [`schema`] for the rules, [`MongoOptions`] for the settings).
//!
//! # Change feed
//! The repository is a [`ChangeFeed`](crate::ChangeFeed) on a change stream of its database,
//! filtered to the users and roles collections (inserts, updates, replaces and deletes by
//! document key; drops, renames and a dropped database as
//! [`Change::Everything`](crate::Change::Everything)). It needs a replica set (a single-node
//! one will do). A resume point holds the server's resume token *and* the server process it
//! came from (`hello`'s `topologyVersion.processId`): MongoDB refuses a token whose history
//! was pruned (`ChangeStreamHistoryLost`), but a server that restarted without its oplog —
//! SecantusDB in memory, say — may accept an old token and silently skip everything up to
//! its position. So a point from another process is
//! [`FeedError::HistoryLost`](crate::FeedError::HistoryLost), and a live stream re-checks the
//! process every second: the driver resumes a broken stream on its own, possibly on a
//! restarted server. This is conservative: a failover or a restart of a server that kept
//! its oplog also counts as a lost history, which costs a full invalidation, never a missed
//! change. Documents are named by string `_id`; ObjectId `_id`s (as hex) only with
//! [`IdKind::ObjectId`] for now.
//!
//! # Starting without the server
//! Connecting never needs the server: the driver's client connects lazily, so a
//! repository built while MongoDB is down answers
//! [`RepositoryError::Unavailable`](crate::RepositoryError::Unavailable) per call until it is
//! back. The unique `email` index is then created later: in the background after the first
//! call the server answers, and before the first write (a user is never written without it).
//! [`UserRepository::ping`](crate::UserRepository::ping) is the `ping` command.

mod feed;
mod options;
mod repository;
pub mod schema;

pub use feed::{FEED_AWAIT, SERVER_CHECK_INTERVAL};
pub use options::MongoOptions;
pub use repository::MongoUserRepository;
pub use schema::{IdKind, MongoSchema, ROLES_COLLECTION, USERS_COLLECTION};
