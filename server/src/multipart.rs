//! An upload's multipart body, read with every part bounded.
//!
//! multer streams a file part's bytes out as they arrive and limits fields and the whole body
//! by size, but it buffers a part's headers until their blank line with no limit of its own: a
//! body whose headers never end would be held in memory whole. [`guard`] watches the raw body
//! for that: it counts the bytes from each boundary to the end of that part's headers and cuts
//! the body once they pass [`MAX_PART_HEADERS`]. It only looks for the boundary and the blank
//! line; parsing stays multer's.

use bytes::Bytes;
use futures::{Stream, StreamExt as _};

/// The most a part's headers (with the preamble, for the first part) may take.
pub const MAX_PART_HEADERS: usize = 16 * 1024;

/// Why [`guard`] cut a body.
#[derive(Debug, thiserror::Error)]
#[error("a part's headers are longer than {} KiB", MAX_PART_HEADERS / 1024)]
pub struct HeadersTooLong;

/// The longest boundary accepted (RFC 2046 allows 70 characters); a longer one would make
/// every chunk's scan cost more.
pub const MAX_BOUNDARY: usize = 70;

/// Where the scan of the raw body is, following multer's own stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Before the first `--<boundary>` (multer looks for it anywhere): bounded like headers.
    Preamble,
    /// Right after a boundary: multer skips spaces and tabs, then takes `--` for the end of
    /// the body or the CRLF that ends the boundary's line, after which the headers begin.
    BoundaryLine,
    /// In a part's headers, up to their blank line.
    Headers,
    /// In a part's data, up to `\r\n--<boundary>`.
    Data,
    /// After the closing boundary: multer reads no further.
    End,
}

#[derive(Debug)]
struct Scanner {
    /// `--<boundary>`: the first delimiter; data ends at CRLF and this.
    first: Vec<u8>,
    delimiter: Vec<u8>,
    stage: Stage,
    /// Bytes of preamble or headers seen since the last delimiter.
    counted: usize,
    /// The end of the previous chunk, where a pattern may have begun.
    carry: Vec<u8>,
}

const BLANK_LINE: &[u8] = b"\r\n\r\n";

impl Scanner {
    fn new(boundary: &str) -> Self {
        Self {
            first: format!("--{boundary}").into_bytes(),
            delimiter: format!("\r\n--{boundary}").into_bytes(),
            stage: Stage::Preamble,
            counted: 0,
            carry: Vec::new(),
        }
    }

    fn feed(&mut self, chunk: &[u8]) -> Result<(), HeadersTooLong> {
        let mut hay = std::mem::take(&mut self.carry);
        hay.extend_from_slice(chunk);
        let mut at = 0;
        loop {
            let (pattern, next): (&[u8], Stage) = match self.stage {
                Stage::End => return Ok(()),
                Stage::BoundaryLine => {
                    let padding = hay[at..].iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
                    at += padding;
                    self.counted += padding;
                    if self.counted > MAX_PART_HEADERS {
                        return Err(HeadersTooLong);
                    }
                    match hay.get(at..at + 2) {
                        None => {
                            self.carry = hay[at..].to_vec();
                            return Ok(());
                        }
                        Some(b"--") => self.stage = Stage::End,
                        Some(b"\r\n") => {
                            at += 2;
                            self.stage = Stage::Headers;
                        }
                        // Not a boundary line multer accepts (it fails on it): count on.
                        Some(_) => self.stage = Stage::Headers,
                    }
                    continue;
                }
                Stage::Preamble => (&self.first, Stage::BoundaryLine),
                Stage::Headers => (BLANK_LINE, Stage::Data),
                Stage::Data => (&self.delimiter, Stage::BoundaryLine),
            };
            let counts = matches!(self.stage, Stage::Preamble | Stage::Headers);
            match memchr::memmem::find(&hay[at..], pattern) {
                Some(found) => {
                    if counts && self.counted + found > MAX_PART_HEADERS {
                        return Err(HeadersTooLong);
                    }
                    self.stage = next;
                    self.counted = 0;
                    at += found + pattern.len();
                }
                None => {
                    let keep = (hay.len() - at).min(pattern.len() - 1);
                    if counts {
                        self.counted += hay.len() - at - keep;
                        if self.counted > MAX_PART_HEADERS {
                            return Err(HeadersTooLong);
                        }
                    }
                    self.carry = hay[hay.len() - keep..].to_vec();
                    return Ok(());
                }
            }
        }
    }
}

