//! Detection: which framework a checkout uses, with the evidence and the
//! defaults resolved for this repository. Reads files only; never executes.

use super::catalog::{Framework, FrameworkDefaults};
use crate::RootDir;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Largest manifest file read during detection.
const MAX_MANIFEST: u64 = 1024 * 1024;

/// Facts about the repository that shape the generated pipeline.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RepoFacts {
    /// Python dependency manifest in use: `requirements.txt`, `pyproject.toml` or `Pipfile`.
    pub python_manifest: Option<String>,
    /// Python packages the run command needs that the app does not list.
    pub python_extra_packages: Vec<String>,
    /// Node lock file present: `package-lock.json`, `yarn.lock` or `pnpm-lock.yaml`.
    pub node_lockfile: Option<String>,
    /// Java build tool: `maven` or `gradle`.
    pub java_build: Option<String>,
    /// The repository ships a build tool wrapper (`mvnw`, `gradlew`).
    pub java_wrapper: bool,
    /// The repository's own Dockerfile.
    pub dockerfile: Option<String>,
    /// The repository's own .dockerignore.
    pub dockerignore: Option<String>,
}

/// What detection found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Detection {
    /// The framework.
    pub framework: Framework,
    /// Why, e.g. `requirements.txt: flask`.
    pub evidence: String,
    /// Defaults resolved for this repository (entry point, commands, port).
    pub defaults: FrameworkDefaults,
    /// Facts used to generate the pipeline.
    pub facts: RepoFacts,
}

/// Why detection could not decide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DetectError {
    /// The root folder is not in the checkout.
    #[error("the root folder '{0}' does not exist in the repository")]
    RootMissing(String),
    /// The root folder resolves (through a symlink) outside the checkout.
    #[error("the root folder '{0}' points outside the repository")]
    RootOutside(String),
    /// Nothing known was found.
    #[error("could not detect the framework in {0}: no Dockerfile, package.json with a known framework, requirements.txt, pyproject.toml, Pipfile, pom.xml, build.gradle, composer.json or index.html; pass --framework to choose one")]
    NotDetected(String),
    /// The framework chosen by the user does not fit the files.
    #[error("{0}")]
    Mismatch(String),
}

impl DetectError {
    /// Stable code for API clients.
    pub fn code(&self) -> &'static str {
        match self {
            Self::RootMissing(_) => "root_not_found",
            Self::RootOutside(_) => "invalid_root",
            Self::NotDetected(_) => "framework_not_detected",
            Self::Mismatch(_) => "framework_mismatch",
        }
    }
}

/// Read access to the files of an app's folder, on disk or fetched from a
/// git host: detection needs nothing else.
pub trait RepoFiles {
    /// Text of a regular file (path relative to the app's folder), when it
    /// exists, is UTF-8 and at most 1 MiB.
    fn read(&self, path: &str) -> Option<String>;
    /// Whether a regular file exists.
    fn has(&self, path: &str) -> bool;
    /// Names of the app folder's sub-folders.
    fn folders(&self) -> Vec<String>;
}

/// Files whose content detection reads (relative to the app's folder); any
/// other file only matters by its presence.
pub const MANIFESTS: &[&str] = &[
    "Dockerfile",
    ".dockerignore",
    "requirements.txt",
    "pyproject.toml",
    "Pipfile",
    "package.json",
    "pom.xml",
    "build.gradle",
    "build.gradle.kts",
    "composer.json",
];

/// The files of the app's folder on disk, read safely (regular files only, size-capped).
struct Dir {
    path: PathBuf,
}

impl RepoFiles for Dir {
    fn read(&self, name: &str) -> Option<String> {
        let path = self.path.join(name);
        let meta = std::fs::symlink_metadata(&path).ok()?;
        if !meta.is_file() || meta.len() > MAX_MANIFEST {
            return None;
        }
        std::fs::read_to_string(path).ok()
    }
    fn has(&self, name: &str) -> bool {
        std::fs::symlink_metadata(self.path.join(name))
            .map(|m| m.is_file())
            .unwrap_or(false)
    }
    fn folders(&self) -> Vec<String> {
        std::fs::read_dir(&self.path)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()
    }
}

/// An app folder's files held in memory (e.g. read through a git host's
/// API): paths relative to the folder, with their text when it was fetched.
#[derive(Debug, Clone, Default)]
pub struct MemoryFiles {
    files: std::collections::BTreeMap<String, Option<String>>,
    folders: BTreeSet<String>,
}

