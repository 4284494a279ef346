// The encoder's input: each word-piece's word, position and token-type (type 0) embeddings,
// summed. Layer norm follows (norm.wgsl). One workgroup per word-piece.

struct Params {
    tokens: u32,
    hidden: u32,
    pad0: u32,
    pad1: u32,
}

const LANES: u32 = 128u;
const MAX_X: u32 = 65535u;

@group(0) @binding(0) var<storage, read> word: array<f32>;
@group(0) @binding(1) var<storage, read> position: array<f32>;
@group(0) @binding(2) var<storage, read> token_type: array<f32>;
// Per word-piece: its id in the vocabulary and its position in its text.
@group(0) @binding(3) var<storage, read> pieces: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read_write> states: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let token = group.x + group.y * MAX_X;
    if (token >= params.tokens) {
        return;
    }
    let hidden = params.hidden;
    let piece = pieces[token];
    for (var i = lane; i < hidden; i = i + LANES) {
        states[token * hidden + i] = word[piece.x * hidden + i] + position[piece.y * hidden + i]
            + token_type[i];
    }
}
