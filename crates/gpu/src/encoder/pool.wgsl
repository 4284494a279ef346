// Each text's embedding: the mean of its word-pieces' final states, L2-normalised. One
// workgroup per text.

struct Text {
    start: u32,
    len: u32,
}

struct Params {
    texts: u32,
    hidden: u32,
    pad0: u32,
    pad1: u32,
}

const LANES: u32 = 128u;
const MAX_X: u32 = 65535u;

@group(0) @binding(0) var<storage, read> states: array<f32>;
@group(0) @binding(1) var<storage, read> texts: array<Text>;
@group(0) @binding(2) var<storage, read_write> embeddings: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

var<workgroup> partial: array<f32, 128>;

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let text_idx = group.x + group.y * MAX_X;
    if (text_idx >= params.texts) {
        return;
    }
    let text = texts[text_idx];
    let hidden = params.hidden;
    let out = text_idx * hidden;
    var squares = 0.0;
    for (var i = lane; i < hidden; i = i + LANES) {
        var sum = 0.0;
        for (var t = 0u; t < text.len; t = t + 1u) {
            sum = sum + states[(text.start + t) * hidden + i];
        }
        let mean = sum / f32(text.len);
        embeddings[out + i] = mean;
        squares = squares + mean * mean;
    }
    partial[lane] = squares;
    workgroupBarrier();
    for (var stride = LANES / 2u; stride > 0u; stride = stride / 2u) {
        if (lane < stride) {
            partial[lane] = partial[lane] + partial[lane + stride];
        }
        workgroupBarrier();
    }
    let norm = sqrt(partial[0]);
    for (var i = lane; i < hidden; i = i + LANES) {
        embeddings[out + i] = embeddings[out + i] / norm;
    }
}
