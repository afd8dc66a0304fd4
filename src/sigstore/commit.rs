//! The launch's one call into signature checking for a commit: the checked-out commit
//! object's gitsign signature, verified under `[git.signature]`.

use super::{SignatureError, Signer, gitsign, load_root};
use crate::config::GitSpec;
use crate::contract;
use crate::error::Error;
use crate::git::VerifiedCheckout;
use crate::log::Logger;
use crate::measure::Session;

/// Right after the verified checkout, before anything from it runs (`INSTALL_CMD`, the
/// entry script): with a policy, the commit's signer is verified and measured as
/// `trusted-launcher.signer` (before `ready`); without one, nothing happens.
pub fn measure_signer(
    spec: &GitSpec,
    checkout: &VerifiedCheckout,
    session: &mut Session,
    log: &Logger,
) -> Result<(), Error> {
    if let Some(signer) = verify(spec, checkout, log)? {
        session.insert_before_ready(contract::signer_event(&signer));
        session.measure_before_ready(log)?;
    }
    Ok(())
}

/// `None` without a policy; the verified signer with one; an error (nothing started: the
/// checkout's code has not run) when the signature does not verify.
pub fn verify(
    spec: &GitSpec,
    checkout: &VerifiedCheckout,
    log: &Logger,
) -> Result<Option<Signer>, Error> {
    let Some(policy) = &spec.signature else {
        return Ok(None);
    };
    let root = load_root(policy)?;
    let signer = gitsign::verify(&checkout.commit_object, policy, &root).map_err(|reason| {
        SignatureError::CommitRefused {
            commit: checkout.commit.to_string(),
            reason,
        }
    })?;
    log.info(&format!("signature verified: {}", signer.payload()));
    Ok(Some(signer))
}
