//! Reading a whole file that is untrusted in size: at most `max` bytes, or an error.

use std::io::Read as _;
use std::path::Path;

#[derive(Debug)]
pub enum CappedReadError {
    Io(std::io::Error),
    TooLarge,
}

/// Reads `path` whole if it holds at most `max` bytes.
pub fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>, CappedReadError> {
    let file = std::fs::File::open(path).map_err(CappedReadError::Io)?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(CappedReadError::Io)?;
    if bytes.len() as u64 > max {
        return Err(CappedReadError::TooLarge);
    }
    Ok(bytes)
}
