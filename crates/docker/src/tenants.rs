//! Tenants as Docker bridge networks: `easydeploy-<tenant>`.

use crate::engine::{engine_error, is_not_found, status_of, within};
use crate::LABEL_TENANT;
use async_trait::async_trait;
use bollard::network::{CreateNetworkOptions, InspectNetworkOptions};
use bollard::Docker;
use easydeploy_core::ports::{BackendResult, Tenant, TenantHandle, TenantIdentity};
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Gives every tenant its own bridge network, labelled `easydeploy.tenant`.
#[derive(Clone)]
pub struct DockerTenants {
    docker: Docker,
}

impl DockerTenants {
    /// Tenants on the engine behind `docker` (see [`crate::connect`]).
    pub fn new(docker: Docker) -> Self {
        Self { docker }
    }
}

#[async_trait]
impl TenantIdentity for DockerTenants {
    async fn ensure(&self, tenant: &Tenant) -> BackendResult<TenantHandle> {
        let resource = ensure_network(&self.docker, &tenant.id).await?;
        Ok(TenantHandle { resource })
    }
}

/// The name of a tenant's network.
pub(crate) fn network_name(tenant_id: &str) -> String {
    format!("easydeploy-{tenant_id}")
}

/// Creates the tenant's network unless it exists; returns its name.
pub(crate) async fn ensure_network(docker: &Docker, tenant_id: &str) -> BackendResult<String> {
    // The engine does not reliably refuse two networks of the same name
    // created at once, and a duplicate makes the name ambiguous: serialize.
    static LOCK: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();
    let _guard = LOCK.get_or_init(Default::default).lock().await;

    let name = network_name(tenant_id);
    let what = format!("set up the network {name}");
    let inspect = docker.inspect_network(&name, None::<InspectNetworkOptions<String>>);
    match within(&what, CALL_TIMEOUT, inspect).await? {
        Ok(_) => return Ok(name),
        Err(e) if is_not_found(&e) => {}
        // Two processes created it at once: keep one.
        Err(e) if status_of(&e) == Some(400) => {
            remove_duplicates(docker, &name).await;
            return Ok(name);
        }
        Err(e) => return Err(engine_error(&what, e)),
    }
    let options = CreateNetworkOptions {
        name: name.clone(),
        check_duplicate: true,
        driver: "bridge".to_owned(),
        labels: HashMap::from([(LABEL_TENANT.to_owned(), tenant_id.to_owned())]),
        ..Default::default()
    };
    match within(&what, CALL_TIMEOUT, docker.create_network(options)).await? {
        Ok(_) => tracing::info!(network = %name, "created the tenant network"),
        // Created meanwhile by another process.
        Err(e) if status_of(&e) == Some(409) => {}
        Err(e) => return Err(engine_error(&what, e)),
    }
    // Another process (another server on this engine) may have created the
    // same name at the same moment; the engine does not always refuse that.
    remove_duplicates(docker, &name).await;
    Ok(name)
}

/// When several networks carry `name`, removes all but the one every
/// process picks: the earliest created (then the smallest id).
async fn remove_duplicates(docker: &Docker, name: &str) {
    let options = bollard::network::ListNetworksOptions {
        filters: HashMap::from([("name".to_owned(), vec![name.to_owned()])]),
    };
    let Ok(Ok(mut networks)) = tokio::time::timeout(CALL_TIMEOUT, docker.list_networks(Some(options))).await
    else {
        return;
    };
    networks.retain(|n| n.name.as_deref() == Some(name));
    networks.sort_by(|a, b| (&a.created, &a.id).cmp(&(&b.created, &b.id)));
    for extra in networks.iter().skip(1).filter_map(|n| n.id.as_deref()) {
        match tokio::time::timeout(CALL_TIMEOUT, docker.remove_network(extra)).await {
            Ok(Ok(())) => tracing::info!(network = %name, id = %extra, "removed a duplicate tenant network"),
            _ => {
                tracing::warn!(network = %name, id = %extra, "a duplicate tenant network could not be removed")
            }
        }
    }
}

/// Removes the tenant's network once no container uses it (its last app
/// was destroyed), so networks do not pile up; the next deploy makes it
/// again. A network still in use, or already gone, is left as it is.
pub(crate) async fn remove_network_if_unused(docker: &Docker, tenant_id: &str) {
    let name = network_name(tenant_id);
    let _network_change = crate::engine::network_change().await;
    let inspect = docker.inspect_network(&name, None::<InspectNetworkOptions<String>>);
    let in_use = match tokio::time::timeout(CALL_TIMEOUT, inspect).await {
        Ok(Ok(network)) => network.containers.is_some_and(|c| !c.is_empty()),
        _ => return,
    };
    if in_use {
        return;
    }
    match tokio::time::timeout(CALL_TIMEOUT, docker.remove_network(&name)).await {
        Ok(Ok(())) => tracing::info!(network = %name, "removed the tenant network (no app left)"),
        Ok(Err(e)) => tracing::debug!(network = %name, error = %e, "tenant network kept"),
        Err(_) => tracing::debug!(network = %name, "removing the tenant network timed out"),
    }
}
