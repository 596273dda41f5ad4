//! Easy Deploy's domain: validated names and inputs, the deployment state
//! machine, the framework catalog with detection and pipeline templates, and
//! the port traits every backend (Docker, AWS) implements.

pub mod app;
pub mod framework;
pub mod inputs;
pub mod pipeline;
pub mod ports;
pub mod state;

pub use app::{AppSettings, Autoscale};
pub use framework::{detect, Detection, Framework, FrameworkDefaults};
pub use inputs::{AppName, Branch, EnvVar, GitSource, InputError, Port, Replicas, RootDir, ShellCommand};
pub use pipeline::{BaseImages, PipelineFiles, PipelineOptions};
pub use state::{DeploymentState, Step};
