//! `WWW-Authenticate`: the registry's list of auth challenges (RFC 9110 §11.6.1, which
//! replaced RFC 7235 §4.1), e.g. `Basic realm="x", Bearer realm="…",service="…",scope="…"`.
//!
//! ```text
//! WWW-Authenticate = #challenge
//! challenge        = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//! auth-param       = token BWS "=" BWS ( token / quoted-string )
//! token68          = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
//! quoted-string    = DQUOTE *( qdtext / quoted-pair ) DQUOTE
//! ```
//!
//! Commas separate both challenges and parameters: after a comma, `name =` is another
//! parameter of the same challenge and a bare token starts the next challenge. Parameter
//! names are case-insensitive and must not repeat (RFC 9110: "each parameter name MUST only
//! occur once per challenge"), so two `realm`s cannot point the token request two ways.

/// One challenge: its scheme as sent, and a token68 or parameters (names lowercased).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub token68: Option<String>,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// The value of parameter `name` (case-insensitive).
    #[must_use]
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[must_use]
    pub fn is(&self, scheme: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(scheme)
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("no challenge")]
    Empty,
    #[error("expected an auth scheme at byte {at}")]
    NoScheme { at: usize },
    #[error("expected a parameter name at byte {at}")]
    NoName { at: usize },
    #[error("parameter {name} has no '=' (byte {at})")]
    NoEquals { name: String, at: usize },
    #[error("parameter {name} has no value (byte {at})")]
    NoValue { name: String, at: usize },
    #[error("quoted string opened at byte {at} is not closed")]
    Unterminated { at: usize },
    #[error("control character in a quoted string at byte {at}")]
    Control { at: usize },
    #[error("expected ',' at byte {at}")]
    NoComma { at: usize },
    #[error("parameter {name} appears twice in the {scheme} challenge")]
    Duplicate { scheme: String, name: String },
}

