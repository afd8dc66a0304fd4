//! A fake sysfs `rtmr3:sha384` file: a named pipe whose writes are recorded and, when
//! linked to an agent, extend its register as the kernel does.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::lock;
use super::server::Register;

/// A [`FakeRtmr3`] linked to an agent's register.
#[derive(Clone)]
pub(super) struct NativeLink {
    pub(super) path: PathBuf,
    pub(super) fifo: Arc<Mutex<FifoState>>,
}

/// What the fake sysfs file has received, and how much of it has extended the register.
/// Bytes are read from the FIFO only while this is locked, so they are taken in order.
#[derive(Default)]
pub(super) struct FifoState {
    pub(super) received: Vec<u8>,
    pub(super) extended: usize,
    /// A read end held open for the FIFO's whole life. Without it, a writer that opens and
    /// writes just after the reader thread saw end-of-file, and before it closed, writes into
    /// a pipe whose last reader then closes: the kernel frees the buffer and the bytes are
    /// lost (seen under load). The kernel's sysfs file never loses a write.
    pub(super) keeper: Option<std::fs::File>,
}

impl FifoState {
    /// Takes whatever sits in the pipe now, without blocking, through the keeper.
    pub(super) fn drain(&mut self, extend: impl FnMut(&[u8; 48])) {
        let mut pending = Vec::new();
        if let Some(keeper) = &mut self.keeper {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = keeper.read(&mut buf) {
                pending.extend_from_slice(&buf[..n]);
            }
        }
        self.absorb(&pending, extend);
    }

    pub(super) fn absorb(&mut self, bytes: &[u8], mut extend: impl FnMut(&[u8; 48])) {
        self.received.extend_from_slice(bytes);
        while self.received.len() >= self.extended + 48 {
            let digest: [u8; 48] = self.received[self.extended..self.extended + 48]
                .try_into()
                .unwrap();
            extend(&digest);
            self.extended += 48;
        }
    }
}

/// Whatever is waiting in the FIFO at `path`, without blocking: opened `O_NONBLOCK`, read until
/// it would block (a writer is open) or ends (none is).
pub(super) fn read_pending(path: &Path) -> Vec<u8> {
    use std::os::unix::fs::OpenOptionsExt as _;
    const O_NONBLOCK: i32 = 0o4000; // Linux
    let mut pending = Vec::new();
    if let Ok(mut fifo) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path)
    {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = fifo.read(&mut buf) {
            pending.extend_from_slice(&buf[..n]);
        }
    }
    pending
}

/// A named pipe standing in for sysfs `rtmr3:sha384`: a thread reads whatever each writer
/// sends, so every write is recorded, in order; linked to a [`Register`], each 48 bytes
/// extend it, as the kernel does. Stopped on drop.
pub struct FakeRtmr3 {
    pub(super) path: PathBuf,
    pub(super) register: Option<Register>,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) fifo: Arc<Mutex<FifoState>>,
    pub(super) opens: Arc<Mutex<Vec<Open>>>,
    pub(super) thread: Option<JoinHandle<()>>,
}

/// What was true when a writer opened the fake file: how many bytes had been written before,
/// and how many lines the watched event log held at that moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Open {
    pub bytes_before: usize,
    pub log_lines: usize,
}

impl FakeRtmr3 {
    pub fn start(path: &Path) -> Self {
        Self::start_with(path, None, None)
    }

    /// As [`FakeRtmr3::start`], extending `register` with every 48 bytes written, and
    /// noting how many lines `event_log` has each time a writer opens the file (see
    /// [`FakeRtmr3::opens`]).
    pub fn start_linked(path: &Path, register: Register, event_log: &Path) -> Self {
        Self::start_with(path, Some(register), Some(event_log.to_owned()))
    }

    pub(super) fn start_with(
        path: &Path,
        register: Option<Register>,
        event_log: Option<PathBuf>,
    ) -> Self {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .expect("spawn mkfifo");
        assert!(status.success(), "mkfifo {}", path.display());
        let stop = Arc::new(AtomicBool::new(false));
        let keeper = {
            use std::os::unix::fs::OpenOptionsExt as _;
            const O_NONBLOCK: i32 = 0o4000; // Linux
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(O_NONBLOCK)
                .open(path)
                .expect("open the FIFO's keeper read end")
        };
        let fifo = Arc::new(Mutex::new(FifoState {
            keeper: Some(keeper),
            ..FifoState::default()
        }));
        let opens = Arc::new(Mutex::new(Vec::new()));
        if let Some(register) = &register {
            *lock(&register.0.native) = Some(NativeLink {
                path: path.to_owned(),
                fifo: Arc::clone(&fifo),
            });
        }
        let register_handle = register.clone();
        let thread = {
            let (path, stop, fifo, opens) = (
                path.to_owned(),
                Arc::clone(&stop),
                Arc::clone(&fifo),
                Arc::clone(&opens),
            );
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    // Counted before the next writer can write (the agent may drain it).
                    let bytes_before = lock(&fifo).received.len();
                    // Blocks until a writer opens; reads until every writer has closed.
                    let Ok(mut reader) = std::fs::File::open(&path) else {
                        return;
                    };
                    // The writer is now extending: whatever it logs first is already there.
                    if let Some(log) = &event_log {
                        let log_lines =
                            std::fs::read_to_string(log).map_or(0, |t| t.lines().count());
                        lock(&opens).push(Open {
                            bytes_before,
                            log_lines,
                        });
                    }
                    // Read under the lock: the agent may drain the FIFO itself, in order.
                    let mut state = lock(&fifo);
                    let mut chunk = Vec::new();
                    let _ = reader.read_to_end(&mut chunk);
                    state.absorb(&chunk, |digest| {
                        if let Some(register) = &register {
                            register.extend_natively(digest);
                        }
                    });
                }
            })
        };
        Self {
            path: path.to_owned(),
            register: register_handle,
            stop,
            fifo,
            opens,
            thread: Some(thread),
        }
    }

    /// One record per reader session that a writer opened (writers that open while the
    /// reader is still reading share one record).
    #[must_use]
    pub fn opens(&self) -> Vec<Open> {
        lock(&self.opens).clone()
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every byte written so far, in order.
    #[must_use]
    pub fn received(&self) -> Vec<u8> {
        let mut fifo = lock(&self.fifo);
        let register = self.register.clone();
        fifo.drain(|digest| {
            if let Some(register) = &register {
                register.extend_natively(digest);
            }
        });
        fifo.received.clone()
    }
}

impl Drop for FakeRtmr3 {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            // Bounded: a reader that never ends is left behind rather than hanging the test.
            for _ in 0..500 {
                if thread.is_finished() {
                    let _ = thread.join();
                    return;
                }
                // On Linux opening a FIFO read-write never blocks, and it releases a reader
                // blocked in open; closing it at once gives that reader end-of-file.
                let _ = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&self.path);
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}
