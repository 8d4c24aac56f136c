//! [`MongoOptions`]: the settings of a [`MongoUserRepository`](super::MongoUserRepository).

use std::time::Duration;

use super::schema::{IdKind, MongoSchema};

/// Settings of a [`MongoUserRepository`](super::MongoUserRepository): timeouts, the
/// [`MongoSchema`], the [`IdKind`] and whether to create the unique `email` index.
///
/// Values given in the connection string (`connectTimeoutMS`, `serverSelectionTimeoutMS`)
/// take precedence over the connect and server-selection timeouts set here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MongoOptions {
    pub(super) connect_timeout: Duration,
    pub(super) server_selection_timeout: Duration,
    pub(super) operation_timeout: Duration,
    pub(super) schema: MongoSchema,
    pub(super) id_kind: IdKind,
    pub(super) create_indexes: bool,
}

impl MongoOptions {
    /// 2 s (driver default 10 s): a dead server should be a prompt error, not a stall.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
    /// 2 s (driver default 30 s): when no server can be selected, requests fail fast with
    /// [`RepositoryError::Unavailable`](crate::RepositoryError::Unavailable) and are served
    /// from the cache where possible.
    pub const DEFAULT_SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(2);
    /// 5 s: the driver has no socket timeout, so this bounds every call against a server
    /// that accepted the request and then hung.
    pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

    /// Sets the TCP connect timeout.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets how long to wait for a suitable server before failing.
    #[must_use]
    pub fn server_selection_timeout(mut self, timeout: Duration) -> Self {
        self.server_selection_timeout = timeout;
        self
    }

    /// Sets the bound on every repository call, retries included.
    #[must_use]
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Sets the collection and field names (default: [`MongoSchema::default`]).
    #[must_use]
    pub fn schema(mut self, schema: MongoSchema) -> Self {
        self.schema = schema;
        self
    }

    /// Sets how ids are stored in `_id` (default: [`IdKind::Auto`]).
    #[must_use]
    pub fn id_kind(mut self, id_kind: IdKind) -> Self {
        self.id_kind = id_kind;
        self
    }

    /// Whether to create the unique index on the email field at start (default `true`).
    /// An existing index on the same key is never changed, whatever its options.
    #[must_use]
    pub fn create_indexes(mut self, create: bool) -> Self {
        self.create_indexes = create;
        self
    }
}

impl Default for MongoOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            server_selection_timeout: Self::DEFAULT_SERVER_SELECTION_TIMEOUT,
            operation_timeout: Self::DEFAULT_OPERATION_TIMEOUT,
            schema: MongoSchema::default(),
            id_kind: IdKind::default(),
            create_indexes: true,
        }
    }
}
