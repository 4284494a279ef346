//! Settings in the URL fragment, so a link reproduces a view:
//! `#metric=cocoa_ppl&keep=0.1&scope=per_class&candidates=all&sim=answer&export=canonical`.
//! Keys: metric keep threshold top scope candidates balanced sim semantic_part backend classes pattern export
//! window combine allow_empty_prompt; values as in the CLI. A link may also bring its data:
//! `data=<url>` (see `data_link.rs`), which is not a setting and is only ever fetched when
//! the user asks.

use tracesift_core::settings::{
    Backend, Candidates, ExportFormat, Metric, Rule, Scope, SemanticPart, Settings, Similarity,
};
use tracesift_core::signals::combo::parse_combine;

/// Reads the settings a fragment names over `base`; unknown keys and bad values are listed
/// as problems instead of failing the whole link.
pub fn apply_fragment(fragment: &str, base: &Settings) -> (Settings, Vec<String>) {
    let mut settings = base.clone();
    let mut problems = Vec::new();
    let fragment = fragment.strip_prefix('#').unwrap_or(fragment);
    for pair in fragment.split('&').filter(|pair| !pair.is_empty()) {
        let (key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(raw_value);
        let mut bad = || problems.push(format!("`{key}={value}` is not a valid setting"));
        match key {
            "metric" => match Metric::from_name(&value) {
                Some(metric) => settings.metric = metric,
                None => bad(),
            },
            "keep" => match value.parse::<f64>() {
                Ok(q) if q > 0.0 && q <= 1.0 => settings.set_rule(Rule::Keep(q)),
                _ => bad(),
            },
            "threshold" => match value.parse::<f64>() {
                Ok(x) if x.is_finite() => settings.set_rule(Rule::Threshold(x)),
                _ => bad(),
            },
            "top" => match value.parse::<u64>() {
                Ok(n) => settings.set_rule(Rule::Top(n)),
                Err(_) => bad(),
            },
            "scope" => match Scope::from_name(&value) {
                Some(scope) => settings.scope = scope,
                None => bad(),
            },
            "candidates" => match Candidates::from_name(&value) {
                Some(candidates) => settings.candidates = candidates,
                None => bad(),
            },
            "balanced" => match value.as_str() {
                "true" | "1" | "" => settings.balanced = true,
                "false" | "0" => settings.balanced = false,
                _ => bad(),
            },
            "sim" => match Similarity::from_name(&value) {
                Some(sim) => settings.sim = sim,
                None => bad(),
            },
            "semantic_part" => match SemanticPart::from_name(&value) {
                Some(part) => settings.semantic_part = part,
                None => bad(),
            },
            "backend" => match Backend::from_name(&value) {
                Some(backend) => settings.backend = backend,
                None => bad(),
            },
            "classes" => settings.classes = value,
            "pattern" => settings.pattern = (!value.is_empty()).then_some(value),
            "export" => match ExportFormat::from_name(&value) {
                Some(export) => settings.export = export,
                None => bad(),
            },
            "window" => match value.parse::<u32>() {
                Ok(window) if window >= 1 => settings.window = window,
                _ => bad(),
            },
            "combine" => match parse_combine(&value) {
                Ok(_) => settings.combine = value,
                Err(_) => bad(),
            },
            "allow_empty_prompt" => match value.as_str() {
                "true" | "1" | "" => settings.allow_empty_prompt = true,
                "false" | "0" => settings.allow_empty_prompt = false,
                _ => bad(),
            },
            // The linked data, read by `data_link`: not a setting.
            "data" => {}
            _ => problems.push(format!("`{key}` is not a setting this app knows")),
        }
    }
    (settings, problems)
}

/// The fragment for `settings` (always the filter keys; the others when they differ from
/// the defaults), so a copied link reproduces the view.
pub fn to_fragment(settings: &Settings) -> String {
    let mut pairs: Vec<(&str, String)> = vec![("metric", settings.metric.name().to_owned())];
    match settings.rule() {
        Ok(Rule::Threshold(x)) => pairs.push(("threshold", x.to_string())),
        Ok(Rule::Top(n)) => pairs.push(("top", n.to_string())),
        Ok(Rule::Keep(q)) => pairs.push(("keep", q.to_string())),
        Err(_) => pairs.push(("keep", "0.1".to_owned())),
    }
    pairs.push(("scope", settings.scope.name().to_owned()));
    pairs.push(("candidates", settings.candidates.name().to_owned()));
    if settings.balanced {
        pairs.push(("balanced", "true".to_owned()));
    }
    pairs.push(("sim", settings.sim.name().to_owned()));
    if settings.semantic_part != SemanticPart::First {
        pairs.push(("semantic_part", settings.semantic_part.name().to_owned()));
    }
    if settings.backend != Backend::Auto {
        pairs.push(("backend", settings.backend.name().to_owned()));
    }
    if !settings.classes.is_empty() {
        pairs.push(("classes", settings.classes.clone()));
    }
    if let Some(pattern) = &settings.pattern {
        pairs.push(("pattern", pattern.clone()));
    }
    pairs.push(("export", settings.export.name().to_owned()));
    let defaults = Settings::default();
    if settings.window != defaults.window {
        pairs.push(("window", settings.window.to_string()));
    }
    if settings.combine != defaults.combine {
        pairs.push(("combine", settings.combine.clone()));
    }
    if settings.allow_empty_prompt {
        pairs.push(("allow_empty_prompt", "true".to_owned()));
    }
    let encoded: Vec<String> = pairs
        .into_iter()
        .map(|(key, value)| format!("{key}={}", percent_encode(&value)))
        .collect();
    format!("#{}", encoded.join("&"))
}

/// The URL a fragment's `data=` names (percent-decoded), if any.
pub fn data_link(fragment: &str) -> Option<String> {
    let fragment = fragment.strip_prefix('#').unwrap_or(fragment);
    fragment
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(key, _)| *key == "data")
        .map(|(_, value)| percent_decode(value))
        .rfind(|url| !url.trim().is_empty())
}

