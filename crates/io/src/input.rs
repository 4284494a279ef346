//! Reading inputs: files, stdin or bytes in memory — plain, gzip or Parquet — and Arrow
//! batches, streamed in chunks into the scorer, and read again by offset when an export
//! writes the kept records.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use arrow_array::RecordBatch;
use flate2::bufread::MultiGzDecoder;
use tracesift_core::dataset::Scorer;
use tracesift_core::parts;
use tracesift_core::trace::RecordRef;

use crate::records;

const CHUNK_BYTES: usize = 256 << 10;

/// One input of a run.
#[derive(Debug, Clone)]
pub enum Input {
    /// A file (plain, gzip or Parquet), or `-` for stdin.
    Path(String),
    /// A whole file's bytes (plain, gzip or Parquet), named for reports.
    Bytes { name: String, bytes: Vec<u8> },
    /// Arrow record batches with canonical columns (SPEC §2), named for reports.
    Batches {
        name: String,
        batches: Vec<RecordBatch>,
    },
}

impl Input {
    /// The name reports give the input.
    pub fn name(&self) -> &str {
        match self {
            Input::Path(name) | Input::Bytes { name, .. } | Input::Batches { name, .. } => name,
        }
    }
}

/// Why inputs could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The input does not exist or may not be read: the user's mistake (CLI exit 2).
    #[error("cannot open {name}: {source}")]
    Open { name: String, source: io::Error },
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

fn io_error(context: impl Into<String>) -> impl FnOnce(io::Error) -> InputError {
    let context = context.into();
    move |source| InputError::Io { context, source }
}

/// Where kept records are read back from: the input file itself when it is plain and
/// seekable, otherwise a copy of its decompressed (or, for Parquet and Arrow, its
/// canonical JSONL) bytes, in a temporary file or in memory.
#[derive(Debug, Default)]
pub struct RecordStore {
    inputs: Vec<StoredInput>,
}

#[derive(Debug)]
enum StoredInput {
    File(File),
    Memory(Arc<Vec<u8>>),
}

impl RecordStore {
    pub fn read(&mut self, record: &RecordRef) -> io::Result<Vec<u8>> {
        let stored = self
            .inputs
            .get_mut(record.file_idx as usize)
            .ok_or_else(|| io::Error::other("record from an unknown input"))?;
        let len = usize::try_from(record.len).map_err(io::Error::other)?;
        match stored {
            StoredInput::File(file) => {
                file.seek(SeekFrom::Start(record.offset))?;
                let mut bytes = vec![0; len];
                file.read_exact(&mut bytes)?;
                Ok(bytes)
            }
            StoredInput::Memory(bytes) => {
                let start = usize::try_from(record.offset).map_err(io::Error::other)?;
                start
                    .checked_add(len)
                    .and_then(|end| bytes.get(start..end))
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| io::Error::other("record beyond the end of its input"))
            }
        }
    }
}

/// What a caller sees of the reading: bytes read per input (a progress bar, or nothing).
pub trait Progress: Send + Sync {
    /// `bytes` more of the current input were read (raw, possibly compressed bytes).
    fn advance(&self, bytes: u64);
    /// The current input is read.
    fn finish(&self) {}
}

/// No progress display.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn advance(&self, _bytes: u64) {}
}

/// Makes the progress display of one input from its name and size (when known).
pub type ProgressFactory<'a> = dyn FnMut(&str, Option<u64>) -> Arc<dyn Progress> + 'a;

/// Plain files at least this big are parsed on every core by default (smaller ones take
/// well under a second on one, and stay within 10 % of their size in memory); when
/// `--threads` asks for several, the core's planner decides
/// ([`tracesift_core::parts::worth_splitting`]).
const PARALLEL_MIN_BYTES_UNASKED: u64 = 256 << 20;

/// How many threads parse a file, and whether the user chose that number.
#[derive(Debug, Clone, Copy)]
pub struct Threads {
    pub count: usize,
    pub asked: bool,
}

