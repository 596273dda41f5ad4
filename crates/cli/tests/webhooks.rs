//! Push to deploy: signed webhook deliveries deploy exactly the pushed
//! commit; bad signatures, replays, other branches and tags do nothing.

mod support;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::time::Duration;
use support::*;

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn deliver(
    server: &TestServer,
    url: &str,
    event: &str,
    delivery: &str,
    body: &Value,
    secret: Option<&str>,
) -> (u16, Value) {
    let body = serde_json::to_vec(body).unwrap();
    let signature = secret.map(|secret| sign(secret, &body));
    let mut request = server
        .http
        .post(url)
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery);
    if let Some(signature) = signature {
        request = request.header("x-hub-signature-256", signature);
    }
    let response = request.body(body).send().await.unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

fn push(reference: &str, after: &str, repo: &str) -> Value {
    json!({
        "ref": reference,
        "before": "0000000000000000000000000000000000000000",
        "after": after,
        "deleted": false,
        "repository": {"full_name": "me/shop", "clone_url": repo, "html_url": repo},
        "pusher": {"name": "me"},
        "head_commit": {"id": after, "message": "change"}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_signed_push_deploys_the_pushed_commit_and_nothing_else_does() {
    let server = spawn_app().await;
    let app = unique("hook");
    let repo = git_repo(&busybox_app("before the push"));
    let path = repo.path().to_str().unwrap().to_owned();
    assert!(server.cli(&["deploy", &path, "--name", &app]).await.success);
    let (status, hook) = server.get(&format!("/apps/{app}/webhook")).await;
    assert_eq!(status, 200, "{hook}");
    let (url, secret) = (
        hook["url"].as_str().unwrap().to_owned(),
        hook["secret"].as_str().unwrap().to_owned(),
    );
    assert!(url.ends_with(&format!("/webhooks/github?app={app}")), "{url}");
    assert_eq!(secret.len(), 64);
    let count = |v: &Value| v.as_array().unwrap().len();
    let deployments = || async { server.get(&format!("/apps/{app}/deployments")).await.1 };

    let sha = commit(
        repo.path(),
        &[("www/index.html", b"after the push".to_vec())],
        "change the page",
    );
    // One more commit after it: the webhook must deploy the pushed commit, not the branch head.
    commit(
        repo.path(),
        &[("www/index.html", b"not pushed yet".to_vec())],
        "later",
    );
    let body = push("refs/heads/main", &sha, &path);

    let (status, _) = deliver(&server, &url, "push", "d-bad", &body, Some("wrong secret")).await;
    assert_eq!(status, 401);
    let (status, _) = deliver(&server, &url, "push", "d-none", &body, None).await;
    assert_eq!(status, 401);
    assert_eq!(count(&deployments().await), 1, "a bad signature deploys nothing");

    let (status, answer) = deliver(&server, &url, "push", "d-1", &body, Some(&secret)).await;
    assert_eq!(
        (status, answer["result"].as_str()),
        (202, Some("deployed")),
        "{answer}"
    );
    let id = answer["deployments"][0]["id"].as_str().unwrap().to_owned();
    let d = server.wait_deployment(&id).await;
    assert_eq!(
        (d["state"].as_str(), d["commit"].as_str()),
        (Some("live"), Some(sha.as_str())),
        "{d}"
    );
    assert_eq!(server.fetch(&app, "/").await, (200, "after the push".into()));

    // A replayed delivery is handled once.
    let (status, answer) = deliver(&server, &url, "push", "d-1", &body, Some(&secret)).await;
    assert_eq!((status, answer["result"].as_str()), (200, Some("duplicate")));
    // Other branches, tags and other events are acknowledged and ignored.
    for (event, body) in [
        ("push", push("refs/heads/feature", &sha, &path)),
        ("push", push("refs/tags/v1.0", &sha, &path)),
        ("issues", json!({"action": "opened"})),
    ] {
        let (status, answer) = deliver(
            &server,
            &url,
            event,
            &format!("d-{event}-{}", body["ref"]),
            &body,
            Some(&secret),
        )
        .await;
        assert_eq!(
            (status, answer["result"].as_str()),
            (202, Some("ignored")),
            "{answer}"
        );
    }
    let ping = json!({"zen": "Design for failure.", "hook_id": 1});
    let (status, answer) = deliver(&server, &url, "ping", "d-ping", &ping, Some(&secret)).await;
    assert_eq!((status, answer["result"].as_str()), (200, Some("pong")));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        count(&deployments().await),
        2,
        "exactly one deployment came from the pushes"
    );

    // Without ?app=, the pushed repository's apps are found by URL.
    let head = commit(
        repo.path(),
        &[("www/index.html", b"found by url".to_vec())],
        "third",
    );
    let body = push("refs/heads/main", &head, &format!("{path}/"));
    let generic = url.split('?').next().unwrap().to_owned();
    let (status, answer) = deliver(&server, &generic, "push", "d-2", &body, Some(&secret)).await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["deployments"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(server.wait_deployment(&id).await["state"], "live");
    assert_eq!(server.fetch(&app, "/").await, (200, "found by url".into()));
    server.cli(&["destroy", &app]).await;
}
