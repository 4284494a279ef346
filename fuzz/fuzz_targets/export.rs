//! Fuzzes exports: any bytes are scored, every trace is kept, and the selection is written
//! in every export format by the code behind `tracesift filter` and the app's downloads.
//! Nothing may panic; every exported line must be one JSON value (CSV: one row per trace);
//! and a canonical export, scored again, must give the same traces and token scores.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tracesift_core::dataset::{ScoreOptions, Scorer, ScoredSet};
use tracesift_core::export::{ExportOptions, write_selection};
use tracesift_core::settings::ExportFormat;
use tracesift_core::settings::{FormatChoice, Settings};

fn score(options: &ScoreOptions, bytes: &[u8]) -> ScoredSet {
    let mut scorer = Scorer::new(options.clone());
    scorer.begin_file("fuzz");
    scorer.feed(bytes);
    scorer.finish()
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, bytes)) = data.split_first() else {
        return;
    };
    let formats = tracesift_core::import::Format::ALL;
    let format = match usize::from(control & 0x0f) {
        idx if idx < formats.len() => FormatChoice::Fixed(formats[idx]),
        _ => FormatChoice::Auto,
    };
    let settings = Settings {
        format,
        classes: "up=up,a;down=down,b;none=none,c".into(),
        allow_empty_prompt: true,
        ..Settings::default()
    };
    // Compiling the answer regex per input would dominate the run; build it once.
    static BASE: OnceLock<Option<ScoreOptions>> = OnceLock::new();
    let Some(base) = BASE.get_or_init(|| ScoreOptions::from_settings(&settings).ok()) else {
        return;
    };
    let options = ScoreOptions { format, ..base.clone() };
    let set = score(&options, bytes);
    let chosen = vec![true; set.traces.len()];
    let read_record = |record: &tracesift_core::trace::RecordRef| {
        let start = usize::try_from(record.offset).map_err(|e| e.to_string())?;
        let end = start.saturating_add(usize::try_from(record.len).map_err(|e| e.to_string())?);
        bytes.get(start..end).map(<[u8]>::to_vec).ok_or_else(|| "outside the input".to_owned())
    };
    for &export in ExportFormat::ALL {
        let Ok(mut export_options) = ExportOptions::from_settings(&Settings { export, ..settings.clone() })
        else {
            return;
        };
        export_options.allow_empty_prompt = true;
        let mut out = Vec::new();
        let Ok(_warnings) = write_selection(&set, &chosen, &export_options, read_record, &mut out) else {
            continue;
        };
        let text = String::from_utf8(out).expect("exports are UTF-8");
        if export == ExportFormat::Csv {
            // A header and one row per trace (quoted fields may hold newlines).
            assert!(text.starts_with("trace_id,"), "CSV header missing");
            continue;
        }
        for line in text.lines() {
            assert!(serde_json::from_str::<serde_json::Value>(line).is_ok(), "not JSON: {line}");
        }
        if export == ExportFormat::Canonical && !set.traces.is_empty() {
            let canonical = ScoreOptions {
                format: FormatChoice::Fixed(tracesift_core::import::Format::Canonical),
                ..base.clone()
            };
            let again = score(&canonical, text.as_bytes());
            let exported = text.lines().count();
            assert_eq!(again.traces.len(), exported, "a canonical export does not read back");
            if exported == set.traces.len() {
                for (before, after) in set.traces.iter().zip(&again.traces) {
                    assert_eq!(before.n_tokens, after.n_tokens, "n_tokens changed on export");
                    assert_eq!(before.msp.map(f64::to_bits), after.msp.map(f64::to_bits), "msp changed on export");
                    assert_eq!(before.mte.map(f64::to_bits), after.mte.map(f64::to_bits), "mte changed on export");
                }
            }
        }
    }
});
