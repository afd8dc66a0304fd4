//! Helper programs the launcher waits for (docker, `INSTALL_CMD`): each wait has a deadline,
//! and what is captured of their output has a cap. Only the exec'd workload runs unbounded.

use std::io::{Read, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The longest pause between two looks at a child without pipes (its output inherited).
/// The pauses start at [`FIRST_PAUSE`] and double, so a short child is reaped within a
/// fraction of a millisecond of its exit and a long one costs a wake-up every 20 ms.
const POLL: Duration = Duration::from_millis(20);
const FIRST_PAUSE: Duration = Duration::from_micros(50);

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
    let deadline = Instant::now() + timeout;
    let (closed, eof) = mpsc::channel();
    let stdout = drain(child.stdout.take(), max_output, closed.clone());
    let stderr = drain(child.stderr.take(), max_output, closed);
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // Written from a thread: a child that never reads must not block us past the deadline.
        let bytes = bytes.to_vec();
        thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    // Both pipes reach end-of-file when the child exits: that wakes this thread, without a
    // poll. Then the exit status is collected (at once, in practice). A grandchild holding
    // a pipe past the deadline counts as the child running on: the wait stays bounded.
    let pipes_closed = eof_before(&eof, 2, deadline);
    let status = if pipes_closed {
        wait_until(&mut child, deadline)?
    } else {
        None
    };
    let Some(status) = status else {
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

/// The child's exit status, or `None` once `deadline` passes. Without `unsafe` there is no
/// `pidfd` or `waitid` here, and a waiter thread blocked in `wait` would leave nothing to
/// kill the child with at the deadline; so a child without pipes is looked at after pauses
/// that start at [`FIRST_PAUSE`] and double up to [`POLL`].
fn wait_until(child: &mut Child, deadline: Instant) -> std::io::Result<Option<ExitStatus>> {
    let mut pause = FIRST_PAUSE;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(POLL);
    }
}

/// Whether `count` pipe readers reported end-of-file before `deadline` (a blocking wait).
fn eof_before(eof: &mpsc::Receiver<()>, count: usize, deadline: Instant) -> bool {
    (0..count).all(|_| {
        let left = deadline.saturating_duration_since(Instant::now());
        // Disconnected: every reader has finished (and sent) already.
        !matches!(eof.recv_timeout(left), Err(mpsc::RecvTimeoutError::Timeout))
    })
}

/// Reads `pipe` to its end, keeping the first `max` bytes (the rest is read and dropped, so
/// the child never blocks on a full pipe); reports the end on `closed`.
fn drain<R: Read + Send + 'static>(
    pipe: Option<R>,
    max: u64,
    closed: mpsc::Sender<()>,
) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(pipe) = pipe {
            let mut limited = pipe.take(max);
            let _ = limited.read_to_end(&mut bytes);
            let _ = std::io::copy(&mut limited.into_inner(), &mut std::io::sink());
        }
        let _ = closed.send(());
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

    /// A child that exits while a background grandchild keeps its stdout open: the old wait
    /// saw the exit, then joined the pipe reader, which blocks until the grandchild closes
    /// the pipe (pipe(7): read returns end-of-file only once every write end is closed).
    /// Now the pipe's end is part of the deadline.
    #[test]
    fn grandchild_holding_the_pipe_does_not_outlast_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let text = format!("sleep 600 & echo $! > {}; exit 0", pid_file.display());

        // The naive wait: the child's exit is seen, the reader is still blocked after it.
        let mut naive = script(&text);
        let mut child = naive.stdout(Stdio::piped()).spawn().unwrap();
        let (closed, _eof) = mpsc::channel();
        let reader = drain(child.stdout.take(), 10, closed);
        assert!(child.wait().unwrap().success());
        assert!(
            !reader.is_finished(),
            "the pipe closed with the grandchild alive"
        );
        kill_background(&pid_file);
        reader.join().unwrap();

        let started = Instant::now();
        let outcome = run_captured(script(&text), None, Duration::from_millis(500), 10).unwrap();
        assert!(matches!(outcome, Outcome::TimedOut));
        assert!(started.elapsed() < Duration::from_secs(60));
        kill_background(&pid_file);
    }

    fn kill_background(pid_file: &Path) {
        let pid = std::fs::read_to_string(pid_file).unwrap();
        let status = Command::new("kill").arg(pid.trim()).status().unwrap();
        assert!(status.success());
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
