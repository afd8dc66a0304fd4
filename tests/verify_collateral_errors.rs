//! `verify` when collateral cannot be had or is wrong (issue 13): a PCS/PCCS stand-in (see
//! `common/pcs.rs`) that answers 404, stalls, sends too much or another FMSPC's TCB info;
//! collateral past its nextUpdate; another machine's PCK chain. Each is one clear line
//! naming the value and the next step, and nothing is cached.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::Launcher;
use common::collateral_run::{
    COLLATERAL, LATE_NOW, OTHER_FMSPC_COLLATERAL, QUOTE, SAMPLE_NOW, Scratch, TD15EX_COLLATERAL,
    TD15EX_NOW, fixture, fixture_json, naive_dcap,
};
use common::pcs::{self, PCK_CRL_PATH, QE_PATH, TCB_PATH};

/// Every failure of the fetch is one line naming what failed; nothing is cached, and a
/// stalled server ends in a bounded error.
#[test]
fn fetch_failures_are_clear_and_cache_nothing() {
    let s = Scratch::new();
    let good = pcs::routes_for(&fixture_json(COLLATERAL));
    let server = s.pcs(&good);
    let url = server.url();
    let fetch = || s.verify(&["--pccs-url", &url, "--now", SAMPLE_NOW]);
    let with = |path: &str, route: Value| {
        let mut routes = good.clone();
        routes[path] = route;
        routes
    };

    // 404 (e.g. a PCCS that does not know the FMSPC).
    server.set_routes(&with(
        TCB_PATH,
        json!({"status": 404, "body_hex": pcs::hex(b"no such fmspc")}),
    ));
    let detail = fetch().collateral_fails();
    assert_eq!(
        detail,
        format!(
            "fetching collateral for FMSPC B0C06F000000 (platform CA): {url}{TCB_PATH} answered HTTP 404: no such fmspc"
        )
    );

    // Oversized: refused at the cap, not read to the end.
    server.set_routes(&with(TCB_PATH, json!({"pad": 3 * 1024 * 1024})));
    let detail = fetch().collateral_fails();
    assert!(
        detail.ends_with(&format!(
            "{url}{TCB_PATH}: the body is larger than 1048576 bytes; refusing it"
        )),
        "{detail}"
    );

    // TCB info for another FMSPC (genuine, Intel-signed, just not this platform's).
    let other = pcs::routes_for(&fixture_json(OTHER_FMSPC_COLLATERAL));
    server.set_routes(&with(TCB_PATH, other[TCB_PATH].clone()));
    let detail = fetch().collateral_fails();
    assert!(
        detail.ends_with(&format!("{url}{TCB_PATH} returned TCB info for FMSPC 90C06F000000, not the quote's B0C06F000000; refusing it")),
        "{detail}"
    );

    // A redirect (ureq would follow it, even to plain HTTP): refused, not followed.
    server.set_routes(&with(
        TCB_PATH,
        json!({"status": 302, "headers": {"Location": "http://127.0.0.1:9/tcb"}}),
    ));
    let detail = fetch().collateral_fails();
    assert!(
        detail.ends_with(&format!(
            "{url}{TCB_PATH} answered HTTP 302 (a redirect); collateral is fetched only from the URL asked"
        )),
        "{detail}"
    );

    // Not the signed JSON a PCS sends.
    server.set_routes(&with(
        TCB_PATH,
        json!({"body_hex": pcs::hex(b"<html>busy</html>"), "headers": good[TCB_PATH]["headers"]}),
    ));
    let detail = fetch().collateral_fails();
    assert!(
        detail.contains(&format!("{url}{TCB_PATH}: not the signed JSON expected: ")),
        "{detail}"
    );

    // No issuer chain header.
    server.set_routes(&with(
        QE_PATH,
        json!({"body_hex": good[QE_PATH]["body_hex"]}),
    ));
    let detail = fetch().collateral_fails();
    assert!(
        detail.ends_with(
            "answered without the SGX-Enclave-Identity-Issuer-Chain header (the issuer chain)"
        ),
        "{detail}"
    );

    // A server that accepts and never answers: a timeout, well inside the run limit.
    server.set_routes(&with(TCB_PATH, json!({"stall": 600})));
    let started = Instant::now();
    let detail = fetch().collateral_fails();
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "{:?}",
        started.elapsed()
    );
    assert!(
        detail.ends_with(&format!("{url}{TCB_PATH} timed out after 20s")),
        "{detail}"
    );
    assert!(s.cached_entries().is_empty(), "{:?}", s.cached_entries());
}

