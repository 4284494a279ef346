//! The wider signal suite of SPEC §5b: token confidences while a trace streams past
//! ([`token`]), answer and similarity-graph signals per question ([`question`]), and the
//! run-wide rank combination ([`combo`]). [`Signals`] is where a trace keeps them.

pub mod combo;
pub mod question;
pub mod token;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A score that may be null, in 8 bytes instead of `Option<f64>`'s 16 (NaN stands for
/// null and never escapes: [`MaybeScore::get`] and serde both turn it into `None`). A run
/// keeps a dozen of these per trace, so the saving is about 100 bytes a trace.
#[derive(Debug, Clone, Copy)]
pub struct MaybeScore(f64);

impl MaybeScore {
    pub const NULL: MaybeScore = MaybeScore(f64::NAN);

    pub fn get(self) -> Option<f64> {
        (!self.0.is_nan()).then_some(self.0)
    }
}

impl Default for MaybeScore {
    fn default() -> Self {
        MaybeScore::NULL
    }
}

impl From<Option<f64>> for MaybeScore {
    fn from(value: Option<f64>) -> Self {
        // A NaN computed by mistake becomes null rather than a number.
        MaybeScore(value.unwrap_or(f64::NAN))
    }
}

impl PartialEq for MaybeScore {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Serialize for MaybeScore {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.get().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for MaybeScore {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Option::<f64>::deserialize(deserializer).map(MaybeScore::from)
    }
}

/// A trace's §5b values (the §5 ones live in [`crate::dataset::TraceScores`] itself).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Signals {
    pub conf_mean: MaybeScore,
    pub conf_tail: MaybeScore,
    pub conf_bottom10: MaybeScore,
    pub conf_lowest: MaybeScore,
    pub self_certainty: MaybeScore,
    pub answer_entropy: MaybeScore,
    pub eigv: MaybeScore,
    pub eccentricity: MaybeScore,
    pub kle: MaybeScore,
    pub semantic_density: MaybeScore,
    pub sentence_sar: MaybeScore,
    pub combo: MaybeScore,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maybe_score_is_null_or_a_number() {
        assert_eq!(MaybeScore::default().get(), None);
        assert_eq!(MaybeScore::from(Some(f64::NAN)).get(), None);
        assert_eq!(MaybeScore::from(Some(-0.5)).get(), Some(-0.5));
        assert_eq!(MaybeScore::NULL, MaybeScore::from(None));
        let signals = Signals {
            eigv: Some(2.0).into(),
            ..Signals::default()
        };
        let json = serde_json::to_string(&signals).unwrap();
        assert!(
            json.contains("\"eigv\":2.0") && json.contains("\"kle\":null"),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Signals>(&json).unwrap(), signals);
        assert_eq!(std::mem::size_of::<Signals>(), 12 * 8);
    }
}
