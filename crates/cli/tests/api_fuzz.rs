//! The API fuzzed from its own OpenAPI document with schemathesis: no
//! answer is a server error, and every answer's status, content type and
//! body match the document. `scripts/setup.sh` installs schemathesis in
//! /opt/easydeploy-schemathesis (or set `EASYDEPLOY_SCHEMATHESIS`);
//! `EASYDEPLOY_FUZZ_EXAMPLES` sets the cases per operation (default 25).

mod support;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_survives_fuzzing_and_matches_its_document() {
    let app = spawn_app().await;
    let token = app.sign_up("fuzzer@example.com").await;
    // An app the fuzzer's user owns, so app routes are reached with a real name too.
    let repo = git_repo(&busybox_app("fuzz"));
    let (status, body) = app
        .call_as(
            &token,
            reqwest::Method::POST,
            "/apps",
            Some(serde_json::json!({"name": "fuzz", "source": path_of(&repo)})),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let program = std::env::var("EASYDEPLOY_SCHEMATHESIS")
        .unwrap_or_else(|_| "/opt/easydeploy-schemathesis/bin/schemathesis".into());
    let examples = std::env::var("EASYDEPLOY_FUZZ_EXAMPLES").unwrap_or_else(|_| "25".into());
    let report = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(&program)
        .current_dir(report.path())
        .args([
            "run",
            &format!("{}/api/v1/openapi.json", app.api),
            "--url",
            &app.api,
            "--header",
            &format!("Authorization: Bearer {token}"),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--max-examples",
            &examples,
            "--request-timeout",
            "60",
            "--phases",
            "examples,coverage,fuzzing",
            // Revoking the fuzzer's own token would end the run; revocation
            // is covered by the accounts tests.
            "--exclude-operation-id",
            "revoke_token",
        ])
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("SCHEMATHESIS_COVERAGE", "1")
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}); run scripts/setup.sh to install schemathesis")
        });
    let text =
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    let summary: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.contains("SUMMARY"))
        .filter(|l| !l.trim().is_empty())
        .collect();
    eprintln!("schemathesis summary:\n{}", summary.join("\n"));
    // The fuzzer may have deployed the app: leave no container behind.
    let (status, _) = app
        .call_as(&token, reqwest::Method::DELETE, "/apps/fuzz", None)
        .await;
    assert!(status == 204 || status == 404, "cleanup: {status}");
    assert!(output.status.success(), "schemathesis found problems:\n{text}");
    // The summary's "N generated, N passed" line.
    let cases: u64 = text
        .lines()
        .find_map(|l| {
            l.trim()
                .split_once(" generated,")
                .and_then(|(n, _)| n.parse().ok())
        })
        .unwrap_or(0);
    assert!(cases > 0, "no test case ran:\n{text}");
    eprintln!("schemathesis ran {cases} cases against the API");
}
