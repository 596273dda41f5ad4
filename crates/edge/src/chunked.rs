//! Decoding of a backend's `Transfer-Encoding: chunked` response body, in
//! place in the connection's read buffer (data comes out without copies).

use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;
use std::io;

/// Longest chunk-size line or trailer section accepted.
const MAX_LINE: usize = 16 * 1024;

/// Where the decoder is in the chunked stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunked {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk, with this many bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: expecting trailers or the final CRLF.
    Trailers,
    /// The body ended.
    Done,
}

/// What one decoding step produced.
#[derive(Debug)]
pub(crate) enum Decoded {
    /// Body bytes.
    Data(Bytes),
    /// The body ended, with trailers if the backend sent any.
    End(Option<HeaderMap>),
    /// More input is needed.
    More,
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("invalid chunked body: {what}"),
    )
}

fn line_end(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

impl Chunked {
    /// Decodes what it can from the start of `buf`, consuming it.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> io::Result<Decoded> {
        loop {
            match *self {
                Self::Size => {
                    let Some(end) = line_end(buf) else {
                        return if buf.len() > MAX_LINE {
                            Err(invalid("chunk size line too long"))
                        } else {
                            Ok(Decoded::More)
                        };
                    };
                    let line = &buf[..end];
                    // chunk-size = 1*HEXDIG, then optional whitespace (BWS)
                    // before a chunk-ext; nothing before the digits.
                    let digits = line.split(|b| *b == b';').next().unwrap_or_default();
                    let digits = digits.trim_ascii_end();
                    if digits.is_empty() || digits.len() > 15 {
                        return Err(invalid("chunk size"));
                    }
                    let mut size = 0u64;
                    for d in digits {
                        let v = (*d as char).to_digit(16).ok_or_else(|| invalid("chunk size"))?;
                        size = size * 16 + u64::from(v);
                    }
                    buf.advance(end + 2);
                    *self = if size == 0 {
                        Self::Trailers
                    } else {
                        Self::Data(size)
                    };
                }
                Self::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::More);
                    }
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let data = buf.split_to(n).freeze();
                    let left = left - n as u64;
                    *self = if left == 0 {
                        Self::DataEnd
                    } else {
                        Self::Data(left)
                    };
                    return Ok(Decoded::Data(data));
                }
                Self::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Decoded::More);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(invalid("missing CRLF after chunk"));
                    }
                    buf.advance(2);
                    *self = Self::Size;
                }
                Self::Trailers => {
                    if buf.starts_with(b"\r\n") {
                        buf.advance(2);
                        *self = Self::Done;
                        return Ok(Decoded::End(None));
                    }
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        return if buf.len() > MAX_LINE {
                            Err(invalid("trailers too long"))
                        } else {
                            Ok(Decoded::More)
                        };
                    };
                    let section = buf.split_to(end + 4);
                    *self = Self::Done;
                    return Ok(Decoded::End(Some(parse_trailers(&section)?)));
                }
                Self::Done => return Ok(Decoded::End(None)),
            }
        }
    }
}

