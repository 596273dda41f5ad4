//! The build context for CodeBuild: the checkout's folder (root folder
//! applied by the caller) without `.git`, plus the pipeline files, which
//! replace same-named files; zipped for the S3 source or copied to the EFS
//! workspace.

use easydeploy_core::PipelineFiles;
use std::collections::HashSet;
use std::io::{self, Cursor, Write};
use std::path::{Path, PathBuf};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

/// The pipeline files written into the context: extra files, the generated
/// Dockerfile (unless the repository has its own), `.dockerignore`, `buildspec.yml`.
fn pipeline_files(pipeline: &PipelineFiles) -> Vec<(String, &[u8])> {
    let mut added: Vec<(String, &[u8])> = pipeline
        .extra_files
        .iter()
        .map(|(name, bytes)| (name.trim_start_matches("./").to_owned(), bytes.as_slice()))
        .collect();
    if !pipeline.own_dockerfile {
        added.push((
            pipeline.dockerfile_name().to_owned(),
            pipeline.dockerfile.as_bytes(),
        ));
    }
    if !pipeline.dockerignore.is_empty() {
        added.push((".dockerignore".to_owned(), pipeline.dockerignore.as_bytes()));
    }
    added.push(("buildspec.yml".to_owned(), pipeline.buildspec.as_bytes()));
    added
}

/// What goes into a build context: the checkout's entries (without `.git`
/// and without files a pipeline file replaces) and the pipeline files.
struct Context<'a> {
    entries: Vec<Entry>,
    added: Vec<(String, &'a [u8])>,
}

/// One file, folder or symlink of the checkout, by its `/`-separated path.
struct Entry {
    rel: String,
    path: PathBuf,
    kind: Kind,
}

enum Kind {
    Dir,
    File { mode: u32 },
    Symlink(PathBuf),
}

impl<'a> Context<'a> {
    fn read(dir: &Path, pipeline: &'a PipelineFiles) -> io::Result<Self> {
        let added = pipeline_files(pipeline);
        let replaced: HashSet<&str> = added.iter().map(|(name, _)| name.as_str()).collect();
        let mut entries = Vec::new();
        walk(dir, "", &replaced, &mut entries)?;
        Ok(Self { entries, added })
    }
}

/// Appends the entries under `dir` in name order, each folder before its contents.
fn walk(dir: &Path, prefix: &str, replaced: &HashSet<&str>, out: &mut Vec<Entry>) -> io::Result<()> {
    let mut found = std::fs::read_dir(dir)?.collect::<io::Result<Vec<_>>>()?;
    found.sort_by_key(|e| e.file_name());
    for entry in found {
        let name = entry.file_name().to_string_lossy().into_owned();
        if prefix.is_empty() && name == ".git" {
            continue;
        }
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        if replaced.contains(rel.as_str()) {
            continue;
        }
        let file_type = entry.file_type()?;
        let path = entry.path();
        let kind = if file_type.is_symlink() {
            Kind::Symlink(std::fs::read_link(&path)?)
        } else if file_type.is_dir() {
            Kind::Dir
        } else if file_type.is_file() {
            #[cfg(unix)]
            let mode = {
                use std::os::unix::fs::PermissionsExt;
                entry.metadata()?.permissions().mode() & 0o777
            };
            #[cfg(not(unix))]
            let mode = 0o644;
            Kind::File { mode }
        } else {
            continue;
        };
        let is_dir = matches!(kind, Kind::Dir);
        out.push(Entry {
            rel: rel.clone(),
            path: path.clone(),
            kind,
        });
        if is_dir {
            walk(&path, &rel, replaced, out)?;
        }
    }
    Ok(())
}

/// Zips `dir` and the pipeline files (generated Dockerfile, `.dockerignore`,
/// `buildspec.yml`, extra files); symlinks stay symlinks; timestamps are fixed
/// so the same input gives the same bytes.
pub fn zip_context(dir: &Path, pipeline: &PipelineFiles) -> io::Result<Vec<u8>> {
    let context = Context::read(dir, pipeline)?;
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for entry in context.entries {
        match entry.kind {
            Kind::Symlink(target) => {
                zip.add_symlink(entry.rel, target.to_string_lossy(), file_options(0o777))?
            }
            Kind::Dir => zip.add_directory(format!("{}/", entry.rel), file_options(0o755))?,
            Kind::File { mode } => {
                zip.start_file(entry.rel, file_options(mode))?;
                zip.write_all(&std::fs::read(&entry.path)?)?;
            }
        }
    }
    let options = file_options(0o644);
    for (name, bytes) in context.added {
        zip.start_file(name, options)?;
        zip.write_all(bytes)?;
    }
    Ok(zip.finish()?.into_inner())
}

