//! An app's settings: where its code is and how it runs.

use crate::framework::Framework;
use crate::{Branch, EnvVar, GitSource, Port, Replicas, RootDir, ShellCommand};
use serde::{Deserialize, Serialize};

/// Everything a user can set on an app; each deployment keeps a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSettings {
    /// Git repository.
    pub source: GitSource,
    /// Branch deployed.
    pub branch: Branch,
    /// Folder of the app inside the repository.
    #[serde(default)]
    pub root: RootDir,
    /// Framework chosen by the user instead of detection.
    #[serde(default)]
    pub framework: Option<Framework>,
    /// Port override.
    #[serde(default)]
    pub port: Option<Port>,
    /// Environment variables.
    #[serde(default)]
    pub env: Vec<EnvVar>,
    /// Build command override.
    #[serde(default)]
    pub build_command: Option<ShellCommand>,
    /// Run command override.
    #[serde(default)]
    pub run_command: Option<ShellCommand>,
    /// Replica count.
    #[serde(default)]
    pub replicas: Replicas,
    /// Health check path.
    #[serde(default = "default_health_path")]
    pub health_path: String,
    /// Seconds a new replica may take to pass its first health check (server default when unset).
    #[serde(default)]
    pub health_grace_secs: Option<u64>,
    /// Milliseconds between health checks (server default when unset).
    #[serde(default)]
    pub health_interval_ms: Option<u64>,
    /// Milliseconds one health check may take (server default when unset).
    #[serde(default)]
    pub health_timeout_ms: Option<u64>,
    /// Consecutive passing checks before a new replica takes traffic (default 1).
    #[serde(default)]
    pub healthy_threshold: Option<u32>,
    /// Consecutive failing checks before a live replica is replaced (default 3).
    #[serde(default)]
    pub unhealthy_threshold: Option<u32>,
    /// Target-tracking autoscaling, when enabled.
    #[serde(default)]
    pub autoscale: Option<Autoscale>,
}

/// Target-tracking autoscaling of an app's replicas.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Autoscale {
    /// Fewest replicas.
    pub min: u32,
    /// Most replicas.
    pub max: u32,
    /// Requests per second each replica should serve.
    pub target_rps: f64,
}

impl Eq for Autoscale {}

impl Autoscale {
    /// Validates bounds and target.
    pub fn new(min: i64, max: i64, target_rps: f64) -> Result<Self, crate::InputError> {
        let bad = |m: String| crate::InputError {
            code: "invalid_autoscale",
            message: m,
        };
        let (min, max) = (
            crate::Replicas::parse(min)?.get(),
            crate::Replicas::parse(max)?.get(),
        );
        if min > max {
            return Err(bad(format!("--min ({min}) must not exceed --max ({max})")));
        }
        if !(target_rps.is_finite() && target_rps > 0.0 && target_rps <= 1_000_000.0) {
            return Err(bad(
                "--target-rps must be a positive number of requests per second".into(),
            ));
        }
        Ok(Self { min, max, target_rps })
    }

    /// Replicas needed to serve `rps` at the target, within bounds.
    pub fn desired(&self, rps: f64) -> u32 {
        let needed = (rps / self.target_rps).ceil();
        (needed.max(0.0) as u32).clamp(self.min, self.max)
    }
}

fn default_health_path() -> String {
    "/".into()
}

impl AppSettings {
    /// Settings for a source with every default.
    pub fn new(source: GitSource, branch: Branch) -> Self {
        Self {
            source,
            branch,
            root: RootDir::default(),
            framework: None,
            port: None,
            env: Vec::new(),
            build_command: None,
            run_command: None,
            replicas: Replicas::default(),
            health_path: default_health_path(),
            health_grace_secs: None,
            health_interval_ms: None,
            health_timeout_ms: None,
            healthy_threshold: None,
            unhealthy_threshold: None,
            autoscale: None,
        }
    }

    /// Sets (or replaces) environment variables by name, keeping order.
    pub fn merge_env(&mut self, vars: Vec<EnvVar>) {
        for var in vars {
            match self.env.iter_mut().find(|v| v.name == var.name) {
                Some(existing) => existing.value = var.value,
                None => self.env.push(var),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autoscale_tracks_the_target_within_bounds() {
        let a = Autoscale::new(1, 4, 10.0).unwrap();
        assert_eq!(a.desired(0.0), 1);
        assert_eq!(a.desired(25.0), 3);
        assert_eq!(a.desired(1000.0), 4);
        assert!(Autoscale::new(3, 2, 1.0).is_err());
        assert!(Autoscale::new(1, 2, 0.0).is_err());
        assert!(Autoscale::new(0, 2, 1.0).is_err());
    }
}
