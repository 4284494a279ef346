//! The run settings: one JSON schema shared by the CLI's `--config` and the app's
//! "share settings" download, with the same names as the app's URL fragment keys.

use serde::{Deserialize, Serialize};

use crate::import::Format;
pub use crate::metrics::Metric;
use crate::signals::combo::DEFAULT_COMBINE;
use crate::signals::token::DEFAULT_WINDOW;

/// Everything that decides a run's numbers and its export. Missing fields take defaults,
/// unknown fields are an error (a typo must not silently change a result).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Input format, or `auto` to detect it per file.
    pub format: FormatChoice,
    /// Similarity used for consistency.
    pub sim: Similarity,
    /// The part of a long text that `semantic` similarity embeds.
    pub semantic_part: SemanticPart,
    /// Class map, e.g. `up=up,upregulated,a;down=down,b;none=none,c` (`!` at the end: strict).
    pub classes: String,
    /// Answer pattern (regex); null means the default of SPEC §4.
    pub pattern: Option<String>,
    /// Dotted path of the field that holds the question id (`custom_id`, `metadata.qid`);
    /// null means the format's own id field.
    pub question_field: Option<String>,
    /// Regex whose match is removed from question ids, e.g. `__s\d+$`.
    pub sample_suffix: Option<String>,
    /// Compute backend.
    pub backend: Backend,
    /// Metric the filter ranks by.
    pub metric: Metric,
    /// Keep this fraction of each scope group (0 < q ≤ 1).
    pub keep: Option<f64>,
    /// Keep traces whose metric is ≤ this (an uncertainty) or ≥ this (a confidence).
    pub threshold: Option<f64>,
    /// Keep the first n of each scope group.
    pub top: Option<u64>,
    pub scope: Scope,
    pub candidates: Candidates,
    /// Cut every class to the smallest class's count.
    pub balanced: bool,
    pub export: ExportFormat,
    /// Seed of the matched-size random baseline.
    pub seed: u64,
    /// System message for chat-style exports (OpenAI, ShareGPT), where the prompt has
    /// none; none by default.
    pub system_prompt: Option<String>,
    /// DeepConf's sliding window w, in tokens (SPEC §5b).
    pub window: u32,
    /// The metrics `combo` averages the ranks of, comma-separated (SPEC §5b).
    pub combine: String,
    /// Write SFT exports (openai, trl, sharegpt, alpaca) even when a kept trace has an
    /// empty prompt; by default such an export is refused.
    pub allow_empty_prompt: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            format: FormatChoice::Auto,
            sim: Similarity::Answer,
            semantic_part: SemanticPart::First,
            classes: String::new(),
            pattern: None,
            question_field: None,
            sample_suffix: None,
            backend: Backend::Auto,
            metric: Metric::CocoaPpl,
            keep: Some(0.1),
            threshold: None,
            top: None,
            scope: Scope::PerClass,
            candidates: Candidates::All,
            balanced: false,
            export: ExportFormat::Canonical,
            seed: 0,
            system_prompt: None,
            window: DEFAULT_WINDOW,
            combine: DEFAULT_COMBINE.to_owned(),
            allow_empty_prompt: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    #[error("settings JSON: {0}")]
    Json(String),
    #[error("give only one of keep, threshold and top")]
    SeveralRules,
    #[error("keep must be a fraction in (0, 1], got {0}")]
    BadKeep(f64),
    #[error("threshold must be a finite number, got {0}")]
    BadThreshold(f64),
    #[error("{0}")]
    Answer(#[from] crate::answer::AnswerSettingsError),
    #[error("sample suffix is not a valid regular expression: {0}")]
    BadSuffix(String),
    #[error("window must be a whole number of tokens ≥ 1, got {0}")]
    BadWindow(u32),
    #[error("combine: {0}")]
    BadCombine(String),
}

/// The filter rule of SPEC §6.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    Keep(f64),
    Threshold(f64),
    Top(u64),
}

impl Settings {
    pub fn from_json(text: &str) -> Result<Self, SettingsError> {
        serde_json::from_str(text).map_err(|error| SettingsError::Json(error.to_string()))
    }

    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The filter rule; `keep` 0.1 when none is given.
    pub fn rule(&self) -> Result<Rule, SettingsError> {
        match (self.keep, self.threshold, self.top) {
            (None, None, None) => Ok(Rule::Keep(0.1)),
            (Some(q), None, None) if q > 0.0 && q <= 1.0 => Ok(Rule::Keep(q)),
            (Some(q), None, None) => Err(SettingsError::BadKeep(q)),
            (None, Some(x), None) if x.is_finite() => Ok(Rule::Threshold(x)),
            (None, Some(x), None) => Err(SettingsError::BadThreshold(x)),
            (None, None, Some(n)) => Ok(Rule::Top(n)),
            _ => Err(SettingsError::SeveralRules),
        }
    }

    /// DeepConf's window, validated.
    pub fn window(&self) -> Result<u32, SettingsError> {
        match self.window {
            0 => Err(SettingsError::BadWindow(0)),
            window => Ok(window),
        }
    }

    /// The metrics of `combine`, validated: at least one, each a known metric other than
    /// `combo` itself.
    pub fn combine_metrics(&self) -> Result<Vec<Metric>, SettingsError> {
        crate::signals::combo::parse_combine(&self.combine).map_err(SettingsError::BadCombine)
    }

