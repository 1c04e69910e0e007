//! Header fields: an ordered list of name/value pairs with case-insensitive
//! lookup, token-list parsing and the hop-by-hop rules of RFC 9110 §7.6.1.
//!
//! One type serves requests and responses. Names and values live in one byte
//! buffer with ranges into it, so a connection can reuse the same storage for
//! every request it reads (clearing keeps the capacity).

use std::fmt;

/// An ordered collection of header fields.
///
/// * Lookup compares names byte-wise, ASCII case-insensitively
///   (RFC 9110 §5.1), never with Unicode case folding.
/// * Repeated fields are kept, in the order received or appended
///   (RFC 9110 §5.3: their order is significant for list-valued fields).
///
/// ```
/// use h1serve::Headers;
/// let mut h = Headers::new();
/// h.append("Accept", "text/html");
/// h.append("accept", "text/plain");
/// assert_eq!(h.get("ACCEPT"), Some("text/html"));
/// assert_eq!(h.get_all("Accept").count(), 2);
/// ```
#[derive(Clone, Default)]
pub struct Headers {
    bytes: Vec<u8>,
    fields: Vec<Field>,
}

#[derive(Clone, Copy, Debug)]
struct Field {
    name: (u32, u32),
    value: (u32, u32),
}

thread_local! {
    /// Field storage handed from one response to the next on this thread.
    static SPARE: std::cell::Cell<Option<(Vec<u8>, Vec<Field>)>> = const { std::cell::Cell::new(None) };
}

/// The value of a field to add, trimmed, if the name is a token and the
/// value has no control characters but HTAB (RFC 9110 §5.1, §5.5).
fn checked_field<'v>(name: &str, value: &'v [u8]) -> Result<&'v [u8], InvalidHeader> {
    let value = trim_ows(value);
    if is_token(name.as_bytes()) && value.iter().all(|&b| is_field_value_byte(b)) {
        Ok(value)
    } else {
        Err(InvalidHeader)
    }
}

/// A header name or value that [`Headers::try_append`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidHeader;

impl fmt::Display for InvalidHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid header field name or value")
    }
}

impl std::error::Error for InvalidHeader {}

/// Fields that apply to one connection only and must not be forwarded.
/// RFC 9110 §7.6.1 names `Connection` and, as fields to remove even when
/// `Connection` does not list them, `Proxy-Connection`, `Keep-Alive`,
/// `TE`, `Transfer-Encoding` and `Upgrade`. `Trailer` comes from the
/// hop-by-hop list of RFC 2616 §13.5.1. The proxy authentication fields
/// are there because RFC 9110 §11.7 scopes them to the next hop.
pub const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
];

impl Headers {
    /// An empty collection.
    pub fn new() -> Headers {
        Headers::default()
    }

