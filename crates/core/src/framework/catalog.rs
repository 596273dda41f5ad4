//! The data-driven framework catalog: what each supported framework is, its
//! family (which base image it builds on) and its defaults.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Which base image family a framework builds on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Python base image.
    Python,
    /// Node base image (also serves built frontends and static sites).
    Node,
    /// JDK + build tool base image.
    Java,
    /// PHP base image.
    Php,
    /// The repository's own Dockerfile decides.
    None,
}

/// A supported framework (or way of building).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Framework {
    /// The repository's own Dockerfile.
    Dockerfile,
    /// Flask (Python WSGI).
    Flask,
    /// Django (Python WSGI).
    Django,
    /// FastAPI (Python ASGI).
    Fastapi,
    /// Express (Node).
    Express,
    /// NestJS (Node, compiled TypeScript).
    Nestjs,
    /// Spring Boot (Java, Maven or Gradle).
    SpringBoot,
    /// Laravel (PHP).
    Laravel,
    /// React single-page app, built and served statically.
    React,
    /// Angular single-page app, built and served statically.
    Angular,
    /// Vue single-page app, built and served statically.
    Vue,
    /// Next.js, built and run with `next start`.
    Next,
    /// Plain static files (an index.html).
    Static,
}

/// Defaults a framework comes with; every field can be overridden per app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FrameworkDefaults {
    /// Port the app listens on.
    pub port: u16,
    /// Entry point file, when the framework has one.
    pub entry: Option<String>,
    /// Command run at build time, after installing dependencies.
    pub build_command: Option<String>,
    /// Command that starts the app (`$PORT` is set).
    pub run_command: Option<String>,
}

/// A catalog entry as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FrameworkInfo {
    /// Identifier used by `--framework`.
    pub id: Framework,
    /// Display name.
    pub name: &'static str,
    /// Base image family.
    pub family: Family,
    /// What detection looks for.
    pub detected_by: &'static str,
    /// Defaults before looking at a repository.
    pub defaults: FrameworkDefaults,
}

impl Framework {
    /// Every framework, in detection priority order.
    pub const ALL: [Framework; 13] = [
        Self::Dockerfile,
        Self::Next,
        Self::Nestjs,
        Self::Angular,
        Self::Vue,
        Self::React,
        Self::Express,
        Self::Django,
        Self::Fastapi,
        Self::Flask,
        Self::SpringBoot,
        Self::Laravel,
        Self::Static,
    ];

