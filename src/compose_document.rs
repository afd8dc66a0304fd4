//! The compose document image mode hands to compose: checked to run only the approved image,
//! and measured by its SHA-256.
//!
//! A custom template is read from disk, where anyone who can write it could otherwise start
//! any image (or `privileged`, or a build) after `ready`. So the rendered document is parsed
//! as YAML — the same document model compose's parser (go-yaml v3) builds: escapes decoded,
//! anchors and aliases resolved — and refused unless every service runs exactly the approved
//! `repository@digest`, with nothing that would make compose read another file or build an
//! image. Whatever else it says (ports, volumes, privileges) is bound by the measured digest,
//! for a verifier to read from `plan --json`.

use std::borrow::Cow;

use saphyr_parser::{Event, Parser, ScalarStyle};

use crate::digest::Sha256Digest;

/// Aliases can expand a small document into a huge tree ("billion laughs"): cap the nodes.
const MAX_NODES: usize = 100_000;
/// Deeper nesting than this is no compose file; it also bounds recursion on drop.
const MAX_DEPTH: usize = 64;

/// Top-level keys compose reads that cannot run another image or pull in another file.
/// `include` (other compose files) and `models` (model runners) are not among them.
const TOP_LEVEL_KEYS: &[&str] = &[
    "name", "version", "services", "volumes", "networks", "configs", "secrets",
];
/// Service keys that run something other than the approved image, or read another file's
/// service definition.
const FORBIDDEN_SERVICE_KEYS: &[&str] = &["build", "extends", "provider"];

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ComposeError {
    #[error("rendered compose document is not YAML compose reads: {0}")]
    Yaml(String),
    #[error("rendered compose document: {0}")]
    Refused(String),
}

/// A rendered compose document whose services all run the approved image.
#[derive(Clone, Debug)]
pub struct ComposeDocument {
    text: String,
    sha256: Sha256Digest,
}

impl ComposeDocument {
    /// Checks `text` and keeps it with its digest. `image` is the approved
    /// `repository@digest` exactly as the template's `{{ image }}` renders it.
    pub fn check(text: String, image: &str) -> Result<Self, ComposeError> {
        let root = parse(&text)?;
        check_root(&root, image)?;
        let sha256 = Sha256Digest::of(text.as_bytes());
        Ok(Self { text, sha256 })
    }

    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    #[must_use]
    pub fn sha256(&self) -> &Sha256Digest {
        &self.sha256
    }
}

/// A YAML node after alias resolution.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    Scalar { value: String, plain: bool },
    Sequence(Vec<Node>),
    Mapping(Vec<(Node, Node)>),
}

impl Node {
    fn as_str(&self) -> Option<&str> {
        match self {
            Self::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    fn size(&self) -> usize {
        match self {
            Self::Scalar { .. } => 1,
            Self::Sequence(items) => 1 + items.iter().map(Self::size).sum::<usize>(),
            Self::Mapping(pairs) => {
                1 + pairs
                    .iter()
                    .map(|(k, v)| k.size() + v.size())
                    .sum::<usize>()
            }
        }
    }
}

/// A collection being built, with its anchor.
enum Open {
    Sequence(usize, Vec<Node>),
    Mapping(usize, Vec<(Node, Node)>, Option<Node>),
}

/// Parses exactly one document into a tree, resolving aliases; refuses tags, several
/// documents, and documents that grow past the caps.
fn parse(text: &str) -> Result<Node, ComposeError> {
    let yaml = |e: &dyn std::fmt::Display| ComposeError::Yaml(e.to_string());
    let mut anchors: Vec<(usize, Node)> = Vec::new();
    let mut stack: Vec<Open> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0usize;
    let mut nodes = 0usize;
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| yaml(&e))?;
        let line = span.start.line();
        let complete = match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(ComposeError::Refused(format!(
                        "line {line}: a second YAML document (compose reads one)"
                    )));
                }
                continue;
            }
            Event::Scalar(_, _, _, Some(tag))
            | Event::SequenceStart(_, Some(tag))
            | Event::MappingStart(_, Some(tag)) => {
                return Err(ComposeError::Refused(format!(
                    "line {line}: YAML tag {tag} (compose gives tags such as !reset and !override meanings of its own)"
                )));
            }
            Event::Scalar(value, style, anchor, None) => {
                let node = Node::Scalar {
                    value: value.into_owned(),
                    plain: style == ScalarStyle::Plain,
                };
                remember(&mut anchors, anchor, &node);
                node
            }
            Event::Alias(id) => anchors
                .iter()
                .rev()
                .find(|(anchor, _)| *anchor == id)
                .map(|(_, node)| node.clone())
                .ok_or_else(|| ComposeError::Yaml(format!("line {line}: unknown alias")))?,
            Event::SequenceStart(anchor, None) => {
                stack.push(Open::Sequence(anchor, Vec::new()));
                check_depth(stack.len(), line)?;
                continue;
            }
            Event::MappingStart(anchor, None) => {
                stack.push(Open::Mapping(anchor, Vec::new(), None));
                check_depth(stack.len(), line)?;
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (anchor, node) = match stack.pop() {
                    Some(Open::Sequence(anchor, items)) => (anchor, Node::Sequence(items)),
                    Some(Open::Mapping(anchor, pairs, None)) => (anchor, Node::Mapping(pairs)),
                    _ => return Err(ComposeError::Yaml(format!("line {line}: unbalanced"))),
                };
                remember(&mut anchors, anchor, &node);
                node
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {
                continue;
            }
        };
        nodes += complete.size();
        if nodes > MAX_NODES {
            return Err(ComposeError::Refused(format!(
                "more than {MAX_NODES} YAML nodes once aliases are expanded"
            )));
        }
        match stack.last_mut() {
            None => root = Some(complete),
            Some(Open::Sequence(_, items)) => items.push(complete),
            Some(Open::Mapping(_, pairs, pending)) => match pending.take() {
                None => *pending = Some(complete),
                Some(key) => pairs.push((key, complete)),
            },
        }
    }
    root.ok_or_else(|| ComposeError::Refused("empty document".into()))
}

