//! The filter of SPEC §6: which traces to keep, in a fully deterministic order, and the
//! matched-size random baseline for the paper's ablation.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::dataset::{ScoredSet, TraceScores};
use crate::metrics::Direction;
use crate::settings::{Candidates, Metric, Rule, Scope, Settings, SettingsError};

/// The filter part of the settings, validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FilterOptions {
    pub metric: Metric,
    pub rule: Rule,
    pub scope: Scope,
    pub candidates: Candidates,
    pub balanced: bool,
}

impl FilterOptions {
    pub fn from_settings(settings: &Settings) -> Result<Self, SettingsError> {
        Ok(Self {
            metric: settings.metric,
            rule: settings.rule()?,
            scope: settings.scope,
            candidates: settings.candidates,
            balanced: settings.balanced,
        })
    }
}

/// One scope group (a class, or everything for `global`) and what the filter did to it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupOutcome {
    /// The class for `per_class`; None for the single `global` group.
    pub class: Option<u32>,
    /// Traces that could be kept (candidates with a non-null metric).
    pub n_eligible: usize,
    pub n_kept: usize,
    /// Metric of the last kept trace.
    pub cutoff: Option<f64>,
    /// True when the last kept and the first dropped trace have the same metric, so the
    /// tie-break order (not the metric) decided between them.
    pub tie_at_cutoff: bool,
}

/// The filter's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// Per trace, in input order.
    pub kept: Vec<bool>,
    pub n_kept: usize,
    pub groups: Vec<GroupOutcome>,
}

/// k = ⌈q·n − 1e-9⌉ (the epsilon keeps 0.1·30 from becoming 4 through rounding).
pub fn keep_count(fraction: f64, n: usize) -> usize {
    let k = (fraction * n as f64 - 1e-9).ceil();
    if k <= 0.0 { 0 } else { (k as usize).min(n) }
}

/// The order of SPEC §6: most trustworthy first — an uncertainty ascending, a confidence
/// descending (its negation ascending) — then `ppl` ascending (nulls last), then
/// `trace_id` by bytes, then input position. Both traces must have a non-null metric.
pub fn compare(traces: &[TraceScores], metric: Metric, a: usize, b: usize) -> Ordering {
    let (Some(trace_a), Some(trace_b)) = (traces.get(a), traces.get(b)) else {
        return a.cmp(&b);
    };
    let by_metric = match (metric.uncertainty(trace_a), metric.uncertainty(trace_b)) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    let by_ppl = || match (trace_a.ppl, trace_b.ppl) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    by_metric
        .then_with(by_ppl)
        .then_with(|| trace_a.trace_id.as_bytes().cmp(trace_b.trace_id.as_bytes()))
        .then_with(|| a.cmp(&b))
}

/// Sorts trace indices into the §6 order.
pub fn sort_by_order(traces: &[TraceScores], metric: Metric, trace_idxs: &mut [usize]) {
    // The order of `compare` as a key per trace (metric and ppl read once, not at every
    // comparison): a million traces with many tied scores sort in a fraction of the time.
    let key = |value: Option<f64>| match value {
        Some(x) => (false, total_order_key(x)),
        None => (true, 0),
    };
    let mut keyed: Vec<(NullsLast, NullsLast, &[u8], usize)> = trace_idxs
        .iter()
        .map(|&idx| match traces.get(idx) {
            Some(trace) => (
                key(metric.uncertainty(trace)),
                key(trace.ppl),
                trace.trace_id.as_bytes(),
                idx,
            ),
            None => (key(None), key(None), &[][..], idx),
        })
        .collect();
    keyed.sort_unstable();
    for (slot, (_, _, _, idx)) in trace_idxs.iter_mut().zip(keyed) {
        *slot = idx;
    }
}

/// A score as a sort key: (is null, [`total_order_key`]), so nulls sort last.
type NullsLast = (bool, i64);

/// An integer that orders like `f64::total_cmp` (the same bit trick).
fn total_order_key(x: f64) -> i64 {
    let bits = x.to_bits() as i64;
    bits ^ ((((bits >> 63) as u64) >> 1) as i64)
}

