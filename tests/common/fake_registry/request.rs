//! A request as the fake received it, read off the wire with size caps, and the small
//! decoders (percent-encoding, base64) it needs.

use std::io::{self, BufRead as _, BufReader, Read as _};
use std::net::TcpStream;

use super::{MAX_REQUEST_BODY, MAX_REQUEST_HEAD};

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The first header named `name` (case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path without the query.
    #[must_use]
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// Every value of query parameter `key`, percent-decoded.
    #[must_use]
    pub fn query(&self, key: &str) -> Vec<String> {
        let Some((_, query)) = self.target.split_once('?') else {
            return Vec::new();
        };
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .filter(|(k, _)| percent_decode(k) == key)
            .map(|(_, v)| percent_decode(v))
            .collect()
    }

    /// Media types of every `Accept` header, parameters dropped.
    #[must_use]
    pub fn accept_types(&self) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("accept"))
            .flat_map(|(_, v)| v.split(','))
            .map(|t| t.split(';').next().unwrap_or_default().trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect()
    }

    /// `Authorization: Basic` credentials, decoded.
    #[must_use]
    pub fn basic_credentials(&self) -> Option<(String, String)> {
        let value = self.header("authorization")?;
        let (scheme, encoded) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = String::from_utf8(base64_decode(encoded.trim())?).ok()?;
        let (user, password) = decoded.split_once(':')?;
        Some((user.to_owned(), password.to_owned()))
    }

    /// `Authorization: Bearer` token.
    #[must_use]
    pub fn bearer(&self) -> Option<&str> {
        let value = self.header("authorization")?;
        let (scheme, token) = value.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then_some(token.trim())
    }

    #[must_use]
    pub fn is_manifest(&self) -> bool {
        self.path().starts_with("/v2/") && self.path().contains("/manifests/")
    }

    #[must_use]
    pub fn is_blob(&self) -> bool {
        self.path().starts_with("/v2/") && self.path().contains("/blobs/")
    }

    #[must_use]
    pub fn is_token(&self) -> bool {
        self.path() == "/token"
    }

    /// The reference (digest or tag) of a manifest request.
    #[must_use]
    pub fn manifest_reference(&self) -> Option<&str> {
        self.path()
            .rsplit_once("/manifests/")
            .map(|(_, reference)| reference)
    }
}

/// Reads one request head (and discards a small body).
pub(super) fn read_request(stream: &mut TcpStream) -> io::Result<Request> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let mut reader = BufReader::new(stream);
    let mut head_bytes = 0;
    let mut read_line = |reader: &mut BufReader<&mut TcpStream>| -> io::Result<String> {
        let mut line = Vec::new();
        let n = reader
            .by_ref()
            .take((MAX_REQUEST_HEAD + 2) as u64)
            .read_until(b'\n', &mut line)?;
        head_bytes += n;
        if n == 0 || head_bytes > MAX_REQUEST_HEAD {
            return Err(bad("request head missing or too long"));
        }
        let line = String::from_utf8(line).map_err(|_| bad("not UTF-8"))?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    };
    let request_line = read_line(&mut reader)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("bad request line"));
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Err(bad("not HTTP/1.x"));
    }
    let mut headers = Vec::new();
    loop {
        let header = read_line(&mut reader)?;
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').ok_or_else(|| bad("bad header"))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let request = Request {
        method: method.to_owned(),
        target: target.to_owned(),
        headers,
    };
    if let Some(length) = request.header("content-length") {
        let length: usize = length.parse().map_err(|_| bad("bad content-length"))?;
        if length > MAX_REQUEST_BODY {
            return Err(bad("body too large"));
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
    }
    Ok(request)
}

pub(super) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(text.get(i + 1..i + 3).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Standard base64 with padding; `None` on anything else.
#[must_use]
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let text = text.trim_end_matches('=');
    let mut out = Vec::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let value = u32::try_from(ALPHABET.iter().position(|&a| a == c)?).ok()?;
        buffer = (buffer << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}
