//! Small typed readers over `jiter` that every importer shares: they turn wrong types into
//! messages that name the field, accept Python's `NaN`/`Infinity`, and never build a tree.

use jiter::{Jiter, JiterError, Peek};

/// A problem in one record, located by byte index within that record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RecordError {
    pub message: String,
    /// Byte index in the record where the problem was found.
    pub index: usize,
}

impl RecordError {
    pub fn new(message: impl Into<String>, index: usize) -> Self {
        Self {
            message: message.into(),
            index,
        }
    }
}

pub type RecordResult<T> = Result<T, RecordError>;

/// A `jiter` over one record, with Python's non-standard numbers allowed.
pub fn reader(bytes: &[u8]) -> Jiter<'_> {
    Jiter::new(bytes).with_allow_inf_nan()
}

/// Converts a syntax error into a message; wrong-type errors get the field's name.
pub fn syntax(error: JiterError, field: &str) -> RecordError {
    let what = match &error.error_type {
        jiter::JiterErrorType::JsonError(json_error) => format!("invalid JSON: {json_error}"),
        jiter::JiterErrorType::WrongType { expected, actual } => {
            format!("field `{field}`: expected {expected}, found {actual}")
        }
    };
    RecordError::new(what, error.index)
}

/// Adapter so `?` works on jiter results inside a field reader.
pub trait Ctx<T> {
    fn ctx(self, field: &str) -> RecordResult<T>;
}

impl<T> Ctx<T> for Result<T, JiterError> {
    fn ctx(self, field: &str) -> RecordResult<T> {
        self.map_err(|error| syntax(error, field))
    }
}

/// The field name used for the record itself in messages.
pub const RECORD: &str = "(record)";

pub fn peek_name(peek: Peek) -> &'static str {
    match peek {
        Peek::Null => "null",
        Peek::True | Peek::False => "a boolean",
        Peek::String => "a string",
        Peek::Array => "an array",
        Peek::Object => "an object",
        _ => "a number",
    }
}

pub fn wrong_type(field: &str, expected: &str, found: Peek, index: usize) -> RecordError {
    let starts_a_value = is_number(found)
        || matches!(
            found,
            Peek::Null | Peek::True | Peek::False | Peek::String | Peek::Array | Peek::Object
        );
    if !starts_a_value {
        // Not a JSON value at all (`"id": broken`): a syntax error, not a wrong type.
        let byte = found.into_inner();
        let shown = if byte.is_ascii_graphic() {
            format!("`{}`", char::from(byte))
        } else {
            format!("byte 0x{byte:02x}")
        };
        let place = if field == RECORD {
            String::new()
        } else {
            format!(" in field `{field}`")
        };
        return RecordError::new(
            format!("invalid JSON{place}: expected a value, found {shown}"),
            index,
        );
    }
    if field == RECORD {
        return RecordError::new(
            format!("the record must be {expected}, found {}", peek_name(found)),
            index,
        );
    }
    RecordError::new(
        format!(
            "field `{field}`: expected {expected}, found {}",
            peek_name(found)
        ),
        index,
    )
}

pub fn is_number(peek: Peek) -> bool {
    peek.is_num() || peek == Peek::NaN || peek == Peek::Infinity || peek == Peek::Minus
}

/// Reads a number as f64 (`NaN`, `±Infinity` included), or `null` as NaN.
pub fn known_f64_or_null(jiter: &mut Jiter<'_>, peek: Peek, field: &str) -> RecordResult<f64> {
    if peek == Peek::Null {
        jiter.known_null().ctx(field)?;
        return Ok(f64::NAN);
    }
    if !is_number(peek) {
        return Err(wrong_type(field, "a number", peek, jiter.current_index()));
    }
    jiter.known_float(peek).ctx(field)
}

/// Reads a string (or a number, kept as its JSON text: ids are often numbers); `null` → None.
pub fn known_id(jiter: &mut Jiter<'_>, peek: Peek, field: &str) -> RecordResult<Option<String>> {
    match peek {
        Peek::Null => {
            jiter.known_null().ctx(field)?;
            Ok(None)
        }
        Peek::String => Ok(Some(jiter.known_str().ctx(field)?.to_owned())),
        peek if is_number(peek) => {
            let text = jiter.known_number_bytes(peek).ctx(field)?;
            Ok(Some(String::from_utf8_lossy(text).into_owned()))
        }
        other => Err(wrong_type(
            field,
            "a string or a number",
            other,
            jiter.current_index(),
        )),
    }
}