fn is_candidate(trace: &TraceScores, candidates: Candidates) -> bool {
    match candidates {
        Candidates::All => true,
        Candidates::Greedy => trace.greedy,
    }
}

/// The rule that moves a group's cut-off to `value` (a drag of the cut-off line): the
/// group is `class`'s under `per_class`, every eligible trace under `global`. The rule
/// keeps its kind: a fraction keeps the share of the group at least as trustworthy as
/// `value` (at least one trace), a count keeps that many, a threshold becomes `value`.
/// None when the group has no eligible trace.
pub fn rule_for_cutoff(
    set: &ScoredSet,
    options: &FilterOptions,
    class: Option<u32>,
    value: f64,
) -> Option<Rule> {
    if let Rule::Threshold(_) = options.rule {
        return Some(Rule::Threshold(value));
    }
    // Compared as uncertainties, as the filter orders them.
    let limit = match options.metric.direction() {
        Direction::Uncertainty => value,
        Direction::Confidence => -value,
    };
    let (mut n_eligible, mut n_within) = (0usize, 0usize);
    for trace in &set.traces {
        let in_group = match options.scope {
            Scope::PerClass => trace.class.is_some() && trace.class == class,
            Scope::Global => true,
        };
        if !in_group || !is_candidate(trace, options.candidates) {
            continue;
        }
        let Some(uncertainty) = options.metric.uncertainty(trace) else {
            continue;
        };
        n_eligible += 1;
        n_within += usize::from(uncertainty <= limit);
    }
    if n_eligible == 0 {
        return None;
    }
    let n_keep = n_within.max(1);
    Some(match options.rule {
        Rule::Top(_) => Rule::Top(n_keep as u64),
        _ => Rule::Keep(n_keep as f64 / n_eligible as f64),
    })
}

/// Applies the filter.
pub fn select(set: &ScoredSet, options: &FilterOptions) -> Selection {
    rank_groups(set, options.metric, options.scope, options.candidates).select(
        set,
        options.rule,
        options.balanced,
    )
}

/// The filter's costly half: the scope groups of the candidates that have the metric,
/// each in the filter's order (most trustworthy first). The rule only says how far down
/// each group to keep, so moving it (a cut-off dragged in the app) reuses this.
#[derive(Debug, Clone, PartialEq)]
pub struct RankedGroups {
    metric: Metric,
    /// Classes in index order (`global`: one group, None).
    groups: Vec<(Option<u32>, Vec<usize>)>,
}

/// Groups and orders the traces for [`RankedGroups::select`].
pub fn rank_groups(
    set: &ScoredSet,
    metric: Metric,
    scope: Scope,
    candidates: Candidates,
) -> RankedGroups {
    let traces = &set.traces;
    // Scope groups, keyed so that classes come out in index order (global: one group).
    let mut groups: BTreeMap<Option<u32>, Vec<usize>> = BTreeMap::new();
    for (trace_idx, trace) in traces.iter().enumerate() {
        if !is_candidate(trace, candidates) || trace.metric(metric).is_none() {
            continue;
        }
        match scope {
            Scope::PerClass => {
                if let Some(class) = trace.class {
                    groups.entry(Some(class)).or_default().push(trace_idx);
                }
            }
            Scope::Global => groups.entry(None).or_default().push(trace_idx),
        }
    }
    let groups = groups
        .into_iter()
        .map(|(class, mut members)| {
            sort_by_order(traces, metric, &mut members);
            (class, members)
        })
        .collect();
    RankedGroups { metric, groups }
}

