//! Storage errors.

/// What can go wrong in storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such entity (or not visible in the caller's scope).
    #[error("{entity} {id} not found")]
    NotFound { entity: &'static str, id: String },
    /// A name given without its owner names several things the caller can see (names are
    /// unique per owner only); `candidates` are the `owner/name` forms that are not.
    #[error(
        "{entity} name {name:?} is used by several owners ({}): use owner/name or the id",
        candidates.join(", ")
    )]
    AmbiguousName { entity: &'static str, name: String, candidates: Vec<String> },
    /// A uniqueness or reference rule would be broken.
    #[error("{0}")]
    Conflict(String),
    /// The request contradicts what is stored (e.g. an idempotency key reused with another body).
    #[error("{0}")]
    Unprocessable(String),
    /// The database refused a value as data (e.g. a NUL character in text on PostgreSQL).
    #[error("a value was not acceptable to the database")]
    InvalidValue,
    /// A value read back from the database does not make sense.
    #[error("corrupt {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
    /// The database URL is not one we support.
    #[error("unsupported database URL scheme (use sqlite:// or postgres://)")]
    UnsupportedUrl,
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The database failed or could not be reached.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return StoreError::Conflict("already exists".into());
            }
            if db.is_foreign_key_violation() {
                return StoreError::Conflict("refers to something that does not exist".into());
            }
            // SQLSTATE class 22: data exception, caused by the value, not by the database.
            if db.code().is_some_and(|c| c.starts_with("22")) {
                return StoreError::InvalidValue;
            }
        }
        match e {
            // Reading back what we wrote failed: a bug or a damaged database, not an outage.
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::TypeNotFound { .. }
            | sqlx::Error::ColumnIndexOutOfBounds { .. } => StoreError::corrupt("row", e),
            other => StoreError::Database(other),
        }
    }
}

impl StoreError {
    pub(crate) fn not_found(entity: &'static str, id: &str) -> Self {
        StoreError::NotFound { entity, id: id.to_string() }
    }

    pub(crate) fn corrupt(what: &'static str, detail: impl ToString) -> Self {
        StoreError::Corrupt { what, detail: detail.to_string() }
    }
}
