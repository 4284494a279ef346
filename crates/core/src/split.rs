//! Streaming record splitter: turns chunks of bytes into JSON records (lines of JSONL,
//! elements of a top-level JSON array, or concatenated pretty-printed objects) without
//! ever holding more than one record plus one chunk.

/// One record: the bytes of one JSON value, where it starts, and on which line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub bytes: &'a [u8],
    /// Byte offset of `bytes` in the whole stream.
    pub offset: u64,
    /// 1-based line number of the record's first byte.
    pub line: u64,
}

/// What the splitter hands out: a record, or a problem with the stream's framing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitEvent<'a> {
    Record(Record<'a>),
    Problem { line: u64, reason: String },
}

/// How the stream is framed, decided from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// Not decided yet (only whitespace seen).
    Undecided,
    /// One record per line (JSONL): a broken line costs only that line.
    Lines,
    /// A top-level JSON array whose elements are the records.
    Array,
    /// Whole JSON values one after another, possibly spanning lines (`json.dump(indent=2)`).
    Values,
}

/// Records larger than this are reported and skipped rather than buffered.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 30;

/// Push-based splitter: feed it chunks in order, then call [`RecordSplitter::finish`].
#[derive(Debug)]
pub struct RecordSplitter {
    framing: Framing,
    /// Unconsumed bytes; `buf[0]` is at stream offset `buf_offset`, on line `buf_line`.
    buf: Vec<u8>,
    buf_offset: u64,
    buf_line: u64,
    /// How far `buf` has been scanned (for `Values`/`Array`: the value scanner's position).
    scan_pos: usize,
    /// Newlines seen in `buf[..scan_pos]` that are not yet folded into `buf_line`.
    scan_newlines: u64,
    value_scan: ValueScan,
    array_opened: bool,
    array_closed: bool,
    /// Set once the rest of the stream cannot be framed (reported once, then dropped).
    discard_rest: bool,
    /// True while dropping the rest of an oversized line.
    skipping_oversized: bool,
    max_record_bytes: usize,
    lines_seen: u64,
    ended_with_newline: bool,
    at_stream_start: bool,
    /// The stream's first bytes while a byte-order mark is still possible.
    head: Vec<u8>,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// How far to look for the end of the first line before deciding that a file starting with
/// `[` is one big array (a 500 MB single-line array must not be buffered just to decide).
const FRAMING_LOOKAHEAD_BYTES: usize = 1 << 20;

/// True if `bytes` is one complete JSON value as far as brackets and strings tell.
fn is_balanced(bytes: &[u8]) -> bool {
    let mut depth: i64 = 0;
    let mut in_string = false;
    let mut escaped = false;
    for (idx, &byte) in bytes.iter().enumerate() {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => depth += 1,
            b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return bytes
                        .get(idx + 1..)
                        .is_some_and(|tail| tail.trim_ascii().is_empty());
                }
            }
            _ => {}
        }
    }
    false
}

/// How a line of a server-sent-event stream (a saved `"stream": true` response body) reads.
enum SseLine {
    /// Not an SSE field: a JSON line.
    NotSse,
    /// `event:`, `id:`, `retry:` or a `:` comment: nothing to score.
    Ignored,
    /// `data:` — the value starts at this index of the line.
    Data(usize),
}

/// Recognises the SSE fields servers write (`data: {…}`, `data: [DONE]`, `event: …`).
fn sse_field(line: &[u8]) -> SseLine {
    if line.starts_with(b"data:") {
        return SseLine::Data(b"data:".len());
    }
    let ignored: [&[u8]; 4] = [b"event:", b"id:", b"retry:", b":"];
    if ignored.iter().any(|field| line.starts_with(field)) {
        SseLine::Ignored
    } else {
        SseLine::NotSse
    }
}

/// A record (`start`, `end`, line delta) or a problem found by the value scanner.
enum Framed {
    Record(usize, usize, u64),
    Problem(u64, String),
}

fn oversized_line_reason(max_record_bytes: usize) -> String {
    format!("line is longer than {max_record_bytes} bytes; skipped")
}

/// State of the bracket-depth scanner used for `Values` and `Array` framing.
#[derive(Debug, Default, Clone, Copy)]
struct ValueScan {
    /// Start of the current value in `buf`, once its first byte has been seen.
    start: Option<usize>,
    start_line_delta: u64,
    depth: u32,
    in_string: bool,
    escaped: bool,
}

