//! `verify` without `--collateral` (issue 13): collateral fetched for the quote's FMSPC from a
//! PCS/PCCS (a loopback stand-in over TLS serving the fixtures' real collateral, see
//! `common/pcs.rs`), cached, reused `--offline`, saved and read back; and every way that
//! goes wrong (404, stale, a stalled or oversized answer, another FMSPC's TCB info, another
//! machine's PCK chain) as one clear line, with nothing cached. No test talks to the internet.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::pcs::{self, PCK_CRL_PATH, Pcs, QE_PATH, ROOT_CRL_PATH, TCB_PATH};
use common::{Launcher, Run};

/// dcap-qvl's sample quote: FMSPC B0C06F000000, PCK from the platform CA; its collateral is
/// valid at `SAMPLE_NOW` (tests/fixtures/README.md).
const QUOTE: &str = "dcap-qvl_sample_tdx_quote";
const COLLATERAL: &str = "dcap-qvl_sample_tdx_quote_collateral.json";
const SAMPLE_NOW: &str = "1751624655";
/// After the sample collateral's earliest nextUpdate (its PCK CRL's, 2025-07-19T10:00:35Z).
const LATE_NOW: &str = "1760000000";
/// Collateral for FMSPC 90C06F000000 (another platform).
const OTHER_FMSPC_COLLATERAL: &str = "dcap-qvl_sample_tdx_quote_outdated_collateral.json";
/// Collateral carrying its own quote's PCK chain (another machine, same FMSPC), valid at
/// `TD15EX_NOW`.
const TD15EX_COLLATERAL: &str = "dcap-qvl-0.7.1_sample_tdx_quote_td15ex_collateral.json";
const TD15EX_NOW: &str = "1792713448";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fs::read(fixture(name)).unwrap()).unwrap()
}

struct Scratch {
    dir: tempfile::TempDir,
}

/// One `verify --json` run.
struct Verdict {
    run: Run,
    json: Value,
}

impl Verdict {
    fn check(&self, name: &str) -> (String, String) {
        let check = self.json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name}: {:#}", self.json));
        (
            check["status"].as_str().unwrap().to_owned(),
            check["detail"].as_str().unwrap().to_owned(),
        )
    }

    /// Exit 0, DCAP passed with `UpToDate`; the collateral's `source`.
    #[track_caller]
    fn verified(&self) -> &str {
        assert_eq!(
            self.run.status,
            Some(0),
            "{:#}\n{}",
            self.json,
            self.run.stderr
        );
        assert_eq!(self.json["tcb_status"], "UpToDate");
        assert_eq!(self.check("quote.signature").0, "passed");
        self.json["collateral"]["source"].as_str().unwrap()
    }

    /// Exit 1 with `quote.collateral` failed on one line; its detail.
    #[track_caller]
    fn collateral_fails(&self) -> String {
        assert_eq!(self.run.status, Some(1), "{:#}", self.json);
        assert_eq!(self.json["signature_verified"], false);
        let (status, detail) = self.check("quote.collateral");
        assert_eq!(status, "failed", "{detail}");
        assert!(!detail.contains('\n'), "{detail}");
        assert_eq!(self.check("quote.signature").0, "failed");
        detail
    }
}

impl Scratch {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn cache(&self) -> PathBuf {
        self.path().join("cache")
    }

    fn cached_entries(&self) -> Vec<String> {
        fs::read_dir(self.cache())
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `verify --quote QUOTE --allow-no-launch --json --cache-dir CACHE ARGS`, trusting the
    /// stand-in's test CA.
    fn verify(&self, args: &[&str]) -> Verdict {
        let mut launcher = Launcher::new(self.path());
        launcher
            .args(["verify", "--quote"])
            .arg(fixture(QUOTE).to_str().unwrap())
            .args(["--allow-no-launch", "--json", "--cache-dir"])
            .arg(self.cache().to_str().unwrap())
            .args(["--pccs-ca-file", pcs::ca_file().to_str().unwrap()])
            .args(args.iter().copied());
        let run = launcher.run();
        let json = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("no JSON ({e}): {}\n{}", run.stdout, run.stderr));
        Verdict { run, json }
    }

    fn pcs(&self, routes: &Value) -> Pcs {
        Pcs::start(&self.path().join("pcs"), routes)
    }
}

