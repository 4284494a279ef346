//! Pure numeric helpers behind the charts: value ranges that never collapse to a point,
//! histogram binning, and the deterministic subsample stride of large scatters.

/// Below this relative width a range counts as a single value: plotters' tick algorithm
/// and the bin arithmetic need a width that is not lost in the values' rounding.
const MIN_RELATIVE_WIDTH: f64 = 1e-9;

/// The closed range `[min, max]` of the finite values, or None when there are none.
/// When all values (nearly) coincide the range is the width-1 interval centred on them,
/// so axes get ticks and the values land in the middle bin.
pub(crate) fn value_range(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values.into_iter().filter(|value| value.is_finite()).fold(
        None,
        |range: Option<(f64, f64)>, value| match range {
            None => Some((value, value)),
            Some((lo, hi)) => Some((lo.min(value), hi.max(value))),
        },
    )?;
    let scale = lo.abs().max(hi.abs()).max(1.0);
    if hi - lo <= MIN_RELATIVE_WIDTH * scale {
        let centre = lo / 2.0 + hi / 2.0;
        Some((centre - 0.5, centre + 0.5))
    } else {
        Some((lo, hi))
    }
}

/// `range` widened by `share` of its width on both sides, so markers at the extremes are
/// not cut by the plot's edge.
pub(crate) fn padded((lo, hi): (f64, f64), share: f64) -> (f64, f64) {
    let pad = (hi - lo) * share;
    (lo - pad, hi + pad)
}

/// The bin of `value` among `n_bins` equal bins over `[lo, hi]`. Bins are half-open
/// `[edge_i, edge_i+1)` except the last, which also holds `hi` itself; values outside the
/// range go to the nearest end bin. `n_bins` must be at least 1 (0 is treated as 1).
pub(crate) fn bin_index(value: f64, (lo, hi): (f64, f64), n_bins: usize) -> usize {
    let last = n_bins.max(1) - 1;
    let position = (value - lo) / (hi - lo) * n_bins as f64;
    // `as usize` saturates: a position below 0 (and NaN, from a zero-width range) gives 0.
    (position.floor() as usize).min(last)
}

/// The left edge of bin `idx`, and the right edge of the last bin as `idx == n_bins`.
/// Computed from `lo` each time (not by accumulation) so the last edge is exactly `hi`.
pub(crate) fn bin_edge(idx: usize, (lo, hi): (f64, f64), n_bins: usize) -> f64 {
    if idx >= n_bins {
        hi
    } else {
        lo + (hi - lo) * idx as f64 / n_bins as f64
    }
}

/// Per-bin `[kept, dropped]` counts of `(value, kept)` pairs.
pub(crate) fn histogram(
    values: impl IntoIterator<Item = (f64, bool)>,
    range: (f64, f64),
    n_bins: usize,
) -> Vec<[u32; 2]> {
    let mut bins = vec![[0u32; 2]; n_bins.max(1)];
    for (value, kept) in values {
        if let Some(bin) = bins.get_mut(bin_index(value, range, n_bins)) {
            let slot = &mut bin[usize::from(!kept)];
            *slot = slot.saturating_add(1);
        }
    }
    bins
}

/// Every `stride`-th point keeps a scatter of `n` points to at most `max` drawn ones:
/// ⌈n / max⌉, at least 1. Taking indices `0, stride, 2·stride, …` of the points in input
/// order is deterministic and spreads evenly over files, which are often sorted.
pub(crate) fn subsample_stride(n: usize, max: usize) -> usize {
    n.div_ceil(max.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_of_spread_values_is_their_min_and_max() {
        assert_eq!(value_range([0.3, 0.05, 2.0, 1.5]), Some((0.05, 2.0)));
        assert_eq!(
            value_range([f64::NAN, 1.0, f64::INFINITY, 3.0]),
            Some((1.0, 3.0))
        );
        assert_eq!(value_range(std::iter::empty()), None);
        assert_eq!(value_range([f64::NAN]), None);
    }

    #[test]
    fn range_of_equal_values_is_width_one_around_them() {
        assert_eq!(value_range([0.0, 0.0, 0.0]), Some((-0.5, 0.5)));
        assert_eq!(value_range([2.5]), Some((2.0, 3.0)));
        let (lo, hi) = value_range([150.0, 150.0 + 1e-12]).unwrap();
        assert!(
            (lo - 149.5).abs() < 1e-9 && (hi - 150.5).abs() < 1e-9,
            "{lo} {hi}"
        );
        // The single value lands in the middle bin of 30.
        let range = value_range([7.0]).unwrap();
        assert_eq!(bin_index(7.0, range, 30), 15);
    }

    #[test]
    fn binning_puts_the_edges_in_the_end_bins() {
        let range = (0.0, 3.0);
        assert_eq!(bin_index(0.0, range, 30), 0);
        assert_eq!(bin_index(0.0999, range, 30), 0);
        assert_eq!(bin_index(0.1001, range, 30), 1);
        assert_eq!(bin_index(2.95, range, 30), 29);
        // The maximum belongs to the last bin, not to a 31st.
        assert_eq!(bin_index(3.0, range, 30), 29);
        // Outside values (a cut-off from another group, rounding) clamp to the ends.
        assert_eq!(bin_index(-1.0, range, 30), 0);
        assert_eq!(bin_index(99.0, range, 30), 29);
        assert_eq!(bin_index(1.0, range, 0), 0);
        assert_eq!(bin_index(1.0, (1.0, 1.0), 30), 0);
    }

    #[test]
    fn bin_edges_end_exactly_at_the_range() {
        let range = (0.05, 2.0);
        assert_eq!(bin_edge(0, range, 30), 0.05);
        assert_eq!(bin_edge(30, range, 30), 2.0);
        assert!((bin_edge(15, range, 30) - 1.025).abs() < 1e-12);
    }

    #[test]
    fn histogram_counts_kept_and_dropped_per_bin() {
        let bins = histogram(
            [(0.0, true), (0.0, false), (1.0, false), (0.5, true)],
            (0.0, 1.0),
            4,
        );
        assert_eq!(bins, vec![[1, 1], [0, 0], [1, 0], [0, 1]]);
    }

    #[test]
    fn stride_keeps_at_most_max_points() {
        assert_eq!(subsample_stride(0, 20_000), 1);
        assert_eq!(subsample_stride(20_000, 20_000), 1);
        assert_eq!(subsample_stride(20_001, 20_000), 2);
        assert_eq!(subsample_stride(100_000, 20_000), 5);
        assert_eq!(subsample_stride(100_001, 20_000), 6);
        assert_eq!(subsample_stride(5, 0), 5);
        for n in [1, 19_999, 20_001, 39_999, 40_001, 100_000, 123_457] {
            let stride = subsample_stride(n, 20_000);
            let drawn = (0..n).step_by(stride).count();
            assert!(
                drawn <= 20_000 && drawn * stride >= n,
                "n={n} stride={stride} drawn={drawn}"
            );
        }
    }
}
