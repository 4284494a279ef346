//! Reading inputs: files or stdin, gzip or plain, streamed in chunks into the scorer, and
//! read again by offset when the filter exports the kept records.

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Seek, SeekFrom, Write};

use anyhow::Context;
use flate2::bufread::MultiGzDecoder;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracesift_core::dataset::Scorer;
use tracesift_core::trace::RecordRef;

use crate::run::BadArguments;

const CHUNK_BYTES: usize = 256 << 10;

/// Where kept records are read back from: the input file itself when it is plain and
/// seekable, otherwise a temporary copy of its decompressed bytes.
#[derive(Debug, Default)]
pub struct RecordStore {
    files: Vec<File>,
}

impl RecordStore {
    pub fn read(&mut self, record: &RecordRef) -> io::Result<Vec<u8>> {
        let file = self
            .files
            .get_mut(record.file_idx as usize)
            .ok_or_else(|| io::Error::other("record from an unknown input"))?;
        file.seek(SeekFrom::Start(record.offset))?;
        let len = usize::try_from(record.len).map_err(io::Error::other)?;
        let mut bytes = vec![0; len];
        file.read_exact(&mut bytes)?;
        Ok(bytes)
    }
}

/// Plain files at least this big are parsed on every core by default (smaller ones take
/// well under a second on one, and stay within 10 % of their size in memory)...
const PARALLEL_MIN_BYTES: u64 = 256 << 20;
/// ...and from this size when `--threads` asks for several.
const PARALLEL_MIN_BYTES_ASKED: u64 = 64 << 20;

/// How many threads parse a file, and whether the user chose that number.
#[derive(Debug, Clone, Copy)]
pub struct Threads {
    pub count: usize,
    pub asked: bool,
}
/// What the main thread reads first, to learn the file's format and framing.
const HEAD_BYTES: usize = 1 << 20;
/// Each thread's share is cut into parts of about this size (several per thread, so a
/// slow part does not leave the others idle).
const PART_BYTES: u64 = 32 << 20;

/// Streams every input into the scorer. With `keep_records`, also returns a store to read
/// records back from. Large plain JSONL files are parsed by `threads` threads, each on
/// its own line-aligned part, and the parts are merged in order.
pub fn feed_inputs(
    inputs: &[String],
    scorer: &mut Scorer,
    keep_records: bool,
    threads: Threads,
    after_chunk: &mut dyn FnMut(&mut Scorer),
) -> anyhow::Result<RecordStore> {
    let min_bytes = if threads.asked {
        PARALLEL_MIN_BYTES_ASKED
    } else {
        PARALLEL_MIN_BYTES
    };
    let mut store = RecordStore::default();
    let show_progress = io::stderr().is_terminal();
    for name in inputs {
        let (raw, size): (Box<dyn Read>, Option<u64>) = if name == "-" {
            (Box::new(io::stdin().lock()), None)
        } else {
            let file = File::open(name)
                .with_context(|| format!("cannot open {name}"))
                .map_err(|error| BadArguments(format!("{error:#}")))?;
            let size = file.metadata().ok().map(|m| m.len());
            (Box::new(file), size)
        };
        let bar = progress_bar(name, size, show_progress);
        // Small: it only serves the gzip check; chunk-sized reads bypass it.
        let mut reader = BufReader::with_capacity(
            64 << 10,
            ProgressReader {
                inner: raw,
                bar: bar.clone(),
            },
        );
        let is_gzip = reader
            .fill_buf()
            .map(|head| head.starts_with(&[0x1f, 0x8b]))
            .unwrap_or(false);
        // Plain files are read back in place; anything else is spooled while it streams.
        let mut spool = if keep_records && (is_gzip || name == "-") {
            Some(tempfile::tempfile().context("cannot create a temporary file")?)
        } else {
            None
        };
        scorer.begin_file(name);
        if !is_gzip
            && name != "-"
            && threads.count > 1
            && size.is_some_and(|size| size >= min_bytes)
        {
            feed_in_parts(name, &mut reader, scorer, threads.count, &bar, after_chunk)?;
        } else {
            let mut stream: Box<dyn Read> = if is_gzip {
                Box::new(MultiGzDecoder::new(reader))
            } else {
                Box::new(reader)
            };
            feed_stream(&mut stream, scorer, spool.as_mut(), after_chunk)?;
        }
        scorer.end_file();
        bar.finish_and_clear();
        if keep_records {
            let file = match spool {
                Some(file) => file,
                None => File::open(name).with_context(|| format!("cannot reopen {name}"))?,
            };
            store.files.push(file);
        }
    }
    Ok(store)
}

