//! Replace refs in the reused repository do not swap the pinned commit.

use std::fs;

use crate::common::{Fixture, Item, entry};
use crate::{assert_no_markers, common, evil_entry, launch, plain, text};

// ---------------------------------------------------------------------------------------
// 2. Replace refs
// ---------------------------------------------------------------------------------------

#[test]
fn replace_ref_does_not_swap_the_commit() {
    let fx = Fixture::new();
    let a = fx.commit(&[Item::File("entrypoint.sh", &entry("A"))]);
    let evil = fx.commit_on(
        "evil",
        &[Item::File("entrypoint.sh", &evil_entry(&fx, "evil"))],
    );
    let work = fx.work_dir();
    let config = fx.line_config(&a, "");
    launch(&fx, &config).success().stdout_has("RAN A");

    common::git(&work, &["fetch", "--quiet", "origin", "refs/heads/evil"]);
    common::git(&work, &["replace", "-f", &a, &evil]);

    // Plain git: HEAD "is" A, the bytes are the evil commit's.
    let out = plain(&work, &["checkout", "--force", "--detach", &a]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(common::git(&work, &["rev-parse", "HEAD"]), a);
    assert_eq!(
        fs::read_to_string(work.join("entrypoint.sh")).unwrap(),
        evil_entry(&fx, "evil"),
        "plain git was not fooled by refs/replace"
    );

    let run = launch(&fx, &config);
    run.success()
        .stdout_has("RAN A")
        .stderr_has(&format!("HEAD verified: {a}"));
    assert!(!run.stdout.contains("EVIL"), "{}", run.stdout);
    assert_no_markers(&fx, &run);
    assert_eq!(
        fs::read_to_string(work.join("entrypoint.sh")).unwrap(),
        entry("A")
    );
}
