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
