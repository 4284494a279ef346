// Layer norm of each row, in place: (x - mean) / sqrt(variance + eps) * gamma + beta, the
// variance being the mean squared deviation (as BERT's LayerNorm). One workgroup per row.

struct Params {
    rows: u32,
    width: u32,
    eps: f32,
    pad0: u32,
}

const LANES: u32 = 128u;
const MAX_X: u32 = 65535u;

@group(0) @binding(0) var<storage, read> gamma: array<f32>;
@group(0) @binding(1) var<storage, read> beta: array<f32>;
@group(0) @binding(2) var<storage, read_write> rows: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

var<workgroup> partial: array<f32, 128>;

// The sum of every lane's `value`, known to every lane.
fn workgroup_sum(lane: u32, value: f32) -> f32 {
    partial[lane] = value;
    workgroupBarrier();
    for (var stride = LANES / 2u; stride > 0u; stride = stride / 2u) {
        if (lane < stride) {
            partial[lane] = partial[lane] + partial[lane + stride];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let row = group.x + group.y * MAX_X;
    if (row >= params.rows) {
        return;
    }
    let width = params.width;
    let base = row * width;
    var sum = 0.0;
    for (var i = lane; i < width; i = i + LANES) {
        sum = sum + rows[base + i];
    }
    let mean = workgroup_sum(lane, sum) / f32(width);
    var squares = 0.0;
    for (var i = lane; i < width; i = i + LANES) {
        let deviation = rows[base + i] - mean;
        squares = squares + deviation * deviation;
    }
    let variance = workgroup_sum(lane, squares) / f32(width);
    let scale = 1.0 / sqrt(variance + params.eps);
    for (var i = lane; i < width; i = i + LANES) {
        rows[base + i] = (rows[base + i] - mean) * scale * gamma[i] + beta[i];
    }
}
