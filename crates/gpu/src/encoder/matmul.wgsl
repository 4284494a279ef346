// A linear layer over every word-piece: y = x·wᵀ + bias (w is [n, k], as PyTorch stores a
// Linear's weight), then an epilogue: 0 none, 1 GELU (erf form), 2 add a residual row.
// A workgroup computes a 64×64 tile of y, each of its 256 invocations 4×4 outputs (rows
// and columns 16 apart, so neighbouring invocations touch neighbouring columns), over k in
// steps of 16 held in workgroup memory (8 KiB).

struct Params {
    rows: u32,
    n: u32,
    k: u32,
    epilogue: u32,
}

const TILE: u32 = 64u;
const TILE_K: u32 = 16u;
const GELU: u32 = 1u;
const RESIDUAL: u32 = 2u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
// Read only by the residual epilogue (bound to any buffer otherwise).
@group(0) @binding(3) var<storage, read> residual: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

// x's tile, [TILE][TILE_K]; w's, transposed, [TILE_K][TILE].
var<workgroup> x_tile: array<f32, 1024>;
var<workgroup> w_tile: array<f32, 1024>;

// erf by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7): WGSL has no erf.
fn erf(v: f32) -> f32 {
    let a = abs(v);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741
        + t * (-1.453152027 + t * 1.061405429))));
    let magnitude = 1.0 - poly * exp(-a * a);
    return select(magnitude, -magnitude, v < 0.0);
}

// Row m's outputs at columns n, n + 16, n + 32, n + 48, with the bias and the epilogue.
fn store_row(m: u32, n: u32, acc: vec4<f32>) {
    if (m >= params.rows) {
        return;
    }
    for (var j = 0u; j < 4u; j = j + 1u) {
        let col = n + 16u * j;
        if (col < params.n) {
            var v = acc[j] + bias[col];
            if (params.epilogue == GELU) {
                v = 0.5 * v * (1.0 + erf(v * 0.70710678118654752));
            } else if (params.epilogue == RESIDUAL) {
                v = v + residual[m * params.n + col];
            }
            y[m * params.n + col] = v;
        }
    }
}

@compute @workgroup_size(16, 16)
fn main(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let n0 = group.x * TILE;
    let m0 = group.y * TILE;
    let k = params.k;
    // Output rows local.y + 16·i, columns local.x + 16·j: acc_i's component j.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < k; k0 = k0 + TILE_K) {
        for (var i = 0u; i < 4u; i = i + 1u) {
            let idx = lane + i * 256u;
            let r = idx / TILE_K;
            let c = idx % TILE_K;
            var xv = 0.0;
            if (m0 + r < params.rows && k0 + c < k) {
                xv = x[(m0 + r) * k + k0 + c];
            }
            x_tile[r * TILE_K + c] = xv;
            var wv = 0.0;
            if (n0 + r < params.n && k0 + c < k) {
                wv = w[(n0 + r) * k + k0 + c];
            }
            w_tile[c * TILE + r] = wv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TILE_K; kk = kk + 1u) {
            let wrow = kk * TILE + local.x;
            let ws = vec4<f32>(w_tile[wrow], w_tile[wrow + 16u], w_tile[wrow + 32u], w_tile[wrow + 48u]);
            let xrow = local.y * TILE_K + kk;
            acc0 = fma(vec4<f32>(x_tile[xrow]), ws, acc0);
            acc1 = fma(vec4<f32>(x_tile[xrow + 16u * TILE_K]), ws, acc1);
            acc2 = fma(vec4<f32>(x_tile[xrow + 32u * TILE_K]), ws, acc2);
            acc3 = fma(vec4<f32>(x_tile[xrow + 48u * TILE_K]), ws, acc3);
        }
        workgroupBarrier();
    }
    store_row(m0 + local.y, n0 + local.x, acc0);
    store_row(m0 + local.y + 16u, n0 + local.x, acc1);
    store_row(m0 + local.y + 32u, n0 + local.x, acc2);
    store_row(m0 + local.y + 48u, n0 + local.x, acc3);
}