impl MemoryFiles {
    /// No files.
    pub fn new() -> Self {
        Self::default()
    }
    /// Records that a file exists, with its text when known.
    pub fn add_file(&mut self, path: &str, text: Option<String>) {
        let text = text.filter(|t| t.len() as u64 <= MAX_MANIFEST);
        self.files.insert(path.to_owned(), text);
    }
    /// Records a sub-folder of the app's folder.
    pub fn add_folder(&mut self, name: &str) {
        self.folders.insert(name.to_owned());
    }
}

impl RepoFiles for MemoryFiles {
    fn read(&self, path: &str) -> Option<String> {
        self.files.get(path).cloned().flatten()
    }
    fn has(&self, path: &str) -> bool {
        self.files.contains_key(path)
    }
    fn folders(&self) -> Vec<String> {
        self.folders.iter().cloned().collect()
    }
}

fn first_of<'a>(dir: &dyn RepoFiles, names: &[&'a str]) -> Option<&'a str> {
    names.iter().copied().find(|n| dir.has(n))
}

/// Detects the framework of the app in `root` below `checkout`; with
/// `forced`, uses that framework and only gathers the facts.
pub fn detect(checkout: &Path, root: &RootDir, forced: Option<Framework>) -> Result<Detection, DetectError> {
    let dir = app_dir(checkout, root)?;
    detect_files(&dir, root, forced)
}

/// Detects the framework from the files of the app's folder (`root` names
/// it in messages); with `forced`, uses that framework and only gathers the facts.
pub fn detect_files(
    dir: &dyn RepoFiles,
    root: &RootDir,
    forced: Option<Framework>,
) -> Result<Detection, DetectError> {
    let facts = gather_facts(dir);
    let python = python_packages(dir);
    let node = NodeManifest::read(dir);

    let found = match forced {
        Some(framework) => {
            if framework == Framework::Dockerfile && facts.dockerfile.is_none() {
                return Err(DetectError::Mismatch(
                    "--framework dockerfile was chosen but the root folder has no Dockerfile".into(),
                ));
            }
            Some((framework, format!("chosen with --framework {framework}")))
        }
        None => detect_framework(dir, &facts, &python, &node),
    };
    let Some((framework, evidence)) = found else {
        let shown = if root.is_root() {
            "the repository root".to_owned()
        } else {
            format!("'{root}'")
        };
        return Err(DetectError::NotDetected(shown));
    };
    let mut facts = facts;
    let defaults = resolve_defaults(framework, dir, &python, &node, &mut facts);
    Ok(Detection {
        framework,
        evidence,
        defaults,
        facts,
    })
}

fn app_dir(checkout: &Path, root: &RootDir) -> Result<Dir, DetectError> {
    let top = checkout
        .canonicalize()
        .map_err(|_| DetectError::RootMissing(root.to_string()))?;
    let path = root
        .join_onto(&top)
        .canonicalize()
        .map_err(|_| DetectError::RootMissing(root.to_string()))?;
    if !path.starts_with(&top) {
        return Err(DetectError::RootOutside(root.to_string()));
    }
    if !path.is_dir() {
        return Err(DetectError::RootMissing(root.to_string()));
    }
    Ok(Dir { path })
}

fn gather_facts(dir: &dyn RepoFiles) -> RepoFacts {
    let java_build = if dir.has("pom.xml") {
        Some("maven".to_owned())
    } else if dir.has("build.gradle") || dir.has("build.gradle.kts") {
        Some("gradle".to_owned())
    } else {
        None
    };
    let java_wrapper = match java_build.as_deref() {
        Some("maven") => dir.has("mvnw"),
        Some(_) => dir.has("gradlew"),
        None => false,
    };
    RepoFacts {
        python_manifest: first_of(dir, &["requirements.txt", "pyproject.toml", "Pipfile"]).map(str::to_owned),
        python_extra_packages: Vec::new(),
        node_lockfile: first_of(dir, &["package-lock.json", "yarn.lock", "pnpm-lock.yaml"])
            .map(str::to_owned),
        java_build,
        java_wrapper,
        dockerfile: dir.read("Dockerfile"),
        dockerignore: dir.read(".dockerignore"),
    }
}

/// Python packages the app depends on, lowercased, with the manifest named.
struct PythonPackages {
    manifest: Option<&'static str>,
    names: BTreeSet<String>,
}

