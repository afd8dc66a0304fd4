//! A private registry behind TLS with its own CA: `image.ca_file` adds the CA to the web
//! roots; without it, or with another CA, the registry is not trusted. The TLS endpoint is a
//! small Python proxy (stdlib `ssl`) in front of the in-process registry, on loopback.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::Fixture;
use common::fake_registry::{FakeRegistry, Flavor, Image, Mode};

const PROXY: &str = r#"
import http.server, ssl, sys, urllib.request, urllib.error
upstream, certfile, keyfile = sys.argv[1:4]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("accept", "authorization")}
        try:
            reply = urllib.request.urlopen(urllib.request.Request(upstream + self.path, headers=headers), timeout=10)
            status, body, got = reply.status, reply.read(), reply.headers
        except urllib.error.HTTPError as error:
            status, body, got = error.code, error.read(), error.headers
        self.send_response(status)
        for name in ("Content-Type", "Docker-Content-Digest", "WWW-Authenticate"):
            if got.get(name):
                self.send_header(name, got[name])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(certfile, keyfile)
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

struct Proxy(Child, u16);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "openssl {args:?}");
}

/// A CA named `name` and, signed by it, a server certificate for 127.0.0.1.
fn certificates(dir: &Path, name: &str) {
    let subject = format!("/CN={name}");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &subject,
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            &format!("{name}-server.key"),
            "-out",
            &format!("{name}-server.csr"),
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            &format!("{name}-server.csr"),
            "-CA",
            &format!("{name}.pem"),
            "-CAkey",
            &format!("{name}.key"),
            "-CAcreateserial",
            "-extfile",
            "ext.cnf",
            "-out",
            &format!("{name}-server.pem"),
        ],
    );
}

fn proxy(dir: &Path, upstream: &str, name: &str) -> Proxy {
    let mut child = Command::new("python3")
        .args(["-c", PROXY, upstream])
        .arg(dir.join(format!("{name}-server.pem")))
        .arg(dir.join(format!("{name}-server.key")))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().unwrap();
    Proxy(child, port)
}

#[test]
fn private_ca_is_trusted_only_through_ca_file() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    let image = Image::new(Flavor::Oci, "linux/amd64", "tls");
    registry.push_image(&image);
    certificates(fx.path(), "private-ca");
    certificates(fx.path(), "other-ca");
    let tls = proxy(
        fx.path(),
        &format!("http://{}", registry.host()),
        "private-ca",
    );
    let reference = format!("127.0.0.1:{}/team/app", tls.1);
    let plan = |extra: &str| {
        let config = fx.write(
            "c.toml",
            &format!(
                "[image]\nreference = \"{reference}\"\ndigest = \"{}\"\n{extra}",
                image.digest()
            ),
        );
        fx.launcher()
            .args(["plan", "--json", config.to_str().unwrap()])
            .run()
    };

    let run = plan(&format!(
        "ca_file = \"{}\"\n",
        fx.path().join("private-ca.pem").display()
    ));
    run.success();
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["image"]["manifest"], image.digest());

    // Another CA: the certificate chain does not verify.
    plan(&format!(
        "ca_file = \"{}\"\n",
        fx.path().join("other-ca.pem").display()
    ))
    .fails(1, "cannot reach https://127.0.0.1");
    // Not a certificate file at all.
    plan(&format!(
        "ca_file = \"{}\"\n",
        fx.path().join("ext.cnf").display()
    ))
    .fails(1, "holds no PEM certificate");
}