fn parse_trailers(section: &[u8]) -> io::Result<HeaderMap> {
    let mut raw = [httparse::EMPTY_HEADER; 32];
    let parsed = match httparse::parse_headers(section, &mut raw) {
        Ok(httparse::Status::Complete((_, parsed))) => parsed,
        _ => return Err(invalid("trailers")),
    };
    let mut trailers = HeaderMap::with_capacity(parsed.len());
    for h in parsed {
        let name = http::HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| invalid("trailer name"))?;
        let value = http::HeaderValue::from_bytes(h.value).map_err(|_| invalid("trailer value"))?;
        trailers.append(name, value);
    }
    Ok(trailers)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` one byte at a time; returns the data and the trailers.
    fn decode_bytewise(input: &[u8]) -> (Vec<u8>, Option<HeaderMap>) {
        let mut dec = Chunked::Size;
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for b in input {
            buf.extend_from_slice(&[*b]);
            loop {
                match dec.decode(&mut buf).unwrap() {
                    Decoded::Data(d) => out.extend_from_slice(&d),
                    Decoded::End(t) => return (out, t),
                    Decoded::More => break,
                }
            }
        }
        panic!("body did not end");
    }

    #[test]
    fn decodes_chunks_extensions_and_trailers() {
        let (data, trailers) = decode_bytewise(b"5;ext=1\r\nhello\r\nA\r\n, world!!!\r\n0\r\n\r\n");
        assert_eq!(data, b"hello, world!!!");
        assert!(trailers.is_none());

        let (data, trailers) = decode_bytewise(b"3\r\nabc\r\n0\r\nx-sum: 42\r\n\r\n");
        assert_eq!(data, b"abc");
        assert_eq!(trailers.unwrap()["x-sum"], "42");

        // Whitespace before an extension (BWS) is allowed.
        let (data, _) = decode_bytewise(b"3 ;e=1\r\nabc\r\n0\r\n\r\n");
        assert_eq!(data, b"abc");
    }

    /// A chunked encoding of `chunks` (sizes in either case, with up to
    /// three leading zeros, some with extensions) and of `trailers`.
    fn encode(chunks: &[(Vec<u8>, bool, u8, bool)], trailers: &[(String, String)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (data, upper, zeros, ext) in chunks.iter().filter(|c| !c.0.is_empty()) {
            let size = if *upper {
                format!("{:X}", data.len())
            } else {
                format!("{:x}", data.len())
            };
            out.extend("0".repeat(usize::from(*zeros)).as_bytes());
            out.extend(size.as_bytes());
            if *ext {
                out.extend(b" ;name=\"v;1\"");
            }
            out.extend(b"\r\n");
            out.extend(data);
            out.extend(b"\r\n");
        }
        out.extend(b"0\r\n");
        for (name, value) in trailers {
            out.extend(format!("{name}: {value}\r\n").as_bytes());
        }
        out.extend(b"\r\n");
        out
    }

    /// Decodes `input` fed in pieces cut at `cuts`; the data, the trailers
    /// and the bytes after the body, or the error.
    fn decode_in_pieces(input: &[u8], cuts: &[usize]) -> io::Result<(Vec<u8>, Option<HeaderMap>, Vec<u8>)> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        cuts.push(input.len());
        cuts.sort_unstable();
        let (mut dec, mut buf, mut data, mut fed) = (Chunked::Size, BytesMut::new(), Vec::new(), 0);
        for cut in cuts {
            buf.extend_from_slice(&input[fed..cut]);
            fed = cut;
            loop {
                match dec.decode(&mut buf)? {
                    Decoded::Data(d) => data.extend_from_slice(&d),
                    Decoded::End(t) => {
                        buf.extend_from_slice(&input[fed..]);
                        return Ok((data, t, buf.to_vec()));
                    }
                    Decoded::More => break,
                }
            }
        }
        Err(io::ErrorKind::UnexpectedEof.into())
    }

    proptest::proptest! {
        /// However a chunked body is cut into reads, the decoder yields its
        /// data and trailers whole and stops where the body ends.
        #[test]
        fn chunked_bodies_decode_whole_across_any_reads(
            chunks in proptest::collection::vec(
                (proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
                 proptest::prelude::any::<bool>(), 0u8..4, proptest::prelude::any::<bool>()),
                0..6,
            ),
            trailers in proptest::collection::vec(("x-[a-z]{1,8}", "[!-~]{1,12}"), 0..3),
            cuts in proptest::collection::vec(proptest::prelude::any::<usize>(), 0..8),
        ) {
            let mut input = encode(&chunks, &trailers);
            input.extend(b"HTTP/1.1 200 OK\r\n");
            let (data, got, rest) = decode_in_pieces(&input, &cuts).expect("decodes");
            let expected: Vec<u8> = chunks.iter().flat_map(|c| c.0.clone()).collect();
            proptest::prop_assert_eq!(data, expected);
            proptest::prop_assert_eq!(rest, b"HTTP/1.1 200 OK\r\n".to_vec(), "the next response is left");
            let mut got: Vec<(String, String)> = got
                .iter()
                .flatten()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
                .collect();
            let mut trailers = trailers;
            got.sort();
            trailers.sort();
            proptest::prop_assert_eq!(got, trailers);
        }

        /// Arbitrary bytes never make the decoder panic, nor yield more
        /// data than they hold.
        #[test]
        fn arbitrary_bytes_are_decoded_or_refused(
            input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            cuts in proptest::collection::vec(proptest::prelude::any::<usize>(), 0..4),
        ) {
            if let Ok((data, _, rest)) = decode_in_pieces(&input, &cuts) {
                proptest::prop_assert!(data.len() + rest.len() < input.len());
            }
        }
    }

    #[test]
    fn rejects_malformed_chunks() {
        for bad in [
            &b"zz\r\n"[..],
            b"3\r\nabcXY",
            b"\r\n",
            b" 3\r\nabc\r\n",
            b"\t3\r\n",
            b"3 3\r\n",
        ] {
            let mut buf = BytesMut::from(bad);
            let mut dec = Chunked::Size;
            let mut result = Ok(Decoded::More);
            for _ in 0..4 {
                result = dec.decode(&mut buf);
                if !matches!(result, Ok(Decoded::Data(_))) {
                    break;
                }
            }
            assert!(result.is_err(), "{bad:?}");
        }
    }
}