fn python_packages(dir: &dyn RepoFiles) -> PythonPackages {
    let mut names = BTreeSet::new();
    let mut manifest = None;
    if let Some(text) = dir.read("requirements.txt") {
        manifest = Some("requirements.txt");
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() || line.starts_with('-') {
                continue;
            }
            names.insert(requirement_name(line));
        }
    } else if let Some(text) = dir.read("pyproject.toml") {
        manifest = Some("pyproject.toml");
        if let Ok(doc) = text.parse::<toml::Table>() {
            let deps = doc
                .get("project")
                .and_then(|p| p.get("dependencies"))
                .and_then(|d| d.as_array());
            for dep in deps.into_iter().flatten().filter_map(|d| d.as_str()) {
                names.insert(requirement_name(dep));
            }
            let poetry = doc
                .get("tool")
                .and_then(|t| t.get("poetry"))
                .and_then(|p| p.get("dependencies"))
                .and_then(|d| d.as_table());
            names.extend(
                poetry
                    .into_iter()
                    .flat_map(|t| t.keys())
                    .map(|k| k.to_ascii_lowercase()),
            );
        }
    } else if let Some(text) = dir.read("Pipfile") {
        manifest = Some("Pipfile");
        if let Ok(doc) = text.parse::<toml::Table>() {
            let packages = doc.get("packages").and_then(|p| p.as_table());
            names.extend(
                packages
                    .into_iter()
                    .flat_map(|t| t.keys())
                    .map(|k| k.to_ascii_lowercase()),
            );
        }
    }
    PythonPackages { manifest, names }
}

/// `Flask[async]>=2.0 ; python_version>"3"` → `flask`.
fn requirement_name(spec: &str) -> String {
    spec.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
        .replace('_', "-")
}

/// The parts of package.json detection needs.
#[derive(Default)]
struct NodeManifest {
    present: bool,
    deps: BTreeSet<String>,
    main: Option<String>,
    has_start: bool,
    has_build: bool,
}

impl NodeManifest {
    fn read(dir: &dyn RepoFiles) -> Self {
        let Some(text) = dir.read("package.json") else {
            return Self::default();
        };
        let Ok(doc) = serde_json::from_str::<serde_json::Value>(&text) else {
            return Self {
                present: true,
                ..Self::default()
            };
        };
        let mut deps = BTreeSet::new();
        for key in ["dependencies", "devDependencies"] {
            if let Some(map) = doc.get(key).and_then(|d| d.as_object()) {
                deps.extend(map.keys().cloned());
            }
        }
        let script = |name: &str| {
            doc.get("scripts")
                .and_then(|s| s.get(name))
                .is_some_and(|s| s.is_string())
        };
        Self {
            present: true,
            deps,
            main: doc.get("main").and_then(|m| m.as_str()).map(str::to_owned),
            has_start: script("start"),
            has_build: script("build"),
        }
    }
}

fn detect_framework(
    dir: &dyn RepoFiles,
    facts: &RepoFacts,
    python: &PythonPackages,
    node: &NodeManifest,
) -> Option<(Framework, String)> {
    if facts.dockerfile.is_some() {
        return Some((Framework::Dockerfile, "Dockerfile".into()));
    }
    if node.present {
        let by_dep = [
            (Framework::Next, "next"),
            (Framework::Nestjs, "@nestjs/core"),
            (Framework::Angular, "@angular/core"),
            (Framework::Vue, "vue"),
            (Framework::React, "react"),
            (Framework::Express, "express"),
        ];
        if let Some((framework, dep)) = by_dep.iter().find(|(_, dep)| node.deps.contains(*dep)) {
            return Some((*framework, format!("package.json: {dep}")));
        }
        if node.has_start {
            return Some((
                Framework::Express,
                "package.json: start script (generic Node.js server)".into(),
            ));
        }
    }
    if let Some(manifest) = python.manifest {
        for (framework, package) in [
            (Framework::Django, "django"),
            (Framework::Fastapi, "fastapi"),
            (Framework::Flask, "flask"),
        ] {
            if python.names.contains(package) {
                return Some((framework, format!("{manifest}: {package}")));
            }
        }
    }
    if dir.has("manage.py") && facts.python_manifest.is_some() {
        return Some((Framework::Django, "manage.py".into()));
    }
    if let Some(build) = facts.java_build.as_deref() {
        let file = if build == "maven" {
            "pom.xml"
        } else if dir.has("build.gradle") {
            "build.gradle"
        } else {
            "build.gradle.kts"
        };
        if dir
            .read(file)
            .is_some_and(|t| t.contains("spring-boot") || t.contains("org.springframework.boot"))
        {
            return Some((Framework::SpringBoot, format!("{file}: spring-boot")));
        }
    }
    if dir
        .read("composer.json")
        .is_some_and(|t| t.contains("\"laravel/framework\""))
    {
        return Some((Framework::Laravel, "composer.json: laravel/framework".into()));
    }
    if dir.has("artisan") && dir.has("composer.json") {
        return Some((Framework::Laravel, "artisan".into()));
    }
    if dir.has("index.html") {
        return Some((Framework::Static, "index.html".into()));
    }
    None
}