/// Feeds a stream to its end (copying it to `spool` when given).
fn feed_stream(
    stream: &mut dyn Read,
    scorer: &mut Scorer,
    mut spool: Option<&mut File>,
    after_chunk: &mut dyn FnMut(&mut Scorer),
) -> anyhow::Result<()> {
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
        if let Some(spool) = spool.as_mut() {
            spool
                .write_all(bytes)
                .context("cannot write the temporary file")?;
        }
        scorer.feed(bytes);
        after_chunk(scorer);
    }
    Ok(())
}

/// Scores a plain file on several threads: the head (up to a line end after
/// [`HEAD_BYTES`]) on this one, to learn the format; then line-aligned parts of the rest,
/// each by its own range scorer, absorbed in file order. A file that cannot be split
/// (no line end in the head, not canonical JSONL, tokens for a GPU) is streamed on this
/// thread from where the head ends.
fn feed_in_parts(
    name: &str,
    reader: &mut BufReader<ProgressReader>,
    scorer: &mut Scorer,
    threads: usize,
    bar: &ProgressBar,
    after_chunk: &mut dyn FnMut(&mut Scorer),
) -> anyhow::Result<()> {
    let file = File::open(name).with_context(|| format!("cannot open {name}"))?;
    let size = file
        .metadata()
        .context("cannot read the file's size")?
        .len();
    let mut head = vec![0u8; HEAD_BYTES];
    let head_len = read_full(reader, &mut head)?;
    let head = head.get(..head_len).unwrap_or(&[]);
    let Some(last_newline) = memchr::memrchr(b'\n', head) else {
        // No line end in the first megabytes: one huge line, or not JSONL.
        return feed_tail(reader, scorer, head, after_chunk);
    };
    let head_end = last_newline + 1;
    scorer.feed(head.get(..head_end).unwrap_or(&[]));
    after_chunk(scorer);
    // Parts start where lines start: after the first newline at or past each cut.
    let mut starts = vec![head_end as u64];
    let share = (size - head_end as u64)
        .div_ceil(threads as u64 * 4)
        .max(PART_BYTES);
    let mut cut = head_end as u64 + share;
    while cut < size {
        match next_line_start(&file, cut, size)? {
            Some(start) if start < size => starts.push(start),
            _ => break,
        }
        cut = starts.last().copied().unwrap_or(size) + share;
    }
    starts.dedup();
    let mut jobs = Vec::with_capacity(starts.len());
    for (idx, &start) in starts.iter().enumerate() {
        let end = starts.get(idx + 1).copied().unwrap_or(size);
        let Some(range) = scorer.range_scorer(start) else {
            // Not splittable: the rest streams as usual, from right after the head.
            let rest_of_head = head.get(head_end..).unwrap_or(&[]);
            return feed_tail(reader, scorer, rest_of_head, after_chunk);
        };
        jobs.push((start, end, range));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("cannot start the worker threads")?;
    let parts: Vec<Scorer> = pool.install(|| {
        use rayon::prelude::*;
        jobs.into_par_iter()
            .map(|(start, end, mut range)| {
                if let Err(error) = feed_range(&file, start, end, &mut range, bar) {
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
) -> anyhow::Result<()> {
    scorer.feed(rest_of_head);
    after_chunk(scorer);
    feed_stream(reader, scorer, None, after_chunk)
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> anyhow::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(buf.get_mut(filled..).unwrap_or(&mut [])) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error).context("cannot read the input"),
        }
    }
    Ok(filled)
}

/// The offset just past the first newline at or after `from`, if any.
fn next_line_start(file: &File, from: u64, size: u64) -> anyhow::Result<Option<u64>> {
    let mut buf = vec![0u8; 1 << 16];
    let mut at = from.saturating_sub(1);
    while at < size {
        let n = read_at(file, &mut buf, at).context("cannot read the input")?;
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
    bar: &ProgressBar,
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
        bar.inc(n as u64);
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

fn progress_bar(name: &str, size: Option<u64>, visible: bool) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = match size {
        Some(total) => ProgressBar::new(total).with_style(
            ProgressStyle::with_template(
                "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{msg} {spinner} {bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_draw_target(ProgressDrawTarget::stderr());
    bar.set_message(name.to_owned());
    bar
}

/// Counts raw (possibly compressed) bytes for the progress bar.
struct ProgressReader {
    inner: Box<dyn Read>,
    bar: ProgressBar,
}

impl Read for ProgressReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}