impl Threads {
    /// Every core, not asked for.
    pub fn all_cores() -> Self {
        Self {
            count: std::thread::available_parallelism().map_or(1, usize::from),
            asked: false,
        }
    }
}

/// The first bytes of every Parquet file.
const PARQUET_MAGIC: &[u8] = b"PAR1";
/// The first bytes of every gzip stream.
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];

/// Where a copy of an input's bytes goes while it streams, so kept records can be read
/// back: nowhere (the input is read back in place, or nothing is exported), a temporary
/// file, or memory.
enum Spool {
    None,
    File(File),
    Memory(Vec<u8>),
}

impl Spool {
    fn write(&mut self, bytes: &[u8]) -> Result<(), InputError> {
        match self {
            Spool::None => Ok(()),
            Spool::File(file) => file
                .write_all(bytes)
                .map_err(io_error("cannot write the temporary file")),
            Spool::Memory(buffer) => {
                buffer.extend_from_slice(bytes);
                Ok(())
            }
        }
    }

    fn into_stored(self) -> Option<StoredInput> {
        match self {
            Spool::None => None,
            Spool::File(file) => Some(StoredInput::File(file)),
            Spool::Memory(bytes) => Some(StoredInput::Memory(Arc::new(bytes))),
        }
    }
}

fn temporary_spool() -> Result<Spool, InputError> {
    tempfile::tempfile()
        .map(Spool::File)
        .map_err(io_error("cannot create a temporary file"))
}

/// Streams every input into the scorer. With `keep_records`, also returns a store to read
/// records back from. Large plain JSONL files are parsed by `threads` threads, each on
/// its own line-aligned part, and the parts are merged in order. Parquet files and Arrow
/// batches are fed as canonical JSONL, one line per row.
pub fn feed_inputs(
    inputs: &[Input],
    scorer: &mut Scorer,
    keep_records: bool,
    threads: Threads,
    progress_for: &mut ProgressFactory<'_>,
    after_chunk: &mut dyn FnMut(&mut Scorer),
) -> Result<RecordStore, InputError> {
    let mut store = RecordStore::default();
    for input in inputs {
        scorer.begin_file(input.name());
        let stored = match input {
            Input::Path(name) => feed_path(
                name,
                scorer,
                keep_records,
                threads,
                progress_for,
                after_chunk,
            )?,
            Input::Bytes { name, bytes } => {
                let progress = progress_for(name, Some(bytes.len() as u64));
                let stored = feed_bytes(name, bytes, scorer, keep_records, after_chunk)?;
                progress.advance(bytes.len() as u64);
                progress.finish();
                stored
            }
            Input::Batches { batches, .. } => {
                let mut spool = if keep_records {
                    Spool::Memory(Vec::new())
                } else {
                    Spool::None
                };
                let mut writer = records::JsonlEncoder::default();
                for batch in batches {
                    feed_batch(&mut writer, batch, scorer, &mut spool, after_chunk)?;
                }
                spool.into_stored()
            }
        };
        scorer.end_file();
        if let Some(stored) = stored {
            store.inputs.push(stored);
        }
    }
    Ok(store)
}

/// Encodes one Arrow batch as canonical JSONL and feeds it; a batch that cannot be encoded
/// is reported where its lines would have been.
fn feed_batch(
    encoder: &mut records::JsonlEncoder,
    batch: &RecordBatch,
    scorer: &mut Scorer,
    spool: &mut Spool,
    after_chunk: &mut dyn FnMut(&mut Scorer),
) -> Result<(), InputError> {
    match encoder.encode(batch) {
        Ok(lines) => {
            spool.write(lines)?;
            scorer.feed(lines);
            after_chunk(scorer);
        }
        Err(error) => scorer.note_read_error(&format!(
            "cannot read {} rows as canonical traces: {error}",
            batch.num_rows()
        )),
    }
    Ok(())
}

