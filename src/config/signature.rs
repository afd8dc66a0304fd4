//! `[image.signature]` / `[git.signature]`: who must have signed the workload (a cosign
//! key, or a keyless Fulcio identity) and the trusted root it is checked against. TOML only:
//! git-launcher's line format has no nested tables, and its keys stay git-launcher's.

use std::path::PathBuf;

use toml_span::value::Table;

use super::raw::Located;
use super::toml::Reader;
use super::{Checker, ProblemKind};
use crate::capped_read::read_capped;
use crate::sigstore::key::PublicKey;
use crate::sigstore::{Identity, SignaturePolicy, SignerPolicy};

/// A PEM public key is a few hundred bytes.
const MAX_KEY_BYTES: u64 = 64 * 1024;

/// The spelling of each key in one section.
#[derive(Clone, Copy, Debug)]
pub struct SignatureKeys {
    pub prefix: &'static str,
    pub section: &'static str,
    pub public_key: &'static str,
    pub issuer: &'static str,
    pub identity: &'static str,
    pub identity_regex: &'static str,
    pub trusted_root: &'static str,
    pub transparency_log: &'static str,
    pub transparency_log_false: &'static str,
    pub one_identity: &'static str,
    pub no_identity_with_key: &'static str,
    pub one_signer: &'static str,
    pub keyless_needs_log: &'static str,
}

pub const IMAGE_KEYS: SignatureKeys = SignatureKeys {
    prefix: "image.signature.",
    section: "[image.signature]",
    public_key: "image.signature.public_key",
    issuer: "image.signature.issuer",
    identity: "image.signature.identity",
    identity_regex: "image.signature.identity_regex",
    trusted_root: "image.signature.trusted_root",
    transparency_log: "image.signature.transparency_log",
    transparency_log_false: "image.signature.transparency_log = false",
    one_identity: "exactly one of image.signature.identity and image.signature.identity_regex",
    no_identity_with_key: "no image.signature.issuer, identity or identity_regex (a key or a keyless identity, not both)",
    one_signer: "image.signature.public_key, or image.signature.issuer with identity or identity_regex",
    keyless_needs_log: "image.signature.public_key (a keyless certificate is checked at its transparency-log time)",
};

/// gitsign signatures are keyless: `public_key` is refused for commits.
pub const GIT_KEYS: SignatureKeys = SignatureKeys {
    prefix: "git.signature.",
    section: "[git.signature]",
    public_key: "git.signature.public_key",
    issuer: "git.signature.issuer",
    identity: "git.signature.identity",
    identity_regex: "git.signature.identity_regex",
    trusted_root: "git.signature.trusted_root",
    transparency_log: "git.signature.transparency_log",
    transparency_log_false: "git.signature.transparency_log = false",
    one_identity: "exactly one of git.signature.identity and git.signature.identity_regex",
    no_identity_with_key: "git.signature.issuer with identity or identity_regex instead (commits are checked by gitsign's keyless signatures only)",
    one_signer: "git.signature.issuer with identity or identity_regex",
    keyless_needs_log: "a key, which commits do not have (a gitsign signature is checked at its transparency-log time)",
};

/// `[image.signature]` / `[git.signature]` as written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawSignature {
    pub line: usize,
    pub public_key: Option<Located<String>>,
    pub issuer: Option<Located<String>>,
    pub identity: Option<Located<String>>,
    pub identity_regex: Option<Located<String>>,
    pub trusted_root: Option<Located<String>>,
    pub transparency_log: Option<Located<bool>>,
}

impl<'de> Reader<'de, '_> {
    /// Reads the `signature` table out of its section's table.
    pub(super) fn signature(
        &mut self,
        parent: &mut Table<'de>,
        keys: &SignatureKeys,
    ) -> Option<RawSignature> {
        let line = parent.get("signature").map(|v| self.line(v))?;
        let mut section = self.section(parent, "signature")?;
        let raw = RawSignature {
            line,
            public_key: self.string(&mut section, "public_key", keys.public_key),
            issuer: self.string(&mut section, "issuer", keys.issuer),
            identity: self.string(&mut section, "identity", keys.identity),
            identity_regex: self.string(&mut section, "identity_regex", keys.identity_regex),
            trusted_root: self.string(&mut section, "trusted_root", keys.trusted_root),
            transparency_log: self.boolean(&mut section, "transparency_log", keys.transparency_log),
        };
        self.unknown_keys(section, keys.prefix);
        Some(raw)
    }
}

