//! Connecting to the engine and turning its errors into [`BackendError`]s.

use bollard::errors::Error;
use bollard::Docker;
use easydeploy_core::ports::{BackendError, BackendResult};
use std::time::Duration;

/// Timeout of one ordinary engine request (not of streamed responses).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Serializes the changes of container network membership this process
/// makes (starting, disconnecting and removing containers).
///
/// Docker 20.10 (Debian 12's `docker.io`) deadlocks its network controller
/// when two containers leave the same network at the same moment: one holds
/// the network's lock and waits for the controller's, the other the reverse
/// (moby/libnetwork#2679, fixed in 20.10.27 and 23.0). The engine then stops
/// answering for good. Removing or stopping replicas together (a destroy, a
/// promotion) is how that happens, so each such change takes this lock: they
/// then happen one request after another, never within the same instant.
pub(crate) async fn network_change() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// Image builds in progress in this process hold it shared; removing
/// images with their untagged parents takes it alone.
///
/// The classic builder reuses cached intermediate images (the untagged
/// parents of other images) step by step: a parent removed between the
/// step that found it in the cache and the next one fails that build
/// ("No such image"). So pruning after a release happens only when no
/// build runs (otherwise it is skipped, and the next release's prune
/// removes what it left), and a destroyed app's images take their parents
/// with them only then.
pub(crate) static BUILDS: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// What to do about an engine that does not answer.
const STUCK: &str = "(if this keeps happening the engine may be stuck: restart it, \
                     e.g. `sudo systemctl restart docker` or `sudo scripts/setup.sh`)";

/// Connects to the local engine (`DOCKER_HOST` or the default socket) and
/// negotiates the API version, so that older engines (API 1.41) are accepted.
pub async fn connect() -> BackendResult<Docker> {
    let docker = Docker::connect_with_local_defaults()
        .map_err(|e| engine_error("connect to the Docker engine", e))?
        .with_timeout(REQUEST_TIMEOUT);
    docker
        .negotiate_version()
        .await
        .map_err(|e| engine_error("connect to the Docker engine", e))
}

/// Status code of an engine answer, if the error is one.
pub(crate) fn status_of(err: &Error) -> Option<u16> {
    match err {
        Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// Whether the engine said "no such object".
pub(crate) fn is_not_found(err: &Error) -> bool {
    status_of(err) == Some(404)
}

/// Whether the engine refused because a container's network does not exist.
pub(crate) fn is_missing_network(err: &Error) -> bool {
    matches!(err, Error::DockerResponseServerError { status_code: 404, message }
        if message.starts_with("network ") && message.trim_end().ends_with(" not found"))
}

/// Turns an engine error met while trying to `what` into a sentence; the
/// engine being unreachable or slow is transient, its refusals permanent.
pub(crate) fn engine_error(what: &str, err: Error) -> BackendError {
    match err {
        Error::DockerResponseServerError { status_code, message } => {
            let message = message.trim();
            let sentence = format!("could not {what}: the Docker engine answered {status_code}: {message}");
            if status_code == 503 || status_code == 429 {
                BackendError::transient(sentence)
            } else {
                BackendError::permanent(sentence)
            }
        }
        Error::DockerStreamError { error } => {
            BackendError::permanent(format!("could not {what}: {}", error.trim()))
        }
        Error::RequestTimeoutError => BackendError::transient(format!(
            "could not {what}: the Docker engine did not answer in time {STUCK}"
        )),
        Error::SocketNotFoundError(path) => BackendError::transient(format!(
            "could not {what}: the Docker engine is unreachable (no socket at {path}); is dockerd running?"
        )),
        Error::HyperLegacyError { .. } | Error::HyperResponseError { .. } | Error::IOError { .. } => {
            BackendError::transient(format!(
                "could not {what}: the Docker engine is unreachable ({err})"
            ))
        }
        other => BackendError::permanent(format!("could not {what}: {other}")),
    }
}

/// Runs an engine call with a bound on its duration; the engine's own
/// error is left to the caller (to tolerate "not found" and the like).
pub(crate) async fn within<T>(
    what: &str,
    limit: Duration,
    call: impl std::future::Future<Output = Result<T, Error>>,
) -> BackendResult<Result<T, Error>> {
    tokio::time::timeout(limit, call).await.map_err(|_| {
        BackendError::transient(format!(
            "could not {what}: the Docker engine did not answer within {}s {STUCK}",
            limit.as_secs()
        ))
    })
}

/// Runs an engine call with a bound on its duration.
pub(crate) async fn bounded<T>(
    what: &str,
    limit: Duration,
    call: impl std::future::Future<Output = Result<T, Error>>,
) -> BackendResult<T> {
    within(what, limit, call)
        .await?
        .map_err(|e| engine_error(what, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(status_code: u16, message: &str) -> Error {
        Error::DockerResponseServerError {
            status_code,
            message: message.to_owned(),
        }
    }

    #[test]
    fn a_missing_network_is_told_apart_from_other_refusals() {
        assert!(is_missing_network(&refusal(
            404,
            "network easydeploy-acme not found"
        )));
        assert!(!is_missing_network(&refusal(404, "No such container: ed-shop-1")));
        assert!(!is_missing_network(&refusal(
            409,
            "network easydeploy-acme not found"
        )));
    }

    #[tokio::test]
    async fn an_engine_that_does_not_answer_is_a_transient_error_saying_what_to_do() {
        let call = std::future::pending::<Result<(), Error>>();
        let error = within("start the container x", Duration::from_millis(10), call)
            .await
            .unwrap_err();
        assert!(error.retryable, "{error}");
        let text = error.to_string();
        assert!(
            text.starts_with("could not start the container x: the Docker engine did not answer"),
            "{text}"
        );
        assert!(text.contains("restart it"), "{text}");
    }
}
