#!/usr/bin/env python3
"""Minimal Docker registry token server (python3 stdlib only) for the end-to-end tier.

    token_server.py --listen 127.0.0.1:PORT --key key.pem --cert cert.pem \
        --issuer ISS --service SVC [--user U --password P] [--anon-pull REPO,...] \
        [--ttl SECONDS] [--log FILE] [--port-file FILE]

User and password default to $E2E_TOKEN_USER / $E2E_TOKEN_PASSWORD.

GET  /token?service=SVC&scope=repository:NAME:pull[,push]   (scope may repeat; account,
     client_id, offline_token are accepted and ignored)
POST /token  (form: grant_type=password, username, password, service, scope) - the OAuth2
     variant some clients use.
GET  /healthz -> 200 "ok"

Auth is HTTP Basic. Right credentials: a token granting the requested pull/push/delete
actions on every requested repository (no scope, as `docker login` asks: a token with empty
access). Wrong credentials: 401. No credentials: 401, unless every requested scope is `pull`
on a repository listed in --anon-pull (then a token for exactly that).

The token is an RS256 JWT that CNCF distribution 2.8 (Debian's docker-registry) accepts:
header {"typ":"JWT","alg":"RS256","x5c":[base64 DER of the signing cert],"kid":<libtrust key
id of the cert's public key>}. distribution 2.8 checks, in order: x5c (chain verified against
`rootcertbundle`; a self-signed cert that is itself in the bundle verifies), then jwk, then kid
(looked up among the bundle's public keys by libtrust fingerprint); we send x5c and a correct
kid, so both paths work. Claims: iss, sub, aud (a single string: 2.8's ClaimSet has
`Audience string`), exp, nbf, iat, jti, access. Signature: `openssl dgst -sha256 -sign key`.

Every request is logged as one JSON line to --log (method, path, query, user, outcome), so
tests can check what a client asked for.
"""

