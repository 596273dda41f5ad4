//! Newtypes that validate user input at the edge. Inner code takes these and
//! never re-checks: once parsed, a value is safe to use as a host name, a
//! path below a checkout, a git reference or a Dockerfile string.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Component, Path, PathBuf};

/// Why a piece of user input was refused; `code` is stable for API clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InputError {
    /// Stable machine-readable code, e.g. `invalid_app_name`.
    pub code: &'static str,
    /// A sentence telling a person what to fix.
    pub message: String,
}

impl InputError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            /// The validated value.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

/// An app name: a DNS label (it becomes `APP.<apps-domain>`), lowercase
/// letters, digits and hyphens, starting with a letter, at most 40 characters
/// so that container and image names derived from it stay valid.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AppName(String);
string_newtype!(AppName);

impl AppName {
    /// Longest accepted name.
    pub const MAX_LEN: usize = 40;

    /// Validates an app name.
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        let bad = |why: &str| {
            InputError::new(
                "invalid_app_name",
                format!("invalid app name '{}': {why}", raw.escape_debug()),
            )
        };
        if raw.is_empty() {
            return Err(bad("it is empty"));
        }
        if raw.len() > Self::MAX_LEN {
            return Err(bad(&format!("it is longer than {} characters", Self::MAX_LEN)));
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(bad(
                "use only lowercase letters, digits and hyphens (it becomes a host name)",
            ));
        }
        if !raw.as_bytes()[0].is_ascii_lowercase() {
            return Err(bad("it must start with a lowercase letter"));
        }
        if raw.ends_with('-') {
            return Err(bad("it must not end with a hyphen"));
        }
        Ok(Self(raw.to_owned()))
    }
}

impl TryFrom<String> for AppName {
    type Error = InputError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}
impl From<AppName> for String {
    fn from(value: AppName) -> Self {
        value.0
    }
}

/// Where the code lives: a git URL (`https://`, `http://`, `ssh://`,
/// `git://`, `file://`, scp-like `user@host:path`) or an absolute local path
/// to a git repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GitSource(String);
string_newtype!(GitSource);

impl GitSource {
    /// Validates a source location. Relative local paths must be made
    /// absolute by the caller (the CLI does) before reaching the server.
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        let bad = |why: &str| {
            InputError::new(
                "invalid_source",
                format!("invalid source '{}': {why}", raw.escape_debug()),
            )
        };
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(bad("it is empty"));
        }
        if raw.len() > 2048 {
            return Err(bad("it is longer than 2048 characters"));
        }
        if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad("it contains spaces or control characters"));
        }
        if raw.starts_with('-') {
            return Err(bad("it must not start with '-'"));
        }
        const SCHEMES: [&str; 5] = ["https://", "http://", "ssh://", "git://", "file://"];
        if let Some(scheme) = SCHEMES.iter().find(|s| raw.starts_with(**s)) {
            if raw.len() == scheme.len() {
                return Err(bad("the URL has no host or path"));
            }
            return Ok(Self(raw.to_owned()));
        }
        if raw.contains("://") {
            return Err(bad(
                "use an https, http, ssh, git or file URL, or a path to a local repository",
            ));
        }
        if raw.starts_with('/') {
            return Ok(Self(raw.to_owned()));
        }
        // scp-like syntax: user@host:path
        if let Some((host, path)) = raw.split_once(':') {
            if host.contains('@') && !path.is_empty() && !host.contains('/') {
                return Ok(Self(raw.to_owned()));
            }
        }
        Err(bad(
            "use a git URL (https, ssh, git, file) or an absolute path to a local git repository",
        ))
    }

    /// True when the source is a path or `file://` URL on this machine.
    pub fn is_local(&self) -> bool {
        self.0.starts_with('/') || self.0.starts_with("file://")
    }

    /// A form safe to show in logs: any `user:password@` is masked.
    pub fn redacted(&self) -> String {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return self.0.clone();
        };
        let authority_end = rest.find('/').unwrap_or(rest.len());
        match rest[..authority_end].rfind('@') {
            Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
            None => self.0.clone(),
        }
    }
}

impl TryFrom<String> for GitSource {
    type Error = InputError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}
impl From<GitSource> for String {
    fn from(value: GitSource) -> Self {
        value.0
    }
}

/// A branch name, checked against git's ref-name rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Branch(String);
string_newtype!(Branch);

