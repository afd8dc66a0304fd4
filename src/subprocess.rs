//! Helper programs the launcher waits for (docker, `INSTALL_CMD`): each wait has a deadline,
//! and what is captured of their output has a cap. Only the exec'd workload runs unbounded.

use std::io::{Read, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How often a running child is polled for its exit.
const POLL: Duration = Duration::from_millis(20);

/// What a finished program printed, each stream cut at the cap (the rest was read and
/// dropped, so the program never blocks on a full pipe).
#[derive(Debug)]
pub struct Captured {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

#[derive(Debug)]
pub enum Outcome<T> {
    Exited(T),
    /// Killed at the deadline.
    TimedOut,
}

/// Runs `command` with `stdin` written to it, capturing at most `max_output` bytes of each
/// of stdout and stderr; kills it at `timeout`.
pub fn run_captured(
    mut command: Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
    max_output: u64,
) -> std::io::Result<Outcome<Captured>> {
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn()?;
    let stdout = drain(child.stdout.take(), max_output);
    let stderr = drain(child.stderr.take(), max_output);
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // Written from a thread: a child that never reads must not block us past the deadline.
        let bytes = bytes.to_vec();
        thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    let Some(status) = wait_until(&mut child, Instant::now() + timeout)? else {
        let _ = child.kill();
        let _ = child.wait();
        // The readers are left behind: a grandchild may still hold the pipes open, and
        // waiting for it would defeat the deadline.
        return Ok(Outcome::TimedOut);
    };
    Ok(Outcome::Exited(Captured {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }))
}

/// Runs `command` with its output inherited; kills it at `timeout`.
pub fn run_inherited(
    mut command: Command,
    timeout: Duration,
) -> std::io::Result<Outcome<ExitStatus>> {
    let mut child = command.spawn()?;
    if let Some(status) = wait_until(&mut child, Instant::now() + timeout)? {
        return Ok(Outcome::Exited(status));
    }
    let _ = child.kill();
    let _ = child.wait();
    Ok(Outcome::TimedOut)
}

/// Runs `command` in a process group of its own, output inherited; at `timeout` kills the
/// whole group (so what it started in the background dies with it) through `bash`'s `kill`
/// builtin — the crate forbids `unsafe`, so no `kill(2)` of its own.
pub fn run_group(
    mut command: Command,
    timeout: Duration,
    bash: &Path,
) -> std::io::Result<Outcome<ExitStatus>> {
    command.process_group(0);
    let mut child = command.spawn()?;
    if let Some(status) = wait_until(&mut child, Instant::now() + timeout)? {
        return Ok(Outcome::Exited(status));
    }
    kill_group(bash, child.id());
    let _ = child.kill();
    let _ = child.wait();
    Ok(Outcome::TimedOut)
}

/// `kill -KILL -- -<pgid>`: the group's id is its leader's pid (`process_group(0)`).
fn kill_group(bash: &Path, pgid: u32) {
    let killer = Command::new(bash)
        .env_clear()
        .args(["-c", "kill -KILL -- \"-$1\"", "kill", &pgid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Ok(mut killer) = killer {
        // `kill` is a builtin: it returns at once; bound the wait anyway.
        if !matches!(
            wait_until(&mut killer, Instant::now() + Duration::from_secs(10)),
            Ok(Some(_))
        ) {
            let _ = killer.kill();
            let _ = killer.wait();
        }
    }
}

/// The child's exit status, or `None` once `deadline` passes.
fn wait_until(child: &mut Child, deadline: Instant) -> std::io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(POLL);
    }
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>, max: u64) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(pipe) = pipe {
            let mut limited = pipe.take(max);
            let _ = limited.read_to_end(&mut bytes);
            let _ = std::io::copy(&mut limited.into_inner(), &mut std::io::sink());
        }
        bytes
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bash() -> std::path::PathBuf {
        crate::git::find_program("bash").unwrap()
    }

    fn script(text: &str) -> Command {
        let mut command = Command::new(bash());
        command.args(["-c", text]);
        command
    }

    #[test]
    fn captures_capped_output_and_stdin() {
        let Outcome::Exited(done) = run_captured(
            script("cat; head -c 100000 /dev/zero; echo err >&2"),
            Some(b"in"),
            Duration::from_secs(60),
            10,
        )
        .unwrap() else {
            panic!("timed out")
        };
        assert!(done.status.success());
        assert_eq!(done.stdout, b"in\0\0\0\0\0\0\0\0");
        assert_eq!(done.stderr, b"err\n");
    }

    /// The deadline ends a child that never exits, and one that never reads its stdin.
    #[test]
    fn deadline_kills() {
        let started = Instant::now();
        for text in ["sleep 600", "exec sleep 600 </dev/null"] {
            let outcome = run_captured(
                script(text),
                Some(&vec![0u8; 1 << 20]),
                Duration::from_millis(300),
                10,
            )
            .unwrap();
            assert!(matches!(outcome, Outcome::TimedOut));
        }
        let outcome = run_inherited(script("sleep 600"), Duration::from_millis(300)).unwrap();
        assert!(matches!(outcome, Outcome::TimedOut));
        assert!(started.elapsed() < Duration::from_secs(60));
    }

    #[test]
    fn group_kill_takes_background_children() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let text = format!("sleep 600 & echo $! > {}; wait", pid_file.display());
        let outcome = run_group(script(&text), Duration::from_millis(500), &bash()).unwrap();
        assert!(matches!(outcome, Outcome::TimedOut));
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        // Gone, or a zombie awaiting its new parent's reap.
        while std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
            .is_ok_and(|stat| !stat.contains(") Z "))
        {
            assert!(Instant::now() < deadline, "background sleep {pid} survived");
            thread::sleep(POLL);
        }
    }
}
