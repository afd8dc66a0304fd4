//! The checked-out tree: a dirty checkout is scrubbed exactly, and attributes in the
//! commit do not change the checked-out bytes.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

use crate::common::{Fixture, Item, entry};
use crate::{common, copy_tree, launch, plain, text};

// ---------------------------------------------------------------------------------------
// 9. Dirty checkout
// ---------------------------------------------------------------------------------------

/// Lists every path but `.git` with its type, then prints the files the test tampers with.
const LISTING: &str = r#"find . -path ./.git -prune -o -print | LC_ALL=C sort | while read -r p; do
  if [ -L "$p" ]; then t=link; elif [ -d "$p" ]; then t=dir; elif [ -x "$p" ]; then t=exec; else t=file; fi
  echo "ENTRY $t $p"
done
echo "DATA $(cat data.txt)"
echo "LINKME $(cat link-me.txt)"
echo "NESTED $(cat sub/nested.txt)"
"#;

#[test]
fn dirty_checkout_is_scrubbed_exactly() {
    let fx = Fixture::new();
    let a = fx.commit(&[
        Item::File("entrypoint.sh", LISTING),
        Item::File("data.txt", "committed\n"),
        Item::File("link-me.txt", "regular\n"),
        Item::Exec("tool.sh", "echo tool\n"),
        Item::File("sub/nested.txt", "nested\n"),
        Item::File("other/file.txt", "other\n"),
        Item::File("dir-to-file/x.txt", "x\n"),
        Item::File(".gitignore", "ignored.txt\n*.log\n"),
    ]);
    let config = fx.line_config(&a, "");
    launch(&fx, &config).success();
    let outside = fx.path().join("outside-dir");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("precious"), "keep\n").unwrap();

    let work = fx.work_dir();
    fs::write(work.join("data.txt"), "tampered\n").unwrap();
    fs::write(work.join("sub/nested.txt"), "tampered\n").unwrap();
    fs::write(work.join("untracked.txt"), "x").unwrap();
    fs::write(work.join("sub/untracked.txt"), "x").unwrap();
    fs::write(work.join("ignored.txt"), "x").unwrap();
    fs::write(work.join("sub/debug.log"), "x").unwrap();
    fs::create_dir_all(work.join("emptydir")).unwrap();
    fs::create_dir_all(work.join("sub/empty/deeper")).unwrap();
    fs::remove_file(work.join("link-me.txt")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", work.join("link-me.txt")).unwrap();
    fs::set_permissions(work.join("tool.sh"), fs::Permissions::from_mode(0o644)).unwrap();
    // A tracked directory replaced by a symlink out of the checkout: nothing may be removed
    // or written through it.
    fs::remove_dir_all(work.join("other")).unwrap();
    std::os::unix::fs::symlink(&outside, work.join("other")).unwrap();
    // A tracked directory replaced by a file, and a FIFO that would block a reader.
    fs::remove_dir_all(work.join("dir-to-file")).unwrap();
    fs::write(work.join("dir-to-file"), "x").unwrap();
    let fifo = Command::new("mkfifo")
        .arg(work.join("sub/pipe"))
        .status()
        .unwrap();
    assert!(fifo.success());

    // A plain checkout keeps everything it does not track.
    let naive = fx.path().join("naive");
    copy_tree(&work, &naive);
    let out = plain(&naive, &["checkout", "--force", "--detach", &a]);
    assert!(out.status.success(), "{}", text(&out));
    for leftover in [
        "untracked.txt",
        "sub/untracked.txt",
        "ignored.txt",
        "sub/debug.log",
        "emptydir",
    ] {
        assert!(
            naive.join(leftover).exists(),
            "plain checkout removed {leftover}"
        );
    }

    let run = launch(&fx, &config);
    run.success()
        .stdout_has("DATA committed\n")
        .stdout_has("LINKME regular\n")
        .stdout_has("NESTED nested\n");
    let listed: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("ENTRY "))
        .collect();
    assert_eq!(
        listed,
        [
            "ENTRY dir .",
            "ENTRY file ./.gitignore",
            "ENTRY file ./data.txt",
            "ENTRY dir ./dir-to-file",
            "ENTRY file ./dir-to-file/x.txt",
            "ENTRY file ./entrypoint.sh",
            "ENTRY file ./link-me.txt",
            "ENTRY dir ./other",
            "ENTRY file ./other/file.txt",
            "ENTRY dir ./sub",
            "ENTRY file ./sub/nested.txt",
            "ENTRY exec ./tool.sh",
        ],
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("root:"), "{}", run.stdout);
    let mut outside_now: Vec<_> = fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    outside_now.sort();
    assert_eq!(
        outside_now,
        ["precious"],
        "wrote or deleted through a symlink"
    );
}

// ---------------------------------------------------------------------------------------
// 10. Attributes in the commit
// ---------------------------------------------------------------------------------------

#[test]
fn committed_attributes_do_not_change_checked_out_bytes() {
    let fx = Fixture::new();
    let files = [
        "data.txt",
        "sub/latin.txt",
        "entrypoint.sh",
        ".gitattributes",
    ];
    let a = fx.commit(&[
        Item::File(".gitattributes", "* text eol=crlf\n*.txt ident\n"),
        Item::File("data.txt", "line one\nline two\n$Id$\n"),
        Item::File(
            "sub/.gitattributes",
            "*.txt working-tree-encoding=ISO-8859-1\n",
        ),
        Item::File("sub/latin.txt", "caf\u{e9}\n"),
        Item::File("entrypoint.sh", &entry("A")),
    ]);
    let committed = |path: &str| {
        let out = plain(
            &fx.path().join("scratch"),
            &["cat-file", "blob", &format!("{a}:{path}")],
        );
        assert!(out.status.success(), "{}", text(&out));
        out.stdout
    };

    // Plain git converts line endings, expands $Id$ and re-encodes.
    let naive = fx.path().join("naive");
    common::git(
        fx.path(),
        &[
            "clone",
            "--quiet",
            "--branch",
            "main",
            &fx.url(),
            naive.to_str().unwrap(),
        ],
    );
    for file in files {
        assert_ne!(
            fs::read(naive.join(file)).unwrap(),
            committed(file),
            "plain git checked {file} out unchanged"
        );
    }
    let plain_data = fs::read_to_string(naive.join("data.txt")).unwrap();
    assert!(
        plain_data.contains("\r\n") && plain_data.contains("$Id: "),
        "{plain_data:?}"
    );

    launch(&fx, &fx.line_config(&a, ""))
        .success()
        .stdout_has("RAN A in ");
    for file in files {
        assert_eq!(
            fs::read(fx.work_dir().join(file)).unwrap(),
            committed(file),
            "{file}"
        );
    }
}
