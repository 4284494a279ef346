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

const CHUNK_BYTES: usize = 4 << 20;

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

/// Streams every input into the scorer. With `keep_records`, also returns a store to read
/// records back from.
pub fn feed_inputs(
    inputs: &[String],
    scorer: &mut Scorer,
    keep_records: bool,
    after_chunk: &mut dyn FnMut(&mut Scorer),
) -> anyhow::Result<RecordStore> {
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
        let mut reader = BufReader::with_capacity(
            CHUNK_BYTES,
            ProgressReader {
                inner: raw,
                bar: bar.clone(),
            },
        );
        let is_gzip = reader
            .fill_buf()
            .map(|head| head.starts_with(&[0x1f, 0x8b]))
            .unwrap_or(false);
        let mut stream: Box<dyn Read> = if is_gzip {
            Box::new(MultiGzDecoder::new(reader))
        } else {
            Box::new(reader)
        };
        // Plain files are read back in place; anything else is spooled while it streams.
        let mut spool = if keep_records && (is_gzip || name == "-") {
            Some(tempfile::tempfile().context("cannot create a temporary file")?)
        } else {
            None
        };
        scorer.begin_file(name);
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