    /// Number of fields (repeated names count once per field line).
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True when there are no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Removes every field, keeping the allocated storage for reuse.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.fields.clear();
    }

    /// Appends a field after the existing ones.
    ///
    /// # Panics
    /// If `name` is not a token or `value` holds CR, LF, NUL or another
    /// control character (RFC 9110 §5.1, §5.5): such a field would split the
    /// message. Use [`Headers::try_append`] for values that come from outside.
    pub fn append(&mut self, name: &str, value: impl AsRef<[u8]>) {
        if self.try_append(name, value).is_err() {
            panic!("invalid header field {name:?}");
        }
    }

    /// Appends a field, or refuses a name that is not a token or a value with
    /// control characters (HTAB aside). Surrounding whitespace is trimmed.
    pub fn try_append(&mut self, name: &str, value: impl AsRef<[u8]>) -> Result<(), InvalidHeader> {
        let value = checked_field(name, value.as_ref())?;
        self.push_unchecked(name.as_bytes(), value);
        Ok(())
    }

    /// Replaces every field called `name` by one field with `value`, or
    /// refuses as [`Headers::try_append`] does, leaving the fields as they
    /// were.
    pub fn try_insert(&mut self, name: &str, value: impl AsRef<[u8]>) -> Result<(), InvalidHeader> {
        let value = checked_field(name, value.as_ref())?;
        self.remove(name);
        self.push_unchecked(name.as_bytes(), value);
        Ok(())
    }

    /// Replaces every field called `name` by one field with `value`.
    ///
    /// # Panics
    /// As [`Headers::append`].
    pub fn insert(&mut self, name: &str, value: impl AsRef<[u8]>) {
        if self.try_insert(name, value).is_err() {
            panic!("invalid header field {name:?}");
        }
    }

    /// Appends a field whose bytes the caller has already validated (the
    /// request parser does, rule by rule).
    pub(crate) fn push_unchecked(&mut self, name: &[u8], value: &[u8]) {
        if self.bytes.capacity() == 0 {
            self.take_storage();
        }
        // Name and value side by side: one reservation for both.
        self.bytes.reserve(name.len() + value.len());
        let start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(name);
        let middle = self.bytes.len() as u32;
        self.bytes.extend_from_slice(value);
        self.fields.push(Field { name: (start, middle), value: (middle, self.bytes.len() as u32) });
    }

    fn slice(&self, r: (u32, u32)) -> &[u8] {
        &self.bytes[r.0 as usize..r.1 as usize]
    }

    fn name_of(&self, f: &Field) -> &str {
        // Names are validated tokens, hence ASCII.
        std::str::from_utf8(self.slice(f.name)).unwrap_or("")
    }

    /// Gives a new collection storage: what this thread recycled from an
    /// earlier response, or one allocation for the usual handful of fields
    /// (rather than a string of reallocations as they are appended).
    fn take_storage(&mut self) {
        match SPARE.take() {
            Some((bytes, fields)) => (self.bytes, self.fields) = (bytes, fields),
            None => {
                self.bytes.reserve(128);
                self.fields.reserve(6);
            }
        }
    }

    /// Keeps this collection's storage for the next response made on this
    /// thread. Every handler builds a `Response` whose fields need storage;
    /// passing it from one response to the next saves two allocations and
    /// two frees per request (measured: about a sixth of the server's
    /// instructions per pipelined request). Large storage is not kept.
    pub(crate) fn recycle(self) {
        if self.bytes.capacity() == 0 || !self.storage_is_small() {
            return;
        }
        let Headers { mut bytes, mut fields } = self;
        bytes.clear();
        fields.clear();
        SPARE.set(Some((bytes, fields)));
    }

    /// Whether the storage is small enough to keep for reuse once the
    /// fields are gone: storage that a rare message with many or long
    /// fields made grow is given back instead.
    pub(crate) fn storage_is_small(&self) -> bool {
        self.bytes.capacity() <= 4096 && self.fields.capacity() <= 64
    }

    /// Removes every field called `name`; returns how many were removed.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.fields.len();
        let bytes = &self.bytes;
        self.fields.retain(|f| !bytes[f.name.0 as usize..f.name.1 as usize].eq_ignore_ascii_case(name.as_bytes()));
        before - self.fields.len()
    }

    /// True if at least one field is called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.get_all_bytes(name).next().is_some()
    }

    /// The value of the first field called `name`, if it is valid UTF-8.
    /// (Values may carry obs-text bytes, RFC 9110 §5.5; see
    /// [`Headers::get_bytes`] for those.)
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_bytes(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The raw value of the first field called `name`.
    pub fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        let f = self.fields.iter().find(|f| self.slice(f.name).eq_ignore_ascii_case(name.as_bytes()))?;
        Some(self.slice(f.value))
    }

    /// The values of every field called `name` that are valid UTF-8, in order.
    pub fn get_all<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.get_all_bytes(name).filter_map(|v| std::str::from_utf8(v).ok())
    }

    /// The raw values of every field called `name`, in order.
    pub fn get_all_bytes<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a [u8]> + use<'a, 'n> {
        self.fields
            .iter()
            .filter(move |f| self.slice(f.name).eq_ignore_ascii_case(name.as_bytes()))
            .map(move |f| self.slice(f.value))
    }

    /// Every field as raw `(name, value)` bytes, in order.
    pub(crate) fn iter_raw(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.fields.iter().map(move |f| (self.slice(f.name), self.slice(f.value)))
    }

    /// Every field as `(name, value)`, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.fields.iter().map(move |f| (self.name_of(f), self.slice(f.value)))
    }

    /// The members of the comma-separated list carried by every field called
    /// `name`, taken together in order (RFC 9110 §5.3, §5.6.1): surrounding
    /// whitespace trimmed, empty members skipped.
    pub fn list<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a [u8]> + use<'a, 'n> {
        self.get_all_bytes(name).flat_map(list_members)
    }

    /// True if the comma-separated list in the fields called `name` holds
    /// `token`, compared case-insensitively. This is how `Connection: close`
    /// must be recognised (RFC 9110 §7.6.1): `Connection: Keep-Alive, CLOSE`
    /// holds `close`; `Connection: closed` does not.
    ///
    /// ```
    /// use h1serve::Headers;
    /// let mut h = Headers::new();
    /// h.append("Connection", "keep-alive, Upgrade");
    /// h.append("connection", "CLOSE");
    /// assert!(h.has_token("Connection", "close"));
    /// assert!(!h.has_token("Connection", "clos"));
    /// ```
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.list(name).any(|m| m.eq_ignore_ascii_case(token.as_bytes()))
    }

    /// Removes the hop-by-hop fields a proxy must not forward
    /// (RFC 9110 §7.6.1): `Connection`, every field that `Connection` names,
    /// and the fields in [`HOP_BY_HOP`].
    ///
    /// ```
    /// use h1serve::Headers;
    /// let mut h = Headers::new();
    /// h.append("Connection", "close, X-Secret");
    /// h.append("X-Secret", "1");
    /// h.append("Keep-Alive", "timeout=5");
    /// h.append("Accept", "*/*");
    /// h.remove_hop_by_hop();
    /// assert_eq!(h.iter().map(|(n, _)| n).collect::<Vec<_>>(), ["Accept"]);
    /// ```
    pub fn remove_hop_by_hop(&mut self) {
        let named: Vec<String> =
            self.list("connection").filter(|m| is_token(m)).map(|m| String::from_utf8_lossy(m).into_owned()).collect();
        for name in named.iter().map(String::as_str).chain(HOP_BY_HOP) {
            self.remove(name);
        }
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter().map(|(n, v)| (n, String::from_utf8_lossy(v)))).finish()
    }
}

