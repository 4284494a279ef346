// Self-attention of texts packed one after another without padding: each word-piece
// attends only to its own text's. A workgroup takes up to 64 queries of one text for one
// head, one query per invocation; keys and values pass through workgroup memory 32 at a
// time (8 KiB, whatever the text's length), with a running softmax: each block's scores
// are exponentiated against the running maximum, and what was summed before is rescaled
// when the maximum grows.

struct Block {
    // The text's first word-piece and its length.
    start: u32,
    len: u32,
    // This block's first query.
    first_query: u32,
    pad0: u32,
}

struct Params {
    hidden: u32,
    // 1 / sqrt(HEAD_DIM).
    scale: f32,
    pad0: u32,
    pad1: u32,
}

const HEAD_DIM: u32 = 32u;
const QUERIES: u32 = 64u;
const KEYS: u32 = 32u;

// Per word-piece: its query (hidden values, head after head), then its key, then its value.
@group(0) @binding(0) var<storage, read> qkv: array<f32>;
@group(0) @binding(1) var<storage, read> blocks: array<Block>;
@group(0) @binding(2) var<storage, read_write> context: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

var<workgroup> keys: array<f32, 1024>;
var<workgroup> values: array<f32, 1024>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    if (group.x >= arrayLength(&blocks)) {
        return;
    }
    let block = blocks[group.x];
    let head = group.y;
    let hidden = params.hidden;
    let row = 3u * hidden;
    let query = block.first_query + lane;
    let has_query = query < block.start + block.len;
    var q: array<f32, 32>;
    var acc: array<f32, 32>;
    if (has_query) {
        for (var d = 0u; d < HEAD_DIM; d = d + 1u) {
            q[d] = qkv[query * row + head * HEAD_DIM + d] * params.scale;
        }
    }
    var running_max = -3.0e38;
    var total = 0.0;
    for (var k0 = 0u; k0 < block.len; k0 = k0 + KEYS) {
        for (var i = lane; i < KEYS * HEAD_DIM; i = i + QUERIES) {
            let key = i / HEAD_DIM;
            var kv = 0.0;
            var vv = 0.0;
            if (k0 + key < block.len) {
                let at = (block.start + k0 + key) * row + head * HEAD_DIM + i % HEAD_DIM;
                kv = qkv[at + hidden];
                vv = qkv[at + 2u * hidden];
            }
            keys[i] = kv;
            values[i] = vv;
        }
        workgroupBarrier();
        if (has_query) {
            let n_keys = min(KEYS, block.len - k0);
            var scores: array<f32, 32>;
            var block_max = -3.0e38;
            for (var j = 0u; j < n_keys; j = j + 1u) {
                var s = 0.0;
                for (var d = 0u; d < HEAD_DIM; d = d + 1u) {
                    s = fma(q[d], keys[j * HEAD_DIM + d], s);
                }
                scores[j] = s;
                block_max = max(block_max, s);
            }
            let new_max = max(running_max, block_max);
            let rescale = exp(running_max - new_max);
            total = total * rescale;
            for (var d = 0u; d < HEAD_DIM; d = d + 1u) {
                acc[d] = acc[d] * rescale;
            }
            for (var j = 0u; j < n_keys; j = j + 1u) {
                let p = exp(scores[j] - new_max);
                total = total + p;
                for (var d = 0u; d < HEAD_DIM; d = d + 1u) {
                    acc[d] = fma(p, values[j * HEAD_DIM + d], acc[d]);
                }
            }
            running_max = new_max;
        }
        workgroupBarrier();
    }
    if (has_query) {
        for (var d = 0u; d < HEAD_DIM; d = d + 1u) {
            context[query * hidden + head * HEAD_DIM + d] = acc[d] / total;
        }
    }
}
