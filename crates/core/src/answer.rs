//! Answers and classes (SPEC §4): extracting the final answer from a trace's text and
//! mapping raw answers onto classes through a class map.

use std::collections::HashMap;

use regex::Regex;

/// The default answer pattern of SPEC §4 (case-insensitive; the last match wins).
pub const DEFAULT_ANSWER_PATTERN: &str =
    r"(?i)<answer>\s*(.+?)\s*</answer>|(?:final answer|answer)\s*[:=]\s*\**\s*([A-Za-z][\w \-]*)";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerSettingsError {
    #[error("answer pattern is not a valid regular expression: {0}")]
    BadPattern(String),
    #[error("class map: {0}")]
    BadClassMap(String),
}

/// Pulls the final answer out of a trace's text.
#[derive(Debug, Clone)]
pub struct AnswerExtractor {
    pattern: Regex,
}

impl Default for AnswerExtractor {
    fn default() -> Self {
        Self {
            // The default pattern is a constant that the tests compile.
            #[allow(clippy::expect_used)]
            pattern: Regex::new(DEFAULT_ANSWER_PATTERN).expect("default answer pattern"),
        }
    }
}

impl AnswerExtractor {
    /// A user pattern: its first capture group that took part in the match is the answer,
    /// or the whole match if it has no groups.
    pub fn new(pattern: Option<&str>) -> Result<Self, AnswerSettingsError> {
        match pattern {
            None => Ok(Self::default()),
            Some(pattern) => Regex::new(pattern)
                .map(|pattern| Self { pattern })
                .map_err(|error| AnswerSettingsError::BadPattern(error.to_string())),
        }
    }

    /// The last match's answer, or None if the pattern does not match.
    pub fn extract<'t>(&self, text: &'t str) -> Option<&'t str> {
        // Find the last match with the fast matcher, then resolve groups only for it.
        let last = self.pattern.find_iter(text).last()?;
        let captures = self.pattern.captures_at(text, last.start())?;
        let answer = captures
            .iter()
            .skip(1)
            .flatten()
            .next()
            .or_else(|| captures.get(0))?;
        Some(answer.as_str())
    }
}

/// Maps normalised raw answers onto class names (SPEC §4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassMap {
    alias_to_class: HashMap<String, String>,
    /// Classes in the order the map names them.
    classes: Vec<String>,
    /// A strict map gives an unknown answer no class (∅) instead of a class of its own.
    pub strict: bool,
}

impl ClassMap {
    /// Parses `up=up,upregulated,a;down=down,b;none=none,c` (aliases may also be separated
    /// by `|`, classes by newlines); a trailing `!` makes the map strict. Each class name is
    /// also an alias of itself. Empty text is the identity map.
    pub fn parse(spec: &str) -> Result<Self, AnswerSettingsError> {
        let mut map = ClassMap::default();
        let mut spec = spec.trim();
        if let Some(rest) = spec.strip_suffix('!') {
            map.strict = true;
            spec = rest.trim();
        }
        for entry in spec.split([';', '\n']) {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let Some((class, aliases)) = entry.split_once('=') else {
                return Err(AnswerSettingsError::BadClassMap(format!(
                    "`{entry}` has no `=`; write CLASS=alias,alias"
                )));
            };
            let class = normalize_answer(class);
            if class.is_empty() {
                return Err(AnswerSettingsError::BadClassMap(format!(
                    "`{entry}` has an empty class name"
                )));
            }
            if !map.classes.contains(&class) {
                map.classes.push(class.clone());
            }
            let aliases = aliases.split([',', '|']).map(normalize_answer);
            for alias in std::iter::once(class.clone()).chain(aliases) {
                if alias.is_empty() {
                    continue;
                }
                if let Some(previous) = map.alias_to_class.get(&alias)
                    && *previous != class
                {
                    return Err(AnswerSettingsError::BadClassMap(format!(
                        "`{alias}` is listed under both `{previous}` and `{class}`"
                    )));
                }
                map.alias_to_class.insert(alias, class.clone());
            }
        }
        Ok(map)
    }

    /// The classes the map names, in its order.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The class of a raw answer: trimmed, lower-cased, mapped; None is ∅.
    pub fn classify(&self, raw_answer: &str) -> Option<String> {
        self.map_normalized(normalize_answer(raw_answer), self.strict)
    }

    /// Gold labels go through the same map, but an unknown label is kept as it is even
    /// with a strict map (labels are not model output).
    pub fn classify_label(&self, raw_label: &str) -> Option<String> {
        self.map_normalized(normalize_answer(raw_label), false)
    }

    fn map_normalized(&self, answer: String, strict: bool) -> Option<String> {
        if answer.is_empty() {
            return None;
        }
        match self.alias_to_class.get(&answer) {
            Some(class) => Some(class.clone()),
            None if strict => None,
            None => Some(answer),
        }
    }
}

/// Trim and lower-case (Unicode), as SPEC §4 says.
pub fn normalize_answer(raw: &str) -> String {
    raw.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extract(text: &str) -> Option<String> {
        AnswerExtractor::default().extract(text).map(str::to_owned)
    }

    #[test]
    fn default_pattern_takes_the_last_answer() {
        assert_eq!(
            extract("Answer: down. Wait, rethink. Final answer: up").as_deref(),
            Some("up")
        );
        assert_eq!(
            extract("so <answer> Down </answer>").as_deref(),
            Some("Down")
        );
        assert_eq!(extract("FINAL ANSWER = **none**").as_deref(), Some("none"));
        assert_eq!(
            extract("Final Answer: no change\nbecause").as_deref(),
            Some("no change")
        );
        assert_eq!(extract("I think it goes up").as_deref(), None);
        // The tag form and the label form can both occur; the later one wins.
        assert_eq!(
            extract("<answer>up</answer> ... answer: b").as_deref(),
            Some("b")
        );
    }

    #[test]
    fn user_pattern_uses_its_first_group_or_the_whole_match() {
        let grouped = AnswerExtractor::new(Some(r"\[\[(\w+)\]\]")).unwrap();
        assert_eq!(grouped.extract("[[up]] then [[down]]"), Some("down"));
        let whole = AnswerExtractor::new(Some(r"(?i)\b(?:up|down)\b")).unwrap();
        assert_eq!(whole.extract("Up or DOWN"), Some("DOWN"));
        assert!(AnswerExtractor::new(Some("(")).is_err());
    }

    #[test]
    fn class_maps() {
        let map =
            ClassMap::parse("up=upregulated,increase,A; down = down|b ;none=no change,c").unwrap();
        assert!(!map.strict);
        assert_eq!(map.classes(), ["up", "down", "none"]);
        assert_eq!(map.classify("  A ").as_deref(), Some("up"));
        assert_eq!(map.classify("Up").as_deref(), Some("up"));
        assert_eq!(map.classify("No Change").as_deref(), Some("none"));
        assert_eq!(map.classify("maybe").as_deref(), Some("maybe"));
        assert_eq!(map.classify("   ").as_deref(), None);

        let strict = ClassMap::parse("up=a;down=b!").unwrap();
        assert!(strict.strict);
        assert_eq!(strict.classify("maybe"), None);
        assert_eq!(strict.classify("B").as_deref(), Some("down"));
        assert_eq!(strict.classify_label("maybe").as_deref(), Some("maybe"));

        assert_eq!(
            ClassMap::parse("").unwrap().classify("Down").as_deref(),
            Some("down")
        );
        assert!(ClassMap::parse("up").is_err());
        assert!(ClassMap::parse("up=a;down=a").is_err());
    }
}
