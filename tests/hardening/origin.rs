//! Fetching: an origin unreachable on a later start, and a server that cannot serve a
//! commit by id.

use std::fs;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use crate::common::{Fixture, Item, entry};
use crate::{common, config_for, launch, plain};

// ---------------------------------------------------------------------------------------
// 7. Origin unreachable on a later start
// ---------------------------------------------------------------------------------------

#[test]
fn present_commit_starts_without_origin() {
    let fx = Fixture::new();
    let a = fx.commit(&[Item::File("entrypoint.sh", &entry("A"))]);
    let config = fx.line_config(&a, "");
    launch(&fx, &config).success().stdout_has("RAN A");
    fs::rename(fx.origin(), fx.path().join("origin-gone.git")).unwrap();

    // The naive launcher fetches first and dies with the origin.
    let out = plain(&fx.work_dir(), &["fetch", "--quiet", &fx.url(), &a]);
    assert!(!out.status.success(), "plain fetch worked without origin");

    launch(&fx, &config)
        .success()
        .stdout_has("RAN A")
        .stderr_has("already in the local object store; not fetching")
        .stderr_has(&format!("HEAD verified: {a}"));
}

// ---------------------------------------------------------------------------------------
// 8. Server that cannot serve a commit by id
// ---------------------------------------------------------------------------------------

/// A `python3 -m http.server` child on loopback, killed on drop.
struct DumbHttp {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    port: u16,
}

impl DumbHttp {
    fn serve(dir: &Path) -> Self {
        let mut child = Command::new("python3")
            .args([
                "-u",
                "-m",
                "http.server",
                "0",
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 for a dumb HTTP server");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let read = stdout.read_line(&mut line);
        // "Serving HTTP on 127.0.0.1 port 43117 (http://127.0.0.1:43117/) ..."
        let port = line
            .split_whitespace()
            .skip_while(|word| *word != "port")
            .nth(1)
            .and_then(|p| p.parse().ok());
        let mut server = Self {
            child,
            _stdout: stdout,
            port: 0,
        };
        match (read, port) {
            (Ok(_), Some(port)) => server.port = port,
            _ => panic!("http.server did not announce a port: {line:?}"),
        }
        server
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for DumbHttp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn server_refusing_fetch_by_id_gets_a_full_fetch() {
    let fx = Fixture::new();
    let a = fx.commit(&[Item::File("entrypoint.sh", &entry("A"))]);
    fx.commit_on("later", &[Item::File("entrypoint.sh", &entry("later"))]);
    common::git(&fx.origin(), &["update-server-info"]);
    let server = DumbHttp::serve(fx.path());
    let url = server.url("origin.git");

    // The dumb protocol cannot do the shallow fetch by id.
    let probe = fx.path().join("probe");
    common::git(fx.path(), &["init", "--quiet", probe.to_str().unwrap()]);
    let out = plain(&probe, &["fetch", "--quiet", "--depth=1", &url, &a]);
    assert!(!out.status.success(), "dumb HTTP served a shallow fetch");

    let config = config_for(&fx, "http.conf", &url, &a, &fx.work_dir());
    launch(&fx, &config)
        .success()
        .stdout_has("RAN A")
        .stderr_has("fetch by commit id failed")
        .stderr_has("fetching all branches and tags")
        .stderr_has(&format!("HEAD verified: {a}"));
    drop(server);
}
