//! Who else could write the checkout between its verification and the workload's `exec`.
//!
//! The launcher verifies the working tree once, then runs `INSTALL_CMD` and execs the
//! workload from it. A writer sharing `WORK_DIR` (another container on the same volume,
//! another user) could swap a file in between. Only the launcher's own uid (and root) may be
//! able to: the checkout's directories and the entry must be owned by the launcher's
//! effective uid and not writable by group or others, and every directory above `WORK_DIR`
//! must be owned by root or that uid and writable by group or others only with the sticky
//! bit (which stops them renaming what they do not own), as OpenSSH's `StrictModes` checks
//! a home directory (`safe_path()` in OpenSSH's `misc.c`).
//!
//! In tee mode a finding stops the launch; in nontee mode it is a warning.

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use crate::log::Logger;
use crate::platform::Platform;

/// Group- or other-writable.
const SHARED_WRITE: u32 = 0o022;
const STICKY: u32 = 0o1000;

#[derive(Debug, thiserror::Error)]
pub enum WorkDirError {
    #[error(
        "{what} {path} is writable by group or others (mode {mode:04o}): another writer could change the verified checkout before the workload runs"
    )]
    Writable {
        what: &'static str,
        path: PathBuf,
        mode: u32,
    },
    #[error(
        "{what} {path} is owned by uid {owner}, not the launcher's uid {euid}: its owner could change the verified checkout before the workload runs"
    )]
    Owner {
        what: &'static str,
        path: PathBuf,
        owner: u32,
        euid: u32,
    },
    #[error("cannot inspect {what} {path}: {source}")]
    Stat {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the launcher's effective uid from /proc/self: {source}")]
    Euid { source: std::io::Error },
}

/// The launcher's effective uid, without `unsafe`: the kernel makes `/proc/<pid>` owned by
/// the process's effective uid (proc(5), "/proc/pid"), unless the process is not dumpable
/// (set-user-ID programs), in which case root owns it — and root is then the conservative
/// answer, since only root or a uid that owns a path can make it pass.
pub fn euid() -> std::io::Result<u32> {
    fs::metadata("/proc/self").map(|meta| meta.uid())
}

/// The paths whose writers matter, with their role in messages.
#[derive(Debug, Default)]
pub struct Exposure {
    /// Inside the checkout: owned by the launcher, not group/other-writable.
    own: Vec<(&'static str, PathBuf)>,
    /// Above `WORK_DIR`: owned by root or the launcher; shared write only with sticky bit.
    above: Vec<PathBuf>,
}

impl Exposure {
    /// `WORK_DIR` as configured, before the checkout: the directory if it exists, and every
    /// existing directory above it.
    #[must_use]
    pub fn before_checkout(work_dir: &Path) -> Self {
        let absolute = std::path::absolute(work_dir).unwrap_or_else(|_| work_dir.to_owned());
        let mut exposure = Self::default();
        if let Ok(existing) = fs::canonicalize(&absolute) {
            exposure.above = existing.ancestors().skip(1).map(Path::to_owned).collect();
            exposure.own.push(("WORK_DIR", existing));
        } else if let Some(parent) = absolute.ancestors().find_map(|a| fs::canonicalize(a).ok()) {
            exposure.above = parent.ancestors().map(Path::to_owned).collect();
        }
        exposure
    }

    /// A verified checkout at `root` (canonical): `WORK_DIR`, its `.git`, and every
    /// directory above it.
    #[must_use]
    pub fn checkout(root: &Path) -> Self {
        Self {
            own: vec![("WORK_DIR", root.to_owned()), (".git", root.join(".git"))],
            above: root.ancestors().skip(1).map(Path::to_owned).collect(),
        }
    }

    /// `path` (canonical, inside the checkout) and every directory between it and the root.
    #[must_use]
    pub fn with(mut self, what: &'static str, path: &Path) -> Self {
        let root = self.own.first().map(|(_, root)| root.clone());
        if let Some(root) = root {
            for dir in path
                .ancestors()
                .take_while(|a| a.starts_with(&root) && *a != root)
            {
                if !self.own.iter().any(|(_, p)| p == dir) {
                    let role = if dir == path {
                        what
                    } else {
                        "checkout directory"
                    };
                    self.own.push((role, dir.to_owned()));
                }
            }
        }
        self
    }

    /// Every finding, in path order from `WORK_DIR` down.
    #[must_use]
    pub fn inspect(&self) -> Vec<WorkDirError> {
        let euid = match euid() {
            Ok(euid) => euid,
            Err(source) => return vec![WorkDirError::Euid { source }],
        };
        let mut findings = Vec::new();
        for dir in self.above.iter().rev() {
            if let Some(finding) = inspect_one("directory above WORK_DIR", dir, euid, true) {
                findings.push(finding);
            }
        }
        for (what, path) in &self.own {
            if let Some(finding) = inspect_one(what, path, euid, false) {
                findings.push(finding);
            }
        }
        findings
    }