/// Checks the policy: a key, or an issuer with exactly one of `identity` / `identity_regex`.
pub(super) fn validate(
    raw: RawSignature,
    keys: &SignatureKeys,
    check: &mut Checker<'_>,
) -> Option<SignaturePolicy> {
    let before = check.problems.len();
    let key = raw.public_key.and_then(|v| public_key(check, &v));
    let issuer = raw.issuer.and_then(|v| check.non_empty(v));
    let identity = raw.identity.and_then(|v| check.non_empty(v));
    let regex = raw.identity_regex.and_then(|v| check.non_empty(v));
    if let Some(regex) = &regex
        && let Err(e) = Identity::compile(&regex.value)
    {
        check.push(
            regex.line,
            ProblemKind::Syntax {
                detail: format!("{} is not a regular expression: {e}", keys.identity_regex),
            },
        );
    }
    let trusted_root = raw
        .trusted_root
        .and_then(|v| check.non_empty(v))
        .map(|v| PathBuf::from(v.value));
    let transparency_log = raw.transparency_log.as_ref().is_none_or(|v| v.value);
    let requires = |check: &mut Checker<'_>, line, key, needs| {
        check.push(line, ProblemKind::Requires { key, needs });
    };
    let signer = match (key, issuer, identity, regex) {
        (Some(key), None, None, None) if keys.prefix == IMAGE_KEYS.prefix => {
            Some(SignerPolicy::Key(key))
        }
        (None, Some(issuer), Some(identity), None) => Some(SignerPolicy::Keyless {
            issuer: issuer.value,
            identity: Identity::Exact(identity.value),
        }),
        (None, Some(issuer), None, Some(regex)) => Some(SignerPolicy::Keyless {
            issuer: issuer.value,
            identity: Identity::Regex(regex.value),
        }),
        (None, Some(issuer), _, _) => {
            requires(check, issuer.line, keys.issuer, keys.one_identity);
            None
        }
        (None, None, Some(Located { line, key, .. }), _)
        | (None, None, None, Some(Located { line, key, .. })) => {
            requires(check, line, key, keys.issuer);
            None
        }
        (Some(_), ..) => {
            requires(check, raw.line, keys.public_key, keys.no_identity_with_key);
            None
        }
        (None, None, None, None) => {
            if check.problems.len() == before {
                requires(check, raw.line, keys.section, keys.one_signer);
            }
            None
        }
    };
    if !transparency_log && matches!(signer, Some(SignerPolicy::Keyless { .. })) {
        requires(
            check,
            raw.line,
            keys.transparency_log_false,
            keys.keyless_needs_log,
        );
    }
    if check.problems.len() > before {
        return None;
    }
    Some(SignaturePolicy {
        signer: signer?,
        trusted_root,
        transparency_log,
    })
}

/// Inline PEM, or the path of a PEM file.
fn public_key(check: &mut Checker<'_>, value: &Located<String>) -> Option<PublicKey> {
    let text = if value.value.contains("-----BEGIN") {
        value.value.clone()
    } else {
        let value = check.non_empty(value.clone())?;
        let path = PathBuf::from(&value.value);
        if let Ok(Ok(text)) = read_capped(&path, MAX_KEY_BYTES).map(String::from_utf8) {
            text
        } else {
            check.push(
                value.line,
                ProblemKind::InvalidPath {
                    key: value.key,
                    value: value.value,
                    reason: "must be inline PEM or a readable PEM file of at most 64 KiB",
                },
            );
            return None;
        }
    };
    let key = PublicKey::from_pem(&text);
    if key.is_none() {
        check.push(
            value.line,
            ProblemKind::InvalidPath {
                key: value.key,
                value: value.value.chars().take(80).collect(),
                reason: "must be a PEM PUBLIC KEY (ECDSA P-256/P-384 or Ed25519)",
            },
        );
    }
    key
}

#[cfg(test)]
mod tests {
    use super::super::WorkloadSpec;
    use super::super::load::load_text;
    use super::*;

    const KEY: &str = include_str!("../../tests/fixtures/sigstore/cosign.pub");

    fn policy(section: &str) -> Result<Option<SignaturePolicy>, Vec<String>> {
        let digest = format!("sha256:{}", "1".repeat(64));
        let config = load_text(
            "c.toml",
            &format!("[image]\nreference = \"ghcr.io/org/app\"\ndigest = \"{digest}\"\n{section}"),
        )?;
        match config.workload {
            WorkloadSpec::Image(spec) => Ok(spec.signature),
            WorkloadSpec::Git(_) => panic!("not an image config"),
        }
    }

    #[test]
    fn no_section_no_policy() {
        assert_eq!(policy("").unwrap(), None);
    }