fn resolve_defaults(
    framework: Framework,
    dir: &dyn RepoFiles,
    python: &PythonPackages,
    node: &NodeManifest,
    facts: &mut RepoFacts,
) -> FrameworkDefaults {
    let mut d = framework.defaults();
    let mut need_python = |package: &str| {
        if !python.names.contains(package) {
            facts.python_extra_packages.push(package.to_owned());
        }
    };
    match framework {
        Framework::Dockerfile => {
            if let Some(port) = facts.dockerfile.as_deref().and_then(exposed_port) {
                d.port = port;
            }
        }
        Framework::Flask => {
            let entry =
                first_of(dir, &["app.py", "wsgi.py", "application.py", "main.py"]).unwrap_or("app.py");
            let module = entry.trim_end_matches(".py");
            d.entry = Some(entry.to_owned());
            d.run_command = Some(format!(
                "gunicorn --bind 0.0.0.0:$PORT --access-logfile - {module}:app"
            ));
            need_python("gunicorn");
        }
        Framework::Fastapi => {
            let (entry, module) = [
                ("main.py", "main"),
                ("app/main.py", "app.main"),
                ("app.py", "app"),
            ]
            .into_iter()
            .find(|(f, _)| dir.has(f))
            .unwrap_or(("main.py", "main"));
            d.entry = Some(entry.to_owned());
            d.run_command = Some(format!("uvicorn {module}:app --host 0.0.0.0 --port $PORT"));
            need_python("uvicorn");
        }
        Framework::Django => {
            let project = dir
                .folders()
                .into_iter()
                .filter(|name| name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
                .filter(|name| dir.has(&format!("{name}/wsgi.py")))
                .min();
            let wsgi = project
                .map(|p| format!("{p}.wsgi"))
                .unwrap_or_else(|| "wsgi".into());
            d.run_command = Some(format!("gunicorn --bind 0.0.0.0:$PORT --access-logfile - {wsgi}"));
            need_python("gunicorn");
        }
        Framework::Express => {
            let entry = node
                .main
                .as_deref()
                .filter(|m| is_safe_relative(m) && dir.has(m))
                .or_else(|| first_of(dir, &["app.js", "server.js", "index.js", "main.js"]));
            match entry {
                Some(entry) => {
                    d.entry = Some(entry.to_owned());
                    d.run_command = Some(format!("node {entry}"));
                }
                None if node.has_start => {
                    d.entry = None;
                    d.run_command = Some("npm start".into());
                }
                None => {}
            }
        }
        Framework::Next => {
            if !node.has_start {
                d.run_command = Some("npx next start".into());
            }
        }
        Framework::React | Framework::Vue | Framework::Angular => {
            if !node.has_build {
                d.build_command = None;
            }
        }
        Framework::SpringBoot => {
            d.build_command = Some(
                match (facts.java_build.as_deref(), facts.java_wrapper) {
                    (Some("gradle"), true) => "./gradlew bootJar -x test --no-daemon",
                    (Some("gradle"), false) => "gradle bootJar -x test --no-daemon",
                    (_, true) => "./mvnw -B -DskipTests package",
                    _ => "mvn -B -DskipTests package",
                }
                .into(),
            );
            d.run_command = Some("java -Dserver.port=$PORT -jar /app/app.jar".into());
        }
        Framework::Nestjs | Framework::Laravel | Framework::Static => {}
    }
    d
}

/// A path from a manifest that may be put into a command: relative,
/// no `..`, only ordinary file-name characters.
fn is_safe_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.split('/').any(|p| p == ".." || p.is_empty())
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
}