impl RankedGroups {
    /// The filter with `rule` (and `balanced`) over these groups: what [`select`] gives.
    pub fn select(&self, set: &ScoredSet, rule: Rule, balanced: bool) -> Selection {
        let traces = &set.traces;
        let metric = self.metric;
        let n_keeps = self.groups.iter().map(|(_, members)| match rule {
            Rule::Keep(fraction) => keep_count(fraction, members.len()),
            Rule::Top(n) => usize::try_from(n).unwrap_or(usize::MAX).min(members.len()),
            Rule::Threshold(threshold) => members
                .iter()
                .take_while(|&&idx| {
                    traces
                        .get(idx)
                        .and_then(|t| t.metric(metric))
                        .is_some_and(|value| metric.passes_threshold(value, threshold))
                })
                .count(),
        });
        if balanced {
            // Balancing regroups the lists, so it works on a copy of them.
            let mut kept_lists: Vec<(Option<u32>, Vec<usize>, usize)> = self
                .groups
                .iter()
                .zip(n_keeps)
                .map(|((class, members), n_keep)| (*class, members.clone(), n_keep))
                .collect();
            balance(traces, metric, &mut kept_lists);
            let lists: Vec<(Option<u32>, &[usize], usize)> = kept_lists
                .iter()
                .map(|(class, members, n_keep)| (*class, members.as_slice(), *n_keep))
                .collect();
            return outcome(traces, metric, &lists);
        }
        let lists: Vec<(Option<u32>, &[usize], usize)> = self
            .groups
            .iter()
            .zip(n_keeps)
            .map(|((class, members), n_keep)| (*class, members.as_slice(), n_keep))
            .collect();
        outcome(traces, metric, &lists)
    }
}

/// The selection that keeps the first `n_keep` of each ordered group.
fn outcome(
    traces: &[TraceScores],
    metric: Metric,
    lists: &[(Option<u32>, &[usize], usize)],
) -> Selection {
    let mut kept = vec![false; traces.len()];
    let mut outcomes = Vec::new();
    let mut n_kept = 0;
    for &(class, members, n_keep) in lists {
        for &idx in members.iter().take(n_keep) {
            if let Some(slot) = kept.get_mut(idx) {
                *slot = true;
            }
        }
        n_kept += n_keep;
        let metric_at = |position: usize| {
            members
                .get(position)
                .and_then(|&idx| traces.get(idx))
                .and_then(|t| t.metric(metric))
        };
        let cutoff = n_keep.checked_sub(1).and_then(metric_at);
        let tie_at_cutoff = cutoff.is_some() && cutoff == metric_at(n_keep);
        outcomes.push(GroupOutcome {
            class,
            n_eligible: members.len(),
            n_kept: n_keep,
            cutoff,
            tie_at_cutoff,
        });
    }
    Selection {
        kept,
        n_kept,
        groups: outcomes,
    }
}

/// `balanced`: cut every class to the smallest class's count, by the same order. In the
/// `global` scope the single group is split by class first (∅ is no class and is dropped).
fn balance(
    traces: &[TraceScores],
    metric: Metric,
    groups: &mut Vec<(Option<u32>, Vec<usize>, usize)>,
) {
    if let [(None, members, n_keep)] = groups.as_mut_slice() {
        let mut by_class: BTreeMap<u32, (Vec<usize>, usize)> = BTreeMap::new();
        for (position, &idx) in members.iter().enumerate() {
            if let Some(class) = traces.get(idx).and_then(|t| t.class) {
                let entry = by_class.entry(class).or_default();
                entry.0.push(idx);
                if position < *n_keep {
                    entry.1 += 1;
                }
            }
        }
        let smallest = by_class.values().map(|(_, k)| *k).min().unwrap_or(0);
        let mut kept: Vec<usize> = by_class
            .into_values()
            .flat_map(|(list, _)| list.into_iter().take(smallest))
            .collect();
        sort_by_order(traces, metric, &mut kept);
        let n = kept.len();
        // Re-express as one group whose first n are kept; the dropped ones follow.
        let mut is_kept = vec![false; traces.len()];
        for &idx in &kept {
            if let Some(slot) = is_kept.get_mut(idx) {
                *slot = true;
            }
        }
        let mut rest: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&idx| !is_kept.get(idx).copied().unwrap_or(false))
            .collect();
        kept.append(&mut rest);
        *members = kept;
        *n_keep = n;
        return;
    }
    let smallest = groups.iter().map(|(_, _, k)| *k).min().unwrap_or(0);
    for (_, _, n_keep) in groups.iter_mut() {
        *n_keep = smallest;
    }
}

