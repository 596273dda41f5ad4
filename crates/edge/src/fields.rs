//! Header fields parsed in place: httparse fills slots that are never
//! zeroed (the limits' worth of zeroed slots cost about 12 KiB of stores per
//! request), each field's position in the head is kept as byte ranges on
//! the stack, and the fields become `http` types that share the frozen
//! head's bytes instead of copying them.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use smallvec::SmallVec;
use std::mem::MaybeUninit;

/// A byte range within a head. Heads are at most tens of KiB, so the
/// offsets are `u32`: a response head's fields then take 256 bytes inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// The bytes of `head` in this range.
    pub(crate) fn of(self, head: &[u8]) -> &[u8] {
        &head[self.start as usize..self.end as usize]
    }

    /// Where it starts.
    pub(crate) fn start(self) -> usize {
        self.start as usize
    }

    /// Where it ends.
    pub(crate) fn end(self) -> usize {
        self.end as usize
    }

    /// The same range of a shared `head`, sharing its bytes.
    pub(crate) fn slice(self, head: &Bytes) -> Bytes {
        head.slice(self.start as usize..self.end as usize)
    }
}

/// Where each field's name and value lie in a head (on the stack for up to
/// 16 fields).
pub(crate) type FieldSpans = SmallVec<[(Span, Span); 16]>;

/// `N` header slots for httparse's `*_with_uninit_headers` parsers.
pub(crate) fn slots<'a, const N: usize>() -> [MaybeUninit<httparse::Header<'a>>; N] {
    [const { MaybeUninit::uninit() }; N]
}

/// Where `part`, a subslice of `head`, lies in it.
pub(crate) fn span_in(head: &[u8], part: &[u8]) -> Span {
    let start = part.as_ptr() as usize - head.as_ptr() as usize;
    Span {
        start: start as u32,
        end: (start + part.len()) as u32,
    }
}

/// Where each of `fields`, parsed from `head`, lies in it.
pub(crate) fn spans_of(head: &[u8], fields: &[httparse::Header<'_>]) -> FieldSpans {
    fields
        .iter()
        .map(|f| (span_in(head, f.name.as_bytes()), span_in(head, f.value)))
        .collect()
}

/// The field at `(name, value)` in `head`, sharing its bytes; `None` when
/// the name or value is not valid for `http`.
pub(crate) fn field(head: &Bytes, (name, value): (Span, Span)) -> Option<(HeaderName, HeaderValue)> {
    let name = HeaderName::from_bytes(name.of(head)).ok()?;
    let value = HeaderValue::from_maybe_shared(value.slice(head)).ok()?;
    Some((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_found_where_httparse_left_them() {
        let text = b"GET /x HTTP/1.1\r\nHost: a.example\r\nX-Long: v\r\n\r\n";
        let mut slots = slots::<4>();
        let mut req = httparse::Request::new(&mut []);
        assert!(req
            .parse_with_uninit_headers(text, &mut slots)
            .unwrap()
            .is_complete());
        let path = span_in(text, req.path.unwrap().as_bytes());
        assert_eq!(path, Span { start: 4, end: 6 });
        assert_eq!(path.of(text), b"/x");
        let spans = spans_of(text, req.headers);
        assert_eq!(spans.len(), 2);
        let head = Bytes::from_static(text);
        let (name, value) = field(&head, spans[1]).unwrap();
        assert_eq!((name.as_str(), value.to_str().unwrap()), ("x-long", "v"));
        assert!(
            field(&head, (Span { start: 0, end: 6 }, path)).is_none(),
            "`GET /x` is not a field name"
        );
    }
}
