//! A stand-in for Intel's PCS / a PCCS on loopback, over TLS with a test CA: the REAL
//! collateral of the fixtures split back into the v4 API answers, plus failure modes.
//!
//! What a PCS answers, as dcap-qvl 0.7.1 reads it (`src/collateral.rs`,
//! `fetch_for_fmspc_without_pck_chain`) and Intel's PCS v4 API documents it:
//! - `GET /sgx/certification/v4/pckcrl?ca=<ca>&encoding=der`: the CRL's DER bytes, header
//!   `SGX-PCK-CRL-Issuer-Chain`;
//! - `GET /tdx/certification/v4/tcb?fmspc=<FMSPC>&update=standard`:
//!   `{"tcbInfo":<signed object>,"signature":"<hex>"}`, header `TCB-Info-Issuer-Chain`;
//! - `GET /tdx/certification/v4/qe/identity?update=standard`:
//!   `{"enclaveIdentity":<signed object>,"signature":"<hex>"}`, header
//!   `SGX-Enclave-Identity-Issuer-Chain`;
//! - `GET /sgx/certification/v4/rootcacrl`: a PCCS's root CA CRL, as hex text.
//!
//! Issuer chains are URL-encoded PEM. The server is Python's stdlib (`http.server`, `ssl`), as
//! in `tests/image_tls.rs`; the routes are a JSON file it re-reads on every request, so a test
//! can change a mode between runs; every request path is appended to a log.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use serde_json::{Value, json};

const SERVER: &str = r#"
import http.server, json, ssl, sys, time
routes_file, log_file, certfile, keyfile = sys.argv[1:5]
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        with open(log_file, "a") as log:
            log.write(self.path + "\n")
        with open(routes_file) as f:
            routes = json.load(f)
        route = routes.get(self.path)
        if route is None:
            route = {"status": 404, "body_hex": "".join("%02x" % b for b in b"not found")}
        if route.get("stall"):
            time.sleep(route["stall"])
            return
        body = bytes.fromhex(route.get("body_hex", ""))
        body += b"0" * route.get("pad", 0)
        try:
            self.send_response(route.get("status", 200))
            for name, value in route.get("headers", {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
    def log_message(self, *args):
        pass
class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    def handle_error(self, request, client_address):
        pass
server = Server(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(certfile, keyfile)
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

pub const TCB_PATH: &str = "/tdx/certification/v4/tcb?fmspc=B0C06F000000&update=standard";
pub const QE_PATH: &str = "/tdx/certification/v4/qe/identity?update=standard";
pub const PCK_CRL_PATH: &str = "/sgx/certification/v4/pckcrl?ca=platform&encoding=der";
pub const ROOT_CRL_PATH: &str = "/sgx/certification/v4/rootcacrl";

/// A running stand-in; killed on drop.
pub struct Pcs {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Pcs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Pcs {
    /// Serves `routes` (path with query -> route) from `dir` (routes file and request log).
    pub fn start(dir: &Path, routes: &Value) -> Self {
        fs::create_dir_all(dir).unwrap();
        let pcs_dir = dir.to_owned();
        fs::write(pcs_dir.join("routes.json"), routes.to_string()).unwrap();
        fs::write(pcs_dir.join("requests.log"), "").unwrap();
        let certs = certificates();
        let mut child = Command::new("python3")
            .args(["-c", SERVER])
            .arg(pcs_dir.join("routes.json"))
            .arg(pcs_dir.join("requests.log"))
            .arg(certs.join("server.pem"))
            .arg(certs.join("server.key"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().unwrap();
        Self {
            child,
            port,
            dir: pcs_dir,
        }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The paths requested so far, in order.
    pub fn requests(&self) -> Vec<String> {
        fs::read_to_string(self.dir.join("requests.log"))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Replaces the routes for the next requests.
    pub fn set_routes(&self, routes: &Value) {
        fs::write(self.dir.join("routes.json"), routes.to_string()).unwrap();
    }
}

/// The test CA (PEM) that signed the stand-in's certificate for 127.0.0.1.
pub fn ca_file() -> PathBuf {
    certificates().join("ca.pem")
}

/// A CA and, signed by it, a server certificate for 127.0.0.1; made once per test binary.
fn certificates() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let openssl = |args: &[&str]| {
            let status = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "openssl {args:?}");
        };
        let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        openssl(&[&["req", "-x509"], &key[..], &["-days", "2", "-subj", "/CN=pcs-test-ca", "-keyout", "ca.key", "-out", "ca.pem"]].concat());
        openssl(&[&["req"], &key[..], &["-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr"]].concat());
        fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(&[
            "x509", "-req", "-days", "2", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-extfile", "ext.cnf", "-out", "server.pem",
        ]);
        dir
    })
}

/// The v4 API answers for a collateral file in dcap-qvl's `QuoteCollateralV3` JSON (hex
/// byte fields): its signed objects wrapped back into their envelopes, its issuer chains as
/// headers, its CRLs as DER (PCK) and hex (root, a PCCS's form).
pub fn routes_for(collateral: &Value) -> Value {
    let text = |name: &str| collateral[name].as_str().unwrap().to_owned();
    let envelope = |key: &str, object: &str, signature: &str| {
        // The signed object goes in verbatim: its bytes are what Intel signed.
        format!(
            "{{\"{key}\":{},\"signature\":\"{}\"}}",
            text(object),
            text(signature)
        )
    };
    json!({
        PCK_CRL_PATH: {
            "body_hex": text("pck_crl"),
            // Some PCCSes leave `+` unescaped: it must stay a `+` (base64), not a space.
            "headers": {"SGX-PCK-CRL-Issuer-Chain": url_encode(&text("pck_crl_issuer_chain"), "+")},
        },
        TCB_PATH: {
            "body_hex": hex(envelope("tcbInfo", "tcb_info", "tcb_info_signature").as_bytes()),
            "headers": {"TCB-Info-Issuer-Chain": url_encode(&text("tcb_info_issuer_chain"), "")},
        },
        QE_PATH: {
            "body_hex": hex(envelope("enclaveIdentity", "qe_identity", "qe_identity_signature").as_bytes()),
            "headers": {"SGX-Enclave-Identity-Issuer-Chain": url_encode(&text("qe_identity_issuer_chain"), "")},
        },
        ROOT_CRL_PATH: {
            "body_hex": hex(text("root_ca_crl").as_bytes()),
        },
    })
}

/// Percent-encodes every byte but the unreserved ones (RFC 3986) and those in `keep`.
fn url_encode(text: &str, keep: &str) -> String {
    text.bytes().fold(String::new(), |mut out, b| {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || keep.as_bytes().contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
        out
    })
}

pub fn hex(bytes: &[u8]) -> String {
    super::fake_agent::hex(bytes)
}
