//! The app-compose: the document dstack measures at boot (its SHA-256 is the `compose-hash`
//! event, and with a v1 MRCONFIGID also bound into the quote). Two copies may be checked:
//! the one the input document carries (the agent's `Info` reply, NEAR's or Phala's
//! `tcb_info.app_compose`; on Phala that is the platform-generated document with `features`,
//! `pre_launch_script`, ...), and the one a verifier audited and gives with `--app-compose`.
//! Each must hash to what the boot measured; when both are given they must be the same bytes.

use std::fmt::Write as _;

use sha2::{Digest as _, Sha256};

use crate::hex;
use crate::tdx_quote::TdQuote;

use super::boot::Boot;
use super::report::Report;

/// The input document's app-compose.
pub const CARRIED: &str = "compose_hash.evidence_app_compose";
/// The `--app-compose FILE` under audit.
pub const AUDITED: &str = "compose_hash.app_compose";

/// An app-compose's exact text and where it came from (a JSON field, or a file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppCompose {
    pub from: String,
    pub text: String,
}

impl AppCompose {
    pub fn new(from: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            from: from.into(),
            text: text.into(),
        }
    }
}

/// What the boot says was measured, as far as the evidence shows.
#[derive(Clone, Copy, Debug)]
enum BootHash<'a> {
    /// No verified event log.
    NoLog,
    /// A log whose boot part cannot be read (see `boot.events`).
    Unsound(&'static str),
    /// A sound boot part without a `compose-hash` event.
    Missing,
    Event(&'a [u8]),
}

/// `compose_hash.evidence_app_compose` and `compose_hash.app_compose`.
pub fn check(
    report: &mut Report,
    carried: Option<&AppCompose>,
    audited: Option<&AppCompose>,
    quote: Option<&TdQuote>,
    boot: Option<&Boot<'_>>,
) {
    let event = match boot.map(|b| b.payload("compose-hash")) {
        None => BootHash::NoLog,
        Some(Err(why)) => BootHash::Unsound(why),
        Some(Ok(None)) => BootHash::Missing,
        Some(Ok(Some(hash))) => BootHash::Event(hash),
    };
    let bound = quote.and_then(|q| bound_compose_hash(&q.mr_config_id));
    match carried {
        None => report.skip(CARRIED, "the input carries no app-compose"),
        // Nothing asked of it and nothing to compare with: shown, not judged.
        Some(_) if matches!(event, BootHash::NoLog) && bound.is_none() => report.skip(
            CARRIED,
            "no verified event log (see rtmr3.replay) and MRCONFIGID binds nothing",
        ),
        Some(compose) => {
            let (ok, detail) = compare(compose, event, bound);
            report.check(CARRIED, ok, detail);
        }
    }
    let Some(compose) = audited else {
        report.skip(AUDITED, "no --app-compose given");
        return;
    };
    let (mut ok, mut detail) = compare(compose, event, bound);
    if let Some(carried) = carried {
        if carried.text == compose.text {
            let _ = write!(detail, "; byte-identical to the input's {}", carried.from);
        } else {
            ok = false;
            let _ = write!(
                detail,
                "; differs from the input's {} (sha256 {}): the audited file is not the measured one",
                carried.from,
                hex::encode(&Sha256::digest(carried.text.as_bytes()))
            );
        }
    }
    report.check(AUDITED, ok, detail);
}

/// The compose hash a dstack v1 MRCONFIGID binds (`0x01 ‖ sha256(app-compose) ‖ zeros`).
fn bound_compose_hash(mr_config_id: &[u8]) -> Option<&[u8]> {
    if mr_config_id.first() != Some(&1) {
        return None;
    }
    mr_config_id.get(1..33)
}

/// Whether `compose` is what the boot measured: its SHA-256 equals the boot's `compose-hash`
/// event and, when MRCONFIGID binds one, that too. Without a verified log MRCONFIGID alone
/// decides; without either nothing does, and that fails.
fn compare(compose: &AppCompose, event: BootHash<'_>, bound: Option<&[u8]>) -> (bool, String) {
    let actual = Sha256::digest(compose.text.as_bytes());
    let actual = actual.as_slice();
    let mut detail = format!(
        "sha256(app-compose from {}) = {}",
        compose.from,
        hex::encode(actual)
    );
    let mut ok = match event {
        BootHash::Event(hash) => {
            let _ = write!(
                detail,
                "; the boot's compose-hash event {}",
                hex::encode(hash)
            );
            hash == actual
        }
        BootHash::Missing => {
            detail.push_str("; the boot part has no compose-hash event");
            false
        }
        BootHash::Unsound(why) => {
            let _ = write!(detail, "; {why}");
            false
        }
        BootHash::NoLog if bound.is_some() => {
            detail.push_str("; no verified event log (see rtmr3.replay)");
            true
        }
        BootHash::NoLog => {
            detail.push_str(
                "; no verified event log (see rtmr3.replay) and MRCONFIGID binds nothing: nothing shows what was measured",
            );
            false
        }
    };
    if let Some(bound) = bound {
        let _ = write!(detail, "; MRCONFIGID binds {}", hex::encode(bound));
        ok &= bound == actual;
    }
    (ok, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(text: &str) -> Vec<u8> {
        Sha256::digest(text.as_bytes()).to_vec()
    }

    #[test]
    fn compare_table() {
        let compose = AppCompose::new("tcb_info.app_compose", "{}");
        let good = sha("{}");
        let other = sha("{ }");
        let h = hex::encode(&good);
        let o = hex::encode(&other);
        let cases: [(BootHash<'_>, Option<&[u8]>, bool, String); 8] = [
            (
                BootHash::Event(&good),
                None,
                true,
                format!("; the boot's compose-hash event {h}"),
            ),
            (
                BootHash::Event(&good),
                Some(&good),
                true,
                format!("; the boot's compose-hash event {h}; MRCONFIGID binds {h}"),
            ),
            (
                BootHash::Event(&good),
                Some(&other),
                false,
                format!("; the boot's compose-hash event {h}; MRCONFIGID binds {o}"),
            ),
            (
                BootHash::Event(&other),
                None,
                false,
                format!("; the boot's compose-hash event {o}"),
            ),
            (
                BootHash::Missing,
                None,
                false,
                "; the boot part has no compose-hash event".into(),
            ),
            (
                BootHash::Unsound("the boot part of the log is not sound (see boot.events)"),
                Some(&good),
                false,
                format!(
                    "; the boot part of the log is not sound (see boot.events); MRCONFIGID binds {h}"
                ),
            ),
            (
                BootHash::NoLog,
                Some(&good),
                true,
                format!("; no verified event log (see rtmr3.replay); MRCONFIGID binds {h}"),
            ),
            (
                BootHash::NoLog,
                None,
                false,
                "; no verified event log (see rtmr3.replay) and MRCONFIGID binds nothing: nothing shows what was measured".into(),
            ),
        ];
        for (event, bound, ok, tail) in cases {
            let (got_ok, detail) = compare(&compose, event, bound);
            assert_eq!(got_ok, ok, "{event:?} {bound:?}");
            assert_eq!(
                detail,
                format!("sha256(app-compose from tcb_info.app_compose) = {h}{tail}")
            );
        }
    }

    #[test]
    fn mrconfigid_binds_only_in_dstack_v1_form() {
        let mut id = [0u8; 48];
        assert_eq!(bound_compose_hash(&id), None);
        id[1] = 0xab;
        assert_eq!(bound_compose_hash(&id), None);
        id[0] = 1;
        assert_eq!(bound_compose_hash(&id).map(<[u8]>::len), Some(32));
        assert_eq!(bound_compose_hash(&id).and_then(|b| b.first()), Some(&0xab));
        assert_eq!(bound_compose_hash(&[1, 2]), None);
    }
}