/// Whether a trace is in the pool the filter draws from: a candidate, and for
/// `per_class` an answered one (whatever its metric).
fn in_pool(trace: &TraceScores, options: &FilterOptions) -> bool {
    is_candidate(trace, options.candidates)
        && (options.scope == Scope::Global || trace.class.is_some())
}

/// Every trace of the filter's pool, unfiltered (the paper's "no filter" arm), by input
/// position.
pub fn unfiltered(set: &ScoredSet, options: &FilterOptions) -> Vec<bool> {
    set.traces
        .iter()
        .map(|trace| in_pool(trace, options))
        .collect()
}

/// A seeded random sample of `n` traces from the same pool the filter draws from
/// (candidates, and for `per_class` only answered ones), in input order.
///
/// The generator is SplitMix64 driving a partial Fisher–Yates shuffle over the pool in
/// input order: fixed forever, so a seed reproduces the same sample on every platform.
pub fn random_sample(set: &ScoredSet, options: &FilterOptions, n: usize, seed: u64) -> Vec<bool> {
    let mut pool: Vec<usize> = set
        .traces
        .iter()
        .enumerate()
        .filter(|(_, trace)| in_pool(trace, options))
        .map(|(idx, _)| idx)
        .collect();
    let n = n.min(pool.len());
    let mut state = seed;
    for position in 0..n {
        let remaining = (pool.len() - position) as u64;
        let pick = position + (split_mix_64(&mut state) % remaining) as usize;
        pool.swap(position, pick);
    }
    let mut chosen = vec![false; set.traces.len()];
    for &idx in pool.iter().take(n) {
        if let Some(slot) = chosen.get_mut(idx) {
            *slot = true;
        }
    }
    chosen
}

/// SplitMix64 (Steele, Lea & Flood 2014): the generator of every seeded draw (the random
/// baseline here, the bootstrap of `compare`).
pub(crate) fn split_mix_64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dragged_cut_off_keeps_the_traces_up_to_it_in_the_rules_kind() {
        use crate::dataset::score_bytes;
        // Class up: ppl 0.1, 0.2, 0.3, 0.4; class down: ppl 0.5 (one trace each).
        let lines: String = [("a", "up", 0.1), ("b", "up", 0.2), ("c", "up", 0.3), ("d", "up", 0.4), ("e", "down", 0.5)]
            .iter()
            .map(|(id, answer, ppl)| {
                format!("{{\"question_id\":\"q{id}\",\"trace_id\":\"{id}\",\"answer\":\"{answer}\",\"logprobs\":[-{ppl}]}}\n")
            })
            .collect();
        let set = score_bytes(&Settings::default(), &[("x.jsonl", lines.as_bytes())]).unwrap();
        let up = set
            .classes
            .iter()
            .position(|class| class == "up")
            .map(|idx| idx as u32);
        let mut options = FilterOptions {
            metric: Metric::Ppl,
            rule: Rule::Keep(0.1),
            scope: Scope::PerClass,
            candidates: Candidates::All,
            balanced: false,
        };
        // Dragged to 0.25 on class up: 2 of its 4 traces, and select keeps exactly those.
        let rule = rule_for_cutoff(&set, &options, up, 0.25).unwrap();
        assert_eq!(rule, Rule::Keep(0.5));
        options.rule = rule;
        let kept: Vec<&str> = select(&set, &options)
            .kept
            .iter()
            .zip(&set.traces)
            .filter(|(kept, trace)| **kept && trace.class == up)
            .map(|(_, trace)| trace.trace_id.as_str())
            .collect();
        assert_eq!(kept, ["a", "b"]);
        // Below every score, one trace is still kept; a count and a threshold keep their kind.
        assert_eq!(
            rule_for_cutoff(&set, &options, up, 0.0),
            Some(Rule::Keep(0.25))
        );
        options.rule = Rule::Top(1);
        assert_eq!(
            rule_for_cutoff(&set, &options, up, 0.35),
            Some(Rule::Top(3))
        );
        options.rule = Rule::Threshold(0.1);
        assert_eq!(
            rule_for_cutoff(&set, &options, up, 0.35),
            Some(Rule::Threshold(0.35))
        );
        // A confidence counts from the other end: conf_mean = −mean log-prob here is 0.1…0.4
        // too, and keeping "at least as confident as 0.25" keeps c and d.
        options.rule = Rule::Keep(0.1);
        options.metric = Metric::ConfMean;
        assert_eq!(
            set.traces[0].metric(Metric::ConfMean),
            None,
            "no top-k: no DeepConf score"
        );
        assert_eq!(rule_for_cutoff(&set, &options, up, 0.25), None);
        // The global scope counts every trace: 0.25 holds 2 of 5.
        options.metric = Metric::Ppl;
        options.scope = Scope::Global;
        assert_eq!(
            rule_for_cutoff(&set, &options, None, 0.25),
            Some(Rule::Keep(0.4))
        );
    }

    #[test]
    fn keep_count_rounds_up_without_float_noise() {
        assert_eq!(keep_count(0.1, 30), 3);
        assert_eq!(keep_count(0.1, 31), 4);
        assert_eq!(keep_count(0.1, 9), 1);
        assert_eq!(keep_count(0.1, 1), 1);
        assert_eq!(keep_count(0.1, 0), 0);
        assert_eq!(keep_count(1.0, 7), 7);
        assert_eq!(keep_count(0.3, 10), 3);
        assert_eq!(keep_count(0.7, 10), 7);
    }

    #[test]
    fn split_mix_is_the_reference_sequence() {
        // First outputs of SplitMix64 seeded with 0 (the published reference values).
        let mut state = 0;
        assert_eq!(split_mix_64(&mut state), 0xE220_A839_7B1D_CDAF);
        assert_eq!(split_mix_64(&mut state), 0x6E78_9E6A_A1B9_65F4);
    }
}

