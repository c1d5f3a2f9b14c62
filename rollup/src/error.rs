//! What can stop a rollup run.

#[derive(Debug, thiserror::Error)]
pub enum RollupError {
    /// A binding (D1, R2) call failed.
    #[error("{what}: {source}")]
    Binding { what: &'static str, source: worker::Error },
    /// An archive could not be read; it is left for the next run.
    #[error("archive {key}: {source}")]
    Archive { key: String, source: proto::archive::ArchiveError },
    /// A stored aggregate could not be read back.
    #[error(transparent)]
    Aggregate(#[from] proto::aggregate::AggregateError),
    /// Another run changed the same rows first; this archive is retried later.
    #[error("archive {key} was not applied: a concurrent writer got there first ({reason})")]
    Conflict { key: String, reason: String },
    /// D1 refused a chunk's transaction.
    #[error("archive {key} was not applied: {reason}")]
    Apply { key: String, reason: String },
    /// A var is not a valid value.
    #[error("rollup is misconfigured: {0}")]
    Config(String),
}

/// Adds which binding call failed to a `worker::Error`.
pub trait Context<T> {
    fn during(self, what: &'static str) -> Result<T, RollupError>;
}

impl<T> Context<T> for worker::Result<T> {
    fn during(self, what: &'static str) -> Result<T, RollupError> {
        self.map_err(|source| RollupError::Binding { what, source })
    }
}

impl RollupError {
    /// Whether the failure may lie in the archive itself, so that an
    /// archive failing this way run after run is set aside
    /// ([`crate::quarantine`]). A binding that fails, a concurrent writer
    /// or a misconfiguration says nothing about the archive.
    pub fn may_be_the_archive(&self) -> bool {
        matches!(self, RollupError::Archive { .. } | RollupError::Aggregate(_) | RollupError::Apply { .. })
    }
}