    /// Tee mode: the first finding is the error. Nontee mode: each is a warning.
    pub fn enforce(&self, platform: Platform, log: &Logger) -> Result<(), WorkDirError> {
        let mut findings = self.inspect().into_iter();
        if platform == Platform::Tee {
            return findings.next().map_or(Ok(()), Err);
        }
        for finding in findings {
            log.warn(&format!("{finding} (refused in tee mode)"));
        }
        Ok(())
    }
}

fn inspect_one(what: &'static str, path: &Path, euid: u32, above: bool) -> Option<WorkDirError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(source) => {
            return Some(WorkDirError::Stat {
                what,
                path: path.to_owned(),
                source,
            });
        }
    };
    let owner = meta.uid();
    let owner_ok = owner == euid || (above && owner == 0);
    if !owner_ok {
        return Some(WorkDirError::Owner {
            what,
            path: path.to_owned(),
            owner,
            euid,
        });
    }
    let mode = meta.mode() & 0o7777;
    let shared = mode & SHARED_WRITE != 0;
    let protected = above && meta.is_dir() && mode & STICKY != 0;
    if shared && !protected {
        return Some(WorkDirError::Writable {
            what,
            path: path.to_owned(),
            mode,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    /// What `inspect` found, as the messages the launcher prints.
    fn messages(exposure: &Exposure) -> Vec<String> {
        exposure.inspect().iter().map(ToString::to_string).collect()
    }

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn euid_matches_the_owner_of_a_file_we_create() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, "x").unwrap();
        assert_eq!(euid().unwrap(), fs::metadata(&file).unwrap().uid());
    }

    #[test]
    fn shared_write_inside_the_checkout_is_a_finding() {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        let sub = root.join("svc");
        fs::create_dir_all(root.join(".git")).unwrap();
        fs::create_dir_all(&sub).unwrap();
        let entry = sub.join("run.sh");
        fs::write(&entry, "echo").unwrap();
        chmod(&root, 0o700);
        let exposure = || {
            Exposure::checkout(&root)
                .with("REPO_SUBDIR", &sub)
                .with("ENTRYPOINT_SCRIPT", &entry)
        };
        assert!(
            exposure().inspect().is_empty(),
            "{:?}",
            exposure().inspect()
        );
        for (path, mode, what) in [
            (&root, 0o777, "WORK_DIR"),
            (&root, 0o1777, "WORK_DIR"),
            (&sub, 0o775, "REPO_SUBDIR"),
            (&entry, 0o646, "ENTRYPOINT_SCRIPT"),
            (&root.join(".git"), 0o757, ".git"),
        ] {
            let before = fs::metadata(path).unwrap().mode() & 0o7777;
            chmod(path, mode);
            let findings = messages(&exposure());
            assert_eq!(
                findings,
                [format!(
                    "{what} {} is writable by group or others (mode {mode:04o}): another writer could change the verified checkout before the workload runs",
                    path.display()
                )]
            );
            chmod(path, before);
        }
    }

    #[test]
    fn another_owner_is_a_finding() {
        // Changing a file's owner needs root (chown(2)); as another user this test has
        // nothing to change and checks only the clean case.
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        fs::create_dir_all(root.join(".git")).unwrap();
        assert!(Exposure::checkout(&root).inspect().is_empty());
        if euid().unwrap() != 0 {
            return;
        }
        std::os::unix::fs::chown(root.join(".git"), Some(4242), None).unwrap();
        let findings = messages(&Exposure::checkout(&root));
        assert_eq!(
            findings,
            [format!(
                ".git {}/.git is owned by uid 4242, not the launcher's uid 0: its owner could change the verified checkout before the workload runs",
                root.display()
            )]
        );
    }

    #[test]
    fn sticky_shared_directories_above_work_dir_pass_plain_shared_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let above = fs::canonicalize(dir.path()).unwrap();
        let root = above.join("work");
        fs::create_dir_all(root.join(".git")).unwrap();
        chmod(&above, 0o1777);
        assert!(Exposure::checkout(&root).inspect().is_empty());
        chmod(&above, 0o777);
        let findings = messages(&Exposure::checkout(&root));
        assert_eq!(
            findings,
            [format!(
                "directory above WORK_DIR {} is writable by group or others (mode 0777): another writer could change the verified checkout before the workload runs",
                above.display()
            )]
        );
        chmod(&above, 0o700);
    }

    #[test]
    fn before_checkout_looks_at_what_exists() {
        let dir = tempfile::tempdir().unwrap();
        let above = fs::canonicalize(dir.path()).unwrap();
        let missing = Exposure::before_checkout(&above.join("not/yet"));
        assert!(missing.own.is_empty());
        assert_eq!(missing.above.first(), Some(&above));
        let work = above.join("work");
        fs::create_dir(&work).unwrap();
        chmod(&work, 0o777);
        let present = Exposure::before_checkout(&work);
        assert_eq!(present.own, [("WORK_DIR", work.clone())]);
        assert_eq!(present.inspect().len(), 1);
    }
}
