//! The typed error of an operation's remote steps. The runner decides what to do with a
//! failed step by its kind, not by its message: leave the operation pending for the current
//! leader (fenced, stopped), attempt it again (a node could not be reached), or commit the
//! failure (a command ran and failed). The message of `Unreachable` and `Failed` is exactly
//! what `/queue/{id}` reports.

use crate::executor::ExecError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// A verb was refused because leadership of the operation's term could not be
    /// confirmed, here or by a node's guard: nothing is committed, the current leader
    /// resumes the operation.
    #[error("fenced: {0}")]
    Fenced(String),
    /// This replica stopped acting for the operation (leadership lost, a result not
    /// committed, or what the nodes did cannot be known yet): left pending, resumed.
    #[error("stopped: the current leader resumes the operation")]
    Stopped,
    /// A verb could not reach its node: the operation is worth another attempt.
    #[error("{0}")]
    Unreachable(String),
    /// A command ran and failed, or a check refused: it would fail the same way again.
    #[error("{0}")]
    Failed(String),
}

impl StepError {
    /// Whether the operation is left, uncommitted, to the current leader.
    pub fn leaves_pending(&self) -> bool {
        matches!(self, StepError::Fenced(_) | StepError::Stopped)
    }

    /// The same failure, judged by whether some verb of the attempt could not reach its
    /// node (the fence's record, which also sees errors a step handled itself).
    pub fn classify(self, unreachable: bool) -> StepError {
        match self {
            StepError::Unreachable(m) | StepError::Failed(m) if unreachable => StepError::Unreachable(m),
            StepError::Unreachable(m) | StepError::Failed(m) => StepError::Failed(m),
            other => other,
        }
    }
}

impl From<ExecError> for StepError {
    fn from(e: ExecError) -> StepError {
        match e {
            ExecError::Fenced(why) => StepError::Fenced(why),
            e @ ExecError::Unreachable { .. } => StepError::Unreachable(e.to_string()),
            e => StepError::Failed(e.to_string()),
        }
    }
}

/// A refusal or failure worded by the step itself.
impl From<String> for StepError {
    fn from(m: String) -> StepError {
        StepError::Failed(m)
    }
}

impl From<&str> for StepError {
    fn from(m: &str) -> StepError {
        StepError::Failed(m.to_string())
    }
}

pub type StepResult<T> = Result<T, StepError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_the_executor_s_and_the_kinds_decide() {
        let u: StepError = ExecError::Unreachable {
            host: "h".into(),
            msg: "down".into(),
        }
        .into();
        assert_eq!(u.to_string(), "Unable to reach host h: down");
        assert!(!u.leaves_pending());
        let f: StepError = ExecError::Fenced("old term".into()).into();
        assert!(f.leaves_pending());
        assert!(StepError::Stopped.leaves_pending());
        assert_eq!(
            StepError::Failed("x".into()).classify(true),
            StepError::Unreachable("x".into())
        );
        assert_eq!(
            u.classify(false),
            StepError::Failed("Unable to reach host h: down".into())
        );
        assert_eq!(StepError::Stopped.classify(true), StepError::Stopped);
    }
}
