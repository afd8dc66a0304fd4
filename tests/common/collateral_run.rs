//! The harness of `tests/verify_collateral*.rs`: `verify` runs on dcap-qvl's sample quote
//! with a private cache and the PCS stand-in's test CA, and dcap-qvl run directly as the
//! verify of before issue 13 did (what the naive path says).

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::pcs::{self, Pcs};
use super::{Launcher, Run};

/// dcap-qvl's sample quote: FMSPC B0C06F000000, PCK from the platform CA; its collateral is
/// valid at `SAMPLE_NOW` (tests/fixtures/README.md).
pub const QUOTE: &str = "dcap-qvl_sample_tdx_quote";
pub const COLLATERAL: &str = "dcap-qvl_sample_tdx_quote_collateral.json";
pub const SAMPLE_NOW: &str = "1751624655";
/// After the sample collateral's earliest nextUpdate (its PCK CRL's, 2025-07-19T10:00:35Z).
pub const LATE_NOW: &str = "1760000000";
/// Collateral for FMSPC 90C06F000000 (another platform).
pub const OTHER_FMSPC_COLLATERAL: &str = "dcap-qvl_sample_tdx_quote_outdated_collateral.json";
/// Collateral carrying its own quote's PCK chain (another machine, same FMSPC), valid at
/// `TD15EX_NOW`.
pub const TD15EX_COLLATERAL: &str = "dcap-qvl-0.7.1_sample_tdx_quote_td15ex_collateral.json";
pub const TD15EX_NOW: &str = "1792713448";

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fs::read(fixture(name)).unwrap()).unwrap()
}

pub struct Scratch {
    pub dir: tempfile::TempDir,
}

/// One `verify --json` run.
pub struct Verdict {
    pub run: Run,
    pub json: Value,
}

impl Verdict {
    pub fn check(&self, name: &str) -> (String, String) {
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
    pub fn verified(&self) -> &str {
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
    pub fn collateral_fails(&self) -> String {
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
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn cache(&self) -> PathBuf {
        self.path().join("cache")
    }

    pub fn cached_entries(&self) -> Vec<String> {
        fs::read_dir(self.cache())
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `verify --quote QUOTE --allow-no-launch --json --cache-dir CACHE ARGS`, trusting the
    /// stand-in's test CA.
    pub fn verify(&self, args: &[&str]) -> Verdict {
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

    pub fn pcs(&self, routes: &Value) -> Pcs {
        Pcs::start(&self.path().join("pcs"), routes)
    }
}

/// dcap-qvl on the quote and `collateral` as the verify of before issue 13 ran it: its
/// error text.
pub fn naive_dcap(collateral: &Value, now: u64) -> String {
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