fn remember(anchors: &mut Vec<(usize, Node)>, anchor: usize, node: &Node) {
    if anchor != 0 {
        anchors.push((anchor, node.clone()));
    }
}

fn check_depth(depth: usize, line: usize) -> Result<(), ComposeError> {
    if depth > MAX_DEPTH {
        return Err(ComposeError::Refused(format!(
            "line {line}: nested deeper than {MAX_DEPTH} levels"
        )));
    }
    Ok(())
}

/// The keys of a mapping as strings: no merge keys, no duplicates, no complex keys.
fn keys<'a>(node: &'a Node, what: &str) -> Result<Vec<(&'a str, &'a Node)>, ComposeError> {
    let refused = |detail: String| Err(ComposeError::Refused(detail));
    let Node::Mapping(pairs) = node else {
        return refused(format!("{what} is not a mapping"));
    };
    let mut out: Vec<(&str, &Node)> = Vec::with_capacity(pairs.len());
    for (key, value) in pairs {
        let Some(name) = key.as_str() else {
            return refused(format!("{what} has a key that is not a string"));
        };
        if name == "<<" && matches!(key, Node::Scalar { plain: true, .. }) {
            return refused(format!(
                "{what} uses a YAML merge key (<<), which hides what a service runs"
            ));
        }
        if out.iter().any(|(seen, _)| *seen == name) {
            return refused(format!("{what} has the key {name:?} twice"));
        }
        out.push((name, value));
    }
    Ok(out)
}

/// Merge keys are refused wherever they appear, not only where the check looks.
fn no_merge_keys(node: &Node, what: &str) -> Result<(), ComposeError> {
    match node {
        Node::Scalar { .. } => Ok(()),
        Node::Sequence(items) => items.iter().try_for_each(|i| no_merge_keys(i, what)),
        Node::Mapping(_) => keys(node, what)?
            .into_iter()
            .try_for_each(|(_, value)| no_merge_keys(value, what)),
    }
}