pub fn next_id(jiter: &mut Jiter<'_>, field: &str) -> RecordResult<Option<String>> {
    let peek = jiter.peek().ctx(field)?;
    known_id(jiter, peek, field)
}

/// Reads a string; `null` → None; anything else is a wrong type.
pub fn next_opt_string(jiter: &mut Jiter<'_>, field: &str) -> RecordResult<Option<String>> {
    match jiter.peek().ctx(field)? {
        Peek::Null => {
            jiter.known_null().ctx(field)?;
            Ok(None)
        }
        Peek::String => Ok(Some(jiter.known_str().ctx(field)?.to_owned())),
        other => Err(wrong_type(field, "a string", other, jiter.current_index())),
    }
}

/// Reads a boolean; `null` → None; `0`/`1` are accepted as well.
pub fn next_opt_bool(jiter: &mut Jiter<'_>, field: &str) -> RecordResult<Option<bool>> {
    match jiter.peek().ctx(field)? {
        Peek::Null => {
            jiter.known_null().ctx(field)?;
            Ok(None)
        }
        peek @ (Peek::True | Peek::False) => Ok(Some(jiter.known_bool(peek).ctx(field)?)),
        peek if is_number(peek) => Ok(Some(jiter.known_float(peek).ctx(field)? != 0.0)),
        other => Err(wrong_type(field, "a boolean", other, jiter.current_index())),
    }
}

/// Reads an array of numbers (`null` elements become NaN) into `out`; a `null` array → false.
pub fn next_f64_array(
    jiter: &mut Jiter<'_>,
    field: &str,
    out: &mut Vec<f64>,
) -> RecordResult<bool> {
    out.clear();
    match jiter.peek().ctx(field)? {
        Peek::Null => {
            jiter.known_null().ctx(field)?;
            Ok(false)
        }
        Peek::Array => {
            let mut element = jiter.known_array().ctx(field)?;
            while let Some(peek) = element {
                out.push(known_f64_or_null(jiter, peek, field)?);
                element = jiter.array_step().ctx(field)?;
            }
            Ok(true)
        }
        other => Err(wrong_type(
            field,
            "an array of numbers",
            other,
            jiter.current_index(),
        )),
    }
}

/// Reads an array of strings into `out` when `keep` is set; returns the element count
/// (None for `null`) either way, so lengths can be checked without keeping the strings.
pub fn next_string_array(
    jiter: &mut Jiter<'_>,
    field: &str,
    keep: bool,
    out: &mut Vec<String>,
) -> RecordResult<Option<usize>> {
    out.clear();
    match jiter.peek().ctx(field)? {
        Peek::Null => {
            jiter.known_null().ctx(field)?;
            Ok(None)
        }
        Peek::Array => {
            let mut count = 0;
            let mut element = jiter.known_array().ctx(field)?;
            while let Some(peek) = element {
                match peek {
                    Peek::String if keep => out.push(jiter.known_str().ctx(field)?.to_owned()),
                    Peek::String => jiter.known_skip(peek).ctx(field)?,
                    Peek::Null => {
                        jiter.known_null().ctx(field)?;
                        if keep {
                            out.push(String::new());
                        }
                    }
                    other => {
                        return Err(wrong_type(
                            field,
                            "an array of strings",
                            other,
                            jiter.current_index(),
                        ));
                    }
                }
                count += 1;
                element = jiter.array_step().ctx(field)?;
            }
            Ok(Some(count))
        }
        other => Err(wrong_type(
            field,
            "an array of strings",
            other,
            jiter.current_index(),
        )),
    }
}

/// Reads an array of numbers (embeddings); `null` → None. Kept as f64: near-parallel
/// vectors rounded to f32 would move (1 − cos) by more than the 1e-6 the results promise.
pub fn next_embedding(jiter: &mut Jiter<'_>, field: &str) -> RecordResult<Option<Vec<f64>>> {
    let mut values = Vec::new();
    Ok(next_f64_array(jiter, field, &mut values)?.then_some(values))
}