/// `fragment` (from `to_fragment`) with the linked data's URL appended. The URL stays
/// readable: only what would end or break the value (`&`, `#`, `%`, spaces, non-ASCII) is
/// encoded.
pub fn with_data_link(fragment: String, url: &str) -> String {
    let mut out = fragment;
    out.push_str("&data=");
    for byte in url.bytes() {
        if byte.is_ascii_graphic() && !b"&#%".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Percent-encodes everything but RFC 3986's unreserved characters and `,` `;` `|`, which
/// keep class maps readable in a link.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~,;|".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut idx = 0;
    while let Some(&byte) = bytes.get(idx) {
        let hex = bytes
            .get(idx + 1..idx + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (byte, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                idx += 3;
            }
            _ => {
                out.push(byte);
                idx += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test as test;

    wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

    #[test]
    fn the_issue_example_fragment() {
        let (settings, problems) = apply_fragment(
            "#metric=cocoa_ppl&keep=0.1&scope=per_class&candidates=all&sim=answer&export=canonical",
            &Settings::default(),
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(settings, Settings::default());
    }

    #[test]
    fn round_trip_with_awkward_values() {
        let mut settings = Settings {
            metric: Metric::Msp,
            classes: "up=up,a;none=no change,c!".into(),
            pattern: Some(r"(?i)answer\s*[:=]\s*(\w+) & more#".into()),
            balanced: true,
            scope: Scope::Global,
            export: ExportFormat::Sharegpt,
            window: 512,
            combine: "cocoa_ppl,conf_bottom10,eigv".into(),
            allow_empty_prompt: true,
            sim: Similarity::Semantic,
            semantic_part: SemanticPart::Last,
            ..Settings::default()
        };
        settings.set_rule(Rule::Top(25));
        let fragment = to_fragment(&settings);
        assert!(
            fragment.starts_with("#metric=msp&top=25&scope=global"),
            "{fragment}"
        );
        let (parsed, problems) = apply_fragment(&fragment, &Settings::default());
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(parsed, settings);
    }

    #[test]
    fn a_data_link_round_trips_and_is_not_a_setting_problem() {
        let url = "https://example.org/runs/a b.jsonl.gz?x=1&y=%2F#part";
        let fragment = with_data_link(to_fragment(&Settings::default()), url);
        assert!(
            fragment
                .ends_with("&data=https://example.org/runs/a%20b.jsonl.gz?x=1%26y=%252F%23part"),
            "{fragment}"
        );
        assert_eq!(data_link(&fragment).as_deref(), Some(url));
        let (settings, problems) = apply_fragment(&fragment, &Settings::default());
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(settings, Settings::default());
        assert_eq!(data_link("#metric=msp"), None);
        assert_eq!(data_link("#data=&metric=msp"), None);
    }

    #[test]
    fn bad_values_are_reported_and_the_rest_applies() {
        let (settings, problems) = apply_fragment(
            "#metric=bogus&keep=2&top=5&colour=red&window=0&combine=combo&metric=conf_tail",
            &Settings::default(),
        );
        assert_eq!(settings.rule().ok(), Some(Rule::Top(5)));
        assert_eq!(settings.metric, Metric::ConfTail);
        assert_eq!(settings.window, Settings::default().window);
        assert_eq!(settings.combine, Settings::default().combine);
        assert_eq!(problems.len(), 5, "{problems:?}");
    }
}