import argparse
import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ACTIONS = {"pull", "push", "delete", "*"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def run_openssl(args, data=None) -> bytes:
    return subprocess.run(
        ["openssl"] + args, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True
    ).stdout


def libtrust_kid(spki_der: bytes) -> str:
    # libtrust keyIDFromCryptoKey: base32(sha256(PKIX DER)[:30]) without padding, 4-char groups
    # joined by ':'.
    s = base64.b32encode(hashlib.sha256(spki_der).digest()[:30]).decode().rstrip("=")
    return ":".join(s[i : i + 4] for i in range(0, len(s), 4))


class Config:
    def __init__(self, a):
        self.key = a.key
        self.issuer = a.issuer
        self.service = a.service
        self.user = a.user if a.user is not None else os.environ.get("E2E_TOKEN_USER", "")
        self.password = (
            a.password if a.password is not None else os.environ.get("E2E_TOKEN_PASSWORD", "")
        )
        if not self.user or not self.password:
            sys.exit("token_server: user and password are required (--user/--password or env)")
        self.anon_pull = {r for r in (a.anon_pull or "").split(",") if r}
        self.ttl = a.ttl
        cert_der = run_openssl(["x509", "-in", a.cert, "-outform", "DER"])
        pub_pem = run_openssl(["x509", "-in", a.cert, "-noout", "-pubkey"])
        spki_der = run_openssl(["pkey", "-pubin", "-outform", "DER"], pub_pem)
        self.x5c = [base64.b64encode(cert_der).decode()]
        self.kid = libtrust_kid(spki_der)
        self.log_path = a.log
        self.log_lock = threading.Lock()

    def log(self, rec):
        if not self.log_path:
            return
        rec["time"] = round(time.time(), 3)
        with self.log_lock, open(self.log_path, "a") as f:
            f.write(json.dumps(rec, sort_keys=True) + "\n")

    def sign(self, claims) -> str:
        header = {"typ": "JWT", "alg": "RS256", "kid": self.kid, "x5c": self.x5c}
        signing_input = (
            b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        sig = run_openssl(["dgst", "-sha256", "-sign", self.key], signing_input.encode())
        return signing_input + "." + b64url(sig)


def parse_scopes(scopes):
    """'repository:e2e/marker:pull,push' -> [(type, name, [actions])]; names may contain ':'
    only before the last ':' (host:port/repo is not allowed in a scope, but be lenient)."""
    out = []
    for s in scopes:
        for one in s.split(" "):
            if not one:
                continue
            typ, _, rest = one.partition(":")
            name, _, acts = rest.rpartition(":")
            if not typ or not name:
                raise ValueError("bad scope %r" % one)
            out.append((typ, name, [x for x in acts.split(",") if x]))
    return out


class Handler(BaseHTTPRequestHandler):
    server_version = "e2e-token-server/1"
    cfg: Config = None  # set in main

    def log_message(self, fmt, *args):  # quiet: our own JSON log instead
        pass

    def _reply(self, code, obj, extra_headers=()):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra_headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _basic(self):
        h = self.headers.get("Authorization", "")
        if not h.lower().startswith("basic "):
            return None
        try:
            user, _, pw = base64.b64decode(h[6:].strip()).decode().partition(":")
        except Exception:
            return ("", "\x00invalid")
        return (user, pw)

    def _issue(self, method, params, creds):
        cfg = self.cfg
        rec = {"method": method, "path": self.path.split("?")[0], "query": params}
        service = params.get("service", [""])[0]
        try:
            scopes = parse_scopes(params.get("scope", []))
        except ValueError as e:
            rec["outcome"] = "400"
            cfg.log(rec)
            return self._reply(400, {"errors": [{"code": "BAD_SCOPE", "message": str(e)}]})
        if service and service != cfg.service:
            rec["outcome"] = "400 wrong service"
            cfg.log(rec)
            return self._reply(400, {"errors": [{"code": "BAD_SERVICE", "message": service}]})
        challenge = [("WWW-Authenticate", 'Basic realm="e2e-token-server"')]
        if creds is None:
            rec["user"] = None
            anon_ok = scopes and all(
                t == "repository" and n in cfg.anon_pull and set(a) <= {"pull"}
                for t, n, a in scopes
            )
            if not anon_ok:
                rec["outcome"] = "401 anonymous"
                cfg.log(rec)
                return self._reply(
                    401,
                    {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                    challenge,
                )
            subject = ""
        else:
            user, pw = creds
            rec["user"] = user
            if not (
                secrets.compare_digest(user.encode(), cfg.user.encode())
                and secrets.compare_digest(pw.encode(), cfg.password.encode())
            ):
                rec["outcome"] = "401 bad credentials"
                cfg.log(rec)
                return self._reply(
                    401,
                    {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]},
                    challenge,
                )
            subject = user
        access = []
        for t, n, a in scopes:
            granted = [x for x in a if x in ACTIONS]
            access.append({"type": t, "name": n, "actions": granted})
        now = int(time.time())
        claims = {
            "iss": cfg.issuer,
            "sub": subject,
            "aud": cfg.service,
            "exp": now + cfg.ttl,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        tok = cfg.sign(claims)
        rec["outcome"] = "200"
        rec["access"] = access
        cfg.log(rec)
        issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        return self._reply(
            200,
            {"token": tok, "access_token": tok, "expires_in": cfg.ttl, "issued_at": issued},
        )

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        if u.path == "/healthz":
            body = b"ok\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if u.path != "/token":
            return self._reply(404, {"errors": [{"code": "NOT_FOUND"}]})
        params = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        return self._issue("GET", params, self._basic())

    def do_POST(self):
        u = urllib.parse.urlsplit(self.path)
        if u.path != "/token":
            return self._reply(404, {"errors": [{"code": "NOT_FOUND"}]})
        n = int(self.headers.get("Content-Length") or 0)
        if n > 65536:
            return self._reply(413, {"errors": [{"code": "TOO_LARGE"}]})
        form = urllib.parse.parse_qs(self.rfile.read(n).decode(), keep_blank_values=True)
        creds = self._basic()
        if form.get("grant_type", [""])[0] == "password":
            creds = (form.get("username", [""])[0], form.get("password", [""])[0])
        elif form.get("grant_type", [""])[0] == "refresh_token":
            creds = ("", "\x00refresh tokens are not supported")
        return self._issue("POST", form, creds)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", default="127.0.0.1:0")
    p.add_argument("--key", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--issuer", required=True)
    p.add_argument("--service", required=True)
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--anon-pull", default="")
    p.add_argument("--ttl", type=int, default=300)
    p.add_argument("--log")
    p.add_argument("--port-file", help="write the bound port here once listening")
    a = p.parse_args()
    host, _, port = a.listen.rpartition(":")
    if host not in ("127.0.0.1", "localhost", "::1", "[::1]"):
        sys.exit("token_server: refusing to listen on a non-loopback address")
    Handler.cfg = Config(a)
    srv = ThreadingHTTPServer((host.strip("[]"), int(port)), Handler)
    srv.daemon_threads = True
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % srv.server_address[1])
        os.replace(tmp, a.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