/// The stand-in's certificate is trusted only through --pccs-ca-file: without it, the
/// built-in web roots do not know its CA and nothing is fetched.
#[test]
fn a_private_pccs_ca_is_trusted_only_through_the_ca_file() {
    let s = Scratch::new();
    let server = s.pcs(&pcs::routes_for(&fixture_json(COLLATERAL)));
    let url = server.url();
    let mut launcher = Launcher::new(s.path());
    launcher.args([
        "verify",
        "--quote",
        fixture(QUOTE).to_str().unwrap(),
        "--allow-no-launch",
    ]);
    launcher.args([
        "--pccs-url",
        &url,
        "--now",
        SAMPLE_NOW,
        "--cache-dir",
        s.cache().to_str().unwrap(),
    ]);
    let run = launcher.run();
    assert_eq!(run.status, Some(1));
    let line = run
        .stdout
        .lines()
        .skip(1) // the verdict line
        .find(|l| l.contains("quote.collateral"))
        .unwrap();
    assert!(line.starts_with("FAIL"), "{line}");
    assert!(
        line.contains(&format!("cannot reach {url}{PCK_CRL_PATH}")),
        "{line}"
    );
    assert!(s.cached_entries().is_empty());
}

/// Collateral past its nextUpdate is never used silently: fetched, cached or in a file, it
/// fails naming the item, the date in RFC 3339 and the next step; a stale cache entry is
/// refetched when online.
#[test]
fn stale_collateral_is_named_with_its_date() {
    let s = Scratch::new();
    let server = s.pcs(&pcs::routes_for(&fixture_json(COLLATERAL)));
    let url = server.url();
    let expired = "collateral expired: the PCK CRL was valid until 2025-07-19T10:00:35Z, not after the verification time 2025-10-09T08:53:20Z (--now 1760000000); the collateral is valid as a whole from 2025-06-19T10:32:27Z until 2025-07-19T10:00:35Z (--now 1750329147 to 1752919234): pass --now with a time in it to repeat an old verdict, or fetch current collateral (leave out --collateral and --offline)";

    // What dcap-qvl alone says about it: Rust debug text, no date, no hint.
    let collateral = fixture_json(COLLATERAL);
    let naive = naive_dcap(&collateral, LATE_NOW.parse().unwrap());
    assert!(
        naive.contains("UnixTime(") || naive.contains("expired"),
        "{naive}"
    );
    assert!(!naive.contains("2025-07-19T10:00:35Z"), "{naive}");

    let live = s.verify(&["--pccs-url", &url, "--now", LATE_NOW]);
    assert_eq!(
        live.collateral_fails(),
        format!("fetched from {url}: {expired}")
    );
    assert!(s.cached_entries().is_empty());

    let file = s.verify(&[
        "--collateral",
        fixture(COLLATERAL).to_str().unwrap(),
        "--now",
        LATE_NOW,
    ]);
    assert_eq!(
        file.collateral_fails(),
        format!("--collateral {}: {expired}", fixture(COLLATERAL).display())
    );

    // A cache entry, fresh at SAMPLE_NOW, stale at LATE_NOW.
    s.verify(&["--pccs-url", &url, "--now", SAMPLE_NOW])
        .verified();
    let entry = s.cache().join("tdx-b0c06f000000-platform.json");
    let before = server.requests().len();
    let offline = s.verify(&["--offline", "--now", LATE_NOW]);
    assert_eq!(
        offline.collateral_fails(),
        format!("--offline: cached {}: {expired}", entry.display())
    );
    assert_eq!(server.requests().len(), before, "offline asked the server");
    let online = s.verify(&["--pccs-url", &url, "--now", LATE_NOW]);
    online.collateral_fails();
    assert!(
        server.requests().len() > before,
        "the stale entry was not refetched"
    );

    // Offline with nothing cached says what to do.
    fs::remove_dir_all(s.cache()).unwrap();
    let nothing = s.verify(&["--offline", "--now", SAMPLE_NOW]);
    assert_eq!(
        nothing.collateral_fails(),
        format!(
            "--offline and no collateral for FMSPC B0C06F000000 (platform CA) cached in {}: run once without --offline, or pass --collateral FILE",
            s.cache().display()
        )
    );
}

