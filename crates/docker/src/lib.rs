//! Easy Deploy's local adapters on the Docker engine (through bollard):
//! tenant networks, image builds, the local image "registry" and the
//! container runtime behind the built-in edge proxy.

mod builder;
mod dockerignore;
mod engine;
mod registry;
mod runtime;
mod tenants;

pub use builder::DockerBuilder;
pub use dockerignore::DockerIgnore;
pub use engine::connect;
pub use registry::DockerRegistry;
pub use runtime::DockerRuntime;
pub use tenants::DockerTenants;

/// Label naming the app a container or image belongs to.
pub const LABEL_APP: &str = "easydeploy.app";
/// Label naming the deployment that made a container or image.
pub const LABEL_DEPLOYMENT: &str = "easydeploy.deployment";
/// Label naming the tenant that owns a container or network.
pub const LABEL_TENANT: &str = "easydeploy.tenant";
/// Label giving a container's replica number.
pub const LABEL_REPLICA: &str = "easydeploy.replica";
/// Label giving the port a container's app listens on.
pub const LABEL_PORT: &str = "easydeploy.port";
/// Label naming the platform instance (data dir) that manages a container.
pub const LABEL_INSTANCE: &str = "easydeploy.instance";