/// Byte classes, one bit each, looked up in a table: the parser asks for
/// every byte of every head, and a load beats a chain of range checks.
const TCHAR: u8 = 1;
const FIELD_VCHAR: u8 = 2;
const TARGET: u8 = 4;
const REG_NAME: u8 = 8;
const FIELD_VALUE: u8 = 16;

static CLASSES: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        // `tchar` of RFC 9110 §5.6.2: the characters of a token, such as a
        // method or a field name.
        let tchar = matches!(b,
            b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' |
            b'^' | b'_' | b'`' | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z');
        // `field-vchar = VCHAR / obs-text` (RFC 9110 §5.5).
        let field_vchar = matches!(b, 0x21..=0x7e | 0x80..=0xff);
        // What a field value may hold between its first and last field-vchar.
        let field_value = field_vchar || b == b' ' || b == b'\t';
        // A request target is visible ASCII (RFC 3986 percent-encodes the
        // rest) without `#`: no form of RFC 9112 §3.2 has a fragment.
        let target = matches!(b, 0x21..=0x7e) && b != b'#';
        // A byte of a `reg-name` host (RFC 3986 §3.2.2): unreserved,
        // sub-delims, or the `%` of a percent-encoding.
        let reg_name = matches!(b,
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'%' |
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=');
        table[i] = (tchar as u8 * TCHAR)
            | (field_vchar as u8 * FIELD_VCHAR)
            | (target as u8 * TARGET)
            | (reg_name as u8 * REG_NAME)
            | (field_value as u8 * FIELD_VALUE);
        i += 1;
    }
    table
}