/// `body` as it arrives, cut with [`HeadersTooLong`] when a part's headers (between the
/// boundary `boundary` and their blank line) go past [`MAX_PART_HEADERS`].
pub fn guard<S, E>(
    body: S,
    boundary: &str,
) -> impl Stream<Item = Result<Bytes, Box<dyn std::error::Error + Send + Sync>>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut scanner = Scanner::new(boundary);
    let mut cut = false;
    body.map(move |chunk| {
        if cut {
            return Err(HeadersTooLong.into());
        }
        let chunk = chunk.map_err(Into::into)?;
        if let Err(err) = scanner.feed(&chunk) {
            cut = true;
            return Err(err.into());
        }
        Ok(chunk)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(chunks: &[&[u8]]) -> Result<(), HeadersTooLong> {
        let mut scanner = Scanner::new("XB");
        chunks.iter().try_for_each(|chunk| scanner.feed(chunk))
    }

    #[test]
    fn ordinary_bodies_pass_in_any_split() {
        let body = b"--XB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n\
                     hello\r\n--XB\r\nContent-Disposition: form-data; name=\"replace\"\r\n\r\n1\r\n--XB--\r\n";
        assert!(scan(&[body]).is_ok());
        for split in 1..body.len() {
            assert!(scan(&[&body[..split], &body[split..]]).is_ok(), "{split}");
        }
        // Huge data is data, not headers.
        let data = vec![b'x'; 10 * MAX_PART_HEADERS];
        assert!(scan(&[b"--XB\r\nA: b\r\n\r\n", &data, &data, b"\r\n--XB--\r\n"]).is_ok());
    }

    #[test]
    fn endless_headers_are_cut_whatever_the_chunks() {
        let long = vec![b'h'; MAX_PART_HEADERS + 1];
        assert!(scan(&[b"--XB\r\nX: ", &long]).is_err());
        // A preamble that hides the first boundary behind a blank line (multer finds the
        // boundary anywhere): the headers after it are still counted.
        assert!(scan(&[b"\r\n\r\n--XB\r\nX: ", &long]).is_err());
        assert!(scan(&[&long, &long]).is_err(), "an endless preamble");
        // The CRLF ending the boundary's line is not the headers' blank line: `--XB\r\n\r\n`
        // followed by endless bytes is a part whose headers never end.
        let endless: Vec<&[u8]> = std::iter::once(b"--XB\r\n\r\n".as_slice())
            .chain(std::iter::repeat_n(
                b"hhhhhhhh".as_slice(),
                MAX_PART_HEADERS / 8 + 2,
            ))
            .collect();
        assert!(scan(&endless).is_err());
        // Padding after a boundary is skipped, and never endless.
        assert!(scan(&[b"--XB  \t\r\nA: b\r\n\r\ndata\r\n--XB--\r\n"]).is_ok());
        assert!(scan(&[b"--XB", &vec![b' '; MAX_PART_HEADERS + 10]]).is_err());
        let first_ok = [b"--XB\r\nA: b\r\n\r\ndata\r\n--XB\r\nX: ".as_slice()];
        let drip: Vec<&[u8]> = first_ok
            .into_iter()
            .chain(std::iter::repeat_n(
                b"hhhhhhhh".as_slice(),
                MAX_PART_HEADERS / 8 + 1,
            ))
            .collect();
        assert!(scan(&drip).is_err());
    }
}
