// Longest common subsequence of word-id pairs (the quadratic part of ROUGE-L), with the
// same bit-parallel recurrence as the CPU (Hyyrö: V' = (V + (V & M)) | (V & ~M)) on
// 32-bit limbs. One invocation per pair. The shorter sequence is the bit side: the host
// gives its per-word position masks, and the longer sequence as the mask index of each of
// its words that occurs in the shorter one (the others leave V unchanged and are dropped).
//
// A pair's rows are processed a window at a time, one dispatch per window, with V kept in
// `state` between dispatches: no invocation loops more than a few thousand times (Mesa's
// llvmpipe stops long loops; real GPUs have watchdogs).

struct Pair {
    rows_start: u32,
    n_rows: u32,
    masks_base: u32,
    limbs: u32,
    state_base: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

struct Window {
    row0: u32,
    rows: u32,
    pad0: u32,
    pad1: u32,
}

const LANES: u32 = 64u;
const MAX_X: u32 = 65535u;

@group(0) @binding(0) var<storage, read> masks: array<u32>;
@group(0) @binding(1) var<storage, read> rows: array<u32>;
@group(0) @binding(2) var<storage, read> pairs: array<Pair>;
// V of every pair, all ones at the start.
@group(0) @binding(3) var<storage, read_write> state: array<u32>;
@group(0) @binding(4) var<storage, read_write> lcs: array<u32>;
@group(0) @binding(5) var<uniform> window: Window;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let pair_idx = (group.x + group.y * MAX_X) * LANES + lane;
    if (pair_idx >= arrayLength(&pairs) || pair_idx >= arrayLength(&lcs)) {
        return;
    }
    let pair = pairs[pair_idx];
    if (window.row0 >= pair.n_rows) {
        return;
    }
    let last = min(pair.n_rows, window.row0 + window.rows);
    for (var row = window.row0; row < last; row++) {
        let mask_start = pair.masks_base + rows[pair.rows_start + row] * pair.limbs;
        var carry = 0u;
        for (var limb = 0u; limb < pair.limbs; limb++) {
            let v = state[pair.state_base + limb];
            let m = masks[mask_start + limb];
            let partial = v + (v & m);
            let sum = partial + carry;
            carry = select(0u, 1u, partial < v || sum < partial);
            state[pair.state_base + limb] = sum | (v & ~m);
        }
    }
    if (last == pair.n_rows) {
        // Zero bits are the LCS; padding bits above the sequence never match and stay 1.
        var ones = 0u;
        for (var limb = 0u; limb < pair.limbs; limb++) {
            ones += countOneBits(state[pair.state_base + limb]);
        }
        lcs[pair_idx] = pair.limbs * 32u - ones;
    }
}
