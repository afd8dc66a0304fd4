//! The fuzz targets' way in (`fuzz/`, feature `fuzzing`; never in the shipped binary).
//!
//! Each function feeds bytes to the parser the launcher or `verify` runs on them, through
//! the same code path, only without the file, socket or child process they come from. Where
//! the parser is private, the invariant the target asserts is checked here and reported as
//! an `Err` naming it, so a broken invariant is a crash of the target.

use serde_json::Value;

pub mod sigstore;
pub mod sigstore_parsers;

use crate::digest::ObjectFormat;
use crate::git::EntryKind;
use crate::git::objects::{self, ObjectHasher};
use crate::registry::challenge::{self, Challenge, ChallengeError};
use crate::verify::input::{self, Evidence};
use crate::verify::{Report, VerifyOptions};

/// A tree entry: name, kind, object name.
pub type TreeItem = (String, EntryKind, Vec<u8>);

/// `verify INPUT` on a JSON attestation document (`GetQuote` or Info reply, NEAR's public data,
/// `phala cvms attestation --json`); `None` when the document is refused as input.
#[must_use]
pub fn verify_document(bytes: &[u8], options: &VerifyOptions) -> Option<Report> {
    let evidence = input::from_document(bytes).ok()?;
    Some(crate::verify::verify_evidence(&evidence, options))
}

/// `verify --quote FILE [--collateral FILE]`: the quote file (binary, hex or base64) and the
/// collateral file's bytes, read as `verify` reads them; `None` when the quote file or the
/// collateral is refused as input.
#[must_use]
pub fn verify_quote(quote: &[u8], collateral: &[u8], options: &VerifyOptions) -> Option<Report> {
    let collateral: Value = serde_json::from_slice(collateral).ok()?;
    let evidence = Evidence {
        kind: "quote file".into(),
        quote: Some(quote_file(quote)?),
        collateral: Some(collateral),
        ..Evidence::default()
    };
    Some(crate::verify::verify_evidence(&evidence, options))
}

/// `verify --quote FILE`'s bytes as the quote (binary, hex or base64 text); `None` when
/// `verify` refuses the file.
#[must_use]
pub fn quote_file(bytes: &[u8]) -> Option<Vec<u8>> {
    crate::verify::quote_text::decode(bytes)
        .ok()
        .map(|(quote, _)| quote)
}

/// `verify --event-log FILE`: a JSON array or JSON lines of dstack entries. Returns the
/// entries' IMR-3 replay as the `verify` checks and the agent measurer do it.
pub fn verify_event_log(bytes: &[u8]) -> Result<crate::measure::replay::Rtmr3Log, String> {
    let entries = input::event_log_file(bytes)?;
    crate::measure::replay::rtmr3(&entries).map_err(|e| e.to_string())
}

/// The TDX quote inside a dstack app certificate (PEM), as `verify` reads an Info reply's.
pub fn certificate_quote(pem: &str) -> Result<Vec<u8>, String> {
    input::quote_from_certificate(pem)
}

/// A registry's `WWW-Authenticate` value, parsed as the registry client parses it.
pub fn www_authenticate(header: &str) -> Result<Vec<Challenge>, ChallengeError> {
    challenge::parse_challenges(header)
}

/// A registry's `Retry-After` value, read as the registry client reads it.
#[must_use]
pub fn retry_after(value: &str, now: std::time::SystemTime) -> Option<std::time::Duration> {
    crate::registry::retry_after::retry_after(value, now)
}

/// A registry redirect's `Location`, resolved against `current` as the client follows it.
pub fn redirect(current: &str, location: &str, plain_http: bool) -> Result<String, &'static str> {
    crate::registry::redirect::next_url(current, location, plain_http)
}

/// A commit object's content from a reused store: its root tree's object name.
#[must_use]
pub fn git_commit_tree(content: &[u8], format: ObjectFormat) -> Option<Vec<u8>> {
    objects::parse_commit_tree(content, format)
}

/// A tree object's content from a reused store, parsed as the checkout reads it, with the
/// round trip checked: the entries written back as git writes a tree parse to the same
/// entries. `Ok(None)` when the content is refused.
pub fn git_tree(content: &[u8], format: ObjectFormat) -> Result<Option<Vec<TreeItem>>, String> {
    let tree_oid = objects::object_id(format, "tree", content);
    let Ok(entries) = objects::parse_tree(content, &tree_oid, format) else {
        return Ok(None);
    };
    let parsed: Vec<_> = entries
        .into_iter()
        .map(|e| (e.name, e.kind, e.oid))
        .collect();
    let mut written = Vec::new();
    for (name, kind, oid) in &parsed {
        let mode: &[u8] = match kind {
            EntryKind::Directory => b"40000",
            EntryKind::File { executable: false } => b"100644",
            EntryKind::File { executable: true } => b"100755",
            EntryKind::Symlink => b"120000",
            EntryKind::Submodule => b"160000",
        };
        written.extend_from_slice(mode);
        written.push(b' ');
        written.extend_from_slice(name.as_bytes());
        written.push(0);
        written.extend_from_slice(oid);
    }
    let again: Vec<_> = objects::parse_tree(&written, &tree_oid, format)
        .map_err(|e| format!("a tree written from parsed entries is refused: {e}"))?
        .into_iter()
        .map(|e| (e.name, e.kind, e.oid))
        .collect();
    if again != parsed {
        return Err(format!(
            "tree round trip differs: {parsed:?} then {again:?}"
        ));
    }
    Ok(Some(parsed))
}

/// The object name of `content`, hashed in one piece and streamed in two at `split`: the
/// checkout hashes blobs streamed, trees and commits whole; both must agree.
pub fn git_object_id(
    format: ObjectFormat,
    kind: &str,
    content: &[u8],
    split: usize,
) -> Result<Vec<u8>, String> {
    let whole = objects::object_id(format, kind, content);
    let (head, tail) = content.split_at(split.min(content.len()));
    let mut hasher = ObjectHasher::new(format, kind, content.len() as u64);
    hasher.update(head);
    hasher.update(tail);
    let streamed = hasher.finish();
    if streamed != whole || whole.len() != format.id_len() {
        return Err("streamed and whole object names differ".into());
    }
    Ok(whole)
}
