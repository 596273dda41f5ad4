//! The build context as a zip for CodeBuild's S3 source: the checkout's
//! folder (root folder applied by the caller) without `.git`, plus the
//! pipeline files, which replace same-named files.

use easydeploy_core::PipelineFiles;
use std::collections::HashSet;
use std::io::{self, Cursor, Write};
use std::path::Path;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

/// Zips `dir` and the pipeline files (generated Dockerfile, `.dockerignore`,
/// `buildspec.yml`, extra files); symlinks stay symlinks; timestamps are fixed
/// so the same input gives the same bytes.
pub fn zip_context(dir: &Path, pipeline: &PipelineFiles) -> io::Result<Vec<u8>> {
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
    let replaced: HashSet<String> = added.iter().map(|(name, _)| name.clone()).collect();

    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    add_dir(&mut zip, dir, "", &replaced)?;
    let options = file_options(0o644);
    for (name, bytes) in added {
        zip.start_file(name, options)?;
        zip.write_all(bytes)?;
    }
    Ok(zip.finish()?.into_inner())
}

fn file_options(mode: u32) -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(mode)
}

fn add_dir(
    zip: &mut ZipWriter<Cursor<Vec<u8>>>,
    dir: &Path,
    prefix: &str,
    replaced: &HashSet<String>,
) -> io::Result<()> {
    let mut entries = std::fs::read_dir(dir)?.collect::<io::Result<Vec<_>>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if prefix.is_empty() && name == ".git" {
            continue;
        }
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        if replaced.contains(&rel) {
            continue;
        }
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_symlink() {
            let target = std::fs::read_link(&path)?;
            zip.add_symlink(rel, target.to_string_lossy(), file_options(0o777))?;
        } else if kind.is_dir() {
            zip.add_directory(format!("{rel}/"), file_options(0o755))?;
            add_dir(zip, &path, &rel, replaced)?;
        } else if kind.is_file() {
            #[cfg(unix)]
            let mode = {
                use std::os::unix::fs::PermissionsExt;
                entry.metadata()?.permissions().mode() & 0o777
            };
            #[cfg(not(unix))]
            let mode = 0o644;
            zip.start_file(rel, file_options(mode))?;
            zip.write_all(&std::fs::read(&path)?)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use easydeploy_core::Port;
    use std::io::Read;

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
    }
}
