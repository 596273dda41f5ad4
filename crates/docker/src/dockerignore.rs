//! A simple `.dockerignore` matcher for build contexts.

/// Paths kept out of a build context, read from `.dockerignore` text with
/// simple rules: blank and `#` lines are skipped (as are `!` exceptions); a
/// trailing `/` is dropped; a pattern without `/` excludes any path with a
/// component equal to it; a pattern with `/` (a leading one included, which
/// anchors a single name at the root) excludes the paths
/// it matches from the context root, and everything below them. `*` and `?`
/// are wildcards within one component; a `**` component matches any number
/// of components.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// Matches any component of a path.
    Anywhere(String),
    /// Matches the leading components of a path.
    Rooted(Vec<String>),
}

impl DockerIgnore {
    /// Reads `.dockerignore` text.
    pub fn parse(text: &str) -> Self {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let anchored = line.starts_with('/');
            let line = line.trim_start_matches('/').trim_end_matches('/');
            let parts: Vec<String> = line
                .split('/')
                .filter(|p| !p.is_empty() && *p != ".")
                .map(str::to_owned)
                .collect();
            match parts.len() {
                0 => {}
                1 if !anchored && !line.contains('/') => patterns.push(Pattern::Anywhere(parts[0].clone())),
                _ => patterns.push(Pattern::Rooted(parts)),
            }
        }
        Self { patterns }
    }

    /// Whether `path` (relative to the context root, `/`-separated) is excluded.
    pub fn excludes(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
        if parts.is_empty() {
            return false;
        }
        self.patterns.iter().any(|pattern| match pattern {
            Pattern::Anywhere(glob) => parts.iter().any(|part| component_matches(glob, part)),
            Pattern::Rooted(globs) => prefix_matches(globs, &parts),
        })
    }
}

/// Whether `globs` match the first components of `parts` (all of `globs`
/// used, any remainder of `parts` lying below the match).
fn prefix_matches(globs: &[String], parts: &[&str]) -> bool {
    match globs.split_first() {
        None => true,
        Some((glob, rest)) if glob == "**" => {
            (0..=parts.len()).any(|skip| prefix_matches(rest, &parts[skip..]))
        }
        Some((glob, rest)) => match parts.split_first() {
            Some((part, below)) => component_matches(glob, part) && prefix_matches(rest, below),
            None => false,
        },
    }
}

/// Matches one path component against a glob with `*` and `?`.
fn component_matches(glob: &str, name: &str) -> bool {
    let glob: Vec<char> = glob.chars().collect();
    let name: Vec<char> = name.chars().collect();
    let (mut g, mut n) = (0, 0);
    // Where the last `*` was and which name position it is trying to cover.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match glob.get(g) {
            Some('*') => {
                star = Some((g, n));
                g += 1;
            }
            Some(&c) if c == '?' || c == name[n] => {
                g += 1;
                n += 1;
            }
            _ => match star {
                Some((sg, sn)) => {
                    g = sg + 1;
                    n = sn + 1;
                    star = Some((sg, sn + 1));
                }
                None => return false,
            },
        }
    }
    glob[g..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_comments_blanks_and_exceptions() {
        let ignore = DockerIgnore::parse("# a comment\n\n   \n!keep\n");
        assert_eq!(ignore, DockerIgnore::default());
        assert!(!ignore.excludes("keep"));
        assert!(!ignore.excludes("anything/at/all"));
    }

    #[test]
    fn names_without_slash_match_any_component() {
        let ignore = DockerIgnore::parse("node_modules\n__pycache__/\n");
        assert!(ignore.excludes("node_modules"));
        assert!(ignore.excludes("node_modules/react/index.js"));
        assert!(ignore.excludes("web/node_modules/x"));
        assert!(ignore.excludes("app/__pycache__/m.pyc"));
        assert!(!ignore.excludes("node_modules2/x"));
        assert!(!ignore.excludes("src/my_node_modules"));
    }

    #[test]
    fn wildcards_stay_within_a_component() {
        let ignore = DockerIgnore::parse("*.pyc\n.env*\nfile?.txt\n");
        assert!(ignore.excludes("a.pyc"));
        assert!(ignore.excludes("pkg/sub/b.pyc"));
        assert!(ignore.excludes(".env"));
        assert!(ignore.excludes(".env.local"));
        assert!(ignore.excludes("file1.txt"));
        assert!(!ignore.excludes("file12.txt"));
        assert!(!ignore.excludes("a.py"));
        assert!(!ignore.excludes("pyc"));
    }

    #[test]
    fn patterns_with_slash_match_from_the_root_as_prefixes() {
        let ignore = DockerIgnore::parse("/build/\ndocs/*.md\nsrc/gen\n");
        assert!(ignore.excludes("build"));
        assert!(ignore.excludes("build/out/app.js"));
        assert!(!ignore.excludes("web/build"), "a leading slash only anchors");
        assert!(ignore.excludes("docs/readme.md"));
        assert!(!ignore.excludes("docs/readme.txt"));
        assert!(!ignore.excludes("docs/sub/readme.md"));
        assert!(ignore.excludes("src/gen"));
        assert!(ignore.excludes("src/gen/a.rs"));
        assert!(!ignore.excludes("src/generated"));
        assert!(!ignore.excludes("other/src/gen"));
        assert!(!ignore.excludes("src"));
    }

    #[test]
    fn double_star_spans_components() {
        let ignore = DockerIgnore::parse("**/*.log\nlogs/**/old\n");
        assert!(ignore.excludes("a.log"));
        assert!(ignore.excludes("x/y/z.log"));
        assert!(ignore.excludes("logs/old"));
        assert!(ignore.excludes("logs/2024/01/old/f"));
        assert!(!ignore.excludes("logs/new"));
    }

    #[test]
    fn component_globs() {
        assert!(component_matches("*", ""));
        assert!(component_matches("a*b*c", "axxbyyc"));
        assert!(component_matches("a*b*c", "abcbc"));
        assert!(!component_matches("a*b*c", "axxbyy"));
        assert!(component_matches("**", "x"));
        assert!(!component_matches("", "x"));
    }
}
