//! What can stop a rollup run.

#[derive(Debug, thiserror::Error)]
pub enum RollupError {
    /// A binding (D1, R2) call failed.
    #[error("{what}: {source}")]
    Binding { what: &'static str, source: worker::Error },
    /// R2 could not give an archive's bytes.
    #[error("reading archive {key}: {source}")]
    Read { key: String, source: worker::Error },
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

/// What a failure says about the archive it happened on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blame {
    /// Its content: it does not read.
    Archive,
    /// D1 failed while applying it: the archive's data, or D1 itself. Only a
    /// run that applied other archives tells the two apart.
    Store,
    /// Nothing: R2 could not give it, another run wrote first, or the
    /// Worker is misconfigured.
    None,
}

impl RollupError {
    /// What the failure says about the archive, which decides whether one
    /// failing this way run after run is set aside ([`crate::quarantine`]).
    pub fn blame(&self) -> Blame {
        match self {
            RollupError::Archive { .. } => Blame::Archive,
            RollupError::Aggregate(_) | RollupError::Apply { .. } | RollupError::Binding { .. } => Blame::Store,
            RollupError::Read { .. } | RollupError::Conflict { .. } | RollupError::Config(_) => Blame::None,
        }
    }
}
