//! Newline-delimited reading with a bounded line length.
//!
//! `AsyncBufReadExt::lines` buffers a line whole before returning it, so a child that writes
//! gigabytes without a newline would exhaust the broker's memory. This reader never holds more
//! than `max` bytes of one line: past that it either drops the line (stdout: a truncated
//! JSON-RPC message is useless) or keeps only its beginning (stderr: a truncated log line still
//! helps), and in both cases skips to the next newline.

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// What to do with the part of a line beyond the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Overflow {
    /// Return [`Line::TooLong`] with the length only.
    Drop,
    /// Return [`Line::Truncated`] with the first `max` bytes.
    Truncate,
}

/// One line, without its `\n` (and without a `\r` before it).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// The whole line.
    Complete(Vec<u8>),
    /// A line longer than the limit under [`Overflow::Drop`]: only its length is known.
    TooLong { len: usize },
    /// A line longer than the limit under [`Overflow::Truncate`]: its first bytes and its length.
    Truncated { prefix: Vec<u8>, len: usize },
}

/// Reads lines of at most `max` bytes from `R`.
pub(crate) struct LineReader<R> {
    inner: BufReader<R>,
    max: usize,
    overflow: Overflow,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub(crate) fn new(reader: R, max: usize, overflow: Overflow) -> Self {
        Self {
            // The buffer is only the read chunk size; lines may be longer (up to `max`).
            inner: BufReader::with_capacity(64 * 1024, reader),
            max,
            overflow,
        }
    }

    /// The next line, or `None` at end of input. A last line without a newline still counts.
    /// Cancel-safety is not needed: the reader is owned by one task that never cancels it.
    pub(crate) async fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        let mut line: Vec<u8> = Vec::new();
        let mut len = 0usize;
        let mut overlong = false;
        loop {
            let chunk = self.inner.fill_buf().await?;
            if chunk.is_empty() {
                if len == 0 {
                    return Ok(None);
                }
                break;
            }
            let (part, used, end) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (&chunk[..i], i + 1, true),
                None => (chunk, chunk.len(), false),
            };
            len += part.len();
            if !overlong {
                let room = self.max - line.len();
                if part.len() <= room {
                    line.extend_from_slice(part);
                } else {
                    overlong = true;
                    match self.overflow {
                        Overflow::Drop => line = Vec::new(),
                        Overflow::Truncate => line.extend_from_slice(&part[..room]),
                    }
                }
            }
            self.inner.consume(used);
            if end {
                break;
            }
        }
        if !overlong && line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(Some(match (overlong, self.overflow) {
            (false, _) => Line::Complete(line),
            (true, Overflow::Drop) => Line::TooLong { len },
            (true, Overflow::Truncate) => Line::Truncated { prefix: line, len },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn all(input: &[u8], max: usize, overflow: Overflow) -> Vec<Line> {
        let mut reader = LineReader::new(input, max, overflow);
        let mut lines = Vec::new();
        while let Some(line) = reader.next_line().await.unwrap() {
            lines.push(line);
        }
        lines
    }

    fn complete(s: &str) -> Line {
        Line::Complete(s.as_bytes().to_vec())
    }

    #[tokio::test]
    async fn splits_lines_and_keeps_a_last_line_without_newline() {
        assert_eq!(
            all(b"a\r\n\nbc\nlast", 10, Overflow::Drop).await,
            vec![
                complete("a"),
                complete(""),
                complete("bc"),
                complete("last")
            ]
        );
        assert!(all(b"", 10, Overflow::Drop).await.is_empty());
    }

    #[tokio::test]
    async fn an_over_long_line_is_dropped_and_the_next_one_survives() {
        let mut input = vec![b'x'; 200_000];
        input.extend_from_slice(b"\nok\n");
        assert_eq!(
            all(&input, 1000, Overflow::Drop).await,
            vec![Line::TooLong { len: 200_000 }, complete("ok")]
        );
        // Exactly the limit is fine; one more byte is not.
        assert_eq!(
            all(b"12345\n123456\n", 5, Overflow::Drop).await,
            vec![complete("12345"), Line::TooLong { len: 6 }]
        );
    }

    #[tokio::test]
    async fn an_over_long_line_can_be_truncated_instead() {
        assert_eq!(
            all(b"abcdefgh\nok", 3, Overflow::Truncate).await,
            vec![
                Line::Truncated {
                    prefix: b"abc".to_vec(),
                    len: 8
                },
                complete("ok")
            ]
        );
    }

    #[tokio::test]
    async fn lines_arriving_in_small_pieces_are_joined() {
        let (mut tx, rx) = tokio::io::duplex(4);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            tx.write_all(b"{\"a\":1}\n{\"b\":2}\n").await.unwrap();
        });
        let mut reader = LineReader::new(rx, 100, Overflow::Drop);
        assert_eq!(
            reader.next_line().await.unwrap(),
            Some(complete("{\"a\":1}"))
        );
        assert_eq!(
            reader.next_line().await.unwrap(),
            Some(complete("{\"b\":2}"))
        );
        writer.await.unwrap();
        assert_eq!(reader.next_line().await.unwrap(), None);
    }
}