#[inline]
fn in_class(b: u8, class: u8) -> bool {
    CLASSES[b as usize] & class != 0
}

/// `tchar` of RFC 9110 §5.6.2.
#[inline]
pub(crate) fn is_tchar(b: u8) -> bool {
    in_class(b, TCHAR)
}

/// `field-vchar` (RFC 9110 §5.5): visible ASCII or a byte of 0x80 and
/// above. SP and HTAB are allowed between them; every other control
/// character (CR, LF and NUL above all) is not.
#[inline]
pub(crate) fn is_field_vchar(b: u8) -> bool {
    in_class(b, FIELD_VCHAR)
}

/// A byte that may appear inside a field value: field-vchar, SP or HTAB.
#[inline]
pub(crate) fn is_field_value_byte(b: u8) -> bool {
    in_class(b, FIELD_VALUE)
}

/// How many bytes at the start of `bytes` are tchars: the length of the
/// token there (RFC 9110 §5.6.2).
#[inline]
pub(crate) fn token_prefix(bytes: &[u8]) -> usize {
    prefix_in_class(bytes, TCHAR)
}

/// How many bytes at the start of `bytes` may be part of a field value
/// (field-vchar, SP, HTAB: RFC 9110 §5.5). In a head, the value ends at
/// the first control character, which is its CR if the line is valid.
#[inline]
pub(crate) fn field_value_prefix(bytes: &[u8]) -> usize {
    prefix_in_class(bytes, FIELD_VALUE)
}

/// How many bytes at the start of `bytes` may be part of a request target.
#[inline]
pub(crate) fn target_prefix(bytes: &[u8]) -> usize {
    prefix_in_class(bytes, TARGET)
}

/// The length of the prefix of `bytes` in `class`. Eight bytes at a time
/// first: the AND of their eight table entries has the class bit only if
/// all of them are in it, and those loads need no branch between them;
/// then a byte at a time where the prefix ends. Names, values and targets
/// are most of a head's bytes (the README's Performance section has what
/// this and the whole-line steps of the parser saved, measured).
#[inline]
fn prefix_in_class(bytes: &[u8], class: u8) -> usize {
    let all_in_class = |word: &[u8]| word.iter().fold(class, |acc, &b| acc & CLASSES[b as usize]) != 0;
    let start = bytes.chunks_exact(8).take_while(|w| all_in_class(w)).count() * 8;
    start + bytes[start..].iter().position(|&b| !in_class(b, class)).unwrap_or(bytes.len() - start)
}

/// A byte of a `reg-name` host (RFC 3986 §3.2.2).
#[inline]
pub(crate) fn is_reg_name_byte(b: u8) -> bool {
    in_class(b, REG_NAME)
}

/// `token = 1*tchar` (RFC 9110 §5.6.2).
pub(crate) fn is_token(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(|&c| is_tchar(c))
}

/// The members of one field value that is a comma-separated list
/// (RFC 9110 §5.6.1): surrounding whitespace trimmed, empty members skipped.
pub(crate) fn list_members(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim_ows).filter(|m| !m.is_empty())
}

