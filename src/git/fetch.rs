//! Fetching as little as can be shown to hold the commit: by id and shallow; if the server
//! refuses that (protocol v0 without `uploadpack.allow*SHA1InWant`), the advertised ref that
//! names the commit, shallow; then the recent history of every branch, shallow; and only
//! then everything. Every fetch keeps `fetch.fsckObjects`: what arrives is checked, and the
//! reused store is not checked again (its objects are re-hashed where they are used).

use super::GitError;
use super::command::{FETCH_TIMEOUT, Git, LOCAL_TIMEOUT};
use crate::digest::CommitId;
use crate::log::Logger;

/// How much of every branch's history is fetched, in turn, before everything is.
const BRANCH_DEPTHS: &[u32] = &[64, 1024];

const BRANCHES: &str = "+refs/heads/*:refs/remotes/origin/*";

/// Fetches the commit from origin; `complete` says whether the store now holds its commit,
/// trees and blobs (the caller's own check, which re-hashes them).
pub fn fetch(
    git: &Git,
    repo_url: &str,
    commit: &CommitId,
    log: &Logger,
    complete: &mut dyn FnMut() -> Result<bool, GitError>,
) -> Result<(), GitError> {
    let sha = commit.to_string();
    log.info(&format!(
        "fetching {sha} from {repo_url} (shallow, by commit id)"
    ));
    let Err(refused) = shallow(git, &[&sha], 1) else {
        return Ok(());
    };
    log.warn(&format!(
        "fetch by commit id failed ({refused}); trying the refs the server advertises"
    ));
    if narrowed(git, &sha, log, complete)? {
        return Ok(());
    }
    log.warn("the commit was not found in shallow fetches; fetching all branches and tags");
    let mut args = vec!["fetch", "--quiet", "--no-tags", "--no-write-fetch-head"];
    if is_shallow(git) {
        args.push("--unshallow");
    }
    args.extend(["origin", BRANCHES, "+refs/tags/*:refs/tags/*"]);
    git.run(&args, FETCH_TIMEOUT).map(|_| ())
}

/// The advertised ref naming the commit, then every branch ever deeper; `false` when none
/// of them held it or the server cannot serve shallow fetches.
fn narrowed(
    git: &Git,
    sha: &str,
    log: &Logger,
    complete: &mut dyn FnMut() -> Result<bool, GitError>,
) -> Result<bool, GitError> {
    let advertised = match git.run(&["ls-remote", "origin"], FETCH_TIMEOUT) {
        Ok(output) => output.stdout,
        Err(error) => {
            log.warn(&format!("listing the server's refs failed ({error})"));
            return Ok(false);
        }
    };
    if let Some(name) = ref_naming(&advertised, sha) {
        log.info(&format!(
            "the server advertises {sha} as {name}; fetching it (shallow)"
        ));
        match shallow(git, &[&name], 1) {
            Ok(()) if complete()? => return Ok(true),
            Ok(()) => {}
            Err(error) => {
                log.warn(&format!("shallow fetch of {name} failed ({error})"));
                return Ok(false);
            }
        }
    }
    for &depth in BRANCH_DEPTHS {
        log.info(&format!(
            "fetching the last {depth} commits of every branch"
        ));
        if let Err(error) = shallow(git, &[BRANCHES], depth) {
            log.warn(&format!("shallow fetch of the branches failed ({error})"));
            return Ok(false);
        }
        if complete()? {
            return Ok(true);
        }
    }
    Ok(false)
}

fn shallow(git: &Git, refspecs: &[&str], depth: u32) -> Result<(), GitError> {
    let depth = format!("--depth={depth}");
    let mut args = vec![
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-write-fetch-head",
        &depth,
        "origin",
    ];
    args.extend(refspecs);
    git.run(&args, FETCH_TIMEOUT).map(|_| ())
}

fn is_shallow(git: &Git) -> bool {
    git.run(&["rev-parse", "--is-shallow-repository"], LOCAL_TIMEOUT)
        .is_ok_and(|out| out.stdout.starts_with(b"true"))
}

/// The first branch or tag `git ls-remote` lists at `sha` (a peeled tag, `<tag>^{}`, names
/// its tag). The listing comes from the untrusted server: only a plain ref name is taken,
/// which cannot be read as an option or a refspec with a destination.
fn ref_naming(listing: &[u8], sha: &str) -> Option<String> {
    String::from_utf8_lossy(listing).lines().find_map(|line| {
        let (id, name) = line.split_once('\t')?;
        if id != sha {
            return None;
        }
        let name = name.strip_suffix("^{}").unwrap_or(name);
        let plain = (name.starts_with("refs/heads/") || name.starts_with("refs/tags/"))
            && name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b":*?[\\^~".contains(&b));
        plain.then(|| name.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_a_plain_ref_naming_the_commit() {
        let sha = "a".repeat(40);
        let other = "b".repeat(40);
        let listing = format!(
            "{other}\tHEAD\n{sha}\tHEAD\n{sha}\trefs/pull/1/head\n{other}\trefs/heads/main\n\
             {sha}\trefs/tags/v1^{{}}\n{sha}\trefs/heads/dev\n"
        );
        assert_eq!(
            ref_naming(listing.as_bytes(), &sha).as_deref(),
            Some("refs/tags/v1")
        );
        for hostile in [
            "refs/heads/x:refs/heads/y",
            "refs/heads/*",
            "refs/heads/a b",
            "--upload-pack=evil",
            "refs/heads/x\u{1b}",
        ] {
            let listing = format!("{sha}\t{hostile}\n");
            assert_eq!(ref_naming(listing.as_bytes(), &sha), None, "{hostile}");
        }
        assert_eq!(ref_naming(b"garbage", &sha), None);
    }
}