/// Collateral carrying another machine's PCK chain (NEAR's shape, reused for a quote of the
/// same FMSPC): dcap-qvl alone blames the QE report's signature; verify names the foreign
/// chain and the next step, and without the chain the same collateral verifies.
#[test]
fn another_machines_pck_chain_is_named() {
    let s = Scratch::new();
    let collateral = fixture_json(TD15EX_COLLATERAL);
    assert!(collateral["pck_certificate_chain"].is_string());
    let naive = naive_dcap(&collateral, TD15EX_NOW.parse().unwrap());
    assert!(
        naive.contains("Signature is invalid for qe_report"),
        "{naive}"
    );

    let file = fixture(TD15EX_COLLATERAL);
    let foreign = s.verify(&[
        "--offline",
        "--collateral",
        file.to_str().unwrap(),
        "--now",
        TD15EX_NOW,
    ]);
    let detail = foreign.collateral_fails();
    assert!(
        detail.starts_with(&format!(
            "the pck_certificate_chain of --collateral {} is another machine's: its PCK certificate (FMSPC B0C06F000000, serial ",
            file.display()
        )),
        "{detail}"
    );
    assert!(
        detail.ends_with("; remove pck_certificate_chain from it (the quote carries its own chain), or leave out --collateral to fetch collateral for FMSPC B0C06F000000"),
        "{detail}"
    );

    // The hint, followed: the chain removed, the quote's own chain is used.
    let mut without = collateral.clone();
    without
        .as_object_mut()
        .unwrap()
        .remove("pck_certificate_chain");
    let path = s.path().join("without-chain.json");
    fs::write(&path, without.to_string()).unwrap();
    let fixed = s.verify(&[
        "--offline",
        "--collateral",
        path.to_str().unwrap(),
        "--now",
        TD15EX_NOW,
    ]);
    assert_eq!(
        fixed.check("quote.collateral").0,
        "passed",
        "{:#}",
        fixed.json
    );
    assert_eq!(
        fixed.check("quote.signature").0,
        "passed",
        "{:#}",
        fixed.json
    );
    // Verified; the td15ex TCB info rates this older platform's TCB OutOfDate.
    assert_eq!(fixed.json["tcb_status"], "OutOfDate");
}

/// NEAR's public data carries its machine's PCK chain in its collateral; given for another
/// quote of the same FMSPC (dcap-qvl's sample), that is named, not blamed on the QE report.
#[test]
fn nears_collateral_for_another_quote_names_the_chain() {
    let s = Scratch::new();
    let near = fixture_json("near-mpc_public_data.json");
    let collateral = &near["tee_participant_info"]["Dstack"]["collateral"];
    assert!(collateral["pck_certificate_chain"].is_string());
    let path = s.path().join("near-collateral.json");
    fs::write(&path, collateral.to_string()).unwrap();
    let verdict = s.verify(&[
        "--offline",
        "--collateral",
        path.to_str().unwrap(),
        "--now",
        "1786622400",
    ]);
    let detail = verdict.collateral_fails();
    assert!(
        detail.contains("is another machine's: its PCK certificate (FMSPC B0C06F000000, serial "),
        "{detail}"
    );
}
