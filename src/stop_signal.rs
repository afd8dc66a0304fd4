//! Stop requests for the watch (SIGTERM, SIGINT). As PID 1 of its container the launcher gets
//! SIGTERM from `docker stop` (and from dstack when it stops the app); the kernel drops
//! signals that PID 1 has no handler for, so without one `docker stop` waited out its grace
//! period and killed the launcher, leaving the sibling workload running. The handler only
//! records the signal; the watch looks at it between steps and stops the workload itself.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGTERM};

/// How often an idle wait looks for a stop request: how late one may be noticed.
const POLL: Duration = Duration::from_millis(100);

/// A signal that asks the launcher to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    Term,
    Int,
}

impl StopSignal {
    fn number(self) -> i32 {
        match self {
            Self::Term => SIGTERM,
            Self::Int => SIGINT,
        }
    }

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Term => "SIGTERM",
            Self::Int => "SIGINT",
        }
    }

    /// The exit status a shell shows for a process this signal ended: 128 + its number
    /// (143 for SIGTERM, 130 for SIGINT).
    #[must_use]
    pub fn exit_code(self) -> i32 {
        128 + self.number()
    }

    fn from_number(number: usize) -> Option<Self> {
        [Self::Term, Self::Int]
            .into_iter()
            .find(|s| usize::try_from(s.number()).is_ok_and(|n| n == number))
    }
}

/// SIGTERM and SIGINT, recorded from the moment [`StopRequests::install`] returns.
#[derive(Debug)]
pub struct StopRequests {
    /// The number of the last stop signal received; 0 while none was.
    received: Arc<AtomicUsize>,
}

impl StopRequests {
    /// Installs the handlers (they stay for the life of the process).
    pub fn install() -> io::Result<Self> {
        let received = Arc::new(AtomicUsize::new(0));
        for signal in [StopSignal::Term, StopSignal::Int] {
            let number = signal.number();
            let value = usize::try_from(number)
                .map_err(|_| io::Error::other(format!("signal number {number}")))?;
            signal_hook::flag::register_usize(number, Arc::clone(&received), value)?;
        }
        Ok(Self { received })
    }

    /// The stop signal received so far, if any.
    #[must_use]
    pub fn received(&self) -> Option<StopSignal> {
        StopSignal::from_number(self.received.load(Ordering::SeqCst))
    }

    /// Sleeps `duration`, or until a stop signal arrives (then returns it).
    #[must_use]
    pub fn sleep(&self, duration: Duration) -> Option<StopSignal> {
        let end = Instant::now() + duration;
        loop {
            if let Some(signal) = self.received() {
                return Some(signal);
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            std::thread::sleep(POLL.min(left));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        assert_eq!(StopSignal::Term.exit_code(), 143);
        assert_eq!(StopSignal::Int.exit_code(), 130);
        assert_eq!(StopSignal::from_number(15), Some(StopSignal::Term));
        assert_eq!(StopSignal::from_number(2), Some(StopSignal::Int));
        assert_eq!(StopSignal::from_number(0), None);
    }

    #[test]
    fn a_wait_without_a_signal_lasts_its_duration() {
        let requests = StopRequests {
            received: Arc::new(AtomicUsize::new(0)),
        };
        let start = Instant::now();
        assert_eq!(requests.sleep(Duration::from_millis(30)), None);
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn a_recorded_signal_ends_a_wait_at_once() {
        let received = Arc::new(AtomicUsize::new(0));
        let requests = StopRequests {
            received: Arc::clone(&received),
        };
        received.store(15, Ordering::SeqCst);
        // A day-long wait must return on its first look; bounded by a generous minute.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(requests.sleep(Duration::from_secs(86_400))));
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(60)),
            Ok(Some(StopSignal::Term))
        );
    }
}