    /// Replaces the rule (flags override a config file's rule rather than clash with it).
    pub fn set_rule(&mut self, rule: Rule) {
        self.keep = None;
        self.threshold = None;
        self.top = None;
        match rule {
            Rule::Keep(q) => self.keep = Some(q),
            Rule::Threshold(x) => self.threshold = Some(x),
            Rule::Top(n) => self.top = Some(n),
        }
    }
}

/// A setting whose values have fixed names (as in the CLI, the URL fragment and the
/// settings JSON); every `named_enum!` is one.
pub trait Named: Copy + PartialEq + 'static {
    const ALL: &'static [Self];
    fn name(self) -> &'static str;
    fn from_name(text: &str) -> Option<Self>;
}

macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn from_name(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|value| value.name() == text)
            }

            /// The accepted names, for error messages.
            pub fn names() -> String {
                Self::ALL.iter().map(|value| value.name()).collect::<Vec<_>>().join("|")
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl Named for $name {
            const ALL: &'static [$name] = $name::ALL;

            fn name(self) -> &'static str {
                $name::name(self)
            }

            fn from_name(text: &str) -> Option<Self> {
                $name::from_name(text)
            }
        }
    };
}

named_enum!(
    /// Pairwise similarity for consistency (SPEC §5).
    Similarity {
        Answer => "answer",
        RougeL => "rouge_l",
        Embedding => "embedding",
        Semantic => "semantic",
    }
);
named_enum!(
    /// Which word-pieces of a text longer than the embedding model reads `semantic`
    /// embeds (SPEC §5): the first 254 (sentence-transformers' truncation) or the last 254
    /// (where a reasoning trace states its conclusion).
    SemanticPart { First => "first", Last => "last" }
);
named_enum!(Scope { PerClass => "per_class", Global => "global" });
named_enum!(Candidates { All => "all", Greedy => "greedy" });
named_enum!(Backend { Auto => "auto", Cpu => "cpu", Gpu => "gpu" });
named_enum!(
    /// Export formats of SPEC §8.
    ExportFormat {
        Canonical => "canonical",
        Openai => "openai",
        Trl => "trl",
        Sharegpt => "sharegpt",
        Alpaca => "alpaca",
        Csv => "csv",
    }
);

/// `auto` or a fixed format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FormatChoice {
    #[default]
    Auto,
    Fixed(Format),
}

impl FormatChoice {
    pub fn from_name(text: &str) -> Option<Self> {
        if text == "auto" {
            Some(FormatChoice::Auto)
        } else {
            Format::from_name(text).map(FormatChoice::Fixed)
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FormatChoice::Auto => "auto",
            FormatChoice::Fixed(format) => format.name(),
        }
    }
}

impl Serialize for FormatChoice {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for FormatChoice {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        FormatChoice::from_name(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown format `{text}`; expected auto|{}",
                Format::ALL.map(Format::name).join("|")
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_json() {
        let settings = Settings::default();
        let json = settings.to_json_pretty();
        assert!(json.contains("\"metric\": \"cocoa_ppl\""), "{json}");
        assert!(json.contains("\"scope\": \"per_class\""), "{json}");
        assert_eq!(Settings::from_json(&json).unwrap(), settings);
    }

    #[test]
    fn partial_json_takes_defaults_and_typos_are_errors() {
        let settings =
            Settings::from_json(r#"{"metric":"msp","top":5,"keep":null,"format":"vllm"}"#).unwrap();
        assert_eq!(settings.metric, Metric::Msp);
        assert_eq!(settings.rule().unwrap(), Rule::Top(5));
        assert_eq!(settings.format, FormatChoice::Fixed(Format::Vllm));
        assert!(Settings::from_json(r#"{"metrc":"msp"}"#).is_err());
        assert!(Settings::from_json(r#"{"format":"csv"}"#).is_err());
    }

    #[test]
    fn window_and_combine_are_validated() {
        let settings = Settings::default();
        assert_eq!(settings.window().unwrap(), 2048);
        assert_eq!(
            settings.combine_metrics().unwrap(),
            [Metric::CocoaPpl, Metric::ConfMean]
        );
        let parsed = Settings::from_json(r#"{"window":16,"combine":" eigv , conf_tail"}"#).unwrap();
        assert_eq!(parsed.window().unwrap(), 16);
        assert_eq!(
            parsed.combine_metrics().unwrap(),
            [Metric::Eigv, Metric::ConfTail]
        );
        let zero = Settings::from_json(r#"{"window":0}"#).unwrap();
        assert_eq!(zero.window(), Err(SettingsError::BadWindow(0)));
        assert!(Settings::from_json(r#"{"window":-3}"#).is_err());
        assert!(Settings::from_json(r#"{"window":2.5}"#).is_err());
        for bad in ["", " , ", "combo", "ppl,combo", "ppl,bogus"] {
            let settings = Settings {
                combine: bad.to_owned(),
                ..Settings::default()
            };
            assert!(settings.combine_metrics().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rules_are_validated() {
        let mut settings = Settings::default();
        assert_eq!(settings.rule().unwrap(), Rule::Keep(0.1));
        settings.threshold = Some(0.5);
        assert_eq!(settings.rule(), Err(SettingsError::SeveralRules));
        settings.set_rule(Rule::Keep(0.0));
        assert_eq!(settings.rule(), Err(SettingsError::BadKeep(0.0)));
        settings.set_rule(Rule::Threshold(0.25));
        assert_eq!(settings.rule().unwrap(), Rule::Threshold(0.25));
    }
}
