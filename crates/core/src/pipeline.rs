//! Pipeline generation: Dockerfile, .dockerignore and buildspec.yml per
//! framework, from templates. Pure code.

mod templates;

use crate::framework::{Detection, Family, Framework};
use crate::{Port, ShellCommand};
use serde::{Deserialize, Serialize};

/// Base images the generated Dockerfiles start from, per family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseImages {
    /// Python apps (`EASYDEPLOY_BASE_IMAGE_PYTHON`).
    pub python: String,
    /// Node apps and every frontend (`EASYDEPLOY_BASE_IMAGE_NODE`).
    pub node: String,
    /// Java apps (`EASYDEPLOY_BASE_IMAGE_JAVA`), must provide a JDK and Maven or Gradle.
    pub java: String,
    /// PHP apps (`EASYDEPLOY_BASE_IMAGE_PHP`).
    pub php: String,
}

impl Default for BaseImages {
    fn default() -> Self {
        Self {
            python: "python:3.12-slim".into(),
            node: "node:20-slim".into(),
            java: "maven:3-eclipse-temurin-17".into(),
            php: "php:8.3-cli".into(),
        }
    }
}

impl BaseImages {
    /// The base image for a family.
    pub fn for_family(&self, family: Family) -> &str {
        match family {
            Family::Python => &self.python,
            Family::Node => &self.node,
            Family::Java => &self.java,
            Family::Php => &self.php,
            Family::None => "",
        }
    }
}

/// Everything a pipeline depends on besides the detection.
#[derive(Debug, Clone, Default)]
pub struct PipelineOptions {
    /// Base images per family.
    pub base_images: BaseImages,
    /// PEM CA bundle every build step must trust (TLS-intercepting proxies).
    pub ca_bundle: Option<Vec<u8>>,
    /// Port override.
    pub port: Option<Port>,
    /// Build command override.
    pub build_command: Option<ShellCommand>,
    /// Run command override.
    pub run_command: Option<ShellCommand>,
    /// Registry repository the buildspec pushes to (`$REPOSITORY_URI` when empty).
    pub repository: String,
}

/// The generated pipeline of one deployment; kept as its artifacts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineFiles {
    /// The Dockerfile (the repository's own when it has one).
    pub dockerfile: String,
    /// Paths kept out of the build context.
    pub dockerignore: String,
    /// CodeBuild buildspec that builds and pushes the same image.
    pub buildspec: String,
    /// Extra files the Dockerfile copies (`.easydeploy/...`), name and bytes.
    pub extra_files: Vec<(String, Vec<u8>)>,
    /// The repository's own Dockerfile is used unchanged.
    pub own_dockerfile: bool,
    /// Port the image listens on.
    pub port: Port,
}

impl PipelineFiles {
    /// Name under which the Dockerfile is placed in the build context.
    pub fn dockerfile_name(&self) -> &'static str {
        if self.own_dockerfile {
            "Dockerfile"
        } else {
            "Dockerfile.easydeploy"
        }
    }
}

/// Generates the pipeline files for a detected app.
pub fn generate(detection: &Detection, options: &PipelineOptions) -> PipelineFiles {
    templates::render(detection, options)
}

/// The framework's family decides its base image.
pub fn family_of(framework: Framework) -> Family {
    framework.family()
}
