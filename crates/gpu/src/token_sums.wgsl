// Segmented reduction of ragged token log-probs: for each segment (a slice of one trace's
// tokens), the sum of valid log-probs, their count, the invalid count, and the sum of each
// valid token's top-k entropy (renormalised over its k). The host adds a trace's segments
// in f64. Per-lane Kahan sums and a pairwise tree keep 10,000-token traces within 1e-4 of
// the CPU's f64.
//
// The host writes invalid values (sentinels, NaN, impossible values) as NaN, using the
// core's own rule; here a value is invalid when its exponent bits are all ones (NaN or
// infinity). Bits are tested instead of `v != v`, which shader compilers may fold away.

struct Segment {
    start: u32,
    end: u32,
    pad0: u32,
    pad1: u32,
}

struct SegmentOut {
    sum_logprob: f32,
    sum_entropy: f32,
    n_valid: u32,
    n_invalid: u32,
    // 1 when a valid token has no usable top-k list (mte is then null).
    entropy_missing: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

const LANES: u32 = 64u;
// WebGPU's guaranteed maximum workgroups per dimension; more segments use the y dimension.
const MAX_X: u32 = 65535u;

@group(0) @binding(0) var<storage, read> logprobs: array<f32>;
@group(0) @binding(1) var<storage, read> segments: array<Segment>;
@group(0) @binding(2) var<storage, read> top_values: array<f32>;
@group(0) @binding(3) var<storage, read> top_offsets: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<SegmentOut>;

var<workgroup> lane_sum: array<f32, 64>;
var<workgroup> lane_entropy: array<f32, 64>;
var<workgroup> lane_valid: array<u32, 64>;
var<workgroup> lane_invalid: array<u32, 64>;
var<workgroup> lane_missing: array<u32, 64>;

fn is_invalid(value: f32) -> bool {
    return (bitcast<u32>(value) & 0x7f800000u) == 0x7f800000u;
}

// Entropy of one token's top-k list, renormalised; negative when the list has fewer than
// two entries (the core's MIN_TOP_K) or no valid entry.
fn top_k_entropy(start: u32, end: u32) -> f32 {
    if (end < start + 2u) {
        return -1.0;
    }
    let n_values = arrayLength(&top_values);
    var max_value = -3.0e38;
    var any = false;
    for (var k = start; k < end && k < n_values; k = k + 1u) {
        let value = top_values[k];
        if (!is_invalid(value)) {
            max_value = max(max_value, value);
            any = true;
        }
    }
    if (!any) {
        return -1.0;
    }
    var sum_weights = 0.0;
    var sum_weighted_shift = 0.0;
    for (var k = start; k < end && k < n_values; k = k + 1u) {
        let value = top_values[k];
        if (!is_invalid(value)) {
            let shift = value - max_value;
            let weight = exp(shift);
            sum_weights = sum_weights + weight;
            sum_weighted_shift = sum_weighted_shift + weight * shift;
        }
    }
    return max(log(sum_weights) - sum_weighted_shift / sum_weights, 0.0);
}

// One workgroup per segment (at most a few thousand tokens of one trace): each lane sums
// a strided share of the tokens (Kahan-compensated), then the lanes are added pairwise.
// Short per-invocation loops also keep clear of GPU watchdogs and loop limits.
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let segment_idx = group.x + group.y * MAX_X;
    // Uniform for the whole workgroup, so returning before the barriers is allowed.
    if (segment_idx >= arrayLength(&segments) || segment_idx >= arrayLength(&out)) {
        return;
    }
    let segment = segments[segment_idx];
    let end = min(segment.end, arrayLength(&logprobs));
    let has_top = arrayLength(&top_offsets) > end;
    var sum = 0.0;
    var compensation = 0.0;
    var entropy_sum = 0.0;
    var entropy_compensation = 0.0;
    var n_valid = 0u;
    var n_invalid = 0u;
    var missing = 0u;
    for (var token = segment.start + lane; token < end; token = token + LANES) {
        let value = logprobs[token];
        if (is_invalid(value)) {
            n_invalid = n_invalid + 1u;
            continue;
        }
        n_valid = n_valid + 1u;
        let y = value - compensation;
        let t = sum + y;
        compensation = (t - sum) - y;
        sum = t;
        if (has_top) {
            let entropy = top_k_entropy(top_offsets[token], top_offsets[token + 1u]);
            if (entropy < 0.0) {
                missing = 1u;
            } else {
                let ey = entropy - entropy_compensation;
                let et = entropy_sum + ey;
                entropy_compensation = (et - entropy_sum) - ey;
                entropy_sum = et;
            }
        } else {
            missing = 1u;
        }
    }
    lane_sum[lane] = sum;
    lane_entropy[lane] = entropy_sum;
    lane_valid[lane] = n_valid;
    lane_invalid[lane] = n_invalid;
    lane_missing[lane] = missing;
    workgroupBarrier();
    for (var stride = LANES / 2u; stride > 0u; stride = stride / 2u) {
        if (lane < stride) {
            lane_sum[lane] = lane_sum[lane] + lane_sum[lane + stride];
            lane_entropy[lane] = lane_entropy[lane] + lane_entropy[lane + stride];
            lane_valid[lane] = lane_valid[lane] + lane_valid[lane + stride];
            lane_invalid[lane] = lane_invalid[lane] + lane_invalid[lane + stride];
            lane_missing[lane] = max(lane_missing[lane], lane_missing[lane + stride]);
        }
        workgroupBarrier();
    }
    if (lane == 0u) {
        out[segment_idx] = SegmentOut(lane_sum[0], lane_entropy[0], lane_valid[0], lane_invalid[0], lane_missing[0], 0u, 0u, 0u);
    }
}
