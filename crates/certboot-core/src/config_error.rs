//! A configuration problem: one environment variable absent, invalid, or naming a file that cannot
//! be read. Both programs report it before any API call or file write, as exit code 2
//! ([`crate::exit_code::CONFIG`]).

/// A configuration problem, reported before any API call or file write (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is absent or empty.
    #[error("{var} is not set: {hint}")]
    Missing {
        var: &'static str,
        hint: &'static str,
    },
    /// A variable holds a value certboot cannot use.
    #[error("{var}={value:?} is invalid: {reason}; accepted: {accepted}")]
    Invalid {
        var: &'static str,
        value: String,
        reason: String,
        accepted: String,
    },
    /// A variable names a file certboot cannot read.
    #[error("{var}={path:?} is invalid: cannot read it ({source}); accepted: {accepted}")]
    Unreadable {
        var: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
        accepted: &'static str,
    },
}

impl ConfigError {
    pub fn invalid(
        var: &'static str,
        value: &str,
        reason: impl Into<String>,
        accepted: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            var,
            value: value.to_string(),
            reason: reason.into(),
            accepted: accepted.into(),
        }
    }
}