fn feed_path(
    name: &str,
    scorer: &mut Scorer,
    keep_records: bool,
    threads: Threads,
    progress_for: &mut ProgressFactory<'_>,
    after_chunk: &mut dyn FnMut(&mut Scorer),
) -> Result<Option<StoredInput>, InputError> {
    let is_stdin = name == "-";
    let (raw, size): (Box<dyn Read>, Option<u64>) = if is_stdin {
        (Box::new(io::stdin().lock()), None)
    } else {
        let file = File::open(name).map_err(|source| InputError::Open {
            name: name.to_owned(),
            source,
        })?;
        let size = file.metadata().ok().map(|m| m.len());
        (Box::new(file), size)
    };
    let progress = progress_for(name, size);
    // Small: it only serves the format check; chunk-sized reads bypass it.
    let mut reader = BufReader::with_capacity(
        64 << 10,
        ProgressReader {
            inner: raw,
            progress: Arc::clone(&progress),
        },
    );
    let head = reader.fill_buf().map(<[u8]>::to_vec).unwrap_or_default();
    let is_gzip = head.starts_with(GZIP_MAGIC);
    if head.starts_with(PARQUET_MAGIC) {
        let stored = feed_parquet_path(name, is_stdin, reader, scorer, keep_records, after_chunk)?;
        progress.finish();
        return Ok(stored);
    }
    // Plain files are read back in place; anything else is spooled while it streams.
    let mut spool = if keep_records && (is_gzip || is_stdin) {
        temporary_spool()?
    } else {
        Spool::None
    };
    let split = size.is_some_and(|size| {
        parts::worth_splitting(size, threads.count)
            && (threads.asked || size >= PARALLEL_MIN_BYTES_UNASKED)
    });
    if !is_gzip && !is_stdin && split {
        feed_in_parts(
            name,
            &mut reader,
            scorer,
            threads.count,
            &progress,
            after_chunk,
        )?;
    } else {
        let mut stream: Box<dyn Read> = if is_gzip {
            Box::new(MultiGzDecoder::new(reader))
        } else {
            Box::new(reader)
        };
        feed_stream(&mut stream, scorer, &mut spool, after_chunk)?;
    }
    progress.finish();
    if !keep_records {
        return Ok(None);
    }
    Ok(Some(match spool.into_stored() {
        Some(stored) => stored,
        None => {
            StoredInput::File(File::open(name).map_err(io_error(format!("cannot reopen {name}")))?)
        }
    }))
}

/// A whole input in memory: Parquet, gzip or plain.
fn feed_bytes(
    name: &str,
    bytes: &[u8],
    scorer: &mut Scorer,
    keep_records: bool,
    after_chunk: &mut dyn FnMut(&mut Scorer),
) -> Result<Option<StoredInput>, InputError> {
    if bytes.starts_with(PARQUET_MAGIC) {
        let mut spool = if keep_records {
            Spool::Memory(Vec::new())
        } else {
            Spool::None
        };
        feed_parquet_bytes(name, bytes.to_vec(), scorer, &mut spool, after_chunk)?;
        return Ok(spool.into_stored());
    }
    if bytes.starts_with(GZIP_MAGIC) {
        let mut spool = if keep_records {
            Spool::Memory(Vec::new())
        } else {
            Spool::None
        };
        let mut stream = MultiGzDecoder::new(bytes);
        feed_stream(&mut stream, scorer, &mut spool, after_chunk)?;
        return Ok(spool.into_stored());
    }
    for chunk in bytes.chunks(CHUNK_BYTES) {
        scorer.feed(chunk);
        after_chunk(scorer);
    }
    Ok(keep_records.then(|| StoredInput::Memory(Arc::new(bytes.to_vec()))))
}

/// A Parquet file: read from its path (seekable), or first copied into memory (stdin).
fn feed_parquet_path(
    name: &str,
    is_stdin: bool,
    mut reader: BufReader<ProgressReader>,
    scorer: &mut Scorer,
    keep_records: bool,
    after_chunk: &mut dyn FnMut(&mut Scorer),
) -> Result<Option<StoredInput>, InputError> {
    let mut spool = if keep_records {
        temporary_spool()?
    } else {
        Spool::None
    };
    if is_stdin {
        let mut bytes = Vec::new();
        reader
            .read_to_end(&mut bytes)
            .map_err(io_error("cannot read the input"))?;
        feed_parquet_bytes(name, bytes, scorer, &mut spool, after_chunk)?;
    } else {
        // Reading counts the progress; the Parquet reader seeks in its own handle.
        let file = File::open(name).map_err(|source| InputError::Open {
            name: name.to_owned(),
            source,
        })?;
        let size = file.metadata().map_or(0, |metadata| metadata.len());
        feed_parquet(name, file, scorer, &mut spool, after_chunk)?;
        reader.get_ref().progress.advance(size);
    }
    Ok(spool.into_stored())
}

