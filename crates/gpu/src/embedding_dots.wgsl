// Dot products of embedding pairs (the quadratic part of embedding consistency): one
// 64-lane workgroup per pair, each lane summing a strided share of the dimensions, then a
// pairwise tree. Norms and the (1 + cos) / 2 arithmetic stay on the host in f64.

struct Pair {
    a: u32,
    b: u32,
}

const LANES: u32 = 64u;
const MAX_X: u32 = 65535u;

@group(0) @binding(0) var<storage, read> embeddings: array<f32>;
@group(0) @binding(1) var<storage, read> pairs: array<Pair>;
// params[0] = the embedding dimension.
@group(0) @binding(2) var<storage, read> params: array<u32>;
@group(0) @binding(3) var<storage, read_write> dots: array<f32>;

var<workgroup> lane_dot: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let pair_idx = group.x + group.y * MAX_X;
    // Uniform for the whole workgroup, so returning before the barriers is allowed.
    if (pair_idx >= arrayLength(&pairs) || pair_idx >= arrayLength(&dots) || arrayLength(&params) == 0u) {
        return;
    }
    let dim = params[0];
    let pair = pairs[pair_idx];
    let n_values = arrayLength(&embeddings);
    var dot = 0.0;
    for (var d = lane; d < dim; d = d + LANES) {
        let ia = pair.a * dim + d;
        let ib = pair.b * dim + d;
        if (ia < n_values && ib < n_values) {
            dot = dot + embeddings[ia] * embeddings[ib];
        }
    }
    lane_dot[lane] = dot;
    workgroupBarrier();
    for (var stride = LANES / 2u; stride > 0u; stride = stride / 2u) {
        if (lane < stride) {
            lane_dot[lane] = lane_dot[lane] + lane_dot[lane + stride];
        }
        workgroupBarrier();
    }
    if (lane == 0u) {
        dots[pair_idx] = lane_dot[0];
    }
}
