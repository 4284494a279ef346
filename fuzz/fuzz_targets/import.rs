//! Fuzzes the whole import path: any bytes, in any chunking, through every format, must
//! give traces or skip reasons — never a panic, a hang or a NaN score.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tracesift_core::dataset::{ScoreOptions, Scorer};
use tracesift_core::evaluate::evaluate;
use tracesift_core::filter::{FilterOptions, select};
use tracesift_core::settings::{FormatChoice, Metric, Settings, Similarity};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the format, the similarity and the chunk size.
    let Some((&control, bytes)) = data.split_first() else {
        return;
    };
    let formats = tracesift_core::import::Format::ALL;
    let format = match usize::from(control & 0x0f) {
        idx if idx < formats.len() => FormatChoice::Fixed(formats[idx]),
        _ => FormatChoice::Auto,
    };
    let sim = match (control >> 4) & 0x03 {
        0 => Similarity::Answer,
        1 => Similarity::RougeL,
        _ => Similarity::Embedding,
    };
    let chunk = 1 + usize::from(control >> 6) * 7;
    let settings = Settings { format, sim, classes: "up=up,a;down=down,b;none=none,c".into(), ..Settings::default() };
    // Compiling the answer regex per input would dominate the run; build it once.
    static BASE: OnceLock<Option<ScoreOptions>> = OnceLock::new();
    let Some(base) = BASE.get_or_init(|| ScoreOptions::from_settings(&settings).ok()) else {
        return;
    };
    let options = ScoreOptions { format, sim, ..base.clone() };
    let mut scorer = Scorer::new(options);
    scorer.begin_file("fuzz");
    for piece in bytes.chunks(chunk) {
        scorer.feed(piece);
    }
    let set = scorer.finish();
    for trace in &set.traces {
        for metric in Metric::ALL {
            if let Some(value) = trace.metric(*metric) {
                // SentenceSAR and self-certainty may be negative (SPEC §5b); nothing is NaN.
                let may_be_negative = matches!(metric, Metric::SentenceSar | Metric::SelfCertainty);
                assert!(value.is_finite() && (may_be_negative || value >= 0.0), "{metric}: {value}");
            }
        }
    }
    let Ok(filter) = FilterOptions::from_settings(&settings) else {
        return;
    };
    let selection = select(&set, &filter);
    assert_eq!(selection.kept.len(), set.traces.len());
    let _ = evaluate(&set, &filter);
});
