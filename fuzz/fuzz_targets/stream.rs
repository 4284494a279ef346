//! Fuzzes stream assembly: any bytes, in any chunking, read as chunks of every format that
//! streams. Nothing may panic or hang, and every generation must come back identical when
//! it is assembled again from the span of bytes its record points to (what exports do).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracesift_core::import::{Format, ImportOptions, TraceBatch, parse_record};
use tracesift_core::split::{RecordSplitter, SplitEvent};
use tracesift_core::stream::{Fed, StreamAssembler, has_streams, is_chunk, reassemble};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the format and the chunk size.
    let Some((&control, bytes)) = data.split_first() else {
        return;
    };
    let streaming: Vec<Format> = Format::ALL.into_iter().filter(|f| has_streams(*f)).collect();
    let format = streaming[usize::from(control) % streaming.len()];
    let chunk = 1 + usize::from(control >> 4) * 13;

    let mut splitter = RecordSplitter::default();
    let mut assembler = StreamAssembler::default();
    let mut assembled = Vec::new();
    let mut on_event = |event: SplitEvent<'_>| {
        if let SplitEvent::Record(record) = event
            && let Ok(Fed::Chunk(done)) =
                assembler.feed(format, record.bytes, record.offset, record.line)
        {
            assembled.extend(done);
        }
    };
    for piece in bytes.chunks(chunk) {
        splitter.feed(piece, &mut on_event);
    }
    splitter.finish(&mut on_event);
    let _ = assembler.finish();
    let framing = splitter.framing();

    let mut batch = TraceBatch::default();
    for generation in assembled {
        // Whatever the importer makes of it, it answers (traces or an error).
        let _ = parse_record(format, &generation.record, ImportOptions { keep_content: true }, &mut batch);
        let start = usize::try_from(generation.offset).unwrap_or(usize::MAX);
        let end = start.saturating_add(usize::try_from(generation.len).unwrap_or(usize::MAX));
        let Some(span) = bytes.get(start..end) else {
            panic!("span {start}..{end} outside the input of {} bytes", bytes.len());
        };
        assert!(is_chunk(format, span, framing), "a generation's span does not start with a chunk");
        let again = reassemble(format, span, framing, generation.sub_idx);
        assert_eq!(again.as_deref(), Ok(generation.record.as_slice()), "reassembly differs");
    }
});
