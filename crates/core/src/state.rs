//! The deployment state machine. A deployment moves through explicit steps;
//! every transition is persisted with its time by the store.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A state a deployment can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    /// Persisted, waiting for a worker.
    Queued,
    /// Ensuring the tenant's isolated identity (network, IAM user...).
    PreparingTenant,
    /// Checking out the repository.
    FetchingSource,
    /// Detecting the framework.
    Detecting,
    /// Writing Dockerfile, .dockerignore and buildspec.yml.
    GeneratingPipeline,
    /// Building the container image.
    Building,
    /// Pushing the image to the registry.
    Pushing,
    /// Starting the new replicas.
    Releasing,
    /// Health-checking the new replicas before they take traffic.
    Verifying,
    /// Serving traffic.
    Live,
    /// Failed at some step; the previous release keeps serving.
    Failed,
    /// Was live, replaced by a newer deployment.
    Superseded,
    /// Was live, replaced by a rollback to an earlier release.
    RolledBack,
    /// Stopped before going live (by a user or by a newer deployment).
    Cancelled,
}

/// The working steps, in pipeline order.
pub const STEPS: [DeploymentState; 8] = [
    DeploymentState::PreparingTenant,
    DeploymentState::FetchingSource,
    DeploymentState::Detecting,
    DeploymentState::GeneratingPipeline,
    DeploymentState::Building,
    DeploymentState::Pushing,
    DeploymentState::Releasing,
    DeploymentState::Verifying,
];

/// A working step of the pipeline (a state in which work is done).
pub type Step = DeploymentState;

impl DeploymentState {
    /// Every state, for parsing and documentation.
    pub const ALL: [DeploymentState; 14] = [
        Self::Queued,
        Self::PreparingTenant,
        Self::FetchingSource,
        Self::Detecting,
        Self::GeneratingPipeline,
        Self::Building,
        Self::Pushing,
        Self::Releasing,
        Self::Verifying,
        Self::Live,
        Self::Failed,
        Self::Superseded,
        Self::RolledBack,
        Self::Cancelled,
    ];

    /// The snake_case name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::PreparingTenant => "preparing_tenant",
            Self::FetchingSource => "fetching_source",
            Self::Detecting => "detecting",
            Self::GeneratingPipeline => "generating_pipeline",
            Self::Building => "building",
            Self::Pushing => "pushing",
            Self::Releasing => "releasing",
            Self::Verifying => "verifying",
            Self::Live => "live",
            Self::Failed => "failed",
            Self::Superseded => "superseded",
            Self::RolledBack => "rolled_back",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// No further transition is possible (live can still be superseded).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Failed | Self::Superseded | Self::RolledBack | Self::Cancelled
        )
    }

    /// A worker is doing this step right now.
    pub fn is_in_flight(self) -> bool {
        STEPS.contains(&self)
    }

    /// The step that follows this one on success.
    pub fn next(self) -> Option<Self> {
        match self {
            Self::Queued => Some(Self::PreparingTenant),
            Self::Verifying => Some(Self::Live),
            s => STEPS
                .iter()
                .position(|x| *x == s)
                .and_then(|i| STEPS.get(i + 1).copied()),
        }
    }

    /// Whether `self → to` is a legal transition.
    pub fn can_become(self, to: Self) -> bool {
        match (self, to) {
            (s, Self::Failed) => s.is_in_flight(),
            (s, Self::Cancelled) => s == Self::Queued || s.is_in_flight(),
            (Self::Live, Self::Superseded | Self::RolledBack) => true,
            (s, t) => s.next() == Some(t),
        }
    }

    /// A short human label for progress output.
    pub fn label(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::PreparingTenant => "preparing tenant",
            Self::FetchingSource => "fetching source",
            Self::Detecting => "detecting framework",
            Self::GeneratingPipeline => "generating pipeline",
            Self::Building => "building image",
            Self::Pushing => "pushing image",
            Self::Releasing => "releasing",
            Self::Verifying => "health-checking",
            Self::Live => "live",
            Self::Failed => "failed",
            Self::Superseded => "superseded",
            Self::RolledBack => "rolled back",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for DeploymentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::DeploymentState as S;
    use super::*;

    #[test]
    fn the_happy_path_walks_every_step_in_order() {
        let mut s = S::Queued;
        let mut seen = vec![s];
        while let Some(n) = s.next() {
            assert!(s.can_become(n));
            s = n;
            seen.push(s);
        }
        assert_eq!(s, S::Live);
        assert_eq!(seen.len(), 10);
        assert_eq!(&seen[1..9], &STEPS);
    }

    #[test]
    fn illegal_transitions_are_refused() {
        assert!(!S::Queued.can_become(S::Building));
        assert!(!S::Live.can_become(S::Failed));
        assert!(!S::Failed.can_become(S::Live));
        assert!(!S::Queued.can_become(S::Failed));
        assert!(S::Queued.can_become(S::Cancelled));
        assert!(S::Building.can_become(S::Failed));
        assert!(S::Live.can_become(S::Superseded));
        assert!(!S::Superseded.can_become(S::Live));
    }

    #[test]
    fn names_round_trip() {
        for s in S::ALL {
            assert_eq!(S::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::String(s.as_str().into())
            );
        }
        assert_eq!(S::parse("nope"), None);
    }
}