    /// The identifier (`spring-boot`, `flask`...).
    pub fn id(self) -> &'static str {
        match self {
            Self::Dockerfile => "dockerfile",
            Self::Flask => "flask",
            Self::Django => "django",
            Self::Fastapi => "fastapi",
            Self::Express => "express",
            Self::Nestjs => "nestjs",
            Self::SpringBoot => "spring-boot",
            Self::Laravel => "laravel",
            Self::React => "react",
            Self::Angular => "angular",
            Self::Vue => "vue",
            Self::Next => "next",
            Self::Static => "static",
        }
    }

    /// Parses an identifier; the error lists the known ones.
    pub fn parse(raw: &str) -> Result<Self, crate::InputError> {
        let wanted = raw.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|f| f.id() == wanted)
            .ok_or_else(|| crate::InputError {
                code: "unknown_framework",
                message: format!(
                    "unknown framework '{}'; known frameworks: {}",
                    raw.escape_debug(),
                    Self::ALL.map(|f| f.id()).join(", ")
                ),
            })
    }

    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dockerfile => "Dockerfile",
            Self::Flask => "Flask",
            Self::Django => "Django",
            Self::Fastapi => "FastAPI",
            Self::Express => "Express",
            Self::Nestjs => "NestJS",
            Self::SpringBoot => "Spring Boot",
            Self::Laravel => "Laravel",
            Self::React => "React",
            Self::Angular => "Angular",
            Self::Vue => "Vue",
            Self::Next => "Next.js",
            Self::Static => "Static site",
        }
    }

    /// Base image family.
    pub fn family(self) -> Family {
        match self {
            Self::Dockerfile => Family::None,
            Self::Flask | Self::Django | Self::Fastapi => Family::Python,
            Self::Express
            | Self::Nestjs
            | Self::React
            | Self::Angular
            | Self::Vue
            | Self::Next
            | Self::Static => Family::Node,
            Self::SpringBoot => Family::Java,
            Self::Laravel => Family::Php,
        }
    }

    /// A frontend built to static files and served by a small static server.
    pub fn is_static_frontend(self) -> bool {
        matches!(self, Self::React | Self::Angular | Self::Vue | Self::Static)
    }

    /// What detection looks for.
    pub fn detected_by(self) -> &'static str {
        match self {
            Self::Dockerfile => "a Dockerfile in the root folder",
            Self::Flask => "flask in requirements.txt, pyproject.toml or Pipfile",
            Self::Django => "django in requirements.txt, pyproject.toml or Pipfile, or manage.py",
            Self::Fastapi => "fastapi in requirements.txt, pyproject.toml or Pipfile",
            Self::Express => "express in package.json dependencies",
            Self::Nestjs => "@nestjs/core in package.json dependencies",
            Self::SpringBoot => "spring-boot in pom.xml or build.gradle(.kts)",
            Self::Laravel => "laravel/framework in composer.json, or an artisan file",
            Self::React => "react in package.json dependencies",
            Self::Angular => "@angular/core in package.json dependencies",
            Self::Vue => "vue in package.json dependencies",
            Self::Next => "next in package.json dependencies",
            Self::Static => "an index.html in the root folder",
        }
    }

    /// Defaults before looking at a repository.
    pub fn defaults(self) -> FrameworkDefaults {
        let d = |port: u16, entry: Option<&str>, build: Option<&str>, run: Option<&str>| FrameworkDefaults {
            port,
            entry: entry.map(str::to_owned),
            build_command: build.map(str::to_owned),
            run_command: run.map(str::to_owned),
        };
        match self {
            Self::Dockerfile => d(8080, None, None, None),
            Self::Flask => d(
                5000,
                Some("app.py"),
                None,
                Some("gunicorn --bind 0.0.0.0:$PORT app:app"),
            ),
            Self::Django => d(
                8000,
                Some("manage.py"),
                None,
                Some("gunicorn --bind 0.0.0.0:$PORT wsgi"),
            ),
            Self::Fastapi => d(
                8000,
                Some("main.py"),
                None,
                Some("uvicorn main:app --host 0.0.0.0 --port $PORT"),
            ),
            Self::Express => d(3000, Some("app.js"), None, Some("node app.js")),
            Self::Nestjs => d(
                3000,
                Some("src/main.ts"),
                Some("npm run build"),
                Some("node dist/main.js"),
            ),
            Self::SpringBoot => d(
                8080,
                None,
                Some("mvn -B -DskipTests package"),
                Some("java -jar /app/app.jar"),
            ),
            Self::Laravel => d(
                8000,
                Some("artisan"),
                Some("composer install --no-dev --optimize-autoloader --no-interaction"),
                Some("php artisan serve --host=0.0.0.0 --port=$PORT"),
            ),
            Self::React => d(3000, None, Some("npm run build"), None),
            Self::Angular => d(4200, None, Some("npm run build"), None),
            Self::Vue => d(8080, None, Some("npm run build"), None),
            Self::Next => d(3000, None, Some("npm run build"), Some("npm start")),
            Self::Static => d(8080, Some("index.html"), None, None),
        }
    }

    /// The catalog entry.
    pub fn info(self) -> FrameworkInfo {
        FrameworkInfo {
            id: self,
            name: self.name(),
            family: self.family(),
            detected_by: self.detected_by(),
            defaults: self.defaults(),
        }
    }
}

impl fmt::Display for Framework {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}
