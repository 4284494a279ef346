//! The "Requests (optional)" slot: the request file is read in the worker, beside the trace
//! files, and joined to the scored run with the core's `RequestJoin`, so the app's
//! downloads carry the same prompts as `tracesift filter --requests` writes.

use std::io::Read;
use std::sync::Arc;

use flate2::read::MultiGzDecoder;
use tracesift_core::dataset::ScoredSet;
use tracesift_core::requests::{RequestJoin, Requests};
use web_sys::Blob;

use crate::worker::{BlobReader, read_blob};

/// What the app adds to an export refusal: how to give the prompts here.
pub const EMPTY_PROMPT_HELP: &str = "add the request file in the \u{201c}Requests \
     (optional)\u{201d} slot (the OpenAI Batch input JSONL, or the request bodies as JSONL, one \
     per response or with the responses' ids), or load canonical input with a `prompt` field; \
     tick \u{201c}allow empty prompts\u{201d} to download it anyway";

/// How many unusable request lines the summary names.
const PROBLEMS_NAMED: usize = 3;

/// Reads the request file (plain or gzip) and joins it to the run: the join, and one line
/// for the page saying what was read and how it was joined.
pub(crate) fn join(
    blob: &Blob,
    name: &str,
    set: &ScoredSet,
) -> Result<(Arc<RequestJoin>, String), String> {
    let head = blob
        .slice_with_f64_and_f64(0.0, 2.0)
        .ok()
        .and_then(|head| read_blob(&head).ok())
        .unwrap_or_default();
    let reader = BlobReader::new(blob.clone())?;
    let stream: Box<dyn Read> = if head == [0x1f, 0x8b] {
        Box::new(MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    let requests = Requests::from_reader(stream, 1 << 20)
        .map_err(|error| format!("cannot read {name}: {error}"))?;
    let mut summary = format!("Requests: {name}, {} requests", requests.len());
    let problems = requests.problems();
    if !problems.is_empty() {
        let named: Vec<String> = problems
            .iter()
            .take(PROBLEMS_NAMED)
            .map(|problem| format!("line {}: {}", problem.line, problem.reason))
            .collect();
        let more = if problems.len() > PROBLEMS_NAMED {
            "; …"
        } else {
            ""
        };
        summary += &format!(
            "; {} lines without a prompt ({}{more})",
            problems.len(),
            named.join("; ")
        );
    }
    for note in requests.notes() {
        summary += &format!("; {} ({} requests)", note.what, note.requests);
    }
    let join = RequestJoin::new(requests, set);
    summary += &format!("; joined {}.", join.describe());
    Ok((Arc::new(join), summary))
}