/// Walks the members of the object that starts at the reader's position, calling
/// `on_member(jiter, key)`; the callback must consume the value (or call `next_skip`).
pub fn for_each_member(
    jiter: &mut Jiter<'_>,
    field: &str,
    mut on_member: impl FnMut(&mut Jiter<'_>, &str) -> RecordResult<()>,
) -> RecordResult<()> {
    let peek = jiter.peek().ctx(field)?;
    if peek != Peek::Object {
        return Err(wrong_type(field, "an object", peek, jiter.current_index()));
    }
    let mut key = jiter.known_object().ctx(field)?.map(str::to_owned);
    while let Some(name) = key {
        on_member(jiter, &name)?;
        key = jiter.next_key().ctx(field)?.map(str::to_owned);
    }
    Ok(())
}

/// Walks the elements of the array at the reader's position; `null` counts as empty.
pub fn for_each_element(
    jiter: &mut Jiter<'_>,
    field: &str,
    mut on_element: impl FnMut(&mut Jiter<'_>, Peek) -> RecordResult<()>,
) -> RecordResult<bool> {
    match jiter.peek().ctx(field)? {
        Peek::Null => {
            jiter.known_null().ctx(field)?;
            Ok(false)
        }
        Peek::Array => {
            let mut element = jiter.known_array().ctx(field)?;
            while let Some(peek) = element {
                on_element(jiter, peek)?;
                element = jiter.array_step().ctx(field)?;
            }
            Ok(true)
        }
        other => Err(wrong_type(field, "an array", other, jiter.current_index())),
    }
}

/// Skips the value at the reader's position and returns its byte range (from its first
/// byte, past any whitespace before it).
pub fn value_span(jiter: &mut Jiter<'_>, field: &str) -> RecordResult<(usize, usize)> {
    jiter.peek().ctx(field)?;
    let start = jiter.current_index();
    jiter.next_skip().ctx(field)?;
    Ok((start, jiter.current_index()))
}

/// Runs `read` on a reader over `record[start..end]` (a span from [`value_span`]); its
/// errors point into the whole record.
pub fn reread<T>(
    record: &[u8],
    start: usize,
    end: usize,
    read: impl FnOnce(&mut Jiter<'_>) -> RecordResult<T>,
) -> RecordResult<T> {
    let mut sub = reader(record.get(start..end).unwrap_or(&[]));
    read(&mut sub).map_err(|mut error| {
        error.index += start;
        error
    })
}

/// Checks that nothing but whitespace follows the record's value.
pub fn finish(jiter: &mut Jiter<'_>) -> RecordResult<()> {
    jiter.finish().ctx("")
}

/// Follows a dotted path (`metadata.qid`, `choices.0.index`) from the start of a record
/// and returns the value there as an id string, or None if the path does not exist.
pub fn id_at_path(record: &[u8], path: &str) -> RecordResult<Option<String>> {
    let mut jiter = reader(record);
    for segment in path.split('.') {
        let peek = jiter.peek().ctx(path)?;
        match peek {
            Peek::Object => {
                let mut key = jiter.known_object().ctx(path)?.map(str::to_owned);
                loop {
                    match key {
                        Some(name) if name == segment => break,
                        Some(_) => {
                            jiter.next_skip().ctx(path)?;
                            key = jiter.next_key().ctx(path)?.map(str::to_owned);
                        }
                        None => return Ok(None),
                    }
                }
            }
            Peek::Array => {
                let Ok(wanted) = segment.parse::<usize>() else {
                    return Ok(None);
                };
                let mut element = jiter.known_array().ctx(path)?;
                let mut idx = 0;
                loop {
                    match element {
                        Some(_) if idx == wanted => break,
                        Some(element_peek) => {
                            jiter.known_skip(element_peek).ctx(path)?;
                            element = jiter.array_step().ctx(path)?;
                            idx += 1;
                        }
                        None => return Ok(None),
                    }
                }
            }
            _ => return Ok(None),
        }
    }
    next_id(&mut jiter, path)
}

/// Splits a record into its top-level members as raw byte spans, for exports that pass
/// unknown fields through untouched.
pub fn raw_members(record: &[u8]) -> RecordResult<Vec<(String, &[u8])>> {
    let mut jiter = reader(record);
    let mut members = Vec::new();
    let peek = jiter.peek().ctx("")?;
    if peek != Peek::Object {
        return Err(wrong_type("(record)", "an object", peek, 0));
    }
    let mut key = jiter.known_object().ctx("")?.map(str::to_owned);
    while let Some(name) = key {
        // Skip the whitespace before the value so the span starts at its first byte.
        jiter.peek().ctx(&name)?;
        let start = jiter.current_index();
        jiter.next_skip().ctx(&name)?;
        let value = jiter.slice_to_current(start);
        members.push((name, value));
        key = jiter.next_key().ctx("")?.map(str::to_owned);
    }
    Ok(members)
}

/// Copies raw JSON, replacing Python's bare `NaN`, `Infinity` and `-Infinity` (outside
/// strings) with `null`, so exports are standard JSON.
pub fn write_standard_json(raw: &[u8], out: &mut Vec<u8>) {
    let mut idx = 0;
    let mut in_string = false;
    let mut escaped = false;
    while let Some(&byte) = raw.get(idx) {
        if in_string {
            out.push(byte);
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            idx += 1;
            continue;
        }
        let rest = raw.get(idx..).unwrap_or(&[]);
        const PYTHON_TOKENS: [&[u8]; 3] = [b"-Infinity", b"Infinity", b"NaN"];
        let replaced = PYTHON_TOKENS.iter().find(|token| rest.starts_with(token));
        if let Some(token) = replaced {
            out.extend_from_slice(b"null");
            idx += token.len();
            continue;
        }
        if byte == b'"' {
            in_string = true;
        }
        out.push(byte);
        idx += 1;
    }
}

/// The first `max_chars` characters of some bytes, for messages (lossy, one line).
pub fn preview(bytes: &[u8], max_chars: usize) -> String {
    let text = String::from_utf8_lossy(bytes.get(..max_chars * 4).unwrap_or(bytes));
    let mut shown: String = text
        .chars()
        .map(|c| if c.is_control() { '·' } else { c })
        .take(max_chars)
        .collect();
    if text.chars().count() > max_chars {
        shown.push('…');
    }
    shown
}

/// Line and column (1-based) of byte `index` in `bytes`, counting from `first_line`.
pub fn line_col(bytes: &[u8], index: usize, first_line: u64) -> (u64, usize) {
    let before = bytes.get(..index.min(bytes.len())).unwrap_or(&[]);
    let newlines = memchr::memchr_iter(b'\n', before).count() as u64;
    let line_start = memchr::memrchr(b'\n', before).map_or(0, |p| p + 1);
    (first_line + newlines, before.len() - line_start + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_and_infinity_become_null_outside_strings() {
        let mut out = Vec::new();
        write_standard_json(
            br#"{"a":[NaN,-Infinity,Infinity,1],"s":"NaN \"Infinity\""}"#,
            &mut out,
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            r#"{"a":[null,null,null,1],"s":"NaN \"Infinity\""}"#
        );
    }

    #[test]
    fn raw_members_keep_the_exact_bytes() {
        let members = raw_members(br#"{ "a" : [1.50, 2] , "b":{"c":NaN} }"#).unwrap();
        let names: Vec<_> = members.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            names,
            vec![("a", &b"[1.50, 2]"[..]), ("b", &br#"{"c":NaN}"#[..])]
        );
    }

    #[test]
    fn ids_at_paths() {
        let record = br#"{"id":7,"meta":{"qid":"q-1","list":[{"x":"a"},{"x":"b"}]}}"#;
        assert_eq!(id_at_path(record, "id").unwrap().as_deref(), Some("7"));
        assert_eq!(
            id_at_path(record, "meta.qid").unwrap().as_deref(),
            Some("q-1")
        );
        assert_eq!(
            id_at_path(record, "meta.list.1.x").unwrap().as_deref(),
            Some("b")
        );
        assert_eq!(id_at_path(record, "meta.missing").unwrap(), None);
    }

    #[test]
    fn wrong_types_name_the_field() {
        let mut jiter = reader(br#""oops""#);
        let mut out = Vec::new();
        let error = next_f64_array(&mut jiter, "logprobs", &mut out).unwrap_err();
        assert_eq!(
            error.message,
            "field `logprobs`: expected an array of numbers, found a string"
        );
    }

    #[test]
    fn line_and_column() {
        assert_eq!(line_col(b"ab\ncd\nef", 4, 10), (11, 2));
        assert_eq!(line_col(b"abc", 0, 1), (1, 1));
    }
}

#[cfg(test)]
mod wrong_type_tests {
    use super::*;

    #[test]
    fn a_bare_word_is_invalid_json_not_a_number() {
        let bytes = br#"{"question_id": broken}"#;
        let mut jiter = Jiter::new(bytes);
        jiter.next_object().unwrap();
        let error = next_id(&mut jiter, "question_id").unwrap_err();
        assert_eq!(
            error.message,
            "invalid JSON in field `question_id`: expected a value, found `b`"
        );
        let mut jiter = Jiter::new(br#"{"question_id": true}"#);
        jiter.next_object().unwrap();
        let error = next_id(&mut jiter, "question_id").unwrap_err();
        assert_eq!(
            error.message,
            "field `question_id`: expected a string or a number, found a boolean"
        );
    }
}