#[cfg(test)]
mod order_tests {
    use super::*;
    use crate::dataset::score_bytes;
    use crate::settings::Settings;

    #[test]
    fn keyed_sort_equals_sorting_by_compare() {
        // Few distinct log-probs, missing ones and repeated trace ids: many exact ties.
        let mut jsonl = String::new();
        let mut state = 17u64;
        for line in 0..3_000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let logprobs = match state >> 61 {
                0 => String::new(),
                r => format!("-0.{r},-0.{}", (state >> 58) % 4),
            };
            jsonl.push_str(&format!(
                "{{\"question_id\":\"q{}\",\"trace_id\":\"t{}\",\"answer\":\"{}\",\"logprobs\":[{logprobs}]}}\n",
                line % 400,
                (state >> 40) % 50,
                ["up", "down"][(state >> 33) as usize % 2]
            ));
        }
        let set = score_bytes(&Settings::default(), &[("in.jsonl", jsonl.as_bytes())]).unwrap();
        for metric in Metric::ALL.iter().copied() {
            let mut keyed: Vec<usize> = (0..set.traces.len()).rev().collect();
            sort_by_order(&set.traces, metric, &mut keyed);
            let mut reference: Vec<usize> = (0..set.traces.len()).collect();
            reference.sort_by(|&a, &b| compare(&set.traces, metric, a, b));
            assert_eq!(keyed, reference, "{metric}");
        }
    }

    #[test]
    fn total_order_key_orders_like_total_cmp() {
        let values = [
            f64::NEG_INFINITY,
            -1e300,
            -2.5,
            -0.0,
            0.0,
            1e-300,
            0.5,
            3.0,
            1e300,
            f64::INFINITY,
        ];
        for a in values {
            for b in values {
                assert_eq!(
                    total_order_key(a).cmp(&total_order_key(b)),
                    a.total_cmp(&b),
                    "{a} vs {b}"
                );
            }
        }
    }
}
