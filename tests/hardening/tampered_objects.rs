//! Alternates and tampered objects in the kept object store: dropped or refused, and the
//! real commit fetched.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::{Fixture, Item, Run, entry};
use crate::{
    assert_no_markers, common, copy_object, evil_entry, launch, plain, plant_object, ready_events,
    rev, scratch_objects, text,
};

// ---------------------------------------------------------------------------------------
// 5. Alternates and tampered objects
// ---------------------------------------------------------------------------------------

/// A at `main` (checked out by a first run), B at `b` (the new pin, not yet fetched), and E
/// at `evil`, whose entry script must never run. B and E have one file each, so E's tree
/// stored under B's tree id reads as a well-formed tree.
struct Tamper {
    fx: Fixture,
    b: String,
    e: String,
}

impl Tamper {
    fn new() -> Self {
        let fx = Fixture::new();
        let a = fx.commit(&[Item::File("entrypoint.sh", &entry("A"))]);
        let b = fx.commit_on("b", &[Item::File("entrypoint.sh", &entry("B"))]);
        let e = fx.commit_on(
            "evil",
            &[Item::File("entrypoint.sh", &evil_entry(&fx, "evil"))],
        );
        launch(&fx, &fx.line_config(&a, ""))
            .success()
            .stdout_has("RAN A");
        assert!(
            !plain(&fx.work_dir(), &["cat-file", "-e", &b])
                .status
                .success(),
            "B must not be fetched by the first run"
        );
        Self { fx, b, e }
    }

    fn work_objects(&self) -> PathBuf {
        self.fx.work_dir().join(".git/objects")
    }

    /// Into `store`: the genuine commit B, E's tree under B's tree id, and E's blob.
    fn plant_fake_tree(&self, store: &Path) {
        let from = scratch_objects(&self.fx);
        copy_object(&from, store, &self.b);
        let b_tree = rev(&self.fx, &format!("{}^{{tree}}", self.b));
        let e_tree = rev(&self.fx, &format!("{}^{{tree}}", self.e));
        plant_object(&from, &e_tree, store, &b_tree);
        copy_object(
            &from,
            store,
            &rev(&self.fx, &format!("{}:entrypoint.sh", self.e)),
        );
    }

    /// Plain git checks B out and runs E's bytes while `rev-parse HEAD` says B.
    fn show_plain_git_fooled(&self) {
        let work = self.fx.work_dir();
        let out = plain(&work, &["checkout", "--force", "--detach", &self.b]);
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(common::git(&work, &["rev-parse", "HEAD"]), self.b);
        assert_eq!(
            fs::read_to_string(work.join("entrypoint.sh")).unwrap(),
            evil_entry(&self.fx, "evil"),
            "plain git was not fooled by the tampered tree"
        );
    }

    fn launch_b(&self) -> Run {
        launch(&self.fx, &self.fx.line_config(&self.b, ""))
    }

    /// Runs B, expecting a refusal with `needle` before anything ran or ready was measured.
    #[track_caller]
    fn assert_b_refused(&self, needle: &str) -> Run {
        let ready_before = ready_events(&self.fx);
        let run = self.launch_b();
        run.fails(1, needle);
        assert!(!run.stdout.contains("RAN"), "{}", run.stdout);
        assert_no_markers(&self.fx, &run);
        assert_eq!(
            ready_events(&self.fx),
            ready_before,
            "ready measured after a refusal"
        );
        run
    }
}

#[test]
fn alternates_with_a_tampered_tree_are_dropped_and_the_real_commit_fetched() {
    let t = Tamper::new();
    let store = t.fx.path().join("evil-store");
    t.plant_fake_tree(&store);
    let alternates = t.work_objects().join("info/alternates");
    fs::create_dir_all(alternates.parent().unwrap()).unwrap();
    fs::write(&alternates, format!("{}\n", store.display())).unwrap();
    t.show_plain_git_fooled();

    let run = t.launch_b();
    run.success()
        .stdout_has("RAN B")
        .stderr_has(&format!("fetching {}", t.b))
        .stderr_has(&format!("HEAD verified: {}", t.b));
    assert!(!run.stdout.contains("EVIL"), "{}", run.stdout);
    assert_no_markers(&t.fx, &run);
}

#[test]
fn tampered_tree_in_the_object_store_is_refused() {
    let t = Tamper::new();
    t.plant_fake_tree(&t.work_objects());
    t.show_plain_git_fooled();

    let run = t.assert_b_refused("does not hash to its name");
    run.stderr_has("claims to be a tree");
}

#[test]
fn tampered_commit_in_the_object_store_is_refused() {
    let t = Tamper::new();
    let from = scratch_objects(&t.fx);
    let store = t.work_objects();
    // E's commit bytes under B's name, with everything E's commit needs.
    plant_object(&from, &t.e, &store, &t.b);
    copy_object(&from, &store, &rev(&t.fx, &format!("{}^{{tree}}", t.e)));
    copy_object(
        &from,
        &store,
        &rev(&t.fx, &format!("{}:entrypoint.sh", t.e)),
    );
    // Plain git's object reader serves E's commit as B; `git checkout` itself happens to
    // re-hash commits ("hash mismatch"), but anything reading through cat-file is fooled.
    let shown = common::git(&t.fx.work_dir(), &["cat-file", "commit", &t.b]);
    let e_tree = rev(&t.fx, &format!("{}^{{tree}}", t.e));
    assert!(shown.starts_with(&format!("tree {e_tree}")), "{shown}");

    let run = t.assert_b_refused("does not hash to its name");
    run.stderr_has("claims to be a commit");
}

#[test]
fn tampered_blob_in_the_object_store_is_refused() {
    let t = Tamper::new();
    let from = scratch_objects(&t.fx);
    let store = t.work_objects();
    copy_object(&from, &store, &t.b);
    copy_object(&from, &store, &rev(&t.fx, &format!("{}^{{tree}}", t.b)));
    plant_object(
        &from,
        &rev(&t.fx, &format!("{}:entrypoint.sh", t.e)),
        &store,
        &rev(&t.fx, &format!("{}:entrypoint.sh", t.b)),
    );
    t.show_plain_git_fooled();

    let run = t.assert_b_refused("content differs from the commit");
    run.stderr_has("entrypoint.sh");
}
