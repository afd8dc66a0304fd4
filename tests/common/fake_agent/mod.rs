//! A fake dstack guest agent (DESIGN §3–§5): HTTP/1.1 over a unix socket (or loopback TCP,
//! as the simulator), `Version`, `Info`, `GetQuote` and `EmitEvent` with dstack's JSON
//! shapes, an event log holding dstack's boot events, and RTMR3 kept by replay. Modes
//! reproduce the agents the launcher meets (stripped logs, no `EmitEvent`, the simulator)
//! and malicious or broken ones (garbage, oversized, silent, protobuf replies). Every request
//! is recorded so tests can check what the launcher sent.
//!
//! Written on std and `sha2` only, independently of the crate's own digest and quote code,
//! so a shared mistake cannot hide.

mod api;
mod event_log;
mod fake_rtmr3;
mod server;
mod wire;

// The fake's API, as when it was one file: a test binary may use only part of it.
#[allow(unused_imports)]
pub use event_log::{
    Entry, boot_runtime_events, extend, hex, replay, replay_json_log, unhex, v1_digest,
};
#[allow(unused_imports)]
pub use fake_rtmr3::{FakeRtmr3, Open};
#[allow(unused_imports)]
pub use server::{FakeAgent, Register};
#[allow(unused_imports)]
pub use wire::Request;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use fake_rtmr3::{NativeLink, read_pending};

/// dstack's event type for runtime (RTMR3) events.
pub const EVENT_TYPE: u32 = 0x0800_0001;
/// Size of the body of an [`Mode::Oversized`] reply.
pub const OVERSIZED_BYTES: usize = 64 * 1024 * 1024;
/// The simulator's answer to `EmitEvent` (dstack 0.5.9+).
pub const SIMULATOR_ERROR: &str = "runtime event emission is unavailable in simulator mode";
/// Length of a v4 quote with an empty signature: header, TD report body, signature length.
pub const QUOTE_LEN: usize = 48 + 584 + 4;
/// Absolute offsets in a v4 quote (DESIGN §5).
pub const QUOTE_MRTD: usize = 48 + 136;
pub const QUOTE_RTMR0: usize = 48 + 328;
pub const QUOTE_RTMR3: usize = 48 + 472;
pub const QUOTE_REPORT_DATA: usize = 48 + 520;

/// How long the fake waits on a peer: a stuck client never stalls the fake for long.
const PEER_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_REQUEST_HEAD: usize = 64 * 1024;
const MAX_REQUEST_BODY: usize = 1024 * 1024;

const MRTD: [u8; 48] = [0x11; 48];
const APP_ID: [u8; 20] = [
    0x94, 0x4e, 0xda, 0xb7, 0x71, 0x28, 0x0e, 0xde, 0x41, 0x0e, 0x7b, 0x9e, 0x66, 0xfc, 0xae, 0xe6,
    0xb2, 0xc4, 0xa1, 0x2c,
];
const INSTANCE_ID: [u8; 20] = [
    0xce, 0x0b, 0x8b, 0x91, 0x9d, 0xcf, 0x82, 0xcd, 0xcd, 0x06, 0xce, 0xd4, 0x6d, 0x28, 0xc9, 0x11,
    0x31, 0x37, 0xfc, 0x3d,
];
const COMPOSE_HASH: [u8; 32] = [0x60; 32];
const OS_IMAGE_HASH: [u8; 32] = [0xde; 32];
const MR_KMS: [u8; 32] = [0x7e; 32];
const DEVICE_ID: [u8; 32] = [0xe3; 32];
const KEY_PROVIDER: &str = r#"{"name":"kms","id":"3059301306072a8648ce3d020106082a8648ce3d030107034200048844eb42ccdf8c52fd4f174f36"}"#;

/// How the fake behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A dstack 0.5.x agent before 0.5.6: full digests everywhere, `EmitEvent` works.
    Normal,
    /// As agents from 0.5.6 on: `GetQuote`'s log has `"digest":""` on RTMR3 entries and
    /// empty payloads on RTMR0–2 entries. `Info` is unchanged.
    Stripped,
    /// The next dstack release: `EmitEvent` answers 400 `Service not found: EmitEvent`.
    NoEmitEvent,
    /// The dstack simulator (0.5.9+): `EmitEvent` answers 400 with [`SIMULATOR_ERROR`].
    Simulator,
    /// Older simulators: `EmitEvent` answers 200 `null` but records nothing.
    DropsEvents,
    /// Every reply is 200 with a body that is not JSON.
    Garbage,
    /// Every reply is the normal one, padded with leading whitespace to a 64 MiB body.
    Oversized,
    /// Reads the request and never answers; the connection stays open until drop.
    Silent,
    /// Answers in protobuf when the request's content type is not JSON, as dstack does.
    Protobuf,
    /// Answers in protobuf to every request.
    AlwaysProtobuf,
}

/// The `next` dstack's RTMR3 entries, read at each request from its runtime event log (an
/// error is the agent failing to read that log). See `next_agent`.
pub type RuntimeLog = Arc<dyn Fn() -> Result<Vec<Entry>, String> + Send + Sync>;

struct State {
    log: Vec<Entry>,
    rtmr3: [u8; 48],
    boot_len: usize,
    requests: Vec<Request>,
}

struct Shared {
    mode: Mode,
    stop: AtomicBool,
    state: Mutex<State>,
    /// The fake sysfs file linked to this register ([`FakeRtmr3::start_linked`]).
    native: Mutex<Option<NativeLink>>,
    /// Set for a `next` agent: its log is `state.log` (firmware only) followed by these.
    runtime_log: Option<RuntimeLog>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic on the serving thread must not hide the state from the test.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The register as the hardware holds it when asked: bytes a writer already wrote to the
    /// linked fake sysfs file are extended first, as the kernel's synchronous write has done
    /// by the time the writer can ask for a quote. (The fake's reader thread alone may not
    /// have run yet.)
    fn settle_native(&self) {
        let link = lock(&self.native).clone();
        if let Some(link) = link {
            let mut fifo = lock(&link.fifo);
            let pending = read_pending(&link.path);
            fifo.absorb(&pending, |digest| self.extend(digest));
            fifo.drain(|digest| self.extend(digest));
        }
    }

    /// The whole log as the agent reports it.
    fn full_log(&self, state: &State) -> Result<Vec<Entry>, String> {
        let mut log = state.log.clone();
        if let Some(read) = &self.runtime_log {
            log.extend(read()?);
        }
        Ok(log)
    }

    fn extend(&self, digest: &[u8; 48]) {
        let mut state = self.state();
        state.rtmr3 = extend(&state.rtmr3, digest);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