fn feed_parquet_bytes(
    name: &str,
    bytes: Vec<u8>,
    scorer: &mut Scorer,
    spool: &mut Spool,
    after_chunk: &mut dyn FnMut(&mut Scorer),
) -> Result<(), InputError> {
    #[cfg(feature = "parquet")]
    let source = bytes::Bytes::from(bytes);
    #[cfg(not(feature = "parquet"))]
    let source = bytes;
    feed_parquet(name, source, scorer, spool, after_chunk)
}

#[cfg(feature = "parquet")]
fn feed_parquet<Source: parquet::file::reader::ChunkReader + 'static>(
    _name: &str,
    source: Source,
    scorer: &mut Scorer,
    spool: &mut Spool,
    after_chunk: &mut dyn FnMut(&mut Scorer),
) -> Result<(), InputError> {
    let batches = match crate::parquet_files::read_batches(source) {
        Ok(batches) => batches,
        Err(error) => {
            scorer.note_read_error(&format!("not a readable Parquet file: {error}"));
            return Ok(());
        }
    };
    let mut encoder = records::JsonlEncoder::default();
    for batch in batches {
        match batch {
            Ok(batch) => feed_batch(&mut encoder, &batch, scorer, spool, after_chunk)?,
            Err(error) => {
                // Keep what was read; say where the file broke.
                scorer
                    .note_read_error(&format!("cannot read further in the Parquet file: {error}"));
                break;
            }
        }
    }
    Ok(())
}

#[cfg(not(feature = "parquet"))]
fn feed_parquet<Source>(
    name: &str,
    _source: Source,
    scorer: &mut Scorer,
    _spool: &mut Spool,
    _after_chunk: &mut dyn FnMut(&mut Scorer),
) -> Result<(), InputError> {
    scorer.note_read_error(&format!(
        "{name} is a Parquet file, and this build reads no Parquet (feature `parquet`)"
    ));
    Ok(())
}

/// Feeds a stream to its end (copying it to `spool` when asked).
fn feed_stream(
    stream: &mut dyn Read,
    scorer: &mut Scorer,
    spool: &mut Spool,
    after_chunk: &mut dyn FnMut(&mut Scorer),
) -> Result<(), InputError> {
    let mut chunk = vec![0u8; CHUNK_BYTES];
    loop {
        let n_read = match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                // Keep what was read; say where the stream broke.
                scorer.note_read_error(&format!("cannot read further: {error}"));
                break;
            }
        };
        let bytes = chunk.get(..n_read).unwrap_or(&[]);
        spool.write(bytes)?;
        scorer.feed(bytes);
        after_chunk(scorer);
    }
    Ok(())
}