fn check_root(root: &Node, image: &str) -> Result<(), ComposeError> {
    let refused = |detail: String| Err(ComposeError::Refused(detail));
    let top = keys(root, "the document")?;
    for (key, _) in &top {
        if !TOP_LEVEL_KEYS.contains(key) && !key.starts_with("x-") {
            return refused(format!(
                "top-level key {key:?} is not allowed (allowed: {}, x-*)",
                TOP_LEVEL_KEYS.join(", ")
            ));
        }
    }
    let Some((_, services)) = top.iter().find(|(key, _)| *key == "services") else {
        return refused("no services".into());
    };
    let services = keys(services, "services")?;
    if services.is_empty() {
        return refused("no services".into());
    }
    for (name, service) in services {
        let what = format!("service {name:?}");
        let fields = keys(service, &what)?;
        if let Some((key, _)) = fields
            .iter()
            .find(|(key, _)| FORBIDDEN_SERVICE_KEYS.contains(key))
        {
            return refused(format!(
                "{what} has {key:?}; only the approved image may run"
            ));
        }
        match fields.iter().find(|(key, _)| *key == "image") {
            Some((_, Node::Scalar { value, .. })) if value == image => {}
            Some((_, value)) => {
                return refused(format!(
                    "{what} runs image {}, not the approved {image}",
                    value.as_str().map_or(Cow::Borrowed("(not a string)"), |v| {
                        Cow::Owned(format!("{v:?}"))
                    })
                ));
            }
            None => return refused(format!("{what} names no image")),
        }
    }
    no_merge_keys(root, "a mapping")
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGE: &str = "registry.example/app@sha256:aaaa";

    fn check(text: &str) -> Result<ComposeDocument, ComposeError> {
        ComposeDocument::check(text.to_owned(), IMAGE)
    }

    fn refused(text: &str) -> String {
        match check(text) {
            Err(ComposeError::Refused(detail)) => detail,
            other => panic!("{} gave {other:?}", text.get(..200).unwrap_or(text)),
        }
    }

    #[test]
    fn approved_services_pass_and_are_digested() {
        let text = format!(
            "name: p\nservices:\n  a:\n    image: \"{IMAGE}\"\n    privileged: false\n  b:\n    image: {IMAGE}\nvolumes: {{}}\nx-note: &n {{a: 1}}\nx-copy: *n\n"
        );
        let document = check(&text).unwrap();
        assert_eq!(document.text(), text);
        assert_eq!(*document.sha256(), Sha256Digest::of(text.as_bytes()));
    }

    #[test]
    fn anything_but_the_approved_image_is_refused() {
        for (text, expected) in [
            (
                "services:\n  a:\n    image: evil@sha256:bbbb\n".to_owned(),
                format!("service \"a\" runs image \"evil@sha256:bbbb\", not the approved {IMAGE}"),
            ),
            (
                format!("services:\n  a:\n    image: {IMAGE}\n  b:\n    image: busybox\n"),
                format!("service \"b\" runs image \"busybox\", not the approved {IMAGE}"),
            ),
            (
                "services:\n  a:\n    command: [sh]\n".to_owned(),
                "service \"a\" names no image".to_owned(),
            ),
            (
                format!("services:\n  a:\n    image: {IMAGE}\n    build: .\n"),
                "service \"a\" has \"build\"; only the approved image may run".to_owned(),
            ),
            (
                format!("services:\n  a:\n    image: {IMAGE}\n    extends: {{file: b.yaml, service: x}}\n"),
                "service \"a\" has \"extends\"; only the approved image may run".to_owned(),
            ),
            (
                format!("services:\n  a:\n    image: {IMAGE}\n    image: busybox\n"),
                "service \"a\" has the key \"image\" twice".to_owned(),
            ),
            (
                format!("services:\n  a:\n    image: {IMAGE}\n    \"im\\x61ge\": busybox\n"),
                "service \"a\" has the key \"image\" twice".to_owned(),
            ),
            (
                format!("include: [other.yaml]\nservices:\n  a:\n    image: {IMAGE}\n"),
                "top-level key \"include\" is not allowed (allowed: name, version, services, volumes, networks, configs, secrets, x-*)".to_owned(),
            ),
            (
                format!("x-b: &b {{image: busybox}}\nservices:\n  a:\n    <<: *b\n    image: {IMAGE}\n"),
                "service \"a\" uses a YAML merge key (<<), which hides what a service runs".to_owned(),
            ),
            (
                format!("x-b: &b busybox\nservices:\n  a:\n    image: {IMAGE}\n  b:\n    image: *b\n"),
                format!("service \"b\" runs image \"busybox\", not the approved {IMAGE}"),
            ),
            (
                format!("services:\n  a:\n    image: !reset {IMAGE}\n"),
                "line 3: YAML tag !reset (compose gives tags such as !reset and !override meanings of its own)".to_owned(),
            ),
            (
                format!("services:\n  a:\n    image: {IMAGE}\n---\nservices: {{}}\n"),
                "line 4: a second YAML document (compose reads one)".to_owned(),
            ),
            ("services: {}\n".to_owned(), "no services".to_owned()),
            ("name: x\n".to_owned(), "no services".to_owned()),
            ("[1, 2]\n".to_owned(), "the document is not a mapping".to_owned()),
            (
                format!("services:\n  a:\n    image: {IMAGE}\n    ? [x]\n    : y\n"),
                "service \"a\" has a key that is not a string".to_owned(),
            ),
        ] {
            assert_eq!(refused(&text), expected, "{text}");
        }
    }

    #[test]
    fn alias_bombs_and_deep_nesting_stop_early() {
        let levels: Vec<String> = (1..12)
            .map(|level| {
                let alias = format!("*a{}", level - 1);
                format!("x-{level}: &a{level} [{}]\n", vec![alias; 10].join(", "))
            })
            .collect();
        let bomb = format!(
            "x-0: &a0 [a, a, a, a, a, a, a, a, a, a]\n{}",
            levels.concat()
        );
        assert_eq!(
            refused(&bomb),
            format!("more than {MAX_NODES} YAML nodes once aliases are expanded")
        );
        let deep = format!("{}{}\n", "[".repeat(100), "]".repeat(100));
        assert_eq!(refused(&deep), "line 1: nested deeper than 64 levels");
        // The parser's own limit stops far deeper nesting before any tree is built.
        let deeper = format!("{}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(
            check(&deeper),
            Err(ComposeError::Yaml(detail)) if detail.contains("recursion limit")
        ));
    }

    #[test]
    fn malformed_yaml_is_an_error_not_a_panic() {
        for text in [
            "services: [\n",
            "a: b: c\n",
            "\"unterminated\n",
            "x: *nope\n",
        ] {
            assert!(
                matches!(check(text), Err(ComposeError::Yaml(_))),
                "{text:?}"
            );
        }
    }
}
