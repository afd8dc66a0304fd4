//! The rendered compose document (a template may come from disk) through
//! `ComposeDocument::check`, as image mode checks it before handing it to compose.
//! Invariants: an accepted document is kept byte for byte with its SHA-256; and read by an
//! independent YAML parser (yaml-rust2), every service of it runs exactly the approved image
//! — the one property the check exists for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trusted_launcher::compose_document::ComposeDocument;
use trusted_launcher::digest::Sha256Digest;
use yaml_rust2::{Yaml, YamlLoader};

const IMAGE: &str = "registry.example/team/app@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let Ok(document) = ComposeDocument::check(text.to_owned(), IMAGE) else {
        return;
    };
    assert_eq!(document.text(), text);
    assert_eq!(*document.sha256(), Sha256Digest::of(bytes));
    // yaml-rust2 refuses some documents saphyr reads (and the reverse); only a document both
    // read is compared.
    let Ok(docs) = YamlLoader::load_from_str(text) else {
        return;
    };
    let [root] = docs.as_slice() else {
        panic!("accepted a stream of {} documents", docs.len());
    };
    let Yaml::Hash(services) = &root["services"] else {
        panic!("accepted without a services mapping: {root:?}");
    };
    assert!(!services.is_empty(), "accepted without services");
    for (name, service) in services {
        assert_eq!(
            service["image"].as_str(),
            Some(IMAGE),
            "service {name:?} runs another image in {text:?}"
        );
    }
});
