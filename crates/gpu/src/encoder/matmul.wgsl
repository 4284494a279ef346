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

@compute @workgroup_size(16, 16)
fn main(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let n0 = group.x * TILE;
    let m0 = group.y * TILE;
    let k = params.k;
    var acc: array<f32, 16>;
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
            var xs: array<f32, 4>;
            var ws: array<f32, 4>;
            for (var i = 0u; i < 4u; i = i + 1u) {
                xs[i] = x_tile[(local.y + 16u * i) * TILE_K + kk];
                ws[i] = w_tile[kk * TILE + local.x + 16u * i];
            }
            for (var i = 0u; i < 4u; i = i + 1u) {
                for (var j = 0u; j < 4u; j = j + 1u) {
                    acc[i * 4u + j] = fma(xs[i], ws[j], acc[i * 4u + j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i = i + 1u) {
        let m = m0 + local.y + 16u * i;
        for (var j = 0u; j < 4u; j = j + 1u) {
            let n = n0 + local.x + 16u * j;
            if (m < params.rows && n < params.n) {
                var v = acc[i * 4u + j] + bias[n];
                if (params.epilogue == GELU) {
                    v = 0.5 * v * (1.0 + erf(v * 0.70710678118654752));
                } else if (params.epilogue == RESIDUAL) {
                    v = v + residual[m * params.n + n];
                }
                y[m * params.n + n] = v;
            }
        }
    }
}
