//! Where the launcher runs: inside a TEE (measure into RTMR3) or not (local event log).

use std::fmt;

/// `--platform tee|nontee`, or the `PLATFORM` environment variable; `tee` by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    Tee,
    Nontee,
}

impl Platform {
    /// Case-insensitive `tee` or `nontee`.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        if text.eq_ignore_ascii_case("tee") {
            Some(Self::Tee)
        } else if text.eq_ignore_ascii_case("nontee") {
            Some(Self::Nontee)
        } else {
            None
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tee => "tee",
            Self::Nontee => "nontee",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_case_insensitively() {
        assert_eq!(Platform::parse("NONTEE"), Some(Platform::Nontee));
        assert_eq!(Platform::parse("Tee"), Some(Platform::Tee));
        assert_eq!(Platform::parse("sgx"), None);
        assert_eq!(Platform::parse(""), None);
    }
}