    #[test]
    fn keyless_and_key_policies_read() {
        let keyless = policy(
            "[image.signature]\nissuer = \"https://github.com/login/oauth\"\nidentity = \"mitr@redhat.com\"\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            keyless.signer,
            SignerPolicy::Keyless {
                issuer: "https://github.com/login/oauth".into(),
                identity: Identity::Exact("mitr@redhat.com".into()),
            }
        );
        assert!(keyless.transparency_log);
        assert_eq!(keyless.trusted_root, None);
        let inline = policy(&format!(
            "[image.signature]\npublic_key = \"\"\"\n{KEY}\"\"\"\ntransparency_log = false\ntrusted_root = \"/etc/root.json\"\n"
        ))
        .unwrap()
        .unwrap();
        assert_eq!(
            inline.signer,
            SignerPolicy::Key(PublicKey::from_pem(KEY).unwrap())
        );
        assert!(!inline.transparency_log);
        assert_eq!(inline.trusted_root, Some(PathBuf::from("/etc/root.json")));
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), KEY).unwrap();
        let from_file = policy(&format!(
            "[image.signature]\npublic_key = \"{}\"\n",
            file.path().display()
        ))
        .unwrap()
        .unwrap();
        assert_eq!(from_file.signer, inline.signer);
    }

    #[test]
    fn incomplete_or_conflicting_policies_are_refused() {
        for (section, expected) in [
            (
                "[image.signature]\n",
                "c.toml:4: [image.signature] requires image.signature.public_key, or image.signature.issuer with identity or identity_regex",
            ),
            (
                "[image.signature]\nissuer = \"https://github.com/login/oauth\"\n",
                "c.toml:5: image.signature.issuer requires exactly one of image.signature.identity and image.signature.identity_regex",
            ),
            (
                "[image.signature]\nidentity = \"a@b\"\n",
                "c.toml:5: image.signature.identity requires image.signature.issuer",
            ),
            (
                "[image.signature]\nissuer = \"i\"\nidentity = \"a\"\nidentity_regex = \"a\"\n",
                "c.toml:5: image.signature.issuer requires exactly one of image.signature.identity and image.signature.identity_regex",
            ),
            (
                "[image.signature]\nissuer = \"i\"\nidentity_regex = \"(\"\n",
                "c.toml:6: image.signature.identity_regex is not a regular expression: ",
            ),
            (
                "[image.signature]\nissuer = \"i\"\nidentity = \"a\"\ntransparency_log = false\n",
                "c.toml:4: image.signature.transparency_log = false requires image.signature.public_key (a keyless certificate is checked at its transparency-log time)",
            ),
            (
                "[image.signature]\npublic_key = \"/nonexistent/key.pub\"\n",
                "c.toml:5: image.signature.public_key must be inline PEM or a readable PEM file of at most 64 KiB (got \"/nonexistent/key.pub\")",
            ),
            (
                "[image.signature]\npublic_key = \"-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----\"\n",
                "c.toml:5: image.signature.public_key must be a PEM PUBLIC KEY (ECDSA P-256/P-384 or Ed25519) (got \"-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----\")",
            ),
            (
                "[image.signature]\nissuer = \"i\"\nidentity = \"a\"\nsubject = \"x\"\n",
                "c.toml:7: unknown key image.signature.subject",
            ),
        ] {
            let problems = policy(section).expect_err(section);
            assert_eq!(problems.len(), 1, "{section}: {problems:?}");
            assert!(problems[0].starts_with(expected), "{section}: {problems:?}");
        }
    }

    fn git_policy(section: &str) -> Result<Option<SignaturePolicy>, Vec<String>> {
        let config = load_text(
            "c.toml",
            &format!(
                "[git]\nrepo = \"https://github.com/o/r\"\ncommit = \"{}\"\nwork_dir = \"/w\"\n{section}",
                "a".repeat(40)
            ),
        )?;
        match config.workload {
            WorkloadSpec::Git(spec) => Ok(spec.signature),
            WorkloadSpec::Image(_) => panic!("not a git config"),
        }
    }

    #[test]
    fn git_policies_are_keyless_only() {
        assert_eq!(git_policy("").unwrap(), None);
        let policy = git_policy(
            "[git.signature]\nissuer = \"https://accounts.google.com\"\nidentity_regex = \".*@chainguard\\\\.dev\"\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            policy.signer,
            SignerPolicy::Keyless {
                issuer: "https://accounts.google.com".into(),
                identity: Identity::Regex(r".*@chainguard\.dev".into()),
            }
        );
        let key = git_policy(&format!(
            "[git.signature]\npublic_key = \"\"\"\n{KEY}\"\"\"\n"
        ));
        assert_eq!(
            key.unwrap_err(),
            [
                "c.toml:5: git.signature.public_key requires git.signature.issuer with identity or identity_regex instead (commits are checked by gitsign's keyless signatures only)"
            ]
        );
        assert_eq!(
            git_policy("[git.signature]\nissuer = \"i\"\nsubject = \"x\"\n")
                .unwrap_err()
                .len(),
            2,
            "an incomplete policy and an unknown key"
        );
    }
}
