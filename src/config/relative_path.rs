//! A path that stays inside the checkout by construction: relative, no `..`, not into `.git`.

use std::fmt;
use std::path::{Component, Path, PathBuf};

/// A validated relative path (`REPO_SUBDIR`, `ENTRYPOINT_SCRIPT`). Symlinks are checked
/// later, against the real checkout; this type rules out escapes by spelling.
#[derive(Clone, PartialEq, Eq)]
pub struct RelativePath(PathBuf);

impl RelativePath {
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        if text.is_empty() {
            return Err("must not be empty");
        }
        let path = Path::new(text);
        let mut clean = PathBuf::new();
        for component in path.components() {
            match component {
                Component::Normal(name) => {
                    if name.eq_ignore_ascii_case(".git") {
                        return Err("must not point into .git");
                    }
                    clean.push(name);
                }
                Component::CurDir => {}
                Component::ParentDir => return Err("must not contain '..'"),
                Component::RootDir | Component::Prefix(_) => {
                    return Err("must be a relative path");
                }
            }
        }
        if clean.as_os_str().is_empty() {
            return Err("must name a path below the checkout");
        }
        Ok(Self(clean))
    }

    #[must_use]
    pub fn as_path(&self) -> &Path {
        &self.0
    }
}

impl fmt::Display for RelativePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.display())
    }
}

impl fmt::Debug for RelativePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelativePath({})", self.0.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_and_reject() {
        assert_eq!(
            RelativePath::parse("./a/./b.sh").unwrap().to_string(),
            "a/b.sh"
        );
        for (bad, reason) in [
            ("", "must not be empty"),
            ("/etc", "must be a relative path"),
            ("a/../b", "must not contain '..'"),
            ("..", "must not contain '..'"),
            (".git", "must not point into .git"),
            ("sub/.GIT/config", "must not point into .git"),
            (".", "must name a path below the checkout"),
        ] {
            assert_eq!(RelativePath::parse(bad), Err(reason), "{bad:?}");
        }
    }
}
