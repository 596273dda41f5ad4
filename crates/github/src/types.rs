//! The parts of GitHub's documented payloads Easy Deploy reads.

use serde::{Deserialize, Serialize};

/// One page of a list and the number of the next page, if any.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// The next page (from the `Link` header).
    pub next_page: Option<u32>,
}

/// A user or organisation, as it appears in other payloads.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Account {
    /// Login.
    pub login: String,
    /// Numeric id.
    pub id: i64,
}

/// The signed-in user (`GET /user`).
#[derive(Debug, Clone, Deserialize)]
pub struct User {
    /// Login.
    pub login: String,
    /// Numeric id.
    pub id: i64,
    /// Public email, if set.
    pub email: Option<String>,
}

/// An email address of the signed-in user (`GET /user/emails`).
#[derive(Debug, Clone, Deserialize)]
pub struct Email {
    /// The address.
    pub email: String,
    /// The primary address.
    pub primary: bool,
    /// Verified by GitHub.
    pub verified: bool,
}

/// A repository.
#[derive(Debug, Clone, Deserialize)]
pub struct Repo {
    /// Numeric id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// `owner/name`.
    pub full_name: String,
    /// Owner.
    pub owner: Account,
    /// Private repository.
    pub private: bool,
    /// Description.
    pub description: Option<String>,
    /// Web page.
    pub html_url: String,
    /// HTTPS clone URL.
    pub clone_url: String,
    /// Default branch.
    pub default_branch: String,
    /// Last push.
    pub pushed_at: Option<String>,
    /// Archived (read-only).
    #[serde(default)]
    pub archived: bool,
}

/// A branch (`GET /repos/{owner}/{repo}/branches`).
#[derive(Debug, Clone, Deserialize)]
pub struct Branch {
    /// Name.
    pub name: String,
    /// Head commit.
    pub commit: CommitRef,
    /// Protected branch.
    #[serde(default)]
    pub protected: bool,
}

/// A commit id.
#[derive(Debug, Clone, Deserialize)]
pub struct CommitRef {
    /// Full sha.
    pub sha: String,
}

/// A commit (`GET /repos/{owner}/{repo}/commits/{ref}`).
#[derive(Debug, Clone, Deserialize)]
pub struct Commit {
    /// Full sha.
    pub sha: String,
    /// The git commit.
    pub commit: GitCommit,
    /// The GitHub account of the author, when known.
    pub author: Option<Account>,
    /// Web page.
    pub html_url: Option<String>,
}

/// The git part of a commit.
#[derive(Debug, Clone, Deserialize)]
pub struct GitCommit {
    /// Message.
    pub message: String,
    /// Author name, email and date.
    pub author: Option<Signature>,
}

/// Who and when.
#[derive(Debug, Clone, Deserialize)]
pub struct Signature {
    /// Name.
    pub name: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// ISO 8601 date.
    pub date: Option<String>,
}

/// What a contents request found.
#[derive(Debug, Clone)]
pub enum Contents {
    /// A folder's entries.
    Folder(Vec<Entry>),
    /// A file.
    File(FileContent),
}

/// A folder entry.
#[derive(Debug, Clone, Deserialize)]
pub struct Entry {
    /// `file`, `dir`, `symlink` or `submodule`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Name.
    pub name: String,
    /// Path from the repository's top.
    pub path: String,
    /// Size in bytes (files).
    #[serde(default)]
    pub size: u64,
}

/// A file with its content.
#[derive(Debug, Clone, Deserialize)]
pub struct FileContent {
    /// `file` (or `symlink`, `submodule`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Path from the repository's top.
    pub path: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: u64,
    /// `base64` when `content` holds the file.
    pub encoding: Option<String>,
    /// The content, base64 with line breaks.
    pub content: Option<String>,
}

impl FileContent {
    /// The file's text, when GitHub sent it and it is UTF-8.
    pub fn text(&self) -> Option<String> {
        use base64::Engine;
        if self.kind != "file" || self.encoding.as_deref() != Some("base64") {
            return None;
        }
        let compact: String = self
            .content
            .as_deref()?
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let bytes = base64::engine::general_purpose::STANDARD.decode(compact).ok()?;
        String::from_utf8(bytes).ok()
    }
}

/// A repository hook.
#[derive(Debug, Clone, Deserialize)]
pub struct Hook {
    /// Numeric id.
    pub id: i64,
    /// Events it delivers.
    #[serde(default)]
    pub events: Vec<String>,
    /// Active.
    #[serde(default)]
    pub active: bool,
}

/// A commit status to post.
#[derive(Debug, Clone, Serialize)]
pub struct NewStatus {
    /// `pending`, `success`, `failure` or `error`.
    pub state: String,
    /// Link shown next to the status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_url: Option<String>,
    /// Short description.
    pub description: String,
    /// Label distinguishing this status from others.
    pub context: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_content_is_decoded_from_wrapped_base64() {
        let file: FileContent = serde_json::from_value(serde_json::json!({
            "type": "file", "encoding": "base64", "size": 12, "name": "a.txt", "path": "a.txt",
            "content": "aGVsbG8g\nd29ybGQK\n", "sha": "x"
        }))
        .unwrap();
        assert_eq!(file.text().as_deref(), Some("hello world\n"));
        let link: FileContent =
            serde_json::from_value(serde_json::json!({"type": "symlink", "path": "l", "target": "x"}))
                .unwrap();
        assert_eq!(link.text(), None);
    }
}