impl Branch {
    /// Validates a branch name (`git check-ref-format --branch` rules).
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        let bad = |why: &str| {
            InputError::new(
                "invalid_branch",
                format!("invalid branch name '{}': {why}", raw.escape_debug()),
            )
        };
        if raw.is_empty() || raw.len() > 255 {
            return Err(bad("it must be 1 to 255 characters long"));
        }
        if raw.starts_with('-')
            || raw.starts_with('/')
            || raw.ends_with('/')
            || raw.ends_with('.')
            || raw.ends_with(".lock")
        {
            return Err(bad(
                "it must not start with '-' or '/', nor end with '/', '.' or '.lock'",
            ));
        }
        if raw.contains("..")
            || raw.contains("//")
            || raw.contains("@{")
            || raw == "@"
            || raw.split('/').any(|p| p.starts_with('.'))
        {
            return Err(bad(
                "it contains '..', '//', '@{' or a component starting with '.'",
            ));
        }
        if raw
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c))
        {
            return Err(bad("it contains a space, a control character or one of ~^:?*[\\"));
        }
        Ok(Self(raw.to_owned()))
    }
}

impl TryFrom<String> for Branch {
    type Error = InputError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}
impl From<Branch> for String {
    fn from(value: Branch) -> Self {
        value.0
    }
}

/// A folder inside the repository the app lives in (e.g. `backend`);
/// relative, normalised, never escaping the checkout. Empty means the root.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RootDir(String);
string_newtype!(RootDir);

impl RootDir {
    /// Validates a root folder.
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        let bad = |why: &str| {
            InputError::new(
                "invalid_root",
                format!("invalid root folder '{}': {why}", raw.escape_debug()),
            )
        };
        if raw.len() > 1024 {
            return Err(bad("it is longer than 1024 characters"));
        }
        if raw.chars().any(|c| c.is_control()) {
            return Err(bad("it contains control characters"));
        }
        let mut parts = Vec::new();
        for component in Path::new(raw).components() {
            match component {
                Component::Normal(p) => {
                    parts.push(p.to_str().ok_or_else(|| bad("it is not UTF-8"))?.to_owned())
                }
                Component::CurDir => {}
                Component::ParentDir => {
                    return Err(bad("it must stay inside the repository ('..' is not allowed)"))
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(bad("it must be relative to the repository root"))
                }
            }
        }
        Ok(Self(parts.join("/")))
    }

    /// True for the repository root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The folder below `checkout`. Callers must still check that it exists
    /// and, after resolving symlinks, stays inside the checkout.
    pub fn join_onto(&self, checkout: &Path) -> PathBuf {
        if self.0.is_empty() {
            checkout.to_path_buf()
        } else {
            checkout.join(&self.0)
        }
    }
}

impl TryFrom<String> for RootDir {
    type Error = InputError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}
impl From<RootDir> for String {
    fn from(value: RootDir) -> Self {
        value.0
    }
}

/// The port the app listens on inside its container (1–65535).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u16")]
pub struct Port(u16);

impl Port {
    /// Validates a port number.
    pub fn parse(raw: i64) -> Result<Self, InputError> {
        if (1..=65535).contains(&raw) {
            Ok(Self(raw as u16))
        } else {
            Err(InputError::new(
                "invalid_port",
                format!("port {raw} is out of range (1-65535)"),
            ))
        }
    }
    /// A port known to be valid.
    pub const fn new(port: u16) -> Self {
        Self(if port == 0 { 1 } else { port })
    }
    /// The number.
    pub fn get(self) -> u16 {
        self.0
    }
}
impl TryFrom<i64> for Port {
    type Error = InputError;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}
impl From<Port> for u16 {
    fn from(value: Port) -> Self {
        value.0
    }
}
impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How many copies of the app run behind the proxy (1–20).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u32")]
pub struct Replicas(u32);

impl Replicas {
    /// Most replicas one app may ask for.
    pub const MAX: u32 = 20;
    /// Validates a replica count.
    pub fn parse(raw: i64) -> Result<Self, InputError> {
        if (1..=Self::MAX as i64).contains(&raw) {
            Ok(Self(raw as u32))
        } else {
            Err(InputError::new(
                "invalid_replicas",
                format!("replicas must be between 1 and {}, got {raw}", Self::MAX),
            ))
        }
    }
    /// The count.
    pub fn get(self) -> u32 {
        self.0
    }
}
impl Default for Replicas {
    fn default() -> Self {
        Self(1)
    }
}
impl TryFrom<i64> for Replicas {
    type Error = InputError;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}
impl From<Replicas> for u32 {
    fn from(value: Replicas) -> Self {
        value.0
    }
}

/// An environment variable for the app: a POSIX name and a single-line value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    /// `[A-Za-z_][A-Za-z0-9_]*`
    pub name: String,
    /// Any text without NUL or line breaks.
    pub value: String,
}

impl EnvVar {
    /// Parses `NAME=value`.
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        let (name, value) = raw.split_once('=').ok_or_else(|| {
            InputError::new(
                "invalid_env",
                format!(
                    "environment variable '{}' must look like NAME=value",
                    raw.escape_debug()
                ),
            )
        })?;
        Self::new(name, value)
    }

    /// Validates a name and a value.
    pub fn new(name: &str, value: &str) -> Result<Self, InputError> {
        let name_ok = !name.is_empty()
            && name.len() <= 256
            && (name.as_bytes()[0].is_ascii_alphabetic() || name.as_bytes()[0] == b'_')
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !name_ok {
            return Err(InputError::new(
                "invalid_env",
                format!("invalid environment variable name '{}': use letters, digits and '_' and do not start with a digit", name.escape_debug()),
            ));
        }
        if value.len() > 32 * 1024 || value.chars().any(|c| c == '\0' || c == '\n' || c == '\r') {
            return Err(InputError::new(
                "invalid_env",
                format!("the value of {name} must be a single line without NUL characters, at most 32 KiB"),
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            value: value.to_owned(),
        })
    }
}