/// Scores a plain file on several threads, as the core's planner cuts it
/// ([`tracesift_core::parts`]): the head on this one, to learn the format; then line-aligned parts of the rest,
/// each by its own range scorer, absorbed in file order. A file that cannot be split
/// (no line end in the head, not canonical JSONL, tokens for a GPU) is streamed on this
/// thread from where the head ends.
fn feed_in_parts(
    name: &str,
    reader: &mut BufReader<ProgressReader>,
    scorer: &mut Scorer,
    threads: usize,
    progress: &Arc<dyn Progress>,
    after_chunk: &mut dyn FnMut(&mut Scorer),
) -> Result<(), InputError> {
    let file = File::open(name).map_err(|source| InputError::Open {
        name: name.to_owned(),
        source,
    })?;
    let size = file
        .metadata()
        .map_err(io_error("cannot read the file's size"))?
        .len();
    let mut head = vec![0u8; parts::HEAD_BYTES as usize];
    let head_len = read_full(reader, &mut head)?;
    let head = head.get(..head_len).unwrap_or(&[]);
    let Some(head_end) = parts::head_end(head) else {
        // No line end in the first megabytes: one huge line, or not JSONL.
        return feed_tail(reader, scorer, head, after_chunk);
    };
    let rest_of_head = head.get(head_end as usize..).unwrap_or(&[]);
    scorer.feed(head.get(..head_end as usize).unwrap_or(&[]));
    after_chunk(scorer);
    let planned = parts::plan(head_end, size, threads, |offset| {
        next_line_start(&file, offset, size)
    })?;
    let mut jobs = Vec::with_capacity(planned.len());
    for part in planned {
        let Some(range) = scorer.range_scorer(part.start) else {
            // Not splittable: the rest streams as usual, from right after the head.
            return feed_tail(reader, scorer, rest_of_head, after_chunk);
        };
        jobs.push((part.start, part.end, range));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|error| InputError::Io {
            context: "cannot start the worker threads".to_owned(),
            source: io::Error::other(error),
        })?;
    let parts: Vec<Scorer> = pool.install(|| {
        use rayon::prelude::*;
        jobs.into_par_iter()
            .map(|(start, end, mut range)| {
                if let Err(error) = feed_range(&file, start, end, &mut range, progress) {
                    range.note_read_error(&format!("cannot read further: {error}"));
                }
                range.end_file();
                range
            })
            .collect()
    });
    for part in parts {
        scorer.absorb(part);
    }
    Ok(())
}

/// Streams the rest of a file whose head was read: first the head's bytes after its last
/// line end, then whatever the reader still holds.
fn feed_tail(
    reader: &mut BufReader<ProgressReader>,
    scorer: &mut Scorer,
    rest_of_head: &[u8],
    after_chunk: &mut dyn FnMut(&mut Scorer),
) -> Result<(), InputError> {
    scorer.feed(rest_of_head);
    after_chunk(scorer);
    feed_stream(reader, scorer, &mut Spool::None, after_chunk)
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> Result<usize, InputError> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(buf.get_mut(filled..).unwrap_or(&mut [])) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(io_error("cannot read the input")(error)),
        }
    }
    Ok(filled)
}

/// The first line start at or after `from` (just past a newline at or after `from - 1`),
/// if any.
fn next_line_start(file: &File, from: u64, size: u64) -> Result<Option<u64>, InputError> {
    let mut buf = vec![0u8; 1 << 16];
    let mut at = from.saturating_sub(1);
    while at < size {
        let n = read_at(file, &mut buf, at).map_err(io_error("cannot read the input"))?;
        if n == 0 {
            return Ok(None);
        }
        if let Some(newline) = memchr::memchr(b'\n', buf.get(..n).unwrap_or(&[])) {
            return Ok(Some(at + newline as u64 + 1));
        }
        at += n as u64;
    }
    Ok(None)
}

/// Feeds bytes `start..end` of `file` to a range scorer, in chunks.
fn feed_range(
    file: &File,
    start: u64,
    end: u64,
    range: &mut Scorer,
    progress: &Arc<dyn Progress>,
) -> io::Result<()> {
    let mut chunk = vec![0u8; CHUNK_BYTES];
    let mut at = start;
    while at < end {
        let want = usize::try_from(end - at)
            .unwrap_or(usize::MAX)
            .min(chunk.len());
        let buf = chunk.get_mut(..want).unwrap_or(&mut []);
        let n = read_at(file, buf, at)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file ended early (did it shrink while being read?)",
            ));
        }
        range.feed(buf.get(..n).unwrap_or(&[]));
        progress.advance(n as u64);
        at += n as u64;
    }
    Ok(())
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

/// Counts raw (possibly compressed) bytes for the progress display.
struct ProgressReader {
    inner: Box<dyn Read>,
    progress: Arc<dyn Progress>,
}

impl Read for ProgressReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}
