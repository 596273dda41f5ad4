//! The framework catalog and detection from a checkout's files.

mod catalog;
mod detect;

pub use catalog::{Family, Framework, FrameworkDefaults, FrameworkInfo};
pub use detect::{detect, detect_files, DetectError, Detection, MemoryFiles, RepoFiles, MANIFESTS};