/// The first `EXPOSE` port of a Dockerfile.
fn exposed_port(dockerfile: &str) -> Option<u16> {
    dockerfile.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        if !words.next()?.eq_ignore_ascii_case("EXPOSE") {
            return None;
        }
        words.next()?.split('/').next()?.parse().ok().filter(|p| *p > 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn repo(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in files {
            let path = dir.path().join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, body).unwrap();
        }
        dir
    }

    fn detect_in(files: &[(&str, &str)]) -> Detection {
        let dir = repo(files);
        detect(dir.path(), &RootDir::default(), None).unwrap()
    }

    fn pkg(deps: &str) -> String {
        format!(r#"{{"name":"x","dependencies":{{{deps}}},"scripts":{{"build":"b"}}}}"#)
    }

    #[test]
    fn every_catalog_framework_is_detected_with_its_defaults() {
        type Case<'a> = (Vec<(&'a str, String)>, Framework, &'a str, u16);
        let cases: Vec<Case> = vec![
            (
                vec![("requirements.txt", "Flask==3.0\n".into()), ("app.py", "".into())],
                Framework::Flask,
                "requirements.txt: flask",
                5000,
            ),
            (
                vec![
                    ("requirements.txt", "django>=4\n".into()),
                    ("manage.py", "".into()),
                    ("shop/wsgi.py", "".into()),
                ],
                Framework::Django,
                "requirements.txt: django",
                8000,
            ),
            (
                vec![(
                    "pyproject.toml",
                    "[project]\ndependencies=[\"fastapi>=0.1\",\"uvicorn\"]\n".into(),
                )],
                Framework::Fastapi,
                "pyproject.toml: fastapi",
                8000,
            ),
            (
                vec![("Pipfile", "[packages]\nflask = \"*\"\n".into())],
                Framework::Flask,
                "Pipfile: flask",
                5000,
            ),
            (
                vec![("package.json", pkg(r#""express":"^4""#)), ("app.js", "".into())],
                Framework::Express,
                "package.json: express",
                3000,
            ),
            (
                vec![("package.json", pkg(r#""@nestjs/core":"^10","express":"4""#))],
                Framework::Nestjs,
                "package.json: @nestjs/core",
                3000,
            ),
            (
                vec![("package.json", pkg(r#""react":"^18","react-dom":"^18""#))],
                Framework::React,
                "package.json: react",
                3000,
            ),
            (
                vec![("package.json", pkg(r#""@angular/core":"^17""#))],
                Framework::Angular,
                "package.json: @angular/core",
                4200,
            ),
            (
                vec![("package.json", pkg(r#""vue":"^3""#))],
                Framework::Vue,
                "package.json: vue",
                8080,
            ),
            (
                vec![("package.json", pkg(r#""next":"14","react":"18""#))],
                Framework::Next,
                "package.json: next",
                3000,
            ),
            (
                vec![(
                    "pom.xml",
                    "<artifactId>spring-boot-starter-web</artifactId>".into(),
                )],
                Framework::SpringBoot,
                "pom.xml: spring-boot",
                8080,
            ),
            (
                vec![(
                    "build.gradle",
                    "id 'org.springframework.boot' version '3.2.0'".into(),
                )],
                Framework::SpringBoot,
                "build.gradle: spring-boot",
                8080,
            ),
            (
                vec![(
                    "composer.json",
                    r#"{"require":{"laravel/framework":"^11"}}"#.into(),
                )],
                Framework::Laravel,
                "composer.json: laravel/framework",
                8000,
            ),
            (
                vec![("index.html", "<h1>hi</h1>".into())],
                Framework::Static,
                "index.html",
                8080,
            ),
            (
                vec![
                    ("Dockerfile", "FROM scratch\nEXPOSE 9090/tcp\n".into()),
                    ("package.json", pkg(r#""express":"4""#)),
                ],
                Framework::Dockerfile,
                "Dockerfile",
                9090,
            ),
        ];
        for (files, framework, evidence, port) in cases {
            let files: Vec<(&str, &str)> = files.iter().map(|(n, b)| (*n, b.as_str())).collect();
            let d = detect_in(&files);
            assert_eq!(
                (d.framework, d.evidence.as_str(), d.defaults.port),
                (framework, evidence, port),
                "{files:?}"
            );
        }
    }

    #[test]
    fn defaults_follow_the_repository() {
        let d = detect_in(&[("requirements.txt", "flask\ngunicorn\n"), ("wsgi.py", "")]);
        assert_eq!(d.defaults.entry.as_deref(), Some("wsgi.py"));
        assert!(d.defaults.run_command.unwrap().ends_with("wsgi:app"));
        assert!(d.facts.python_extra_packages.is_empty());

        let d = detect_in(&[("requirements.txt", "flask\n"), ("app.py", "")]);
        assert_eq!(d.facts.python_extra_packages, vec!["gunicorn"]);
        assert_eq!(d.facts.python_manifest.as_deref(), Some("requirements.txt"));

        let d = detect_in(&[
            ("requirements.txt", "Django\n"),
            ("manage.py", ""),
            ("mysite/wsgi.py", ""),
        ]);
        assert!(d.defaults.run_command.unwrap().ends_with("mysite.wsgi"));

        let d = detect_in(&[
            (
                "package.json",
                r#"{"main":"src/server.js","dependencies":{"express":"4"}}"#,
            ),
            ("src/server.js", ""),
            ("package-lock.json", "{}"),
        ]);
        assert_eq!(d.defaults.run_command.as_deref(), Some("node src/server.js"));
        assert_eq!(d.facts.node_lockfile.as_deref(), Some("package-lock.json"));

        let d = detect_in(&[(
            "package.json",
            r#"{"main":"$(rm -rf /).js","dependencies":{"express":"4"},"scripts":{"start":"node x"}}"#,
        )]);
        assert_eq!(
            d.defaults.run_command.as_deref(),
            Some("npm start"),
            "unsafe main is never put in a command"
        );

        let d = detect_in(&[("pom.xml", "spring-boot"), ("mvnw", "")]);
        assert_eq!(
            d.defaults.build_command.as_deref(),
            Some("./mvnw -B -DskipTests package")
        );
    }

    #[test]
    fn root_folder_is_applied_and_checked() {
        let dir = repo(&[("backend/requirements.txt", "flask"), ("index.html", "x")]);
        let d = detect(dir.path(), &RootDir::parse("backend").unwrap(), None).unwrap();
        assert_eq!(d.framework, Framework::Flask);
        let err = detect(dir.path(), &RootDir::parse("nope").unwrap(), None).unwrap_err();
        assert_eq!(err.code(), "root_not_found");
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("escape")).unwrap();
        let err = detect(dir.path(), &RootDir::parse("escape").unwrap(), None).unwrap_err();
        assert_eq!(err.code(), "invalid_root");
    }

    #[test]
    fn unknown_layouts_and_forced_frameworks() {
        let dir = repo(&[("README.md", "hi")]);
        let err = detect(dir.path(), &RootDir::default(), None).unwrap_err();
        assert_eq!(err.code(), "framework_not_detected");
        assert!(err.to_string().contains("--framework"));
        let d = detect(dir.path(), &RootDir::default(), Some(Framework::Static)).unwrap();
        assert_eq!(
            (d.framework, d.evidence.as_str()),
            (Framework::Static, "chosen with --framework static")
        );
        let err = detect(dir.path(), &RootDir::default(), Some(Framework::Dockerfile)).unwrap_err();
        assert_eq!(err.code(), "framework_mismatch");
    }

    #[test]
    fn symlinked_manifests_are_not_read() {
        let outside = repo(&[("requirements.txt", "flask")]);
        let dir = repo(&[]);
        std::os::unix::fs::symlink(
            outside.path().join("requirements.txt"),
            dir.path().join("requirements.txt"),
        )
        .unwrap();
        assert!(detect(dir.path(), &RootDir::default(), None).is_err());
    }

    #[test]
    fn requirement_names_are_normalised() {
        assert_eq!(
            requirement_name("Flask[async]>=2.0 ; python_version>'3'"),
            "flask"
        );
        assert_eq!(requirement_name("python_dotenv==1"), "python-dotenv");
        assert_eq!(exposed_port("FROM x\nexpose 8081\n"), Some(8081));
        assert_eq!(exposed_port("FROM x\n"), None);
    }

    #[test]
    fn files_held_in_memory_detect_like_a_checkout() {
        let mut files = MemoryFiles::new();
        files.add_file("requirements.txt", Some("Django>=4\n".into()));
        files.add_file("manage.py", None);
        files.add_folder("shop");
        files.add_file("shop/wsgi.py", None);
        let found = detect_files(&files, &RootDir::parse("").unwrap(), None).unwrap();
        assert_eq!(found.framework, Framework::Django);
        assert_eq!(found.evidence, "requirements.txt: django");
        assert!(found.defaults.run_command.unwrap().ends_with("shop.wsgi"));
        let empty = detect_files(&MemoryFiles::new(), &RootDir::parse("web").unwrap(), None);
        assert_eq!(empty.unwrap_err().code(), "framework_not_detected");
    }
}