/// Trims optional whitespace (`OWS = *( SP / HTAB )`, RFC 9110 §5.6.3).
pub(crate) fn trim_ows(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The eight-at-a-time scans against the RFC's definitions, a byte at a
    /// time: every byte value at every position of a word and across word
    /// boundaries, on backgrounds of valid bytes (SP, HTAB, obs-text, ...).
    #[test]
    fn word_scans_agree_with_the_rfc_byte_sets() {
        let field_value: fn(u8) -> bool = |b| matches!(b, b'\t' | b' '..=b'~' | 0x80..=0xff);
        let target: fn(u8) -> bool = |b| matches!(b, b'!'..=b'~') && b != b'#';
        let tchar: fn(u8) -> bool = |b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        type Scan = (fn(&[u8]) -> usize, fn(u8) -> bool);
        let scans: [Scan; 3] = [(field_value_prefix, field_value), (target_prefix, target), (token_prefix, tchar)];
        for (scan, ok) in scans {
            let byte_at_a_time = |b: &[u8]| b.iter().position(|&c| !ok(c)).unwrap_or(b.len());
            for background in [b'a', b' ', b'\t', 0x80, 0xff, b'~', b'!'] {
                for len in 0..=20 {
                    for pos in 0..len {
                        for b in 0..=255u8 {
                            let mut buf = vec![background; len];
                            buf[pos] = b;
                            assert_eq!(scan(&buf), byte_at_a_time(&buf), "{buf:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn lookup_is_ascii_case_insensitive_only() {
        let mut h = Headers::new();
        h.append("Content-Type", "text/plain");
        assert_eq!(h.get("content-type"), Some("text/plain"));
        assert_eq!(h.get("CONTENT-TYPE"), Some("text/plain"));
        // U+017F LATIN SMALL LETTER LONG S folds to 'S' under Unicode rules;
        // it must never match an ASCII name.
        assert_eq!(h.get("Content-Type".replace('T', "\u{17f}").as_str()), None);
    }

    #[test]
    fn repeated_fields_keep_order() {
        let mut h = Headers::new();
        h.append("A", "1");
        h.append("B", "x");
        h.append("a", "2");
        assert_eq!(h.get_all("A").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(h.iter().map(|(n, _)| n).collect::<Vec<_>>(), ["A", "B", "a"]);
    }

    #[test]
    fn token_lists_span_fields_and_trim() {
        let mut h = Headers::new();
        h.append("Connection", " , keep-alive ,");
        h.append("Connection", "Upgrade,\tClose ");
        let members: Vec<&[u8]> = h.list("connection").collect();
        assert_eq!(members, [&b"keep-alive"[..], b"Upgrade", b"Close"]);
        assert!(h.has_token("connection", "close"));
        assert!(!h.has_token("connection", "keep"));
    }

    #[test]
    fn append_refuses_splitting_values() {
        let mut h = Headers::new();
        assert_eq!(h.try_append("X", "a\r\nInjected: 1"), Err(InvalidHeader));
        assert_eq!(h.try_append("X", "a\0"), Err(InvalidHeader));
        assert_eq!(h.try_append("Bad Name", "v"), Err(InvalidHeader));
        assert_eq!(h.try_append("", "v"), Err(InvalidHeader));
        assert!(h.try_append("X", "  tab\there  ").is_ok());
        assert_eq!(h.get("x"), Some("tab\there"));
        assert!(!h.is_empty() && h.len() == 1);
        // A refused insert leaves the fields as they were.
        assert_eq!(h.try_insert("X", "b\nc"), Err(InvalidHeader));
        assert_eq!(h.get("x"), Some("tab\there"));
        assert!(h.try_insert("x", "new").is_ok());
        assert_eq!((h.get("X"), h.len()), (Some("new"), 1));
    }

    #[test]
    fn insert_replaces_and_remove_counts() {
        let mut h = Headers::new();
        h.append("X", "1");
        h.append("x", "2");
        h.insert("X", "3");
        assert_eq!(h.get_all("x").collect::<Vec<_>>(), ["3"]);
        assert_eq!(h.remove("X"), 1);
        assert!(!h.contains("x"));
    }

    #[test]
    fn hop_by_hop_fields_are_removed_with_those_connection_names() {
        let mut h = Headers::new();
        for (n, v) in [
            ("Connection", "X-A"),
            ("connection", "x-b"),
            ("X-A", "1"),
            ("X-B", "2"),
            ("TE", "trailers"),
            ("Transfer-Encoding", "chunked"),
            ("Proxy-Connection", "keep-alive"),
            ("Upgrade", "h2c"),
            ("Trailer", "X"),
            ("Proxy-Authorization", "x"),
            ("Proxy-Authenticate", "x"),
            ("Keep-Alive", "timeout=1"),
            ("Host", "example"),
            ("X-C", "3"),
        ] {
            h.append(n, v);
        }
        h.remove_hop_by_hop();
        assert_eq!(h.iter().map(|(n, _)| n).collect::<Vec<_>>(), ["Host", "X-C"]);
    }
}