/// The fixture's collateral, served as a PCCS serves it, verifies the quote; it is cached by
/// FMSPC and CA, and the cache alone verifies it again once the server is gone, `--offline`
/// or not.
#[test]
fn live_fetch_verifies_and_the_cache_serves_offline() {
    let s = Scratch::new();
    let server = s.pcs(&pcs::routes_for(&fixture_json(COLLATERAL)));
    let url = server.url();

    let fetched = s.verify(&["--pccs-url", &url, "--now", SAMPLE_NOW]);
    assert_eq!(fetched.verified(), "fetched");
    let collateral = &fetched.json["collateral"];
    assert_eq!(collateral["location"], url.as_str());
    assert_eq!(collateral["valid_until"], "2025-07-19T10:00:35Z");
    assert_eq!(collateral["valid_until_unix"], 1_752_919_235);
    assert_eq!(collateral["expires_first"], "PCK CRL");
    let entry = s.cache().join("tdx-b0c06f000000-platform.json");
    assert_eq!(collateral["cached"], entry.to_str().unwrap());
    let detail = fetched.check("quote.collateral").1;
    assert!(
        detail.starts_with(&format!(
            "fetched from {url} for FMSPC B0C06F000000 (platform CA); valid until 2025-07-19T10:00:35Z (PCK CRL nextUpdate); cached in "
        )),
        "{detail}"
    );
    assert_eq!(
        server.requests(),
        [PCK_CRL_PATH, TCB_PATH, QE_PATH, ROOT_CRL_PATH]
    );
    // The cache holds the fixture's collateral, item for item.
    let cached: Value = serde_json::from_slice(&fs::read(&entry).unwrap()).unwrap();
    let original = fixture_json(COLLATERAL);
    for (name, value) in original.as_object().unwrap() {
        let lower = |v: &Value| v.as_str().unwrap().to_ascii_lowercase();
        assert_eq!(lower(&cached[name]), lower(value), "{name}");
    }

    drop(server);
    let offline = s.verify(&["--offline", "--now", SAMPLE_NOW]);
    assert_eq!(offline.verified(), "cache");
    assert_eq!(
        offline.json["collateral"]["location"],
        entry.to_str().unwrap()
    );
    // Without --offline a valid entry is used as well: the stopped server is never asked.
    let again = s.verify(&["--pccs-url", &url, "--now", SAMPLE_NOW]);
    assert_eq!(again.verified(), "cache");
}

/// `--save-collateral` writes what was used in the shape `--collateral` reads: an offline run
/// from that file repeats the verdict check for check.
#[test]
fn saved_collateral_repeats_the_verdict_offline() {
    let s = Scratch::new();
    let server = s.pcs(&pcs::routes_for(&fixture_json(COLLATERAL)));
    let saved = s.path().join("saved.json");
    let saved_str = saved.to_str().unwrap();
    let live = s.verify(&[
        "--pccs-url",
        &server.url(),
        "--now",
        SAMPLE_NOW,
        "--save-collateral",
        saved_str,
    ]);
    live.verified();
    assert_eq!(live.json["collateral"]["saved"], saved_str);
    drop(server);
    fs::remove_dir_all(s.cache()).unwrap();

    let repeat = s.verify(&["--offline", "--collateral", saved_str, "--now", SAMPLE_NOW]);
    assert_eq!(repeat.verified(), "file");
    let statuses = |v: &Verdict| -> Vec<(String, String)> {
        v.json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].to_string(), c["status"].to_string()))
            .collect()
    };
    assert_eq!(statuses(&repeat), statuses(&live));
    assert_eq!(repeat.json["tcb_status"], live.json["tcb_status"]);
    assert_eq!(repeat.json["measurements"], live.json["measurements"]);
    assert_eq!(
        repeat.json["collateral"]["valid_until"],
        live.json["collateral"]["valid_until"]
    );
    // Saved even when the verdict is a failure (here: verified too late), to repeat that too.
    let late = s.verify(&[
        "--offline",
        "--collateral",
        saved_str,
        "--now",
        LATE_NOW,
        "--save-collateral",
        s.path().join("late.json").to_str().unwrap(),
    ]);
    late.collateral_fails();
    assert!(s.path().join("late.json").exists());
}

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

    // The stand-in's certificate is trusted only through --pccs-ca-file.
    server.set_routes(&good);
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
    let expired = "collateral expired: the PCK CRL's nextUpdate 2025-07-19T10:00:35Z is before the verification time 2025-10-09T08:53:20Z (--now 1760000000); fetch current collateral (leave out --collateral and --offline) or verify at an earlier --now (at most 1752919235)";

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

/// A `--pccs-url` that is not https is a usage error before anything runs.
#[test]
fn pccs_url_must_be_https() {
    let s = Scratch::new();
    let mut launcher = Launcher::new(s.path());
    launcher.args(["verify", "--quote", fixture(QUOTE).to_str().unwrap()]);
    launcher.args(["--pccs-url", "http://127.0.0.1:9"]);
    let run = launcher.run();
    assert_eq!(run.status, Some(2), "{}", run.stderr);
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr
            .contains("--pccs-url \"http://127.0.0.1:9\" must be an https:// URL"),
        "{}",
        run.stderr
    );
}

/// dcap-qvl on the quote and `collateral` as the verify of before issue 13 ran it: its
/// error text.
fn naive_dcap(collateral: &Value, now: u64) -> String {
    let bytes = |name: &str| {
        let text = collateral[name].as_str().unwrap();
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect::<Vec<u8>>()
    };
    let text = |name: &str| collateral[name].as_str().unwrap().to_owned();
    let parsed = dcap_qvl::QuoteCollateralV3 {
        pck_crl_issuer_chain: text("pck_crl_issuer_chain"),
        root_ca_crl: bytes("root_ca_crl"),
        pck_crl: bytes("pck_crl"),
        tcb_info_issuer_chain: text("tcb_info_issuer_chain"),
        tcb_info: text("tcb_info"),
        tcb_info_signature: bytes("tcb_info_signature"),
        qe_identity_issuer_chain: text("qe_identity_issuer_chain"),
        qe_identity: text("qe_identity"),
        qe_identity_signature: bytes("qe_identity_signature"),
        pck_certificate_chain: collateral["pck_certificate_chain"]
            .as_str()
            .map(str::to_owned),
    };
    let quote = fs::read(fixture(QUOTE)).unwrap();
    match dcap_qvl::verify::verify(&quote, &parsed, now) {
        Ok(_) => "verified".into(),
        Err(error) => format!("{error:#}"),
    }
}