/// Copies the same files as [`zip_context`] to `dest` (replaced if it
/// exists): written beside it first, then renamed into place.
pub fn write_context(dir: &Path, pipeline: &PipelineFiles, dest: &Path) -> io::Result<()> {
    let context = Context::read(dir, pipeline)?;
    let parent = dest
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the workspace has no parent folder"))?;
    std::fs::create_dir_all(parent)?;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let partial = parent.join(format!(".{name}.partial-{}", std::process::id()));
    if partial.exists() {
        std::fs::remove_dir_all(&partial)?;
    }
    std::fs::create_dir_all(&partial)?;
    for entry in context.entries {
        let target = partial.join(&entry.rel);
        match entry.kind {
            #[cfg(unix)]
            Kind::Symlink(link) => std::os::unix::fs::symlink(link, &target)?,
            #[cfg(not(unix))]
            Kind::Symlink(_) => {}
            Kind::Dir => std::fs::create_dir_all(&target)?,
            Kind::File { .. } => {
                std::fs::copy(&entry.path, &target)?;
            }
        }
    }
    for (name, bytes) in context.added {
        let path = partial.join(&name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, bytes)?;
    }
    if dest.exists() {
        std::fs::remove_dir_all(dest)?;
    }
    std::fs::rename(&partial, dest)
}

/// The buildspec with `cd <dir>` as the first command of its first phase,
/// so that a build without a source runs in the EFS workspace folder.
pub(crate) fn efs_buildspec(buildspec: &str, dir: &str) -> Result<String, String> {
    let phases = buildspec
        .find("\nphases:\n")
        .map(|i| i + "\nphases:\n".len())
        .ok_or("the buildspec has no `phases:` section to run in the EFS workspace")?;
    let commands = buildspec[phases..]
        .find("commands:\n")
        .map(|i| phases + i + "commands:\n".len())
        .ok_or("the buildspec has no phase commands to run in the EFS workspace")?;
    let indent: String = buildspec[commands..].chars().take_while(|c| *c == ' ').collect();
    let indent = if indent.is_empty() {
        "      ".to_owned()
    } else {
        indent
    };
    let quoted = dir.replace('\'', "'\\''");
    Ok(format!(
        "{}{indent}- cd '{quoted}'\n{}",
        &buildspec[..commands],
        &buildspec[commands..]
    ))
}

fn file_options(mode: u32) -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(mode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use easydeploy_core::Port;
    use std::io::Read;

    #[test]
    fn the_efs_buildspec_starts_in_the_workspace() {
        let spec = "version: 0.2\nphases:\n  pre_build:\n    commands:\n      - echo hi\n  build:\n    commands:\n      - docker build .\n";
        let efs = efs_buildspec(spec, "/mnt/w/default/shop/abc").unwrap();
        assert_eq!(
            efs,
            "version: 0.2\nphases:\n  pre_build:\n    commands:\n      - cd '/mnt/w/default/shop/abc'\n      - echo hi\n  build:\n    commands:\n      - docker build .\n"
        );
        assert!(efs_buildspec("version: 0.2\n", "/x").is_err());
    }

    #[test]
    fn the_context_has_the_checkout_and_the_pipeline_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        std::fs::write(dir.path().join(".git/HEAD"), "x").unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/app.py"), "print(1)").unwrap();
        std::fs::write(dir.path().join("buildspec.yml"), "theirs").unwrap();
        let files = PipelineFiles {
            dockerfile: "FROM scratch".into(),
            dockerignore: ".git\n".into(),
            buildspec: "version: 0.2".into(),
            extra_files: vec![(".easydeploy/ca.pem".into(), b"pem".to_vec())],
            own_dockerfile: false,
            port: Port::new(80),
        };
        let bytes = zip_context(dir.path(), &files).unwrap();
        assert_eq!(bytes, zip_context(dir.path(), &files).unwrap(), "deterministic");
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let mut names: Vec<String> = zip.file_names().map(str::to_owned).collect();
        names.sort();
        assert_eq!(
            names,
            [
                ".dockerignore",
                ".easydeploy/ca.pem",
                "Dockerfile.easydeploy",
                "buildspec.yml",
                "src/",
                "src/app.py"
            ]
        );
        let mut spec = String::new();
        zip.by_name("buildspec.yml")
            .unwrap()
            .read_to_string(&mut spec)
            .unwrap();
        assert_eq!(spec, "version: 0.2");

        // The EFS copy holds the same paths.
        let workspace = tempfile::tempdir().unwrap();
        let dest = workspace.path().join("default/shop/abc");
        write_context(dir.path(), &files, &dest).unwrap();
        let mut copied = Vec::new();
        let mut folders = vec![dest.clone()];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(folder).unwrap() {
                let path = entry.unwrap().path();
                let rel = path.strip_prefix(&dest).unwrap().to_string_lossy().into_owned();
                if path.is_dir() {
                    copied.push(format!("{rel}/"));
                    folders.push(path);
                } else {
                    copied.push(rel);
                }
            }
        }
        copied.sort();
        let mut expected = names.clone();
        expected.insert(1, ".easydeploy/".into());
        assert_eq!(copied, expected);
        assert_eq!(
            std::fs::read_to_string(dest.join("buildspec.yml")).unwrap(),
            "version: 0.2"
        );
    }
}
