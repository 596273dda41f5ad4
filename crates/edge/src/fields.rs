//! Header fields parsed in place: httparse fills slots that are never
//! zeroed (the limits' worth of zeroed slots cost about 12 KiB of stores per
//! request), each field's position in the head is kept as byte ranges on
//! the stack, and the fields become `http` types that share the frozen
//! head's bytes instead of copying them.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use smallvec::SmallVec;
use std::mem::MaybeUninit;

/// A byte range `(start, end)` within a head.
pub(crate) type Span = (usize, usize);

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
    (start, start + part.len())
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
    let name = HeaderName::from_bytes(&head[name.0..name.1]).ok()?;
    let value = HeaderValue::from_maybe_shared(head.slice(value.0..value.1)).ok()?;
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
        assert_eq!(span_in(text, req.path.unwrap().as_bytes()), (4, 6));
        let spans = spans_of(text, req.headers);
        assert_eq!(spans.len(), 2);
        let head = Bytes::from_static(text);
        let (name, value) = field(&head, spans[1]).unwrap();
        assert_eq!((name.as_str(), value.to_str().unwrap()), ("x-long", "v"));
        assert!(
            field(&head, ((0, 6), (4, 6))).is_none(),
            "`GET /x` is not a field name"
        );
    }
}