/// A shell command the user gives for building or running the app. It runs
/// inside the app's own container through `sh -c`, never on the host; it is
/// written into the Dockerfile as a JSON string, so it must be one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ShellCommand(String);
string_newtype!(ShellCommand);

impl ShellCommand {
    /// Validates a command.
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > 4096 {
            return Err(InputError::new(
                "invalid_command",
                "a command must be 1 to 4096 characters long",
            ));
        }
        if raw.chars().any(|c| c.is_control() && c != '\t') {
            return Err(InputError::new(
                "invalid_command",
                "a command must be a single line without control characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }
}
impl TryFrom<String> for ShellCommand {
    type Error = InputError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}
impl From<ShellCommand> for String {
    fn from(value: ShellCommand) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names_are_dns_labels() {
        for ok in ["shop", "a", "my-app-2", "x1"] {
            assert_eq!(AppName::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "Shop",
            "1shop",
            "shop-",
            "sh op",
            "shop.example",
            "a_b",
            &"a".repeat(41),
            "-x",
            "ü",
        ] {
            assert_eq!(AppName::parse(bad).unwrap_err().code, "invalid_app_name", "{bad}");
        }
    }

    #[test]
    fn sources_accept_git_urls_and_absolute_paths() {
        for ok in [
            "https://github.com/me/shop",
            "ssh://git@host/x.git",
            "git://h/x",
            "file:///tmp/r",
            "/srv/repo",
            "git@github.com:me/shop.git",
        ] {
            GitSource::parse(ok).unwrap();
        }
        for bad in [
            "",
            "ftp://x",
            "relative/path",
            "--upload-pack=evil",
            "https://",
            "/a b",
            "https://x\ny",
        ] {
            assert_eq!(GitSource::parse(bad).unwrap_err().code, "invalid_source", "{bad}");
        }
        assert!(GitSource::parse("/srv/repo").unwrap().is_local());
        assert_eq!(
            GitSource::parse("https://u:p@h/x").unwrap().redacted(),
            "https://***@h/x"
        );
    }

    #[test]
    fn branches_follow_ref_rules() {
        for ok in ["main", "feature/x", "release-1.2"] {
            Branch::parse(ok).unwrap();
        }
        for bad in [
            "", "-x", "a..b", "a b", "x.lock", "a:b", "/a", "a/", ".hidden", "a/.b", "a~1",
        ] {
            Branch::parse(bad).unwrap_err();
        }
    }

    #[test]
    fn root_dirs_stay_inside_the_repository() {
        assert_eq!(RootDir::parse("backend/").unwrap().as_str(), "backend");
        assert_eq!(RootDir::parse("./a/./b").unwrap().as_str(), "a/b");
        assert!(RootDir::parse("").unwrap().is_root());
        assert!(RootDir::parse(".").unwrap().is_root());
        for bad in ["..", "a/../../b", "/etc", "a/../b"] {
            assert_eq!(RootDir::parse(bad).unwrap_err().code, "invalid_root", "{bad}");
        }
    }

    #[test]
    fn ports_and_replicas_have_ranges() {
        assert_eq!(Port::parse(8080).unwrap().get(), 8080);
        assert!(Port::parse(0).is_err() && Port::parse(65536).is_err() && Port::parse(-1).is_err());
        assert!(Replicas::parse(0).is_err() && Replicas::parse(21).is_err());
        assert_eq!(Replicas::parse(3).unwrap().get(), 3);
    }

    #[test]
    fn env_vars_reject_what_would_break_a_dockerfile() {
        let v = EnvVar::parse("GREETING=hello = world").unwrap();
        assert_eq!((v.name.as_str(), v.value.as_str()), ("GREETING", "hello = world"));
        EnvVar::parse("EMPTY=").unwrap();
        for bad in [
            "NOEQUALS",
            "1X=a",
            "A-B=c",
            "=v",
            "X=a\nRUN rm -rf /",
            "X=a\0b",
            "A B=c",
        ] {
            assert_eq!(EnvVar::parse(bad).unwrap_err().code, "invalid_env", "{bad:?}");
        }
    }

    #[test]
    fn commands_are_single_lines() {
        ShellCommand::parse("npm run build && echo \"done\"").unwrap();
        assert!(ShellCommand::parse("a\nb").is_err());
        assert!(ShellCommand::parse("  ").is_err());
    }
}
