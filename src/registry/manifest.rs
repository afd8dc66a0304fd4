//! Manifests and indexes: just enough structure to pick a platform and find the config.

use serde::Deserialize;

use crate::digest::ImageDigest;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// All four, always: with only the Docker v2 type a registry may 404 an OCI index, or
/// rewrite a manifest list to one platform's manifest (another digest).
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// `os/architecture[/variant]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let parts: Vec<&str> = text.split('/').collect();
        let valid =
            |p: &&str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(valid) {
            return Err("must be os/architecture[/variant], e.g. linux/amd64");
        }
        let mut parts = parts.into_iter().map(str::to_owned);
        Ok(Self {
            os: parts.next().unwrap_or_default(),
            architecture: parts.next().unwrap_or_default(),
            variant: parts.next(),
        })
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// containerd's defaults: an arm64 entry without a variant is v8, an arm one v7.
fn normalized_variant<'a>(architecture: &str, variant: Option<&'a str>) -> Option<&'a str> {
    match (architecture, variant) {
        ("arm64", None) => Some("v8"),
        ("arm", None) => Some("v7"),
        (_, variant) => variant,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: Option<String>,
    digest: String,
    #[serde(default)]
    platform: Option<DescriptorPlatform>,
}

#[derive(Deserialize)]
struct DescriptorPlatform {
    os: String,
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

#[derive(Deserialize)]
struct ImageConfig {
    os: String,
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

/// Whether an image config blob is for `platform`; returns its own platform either way.
pub fn config_platform(body: &[u8], platform: &Platform) -> Result<(bool, String), String> {
    let config: ImageConfig =
        serde_json::from_slice(body).map_err(|e| format!("image config is not valid JSON: {e}"))?;
    let actual = Platform {
        os: config.os,
        architecture: config.architecture,
        variant: config.variant,
    };
    let matches = actual.os == platform.os
        && actual.architecture == platform.architecture
        && (platform.variant.is_none()
            || normalized_variant(&platform.architecture, platform.variant.as_deref())
                == normalized_variant(&actual.architecture, actual.variant.as_deref()));
    Ok((matches, actual.to_string()))
}

/// What a manifest body is.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// An index / manifest list: the platform's manifest is elsewhere.
    Index {
        platform_manifest: Option<ImageDigest>,
    },
    /// An image manifest, with its config blob.
    Manifest { config: ImageDigest },
}

/// Parses a verified manifest body; `platform` picks from an index.
pub fn parse(
    body: &[u8],
    content_type: Option<&str>,
    platform: &Platform,
) -> Result<Parsed, String> {
    let document: Document =
        serde_json::from_slice(body).map_err(|e| format!("manifest is not valid JSON: {e}"))?;
    let media_type = document
        .media_type
        .as_deref()
        .or(content_type)
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    match media_type.as_str() {
        OCI_INDEX | DOCKER_LIST => {
            let manifests = document.manifests.ok_or("index has no manifests")?;
            let mut candidates: Vec<(ImageDigest, Option<String>)> = Vec::new();
            for descriptor in &manifests {
                let Some(p) = &descriptor.platform else {
                    continue;
                };
                let variant_matches = platform.variant.is_none()
                    || normalized_variant(&platform.architecture, platform.variant.as_deref())
                        == normalized_variant(&p.architecture, p.variant.as_deref());
                if p.os == platform.os && p.architecture == platform.architecture && variant_matches
                {
                    let digest = ImageDigest::parse(&descriptor.digest).ok_or_else(|| {
                        format!("index lists a malformed digest {:?}", descriptor.digest)
                    })?;
                    if !candidates.iter().any(|(d, _)| *d == digest) {
                        candidates.push((digest, p.variant.clone()));
                    }
                }
            }
            // Without a wanted variant, an entry without one (the baseline) wins over
            // variants such as amd64/v3; anything still ambiguous is refused.
            if candidates.len() > 1 && platform.variant.is_none() {
                candidates.retain(|(_, variant)| variant.is_none());
            }
            match candidates.as_slice() {
                [] => Ok(Parsed::Index {
                    platform_manifest: None,
                }),
                [(digest, _)] => Ok(Parsed::Index {
                    platform_manifest: Some(*digest),
                }),
                _ => Err(format!(
                    "index lists more than one manifest for platform {platform}"
                )),
            }
        }
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let config = document.config.ok_or("image manifest has no config")?;
            let digest = ImageDigest::parse(&config.digest).ok_or_else(|| {
                format!(
                    "image manifest's config digest {:?} is malformed",
                    config.digest
                )
            })?;
            let _ = config.media_type;
            Ok(Parsed::Manifest { config: digest })
        }
        other => Err(format!("unsupported manifest media type {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: char) -> String {
        format!("sha256:{}", n.to_string().repeat(64))
    }

    #[test]
    fn platforms() {
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64/v8"
        );
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", "linux/amd 64"] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn index_selects_platform_and_skips_attestations() {
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
              {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1,"platform":{{"os":"unknown","architecture":"unknown"}}}}]}}"#,
            d('1'),
            d('2'),
            d('3')
        );
        let pick = |p: &str| parse(index.as_bytes(), None, &Platform::parse(p).unwrap()).unwrap();
        assert_eq!(
            pick("linux/amd64"),
            Parsed::Index {
                platform_manifest: ImageDigest::parse(&d('1'))
            }
        );
        assert_eq!(
            pick("linux/arm64"),
            Parsed::Index {
                platform_manifest: ImageDigest::parse(&d('2'))
            }
        );
        assert_eq!(
            pick("linux/arm64/v8"),
            Parsed::Index {
                platform_manifest: ImageDigest::parse(&d('2'))
            }
        );
        assert_eq!(
            pick("linux/riscv64"),
            Parsed::Index {
                platform_manifest: None
            }
        );
    }

    #[test]
    fn baseline_entry_wins_without_a_wanted_variant() {
        let with_v3 = format!(
            r#"{{"mediaType":"{OCI_INDEX}","manifests":[
              {{"digest":"{}","platform":{{"os":"linux","architecture":"amd64","variant":"v3"}}}},
              {{"digest":"{}","platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
            d('5'),
            d('6')
        );
        let amd64 = Platform::parse("linux/amd64").unwrap();
        assert_eq!(
            parse(with_v3.as_bytes(), None, &amd64).unwrap(),
            Parsed::Index {
                platform_manifest: ImageDigest::parse(&d('6'))
            }
        );
        let v3 = Platform::parse("linux/amd64/v3").unwrap();
        assert_eq!(
            parse(with_v3.as_bytes(), None, &v3).unwrap(),
            Parsed::Index {
                platform_manifest: ImageDigest::parse(&d('5'))
            }
        );
    }

    #[test]
    fn manifest_config_and_media_type_from_header() {
        let body = format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"{}"}},"layers":[]}}"#,
            d('4')
        );
        let platform = Platform::parse("linux/amd64").unwrap();
        assert_eq!(
            parse(body.as_bytes(), Some(DOCKER_MANIFEST), &platform).unwrap(),
            Parsed::Manifest {
                config: ImageDigest::parse(&d('4')).unwrap()
            }
        );
        assert!(parse(body.as_bytes(), Some("text/html"), &platform).is_err());
        assert!(parse(b"[]", Some(OCI_MANIFEST), &platform).is_err());
    }
}