/// Parses a whole `WWW-Authenticate` value (several header lines may be joined with `, `).
pub fn parse_challenges(header: &str) -> Result<Vec<Challenge>, ChallengeError> {
    let mut p = Parser {
        bytes: header.as_bytes(),
        at: 0,
    };
    let mut challenges = Vec::new();
    loop {
        p.skip_separators();
        if p.done() {
            break;
        }
        challenges.push(p.challenge()?);
    }
    if challenges.is_empty() {
        return Err(ChallengeError::Empty);
    }
    Ok(challenges)
}

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    /// Spaces and tabs; how many.
    fn skip_ows(&mut self) -> usize {
        let start = self.at;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
        self.at - start
    }

    /// Empty list elements: spaces, tabs and commas.
    fn skip_separators(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.at += 1;
        }
    }

    fn take_while(&mut self, keep: impl Fn(u8) -> bool) -> Option<String> {
        let start = self.at;
        while self.peek().is_some_and(&keep) {
            self.at += 1;
        }
        let taken = self.bytes.get(start..self.at).unwrap_or_default();
        // Only ASCII bytes pass `keep`, so this is UTF-8.
        (!taken.is_empty()).then(|| String::from_utf8_lossy(taken).into_owned())
    }

    fn token(&mut self) -> Option<String> {
        self.take_while(is_tchar)
    }

    /// A token68 standing alone: followed only by spaces, then a comma or the end.
    fn token68(&mut self) -> Option<String> {
        let start = self.at;
        let mut value = self.take_while(is_token68_char)?;
        while self.peek() == Some(b'=') {
            self.at += 1;
            value.push('=');
        }
        self.skip_ows();
        if self.done() || self.peek() == Some(b',') {
            Some(value)
        } else {
            self.at = start;
            None
        }
    }

    /// Whether a parameter (`name =`) starts here; moves nothing.
    fn param_ahead(&mut self) -> bool {
        let start = self.at;
        let yes = self.token().is_some() && {
            self.skip_ows();
            self.peek() == Some(b'=')
        };
        self.at = start;
        yes
    }

    fn challenge(&mut self) -> Result<Challenge, ChallengeError> {
        let scheme = self
            .token()
            .ok_or(ChallengeError::NoScheme { at: self.at })?;
        let mut challenge = Challenge {
            scheme,
            token68: None,
            params: Vec::new(),
        };
        let spaced = self.skip_ows() > 0;
        if self.done() || self.peek() == Some(b',') {
            return Ok(challenge);
        }
        if !spaced {
            return Err(ChallengeError::NoComma { at: self.at });
        }
        if let Some(token68) = self.token68() {
            challenge.token68 = Some(token68);
            return Ok(challenge);
        }
        loop {
            let (name, value) = self.param()?;
            if challenge.param(&name).is_some() {
                return Err(ChallengeError::Duplicate {
                    scheme: challenge.scheme,
                    name,
                });
            }
            challenge.params.push((name, value));
            self.skip_ows();
            if self.done() {
                return Ok(challenge);
            }
            if self.peek() != Some(b',') {
                return Err(ChallengeError::NoComma { at: self.at });
            }
            self.skip_separators();
            if self.done() || !self.param_ahead() {
                return Ok(challenge);
            }
        }
    }

    fn param(&mut self) -> Result<(String, String), ChallengeError> {
        let name = self
            .token()
            .ok_or(ChallengeError::NoName { at: self.at })?
            .to_ascii_lowercase();
        self.skip_ows();
        if self.peek() != Some(b'=') {
            return Err(ChallengeError::NoEquals { name, at: self.at });
        }
        self.at += 1;
        self.skip_ows();
        let value = if self.peek() == Some(b'"') {
            self.quoted()?
        } else {
            let at = self.at;
            self.token().ok_or_else(|| ChallengeError::NoValue {
                name: name.clone(),
                at,
            })?
        };
        Ok((name, value))
    }

    /// A quoted string, unescaped: `\x` stands for `x`.
    fn quoted(&mut self) -> Result<String, ChallengeError> {
        let open = self.at;
        self.at += 1;
        let mut value = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return Err(ChallengeError::Unterminated { at: open });
            };
            let b = if b == b'\\' {
                self.at += 1;
                self.peek()
                    .ok_or(ChallengeError::Unterminated { at: open })?
            } else if b == b'"' {
                self.at += 1;
                break;
            } else {
                b
            };
            // HTAB, SP, VCHAR and obs-text; no other control characters.
            if b != b'\t' && (b < 0x20 || b == 0x7f) {
                return Err(ChallengeError::Control { at: self.at });
            }
            value.push(b);
            self.at += 1;
        }
        // Only ASCII backslashes were dropped from valid UTF-8, so it still is.
        Ok(String::from_utf8_lossy(&value).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(scheme: &str, params: &[(&str, &str)]) -> Challenge {
        Challenge {
            scheme: scheme.into(),
            token68: None,
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn accept_table() {
        let hub = one(
            "Bearer",
            &[
                ("realm", "https://auth.docker.io/token"),
                ("service", "registry.docker.io"),
                ("scope", "repository:library/ubuntu:pull,push"),
            ],
        );
        for (header, expected) in [
            // Docker Hub's challenge, verbatim shape.
            (
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull,push""#,
                vec![hub.clone()],
            ),
            // Parameters in any order, spaces around '=' and ',' (BWS, OWS).
            (
                r#"Bearer scope="repository:library/ubuntu:pull,push" , SERVICE = "registry.docker.io",	realm="https://auth.docker.io/token""#,
                vec![one(
                    "Bearer",
                    &[
                        ("scope", "repository:library/ubuntu:pull,push"),
                        ("service", "registry.docker.io"),
                        ("realm", "https://auth.docker.io/token"),
                    ],
                )],
            ),
            // Several challenges, the bearer one second.
            (
                r#"Basic realm="x", Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull,push""#,
                vec![one("Basic", &[("realm", "x")]), hub.clone()],
            ),
            // Escaped quotes and backslashes inside a quoted string.
            (
                r#"Bearer realm="https://a.example/t",error="a \"quoted\" \\ word""#,
                vec![one(
                    "Bearer",
                    &[
                        ("realm", "https://a.example/t"),
                        ("error", r#"a "quoted" \ word"#),
                    ],
                )],
            ),
            // Token values, empty list elements, a scheme alone.
            (
                ", Basic realm=registry,, Negotiate ,",
                vec![
                    one("Basic", &[("realm", "registry")]),
                    one("Negotiate", &[]),
                ],
            ),
            (r#"Basic realm="""#, vec![one("Basic", &[("realm", "")])]),
        ] {
            assert_eq!(parse_challenges(header), Ok(expected), "{header}");
        }
        // token68, then another challenge.
        let parsed = parse_challenges("Negotiate abc+/d==, Basic realm=r").unwrap();
        assert_eq!(parsed.first().unwrap().token68.as_deref(), Some("abc+/d=="));
        assert!(parsed.get(1).unwrap().is("basic"));
        assert_eq!(parsed.get(1).unwrap().param("REALM"), Some("r"));
        // `realm=` alone is a token68 by the grammar, not a parameter without a value.
        let parsed = parse_challenges("Bearer realm=").unwrap();
        assert_eq!(parsed.first().unwrap().token68.as_deref(), Some("realm="));
        assert_eq!(parsed.first().unwrap().param("realm"), None);
    }

    #[test]
    fn reject_table() {
        for (header, error) in [
            ("", "no challenge"),
            (" , ,", "no challenge"),
            ("=x", "expected an auth scheme at byte 0"),
            (
                r#"Bearer realm="x"#,
                "quoted string opened at byte 13 is not closed",
            ),
            (
                r#"Bearer realm="x\"#,
                "quoted string opened at byte 13 is not closed",
            ),
            (
                "Bearer a=b, realm=",
                "parameter realm has no value (byte 18)",
            ),
            (
                "Bearer a=b, realm=,",
                "parameter realm has no value (byte 18)",
            ),
            (
                r#"Bearer realm "x""#,
                "parameter realm has no '=' (byte 13)",
            ),
            (r#"Bearer realm="a" service="b""#, "expected ',' at byte 17"),
            (r#"Bearer"realm""#, "expected ',' at byte 6"),
            ("Bearer \"x\"", "expected a parameter name at byte 7"),
            (
                "Bearer realm=\"a\u{1}b\"",
                "control character in a quoted string at byte 15",
            ),
            (
                r#"Bearer realm="https://a.example/t",Realm="https://evil.example/t""#,
                "parameter realm appears twice in the Bearer challenge",
            ),
        ] {
            assert_eq!(
                parse_challenges(header).map_err(|e| e.to_string()),
                Err(error.to_owned()),
                "{header}"
            );
        }
    }
}
