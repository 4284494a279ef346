//! `combo` (SPEC §5b): the mean percentile rank of a trace over the metrics of the
//! `combine` setting, over the whole run. Ranks make signals on different scales (a
//! perplexity, a confidence) comparable without any fitted weights.

use crate::dataset::TraceScores;
use crate::metrics::Metric;
use crate::signals::MaybeScore;

/// The default `combine` setting: the paper's CoCoA and DeepConf's mean confidence.
pub const DEFAULT_COMBINE: &str = "cocoa_ppl,conf_mean";

/// The metrics of a `combine` setting: comma-separated names, at least one, not `combo`.
pub fn parse_combine(text: &str) -> Result<Vec<Metric>, String> {
    let mut metrics = Vec::new();
    for name in text
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        match Metric::from_name(name) {
            Some(Metric::Combo) => return Err("`combo` cannot combine itself".to_owned()),
            Some(metric) => metrics.push(metric),
            None => {
                return Err(format!(
                    "unknown metric `{name}`; expected names from {}",
                    Metric::names()
                ));
            }
        }
    }
    if metrics.is_empty() {
        return Err("name at least one metric".to_owned());
    }
    Ok(metrics)
}

/// Sets `signals.combo` of every trace: over the n traces where every metric of `combine`
/// is not null, r_m(t) = (#{u: x_u < x_t} + ½·#{u ≠ t: x_u = x_t}) / (n − 1) with x the
/// metric's uncertainty, and combo = the mean of the r_m (0.5 when n = 1); null elsewhere.
pub fn fill_combo(traces: &mut [TraceScores], combine: &[Metric]) {
    for trace in traces.iter_mut() {
        trace.signals.combo = MaybeScore::NULL;
    }
    if combine.is_empty() {
        return;
    }
    let eligible: Vec<usize> = traces
        .iter()
        .enumerate()
        .filter(|(_, trace)| {
            combine
                .iter()
                .all(|metric| metric.uncertainty(trace).is_some())
        })
        .map(|(idx, _)| idx)
        .collect();
    let n_eligible = eligible.len();
    let mut rank_sums = vec![0.0f64; n_eligible];
    if n_eligible > 1 {
        let mut keyed: Vec<(f64, usize)> = Vec::with_capacity(n_eligible);
        for &metric in combine {
            keyed.clear();
            keyed.extend(eligible.iter().enumerate().map(|(slot, &idx)| {
                let value = traces
                    .get(idx)
                    .and_then(|trace| metric.uncertainty(trace))
                    .unwrap_or(0.0);
                (value, slot)
            }));
            keyed.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            // Equal values (by ==, so −0 ties with +0) form a group: the s traces before
            // it are smaller, and each member has g − 1 equal others.
            let denominator = 2.0 * (n_eligible - 1) as f64;
            let mut start = 0;
            for group in keyed.chunk_by(|a, b| a.0 == b.0) {
                let rank = (2 * start + group.len() - 1) as f64 / denominator;
                for &(_, slot) in group {
                    if let Some(sum) = rank_sums.get_mut(slot) {
                        *sum += rank;
                    }
                }
                start += group.len();
            }
        }
    }
    let n_metrics = combine.len() as f64;
    for (&idx, rank_sum) in eligible.iter().zip(rank_sums) {
        if let Some(trace) = traces.get_mut(idx) {
            let combo = if n_eligible == 1 {
                0.5
            } else {
                rank_sum / n_metrics
            };
            trace.signals.combo = Some(combo).into();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::dataset::score_bytes;
    use crate::metrics::Metric;
    use crate::settings::Settings;

    fn combos(combine: &str, lines: &[(&str, f64, Option<f64>)]) -> Vec<Option<f64>> {
        // One token per trace: ppl = −ℓ; a top list [c, c] gives conf_mean −c.
        let jsonl: String = lines
            .iter()
            .map(|(id, logprob, top)| {
                let top = top.map_or(String::new(), |c| format!(",\"top_logprobs\":[[{c},{c}]]"));
                format!(
                    "{{\"question_id\":\"{id}\",\"trace_id\":\"{id}\",\"answer\":\"up\",\"logprobs\":[{logprob}]{top}}}\n"
                )
            })
            .collect();
        let settings = Settings {
            combine: combine.to_owned(),
            ..Settings::default()
        };
        let set = score_bytes(&settings, &[("c.jsonl", jsonl.as_bytes())]).unwrap();
        set.traces.iter().map(|t| t.metric(Metric::Combo)).collect()
    }

    #[test]
    fn ranks_with_ties_by_hand() {
        // ppl 1, 2, 2, 3: below-counts 0, 1, 1, 3 and one equal other for the tied pair →
        // (0, 1.5, 1.5, 3) / 3.
        let got = combos(
            "ppl",
            &[
                ("a", -1.0, None),
                ("b", -2.0, None),
                ("c", -2.0, None),
                ("d", -3.0, None),
            ],
        );
        assert_eq!(got, [Some(0.0), Some(0.5), Some(0.5), Some(1.0)]);
        // With conf_mean (a confidence, ranked by its negation): conf 2, 1, 1, null → d
        // drops out (n = 3). ppl ranks over a, b, c: 0, 0.75, 0.75; −conf: −2, −1, −1 →
        // 0, 0.75, 0.75. The mean is the same.
        let got = combos(
            "ppl,conf_mean",
            &[
                ("a", -1.0, Some(-2.0)),
                ("b", -2.0, Some(-1.0)),
                ("c", -2.0, Some(-1.0)),
                ("d", -3.0, None),
            ],
        );
        assert_eq!(got, [Some(0.0), Some(0.75), Some(0.75), None]);
        // One trace: 0.5. All equal: 0.5 each.
        assert_eq!(combos("ppl", &[("a", -1.0, None)]), [Some(0.5)]);
        assert_eq!(
            combos(
                "ppl",
                &[("a", -1.0, None), ("b", -1.0, None), ("c", -1.0, None)]
            ),
            [Some(0.5); 3]
        );
    }
}