impl Default for RecordSplitter {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_RECORD_BYTES)
    }
}

impl RecordSplitter {
    pub fn new(max_record_bytes: usize) -> Self {
        Self {
            framing: Framing::Undecided,
            buf: Vec::new(),
            buf_offset: 0,
            buf_line: 1,
            scan_pos: 0,
            scan_newlines: 0,
            value_scan: ValueScan::default(),
            array_opened: false,
            array_closed: false,
            discard_rest: false,
            skipping_oversized: false,
            max_record_bytes,
            lines_seen: 0,
            ended_with_newline: true,
            at_stream_start: true,
            head: Vec::new(),
        }
    }

    /// A splitter for a later part of a line-framed stream, from a line start at stream
    /// offset `byte_base` (its records' offsets count from the stream's start; their line
    /// numbers from the part's first line, for the caller to shift).
    pub fn for_lines_from(max_record_bytes: usize, byte_base: u64) -> Self {
        Self {
            framing: Framing::Lines,
            buf_offset: byte_base,
            at_stream_start: false,
            ..Self::new(max_record_bytes)
        }
    }

    /// A splitter for a span cut out of a stream framed as `framing` (starting at a record,
    /// inside the array for `Array`), so that the span splits as it did in the whole.
    pub fn for_span(framing: Framing) -> Self {
        let mut splitter = Self::new(DEFAULT_MAX_RECORD_BYTES);
        splitter.at_stream_start = false;
        if framing != Framing::Undecided {
            splitter.framing = framing;
        }
        splitter.array_opened = framing == Framing::Array;
        splitter
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Number of lines in the stream so far (a final line without a newline counts once
    /// [`RecordSplitter::finish`] has run).
    pub fn lines_seen(&self) -> u64 {
        self.lines_seen
    }

    pub fn feed(&mut self, chunk: &[u8], emit: &mut dyn FnMut(SplitEvent<'_>)) {
        if chunk.is_empty() {
            return;
        }
        if self.at_stream_start {
            // A byte-order mark may arrive split over chunks: hold the first bytes until
            // it is clear whether they are one.
            self.head.extend_from_slice(chunk);
            if self.head.len() < BOM.len() && BOM.starts_with(&self.head) {
                return;
            }
            self.at_stream_start = false;
            let head = std::mem::take(&mut self.head);
            let data = match head.strip_prefix(BOM) {
                Some(rest) => {
                    self.buf_offset = BOM.len() as u64;
                    rest
                }
                None => &head[..],
            };
            self.feed_data(data, emit);
            return;
        }
        self.feed_data(chunk, emit);
    }

    fn feed_data(&mut self, chunk: &[u8], emit: &mut dyn FnMut(SplitEvent<'_>)) {
        if chunk.is_empty() {
            return;
        }
        self.lines_seen += memchr::memchr_iter(b'\n', chunk).count() as u64;
        if let Some(&last) = chunk.last() {
            self.ended_with_newline = last == b'\n';
        }
        if self.framing == Framing::Lines && self.buf.is_empty() && !self.skipping_oversized {
            // Fast path: split lines straight out of the chunk, buffer only the tail.
            let consumed = self.emit_lines_from(chunk, emit);
            self.buf
                .extend_from_slice(chunk.get(consumed..).unwrap_or(&[]));
            self.check_oversized_line(emit);
            return;
        }
        self.buf.extend_from_slice(chunk);
        self.process(false, emit);
    }

    pub fn finish(&mut self, emit: &mut dyn FnMut(SplitEvent<'_>)) {
        if self.at_stream_start {
            self.at_stream_start = false;
            let head = std::mem::take(&mut self.head);
            self.feed_data(&head, emit);
        }
        if !self.ended_with_newline {
            self.lines_seen += 1;
            self.ended_with_newline = true;
        }
        self.process(true, emit);
    }

    fn process(&mut self, at_end: bool, emit: &mut dyn FnMut(SplitEvent<'_>)) {
        if self.framing == Framing::Undecided && !self.decide_framing(at_end) {
            return;
        }
        match self.framing {
            Framing::Undecided => {}
            Framing::Lines => {
                if self.skipping_oversized {
                    match memchr::memchr(b'\n', &self.buf) {
                        Some(newline) => {
                            self.consume(newline + 1, 1);
                            self.skipping_oversized = false;
                        }
                        None => {
                            let len = self.buf.len();
                            self.consume(len, 0);
                            return;
                        }
                    }
                }
                let buf = std::mem::take(&mut self.buf);
                let consumed = self.emit_lines_from(&buf, emit);
                self.buf = buf;
                self.buf.drain(..consumed);
                if at_end && !self.buf.is_empty() {
                    let tail = std::mem::take(&mut self.buf);
                    self.emit_line(&tail, emit);
                    self.buf_offset += tail.len() as u64;
                } else {
                    self.check_oversized_line(emit);
                }
            }
            Framing::Array | Framing::Values => self.scan_values(at_end, emit),
        }
    }

    /// Looks at the first non-blank bytes: `[` means an array, a first line that is only
    /// `{` means pretty-printed objects, anything else is read as JSONL.
    fn decide_framing(&mut self, at_end: bool) -> bool {
        let Some(first_idx) = self.buf.iter().position(|b| !b.is_ascii_whitespace()) else {
            return false;
        };
        let first = self.buf.get(first_idx).copied().unwrap_or(b'{');
        self.framing = if first == b'[' {
            let rest = self.buf.get(first_idx..).unwrap_or(&[]);
            match rest.iter().position(|&b| b == b'\n') {
                // JSONL whose lines are arrays (batched TGI/SGLang/llama.cpp responses),
                // maybe mixed with objects: the first line is a whole value and more lines
                // follow.
                Some(newline) => {
                    let first_line = rest.get(..newline).unwrap_or(&[]);
                    let more = rest.get(newline + 1..).unwrap_or(&[]).trim_ascii_start();
                    if is_balanced(first_line) && matches!(more.first(), Some(b'[' | b'{')) {
                        Framing::Lines
                    } else if more.is_empty() && !at_end {
                        return false;
                    } else {
                        Framing::Array
                    }
                }
                None if at_end || rest.len() > FRAMING_LOOKAHEAD_BYTES => Framing::Array,
                None => return false,
            }
        } else if first == b'{' {
            let rest = self.buf.get(first_idx + 1..).unwrap_or(&[]);
            match rest.iter().position(|&b| b == b'\n') {
                Some(newline) => {
                    if rest
                        .get(..newline)
                        .is_some_and(|s| s.trim_ascii().is_empty())
                    {
                        Framing::Values
                    } else {
                        Framing::Lines
                    }
                }
                None if at_end => Framing::Lines,
                None if self.buf.len() < 4096 => return false,
                None => Framing::Lines,
            }
        } else {
            Framing::Lines
        };
        true
    }

    /// Emits every complete line of `bytes` (which starts at `buf_offset`); returns how many
    /// bytes were consumed.
    fn emit_lines_from(&mut self, bytes: &[u8], emit: &mut dyn FnMut(SplitEvent<'_>)) -> usize {
        let mut line_start = 0;
        for newline in memchr::memchr_iter(b'\n', bytes) {
            let line = bytes.get(line_start..newline).unwrap_or(&[]);
            self.emit_line(line, emit);
            self.buf_offset += (newline + 1 - line_start) as u64;
            self.buf_line += 1;
            line_start = newline + 1;
        }
        line_start
    }

    /// Emits one line (without its newline) starting at `buf_offset` on `buf_line`.
    fn emit_line(&mut self, line: &[u8], emit: &mut dyn FnMut(SplitEvent<'_>)) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let trimmed_start = line.iter().position(|b| !b.is_ascii_whitespace());
        let Some(start) = trimmed_start else {
            return;
        };
        let mut start = start;
        let mut trimmed = line.get(start..).unwrap_or(&[]).trim_ascii_end();
        match sse_field(trimmed) {
            SseLine::NotSse => {}
            SseLine::Ignored => return,
            SseLine::Data(data_start) => {
                let data = trimmed.get(data_start..).unwrap_or(&[]);
                let blank = data.iter().take_while(|b| b.is_ascii_whitespace()).count();
                start += data_start + blank;
                trimmed = data.get(blank..).unwrap_or(&[]);
                // `[DONE]` ends an OpenAI stream; llama.cpp sends `null` for the start of
                // each further prompt's stream.
                if trimmed.is_empty() || trimmed == b"[DONE]" || trimmed == b"null" {
                    return;
                }
            }
        }
        if trimmed.len() > self.max_record_bytes {
            emit(SplitEvent::Problem {
                line: self.buf_line,
                reason: oversized_line_reason(self.max_record_bytes),
            });
            return;
        }
        emit(SplitEvent::Record(Record {
            bytes: trimmed,
            offset: self.buf_offset + start as u64,
            line: self.buf_line,
        }));
    }

    /// A line that has grown past the limit without ending is reported once and dropped.
    fn check_oversized_line(&mut self, emit: &mut dyn FnMut(SplitEvent<'_>)) {
        if self.buf.len() > self.max_record_bytes {
            emit(SplitEvent::Problem {
                line: self.buf_line,
                reason: oversized_line_reason(self.max_record_bytes),
            });
            let len = self.buf.len();
            self.consume(len, 0);
            self.skipping_oversized = true;
        }
    }

    /// Drops `n` bytes from the front of `buf`, which contained `newlines` newlines.
    fn consume(&mut self, n: usize, newlines: u64) {
        let n = n.min(self.buf.len());
        self.buf.drain(..n);
        self.buf_offset += n as u64;
        self.buf_line += newlines;
        self.scan_pos = self.scan_pos.saturating_sub(n);
    }

    /// Bracket-depth scanner for `Array` and `Values` framing.
    fn scan_values(&mut self, at_end: bool, emit: &mut dyn FnMut(SplitEvent<'_>)) {
        if self.discard_rest {
            let len = self.buf.len();
            self.consume(len, 0);
            return;
        }
        let mut pos = self.scan_pos;
        let mut scan = self.value_scan;
        let mut newlines = self.scan_newlines;
        // Everything before `keep_from` is done with and can be dropped.
        let mut keep_from = scan.start.unwrap_or(pos);
        let mut keep_newlines = if scan.start.is_some() {
            scan.start_line_delta
        } else {
            newlines
        };
        // Records and problems in stream order; emitted after the scan, which borrows `buf`.
        let mut pending: Vec<Framed> = Vec::new();
        while let Some(&byte) = self.buf.get(pos) {
            if byte == b'\n' {
                newlines += 1;
            }
            if scan.in_string {
                if scan.escaped {
                    scan.escaped = false;
                } else if byte == b'\\' {
                    scan.escaped = true;
                } else if byte == b'"' {
                    scan.in_string = false;
                }
                pos += 1;
                continue;
            }
            match (scan.start, byte) {
                (_, b' ' | b'\t' | b'\r' | b'\n') if scan.depth == 0 => {
                    if let Some(start) = scan.start.take() {
                        // A bare scalar ended (`Values` framing of non-object junk).
                        pending.push(Framed::Record(start, pos, scan.start_line_delta));
                        keep_from = pos;
                        keep_newlines = newlines;
                    }
                }
                (None, b'[') if self.framing == Framing::Array && !self.array_opened => {
                    // The outer `[` of an array file: records are its elements.
                    self.array_opened = true;
                    keep_from = pos + 1;
                    keep_newlines = newlines;
                }
                (_, b',' | b']') if scan.depth == 0 && self.framing == Framing::Array => {
                    if let Some(start) = scan.start.take() {
                        pending.push(Framed::Record(start, pos, scan.start_line_delta));
                    }
                    if byte == b']' {
                        self.array_closed = true;
                    }
                    keep_from = pos + 1;
                    keep_newlines = newlines;
                }
                (None, _) if self.array_closed => {
                    pending.push(Framed::Problem(
                        self.buf_line + newlines,
                        "unexpected data after the end of the top-level JSON array".to_owned(),
                    ));
                    self.discard_rest = true;
                    // Drop the rest: nothing after the array can be framed reliably.
                    pos = self.buf.len();
                    keep_from = pos;
                    keep_newlines = newlines;
                    break;
                }
                (None, _) => {
                    scan.start = Some(pos);
                    scan.start_line_delta = newlines;
                    scan.depth = 0;
                    self.open_or_close(&mut scan, byte);
                    if scan.depth == 0 && (byte == b'}' || byte == b']') {
                        // A stray closer: report it as its own record so the parser names it.
                        pending.push(Framed::Record(pos, pos + 1, scan.start_line_delta));
                        scan.start = None;
                        keep_from = pos + 1;
                        keep_newlines = newlines;
                    }
                }
                (Some(start), _) => {
                    let was_nested = scan.depth > 0;
                    self.open_or_close(&mut scan, byte);
                    if was_nested && scan.depth == 0 && self.framing == Framing::Values {
                        pending.push(Framed::Record(start, pos + 1, scan.start_line_delta));
                        scan.start = None;
                        keep_from = pos + 1;
                        keep_newlines = newlines;
                    }
                }
            }
            pos += 1;
        }
        if at_end {
            if let Some(start) = scan.start.take() {
                if scan.depth > 0 || scan.in_string {
                    pending.push(Framed::Problem(
                        self.buf_line + scan.start_line_delta,
                        "JSON value is not closed before the end of the input".to_owned(),
                    ));
                    // Still hand the bytes to the parser so its message names the spot.
                }
                pending.push(Framed::Record(start, self.buf.len(), scan.start_line_delta));
                keep_from = self.buf.len();
                keep_newlines = newlines;
            }
            if self.framing == Framing::Array && self.array_opened && !self.array_closed {
                pending.push(Framed::Problem(
                    self.buf_line + newlines,
                    "the top-level JSON array is not closed (`]` missing)".to_owned(),
                ));
            }
        }
        for framed in pending {
            let (start, end, line_delta) = match framed {
                Framed::Record(start, end, line_delta) => (start, end, line_delta),
                Framed::Problem(line, reason) => {
                    emit(SplitEvent::Problem { line, reason });
                    continue;
                }
            };
            let bytes = self.buf.get(start..end).unwrap_or(&[]).trim_ascii();
            if bytes.is_empty() {
                continue;
            }
            let lead = self
                .buf
                .get(start..end)
                .and_then(|s| s.iter().position(|b| !b.is_ascii_whitespace()))
                .unwrap_or(0);
            emit(SplitEvent::Record(Record {
                bytes,
                offset: self.buf_offset + (start + lead) as u64,
                line: self.buf_line + line_delta,
            }));
        }
        // Fold the consumed prefix away; keep the value in progress.
        let keep_from = keep_from.min(self.buf.len());
        self.buf.drain(..keep_from);
        self.buf_offset += keep_from as u64;
        self.buf_line += keep_newlines;
        self.scan_pos = pos - keep_from;
        self.scan_newlines = newlines - keep_newlines;
        if let Some(start) = scan.start.as_mut() {
            *start -= keep_from;
            scan.start_line_delta -= keep_newlines;
        }
        self.value_scan = ValueScan {
            depth: scan.depth,
            ..scan
        };
        if scan.start.is_some() && self.buf.len() > self.max_record_bytes {
            emit(SplitEvent::Problem {
                line: self.buf_line,
                reason: format!(
                    "JSON value is longer than {} bytes; the rest of the input is skipped",
                    self.max_record_bytes
                ),
            });
            self.buf.clear();
            self.value_scan = ValueScan::default();
            self.scan_pos = 0;
            self.scan_newlines = 0;
            self.discard_rest = true;
        }
    }

    fn open_or_close(&self, scan: &mut ValueScan, byte: u8) {
        match byte {
            b'{' | b'[' => scan.depth += 1,
            b'}' | b']' => scan.depth = scan.depth.saturating_sub(1),
            b'"' => scan.in_string = true,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in chunks of several sizes and checks every chunking gives the same
    /// events: `(line, record text)` for records, `(line, "!reason")` for problems.
    fn check(input: &str, expected: &[(u64, &str)], expected_lines: u64) {
        for chunk_size in [1, 2, 3, 7, 64, input.len().max(1)] {
            let mut splitter = RecordSplitter::new(64);
            let mut events: Vec<(u64, String)> = Vec::new();
            let mut offsets_ok = true;
            let mut on_event = |event: SplitEvent<'_>| match event {
                SplitEvent::Record(record) => {
                    let start = record.offset as usize;
                    offsets_ok &= input.as_bytes().get(start..start + record.bytes.len())
                        == Some(record.bytes);
                    events.push((
                        record.line,
                        String::from_utf8_lossy(record.bytes).into_owned(),
                    ));
                }
                SplitEvent::Problem { line, reason } => events.push((line, format!("!{reason}"))),
            };
            for chunk in input.as_bytes().chunks(chunk_size) {
                splitter.feed(chunk, &mut on_event);
            }
            splitter.finish(&mut on_event);
            let expected: Vec<(u64, String)> = expected
                .iter()
                .map(|(line, text)| (*line, (*text).to_owned()))
                .collect();
            assert_eq!(events, expected, "chunk size {chunk_size}");
            assert!(
                offsets_ok,
                "offsets point at the record bytes (chunk size {chunk_size})"
            );
            assert_eq!(
                splitter.lines_seen(),
                expected_lines,
                "lines, chunk size {chunk_size}"
            );
        }
    }

    #[test]
    fn jsonl_lines_blank_lines_crlf_and_no_final_newline() {
        check(
            "{\"a\":1}\r\n\n  \n{\"b\":2}  \n{\"c\":3}",
            &[(1, "{\"a\":1}"), (4, "{\"b\":2}"), (5, "{\"c\":3}")],
            5,
        );
    }

    #[test]
    fn a_broken_line_costs_only_that_line() {
        check(
            "{\"a\":[1,2}\n{\"b\":2}\nnot json\n",
            &[(1, "{\"a\":[1,2}"), (2, "{\"b\":2}"), (3, "not json")],
            3,
        );
    }

    #[test]
    fn server_sent_events_are_read_as_their_data_lines() {
        // `event:`/`id:`/comment lines and `data: [DONE]` (OpenAI) or `data: null`
        // (llama.cpp's start of a further prompt) are framing, not records.
        check(
            "event: x\ndata: {\"a\":1}\n\n: ping\ndata:{\"b\":2}\n\ndata: null\n\ndata: [DONE]\n",
            &[(2, "{\"a\":1}"), (5, "{\"b\":2}")],
            9,
        );
    }

    #[test]
    fn jsonl_whose_first_line_is_an_array_and_then_objects_is_jsonl() {
        // llama.cpp answers several prompts with an array; single prompts with an object.
        check(
            "[{\"a\":1},{\"a\":2}]\n{\"b\":3}\n",
            &[(1, "[{\"a\":1},{\"a\":2}]"), (2, "{\"b\":3}")],
            2,
        );
    }

    #[test]
    fn byte_order_mark_is_skipped() {
        check("\u{feff}{\"a\":1}\n", &[(1, "{\"a\":1}")], 1);
    }

    #[test]
    fn top_level_array_elements_are_records() {
        check(
            "[\n  {\"a\": \"x,]\\\"\"},\n  {\"b\": [1, {\"c\": 2}]}\n]\n",
            &[(2, "{\"a\": \"x,]\\\"\"}"), (3, "{\"b\": [1, {\"c\": 2}]}")],
            4,
        );
        check("[]", &[], 1);
    }

    #[test]
    fn jsonl_whose_lines_are_arrays_is_still_jsonl() {
        check(
            "[{\"a\":1},{\"b\":\"]\"}]\n[{\"c\":3}]\nbroken[\n",
            &[
                (1, "[{\"a\":1},{\"b\":\"]\"}]"),
                (2, "[{\"c\":3}]"),
                (3, "broken["),
            ],
            3,
        );
        // One array spread over lines stays one array.
        check(
            "[{\"a\":1},\n{\"b\":2}]\n",
            &[(1, "{\"a\":1}"), (2, "{\"b\":2}")],
            2,
        );
    }

    #[test]
    fn pretty_printed_objects_are_whole_records() {
        check(
            "{\n  \"a\": {\n    \"b\": \"}\"\n  }\n}\n{\n  \"c\": 1\n}\n",
            &[
                (1, "{\n  \"a\": {\n    \"b\": \"}\"\n  }\n}"),
                (6, "{\n  \"c\": 1\n}"),
            ],
            8,
        );
    }

    #[test]
    fn framing_problems_are_reported() {
        check(
            "[{\"a\":1}, {\"b\":",
            &[
                (1, "{\"a\":1}"),
                (1, "!JSON value is not closed before the end of the input"),
                (1, "{\"b\":"),
                (1, "!the top-level JSON array is not closed (`]` missing)"),
            ],
            1,
        );
        check(
            "[{\"a\":1}] trailing",
            &[
                (1, "{\"a\":1}"),
                (
                    1,
                    "!unexpected data after the end of the top-level JSON array",
                ),
            ],
            1,
        );
    }

    #[test]
    fn oversized_lines_are_skipped_with_a_message() {
        let long = format!("{{\"a\":\"{}\"}}", "x".repeat(100));
        let input = format!("{{\"a\":1}}\n{long}\n{{\"b\":2}}\n");
        check(
            &input,
            &[
                (1, "{\"a\":1}"),
                (2, "!line is longer than 64 bytes; skipped"),
                (3, "{\"b\":2}"),
            ],
            3,
        );
    }
}
