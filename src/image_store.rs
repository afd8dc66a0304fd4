//! Which image a pull left in the engine: `docker image inspect` answers differently on the
//! two image stores, and [`confirm`] accepts either shape for the approved image only.

use crate::docker::{DockerError, ImageInfo};

/// Which image store the engine uses, as its `image inspect` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageStore {
    /// The classic (graphdriver) store: the image ID is the config blob's digest.
    Classic,
    /// The containerd image store (Docker Desktop; new Docker Engine installs from v29): the
    /// image ID is the digest of the manifest or index that was pulled (docker/cli#5526,
    /// DataBiosphere/azul#6656 show `Id` equal to the pulled digest on that store).
    Containerd,
}

impl std::fmt::Display for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Classic => "classic image store: ID is the config digest",
            Self::Containerd => "containerd image store: ID is the pulled manifest digest",
        })
    }
}

/// What a correctly pulled image may show, all from the verified manifest chain.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    /// `repository` as Docker spells it in `RepoDigests`.
    pub repository: &'a str,
    /// The approved digest (an index or a manifest).
    pub requested: &'a str,
    /// The platform's image manifest (equal to `requested` for a single manifest).
    pub manifest: &'a str,
    /// The image config blob.
    pub config: &'a str,
}

/// The local image must be the approved one: `RepoDigests` names `repository@requested`,
/// and its ID is the verified config digest (classic store) or the approved digest or its
/// platform manifest digest (containerd store). Nothing else is accepted: not another
/// repository's entry, not any other digest as the ID.
pub fn confirm(info: &ImageInfo, expected: &Expected<'_>) -> Result<ImageStore, DockerError> {
    let name = format!("{}@{}", expected.repository, expected.requested);
    if !info.repo_digests.contains(&name) {
        return Err(DockerError::NotApproved {
            detail: format!("RepoDigests {:?} do not include {name}", info.repo_digests),
        });
    }
    if info.id == expected.config {
        return Ok(ImageStore::Classic);
    }
    if info.id == expected.requested || info.id == expected.manifest {
        return Ok(ImageStore::Containerd);
    }
    let containerd = if expected.manifest == expected.requested {
        format!("the approved digest {}", expected.requested)
    } else {
        format!(
            "the approved digest {} or its platform manifest {}",
            expected.requested, expected.manifest
        )
    };
    Err(DockerError::NotApproved {
        detail: format!(
            "image ID {:?} is neither the verified config digest {} (classic store) nor {containerd} (containerd store)",
            info.id, expected.config
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUESTED: &str = "sha256:index";
    const MANIFEST: &str = "sha256:manifest";
    const CONFIG: &str = "sha256:config";

    fn expected(repository: &str) -> Expected<'_> {
        Expected {
            repository,
            requested: REQUESTED,
            manifest: MANIFEST,
            config: CONFIG,
        }
    }

    fn info(id: &str, repo_digests: &[&str]) -> ImageInfo {
        ImageInfo {
            id: id.into(),
            repo_digests: repo_digests.iter().map(|d| (*d).to_owned()).collect(),
        }
    }

    /// Both stores' shapes, accepted; every other ID or `RepoDigests`, refused with the text.
    #[test]
    fn confirm_accepts_both_stores_and_nothing_else() {
        let ours = "r/x@sha256:index";
        let accepted = [
            (info(CONFIG, &[ours]), ImageStore::Classic),
            (
                info(CONFIG, &["r/x@sha256:other", ours]),
                ImageStore::Classic,
            ),
            (info(REQUESTED, &[ours]), ImageStore::Containerd),
            (info(MANIFEST, &[ours]), ImageStore::Containerd),
        ];
        for (info, store) in accepted {
            assert_eq!(confirm(&info, &expected("r/x")).unwrap(), store, "{info:?}");
        }
        let wrong_id = "image ID \"sha256:evil\" is neither the verified config digest sha256:config \
             (classic store) nor the approved digest sha256:index or its platform manifest \
             sha256:manifest (containerd store)";
        let refused = [
            (info("sha256:evil", &[ours]), "r/x", wrong_id.to_owned()),
            (
                info("", &[ours]),
                "r/x",
                wrong_id.replace("sha256:evil", ""),
            ),
            // Another repository's entry for the same digest does not count.
            (
                info(CONFIG, &["r/y@sha256:index"]),
                "r/x",
                r#"RepoDigests ["r/y@sha256:index"] do not include r/x@sha256:index"#.to_owned(),
            ),
            (
                info(REQUESTED, &["r/x@sha256:manifest"]),
                "r/x",
                r#"RepoDigests ["r/x@sha256:manifest"] do not include r/x@sha256:index"#.to_owned(),
            ),
            (
                info(CONFIG, &[]),
                "r/x",
                "RepoDigests [] do not include r/x@sha256:index".to_owned(),
            ),
            (
                info(CONFIG, &[ours]),
                "r/x/sub",
                r#"RepoDigests ["r/x@sha256:index"] do not include r/x/sub@sha256:index"#
                    .to_owned(),
            ),
        ];
        for (info, repository, detail) in refused {
            let error = confirm(&info, &expected(repository)).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("the pulled image is not what was approved: {detail}; not starting it")
            );
        }
    }

    /// A single manifest: the approved digest is the platform manifest, named once.
    #[test]
    fn confirm_single_manifest_names_the_digest_once() {
        let single = Expected {
            repository: "r/x",
            requested: MANIFEST,
            manifest: MANIFEST,
            config: CONFIG,
        };
        let ok = info(MANIFEST, &["r/x@sha256:manifest"]);
        assert_eq!(confirm(&ok, &single).unwrap(), ImageStore::Containerd);
        let bad = info(REQUESTED, &["r/x@sha256:manifest"]);
        assert_eq!(
            confirm(&bad, &single).unwrap_err().to_string(),
            "the pulled image is not what was approved: image ID \"sha256:index\" is neither the \
             verified config digest sha256:config (classic store) nor the approved digest \
             sha256:manifest (containerd store); not starting it"
        );
    }
}
