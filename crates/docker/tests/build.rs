//! Image builds on the real engine.

mod support;

use easydeploy_core::ports::ImageBuilder;
use easydeploy_core::PipelineFiles;
use easydeploy_docker::DockerBuilder;
use support::*;

#[tokio::test]
async fn builds_the_repositorys_own_dockerfile_and_finds_the_tag() {
    let docker = docker().await;
    let app = app_name("build-own");
    let _cleanup = Cleanup(app.clone());
    let dockerfile = scratch_dockerfile(HTTPD);
    let context = busybox_context(&dockerfile);
    let request = build_request(&app, context.path(), own_pipeline(&dockerfile));
    let builder = DockerBuilder::new(docker.clone());

    assert_eq!(builder.find(&request.tag).await.unwrap(), None);
    let log = Lines::default();
    let image = builder.build(&request, &log).await.unwrap();
    assert_eq!(image.reference, request.tag);
    assert!(image.id.starts_with("sha256:"), "{image:?}");
    let lines = log.all();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Step 1/") && l.ends_with(" : FROM scratch")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("Successfully tagged")),
        "{lines:#?}"
    );
    assert!(lines.iter().all(|l| !l.ends_with('\n')));

    assert_eq!(builder.find(&request.tag).await.unwrap(), Some(image.clone()));
    let inspected = docker.inspect_image(&request.tag).await.unwrap();
    let labels = inspected.config.unwrap().labels.unwrap();
    assert_eq!(labels["easydeploy.app"], app.as_str());
    assert_eq!(labels["easydeploy.deployment"], request.deployment);
}

#[tokio::test]
async fn builds_a_generated_dockerfile_with_extra_files_and_dockerignore() {
    let docker = docker().await;
    let app = app_name("build-gen");
    let _cleanup = Cleanup(app.clone());
    // The context's own files: a stale generated Dockerfile (replaced), a
    // secret (ignored) and a `.git` folder (always left out).
    let context = busybox_context("FROM scratch\nTHIS IS NOT THE DOCKERFILE USED\n");
    write(context.path(), "Dockerfile.easydeploy", "BROKEN");
    write(context.path(), "secret.txt", "s3cret");
    write(context.path(), "sub/cache/x.pyc", "x");
    write(context.path(), ".git/HEAD", "ref: refs/heads/main");
    std::os::unix::fs::symlink("/etc/hostname", context.path().join("link")).unwrap();
    let checks = [
        "test -f /ctx/www/index.html",
        "test \"$(cat /hello.txt)\" = hello",
        "test ! -e /ctx/secret.txt",
        "test ! -e /ctx/sub/cache",
        "test ! -e /ctx/.git",
        "test -L /ctx/link",
    ]
    .join(" && ");
    let dockerfile = format!(
        "FROM scratch\nCOPY busybox /busybox\nCOPY .easydeploy/hello.txt /hello.txt\nCOPY . /ctx\n\
         RUN [\"/busybox\", \"sh\", \"-c\", \"export PATH=/bin; /busybox mkdir /bin && /busybox --install -s /bin && {}\"]\n\
         CMD {HTTPD}\n",
        checks.replace('"', "\\\"")
    );
    let pipeline = PipelineFiles {
        own_dockerfile: false,
        dockerfile,
        dockerignore: "# keep secrets out\nsecret.txt\ncache/\n".into(),
        buildspec: String::new(),
        extra_files: vec![(".easydeploy/hello.txt".into(), b"hello".to_vec())],
        port: easydeploy_core::Port::new(8080),
    };
    let request = build_request(&app, context.path(), pipeline);
    let log = Lines::default();
    let result = DockerBuilder::new(docker.clone()).build(&request, &log).await;
    let image = result.unwrap_or_else(|e| panic!("{e}\n{:#?}", log.all()));
    assert_eq!(image.reference, request.tag);
}

#[tokio::test]
async fn a_failing_step_fails_the_build_with_the_engines_message() {
    let docker = docker().await;
    let app = app_name("build-fail");
    let _cleanup = Cleanup(app.clone());
    let dockerfile = "FROM scratch\nCOPY busybox /busybox\nRUN [\"/busybox\", \"false\"]\n";
    let context = busybox_context(dockerfile);
    let request = build_request(&app, context.path(), own_pipeline(dockerfile));
    let log = Lines::default();
    let builder = DockerBuilder::new(docker.clone());
    let err = builder.build(&request, &log).await.unwrap_err();
    assert!(!err.retryable);
    assert!(
        err.message.starts_with("the image build failed: "),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("returned a non-zero code: 1"),
        "{}",
        err.message
    );
    assert!(
        log.all().iter().any(|l| l.contains("returned a non-zero code")),
        "{:#?}",
        log.all()
    );
    assert_eq!(builder.find(&request.tag).await.unwrap(), None);
}
