//! The BERT encoder on the CPU (all-MiniLM-L6-v2's shape: post-norm layers, erf GELU, mean
//! pooling), from word-pieces to unit-length sentence embeddings — the same computation as
//! crates/gpu's WGSL kernels, and the reference they are checked against.
//!
//! Texts are packed one after another without padding, so each matrix product runs over
//! every word-piece of a batch at once and attention stays within each text. Per layer: the
//! fused query/key/value product, attention per text and head, the output product added to
//! its residual, layer norm, the GELU product, the second product added to its residual,
//! layer norm. Products are gemm's (AVX-512, AVX2 or wasm's scalar kernels, picked at run
//! time); the bias and the residual are its destination's starting values, so no product
//! takes a pass of its own for them. The buffers live as long as the thread, so a batch
//! allocates nothing once the first has run. All arithmetic is f32, as in PyTorch.

use std::cell::RefCell;

use serde::Deserialize;

use crate::EmbedError;

/// The model's shape, from its `config.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    pub hidden_act: String,
    #[serde(default = "absolute")]
    pub position_embedding_type: String,
}

fn absolute() -> String {
    "absolute".to_owned()
}

/// `y = x·Wᵀ + b`, W stored as the model stores it (`[out, in]`, row-major).
struct Linear {
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

struct Layer {
    /// Query, key and value as one `[3·hidden, hidden]` product.
    qkv: Linear,
    attention_out: Linear,
    attention_norm: Norm,
    intermediate: Linear,
    output: Linear,
    output_norm: Norm,
}

/// The encoder's weights.
pub struct Encoder {
    hidden: usize,
    heads: usize,
    max_positions: usize,
    eps: f32,
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
}

/// One batch's activations, `[word-pieces, width]` row-major; grown, never shrunk.
#[derive(Default)]
struct Scratch {
    states: Vec<f32>,
    qkv: Vec<f32>,
    context: Vec<f32>,
    attended: Vec<f32>,
    intermediate: Vec<f32>,
    scores: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

fn load_error(message: String) -> EmbedError {
    EmbedError::Load {
        what: "model.safetensors",
        message,
    }
}

impl Encoder {
    /// The encoder of `config` with the weights `tensor` gives by their Hugging Face BERT
    /// names (little-endian f32 bytes, as a safetensors file stores them). A missing or
    /// misshapen weight, or a model of another kind, is an error naming it.
    pub fn new<'w>(
        config: &Config,
        tensor: impl Fn(&str) -> Option<&'w [u8]>,
    ) -> Result<Self, EmbedError> {
        if config.hidden_act != "gelu" || config.position_embedding_type != "absolute" {
            return Err(load_error(format!(
                "the encoder runs BERT with erf GELU and absolute positions; this model has {} and {} positions",
                config.hidden_act, config.position_embedding_type
            )));
        }
        if config.type_vocab_size == 0 {
            return Err(load_error("the model has no token types".to_owned()));
        }
        let hidden = config.hidden_size;
        let heads = config.num_attention_heads;
        if heads == 0 || !hidden.is_multiple_of(heads) {
            return Err(load_error(format!(
                "{hidden} hidden values do not split into {heads} heads"
            )));
        }
        let floats = |name: &str, values: usize| -> Result<Vec<f32>, EmbedError> {
            let bytes = tensor(name)
                .ok_or_else(|| load_error(format!("the model has no tensor {name}")))?;
            if bytes.len() != values * 4 {
                return Err(load_error(format!(
                    "the model's {name} holds {} bytes, not {values} f32",
                    bytes.len()
                )));
            }
            Ok(bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect())
        };
        let norm = |prefix: &str| -> Result<Norm, EmbedError> {
            Ok(Norm {
                gamma: floats(&format!("{prefix}.LayerNorm.weight"), hidden)?,
                beta: floats(&format!("{prefix}.LayerNorm.bias"), hidden)?,
            })
        };
        let linear = |prefix: &str, outputs: usize, inputs: usize| -> Result<Linear, EmbedError> {
            Ok(Linear {
                weight: floats(&format!("{prefix}.weight"), outputs * inputs)?,
                bias: floats(&format!("{prefix}.bias"), outputs)?,
                inputs,
                outputs,
            })
        };
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for layer in 0..config.num_hidden_layers {
            let prefix = format!("encoder.layer.{layer}");
            let mut qkv = Linear {
                weight: Vec::with_capacity(3 * hidden * hidden),
                bias: Vec::with_capacity(3 * hidden),
                inputs: hidden,
                outputs: 3 * hidden,
            };
            for part in ["query", "key", "value"] {
                let one = linear(&format!("{prefix}.attention.self.{part}"), hidden, hidden)?;
                qkv.weight.extend(one.weight);
                qkv.bias.extend(one.bias);
            }
            layers.push(Layer {
                qkv,
                attention_out: linear(&format!("{prefix}.attention.output.dense"), hidden, hidden)?,
                attention_norm: norm(&format!("{prefix}.attention.output"))?,
                intermediate: linear(
                    &format!("{prefix}.intermediate.dense"),
                    config.intermediate_size,
                    hidden,
                )?,
                output: linear(
                    &format!("{prefix}.output.dense"),
                    hidden,
                    config.intermediate_size,
                )?,
                output_norm: norm(&format!("{prefix}.output"))?,
            });
        }
        let max_positions = config.max_position_embeddings;
        Ok(Self {
            hidden,
            heads,
            max_positions,
            eps: config.layer_norm_eps as f32,
            word: floats(
                "embeddings.word_embeddings.weight",
                config.vocab_size * hidden,
            )?,
            position: floats(
                "embeddings.position_embeddings.weight",
                max_positions * hidden,
            )?,
            token_type: floats(
                "embeddings.token_type_embeddings.weight",
                config.type_vocab_size * hidden,
            )?,
            embedding_norm: norm("embeddings")?,
            layers,
        })
    }

    /// One unit-length embedding per text of word-pieces (ids below the vocabulary's size,
    /// at most [`Encoder::max_positions`] a text), in order, on the calling thread.
    pub fn encode(&self, texts: &[&[u32]]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let hidden = self.hidden;
        let total: usize = texts.iter().map(|text| text.len()).sum();
        if let Some(long) = texts.iter().find(|text| text.len() > self.max_positions) {
            return Err(EmbedError::Tokenize(format!(
                "a text of {} word-pieces is longer than the model's {}",
                long.len(),
                self.max_positions
            )));
        }
        SCRATCH.with_borrow_mut(|scratch| {
            let Scratch {
                states,
                qkv,
                context,
                attended,
                intermediate,
                scores,
            } = scratch;
            // The embeddings: word + position + token type 0, then layer norm.
            fit(states, total * hidden);
            let mut row = 0;
            for text in texts {
                for (position, &id) in text.iter().enumerate() {
                    let word = self
                        .word
                        .get(id as usize * hidden..(id as usize + 1) * hidden)
                        .ok_or_else(|| {
                            EmbedError::Tokenize(format!(
                                "word-piece {id} is not in the vocabulary"
                            ))
                        })?;
                    let place = &self.position[position * hidden..(position + 1) * hidden];
                    let kind = &self.token_type[..hidden];
                    let out = &mut states[row * hidden..(row + 1) * hidden];
                    for (((out, w), p), k) in out.iter_mut().zip(word).zip(place).zip(kind) {
                        *out = w + p + k;
                    }
                    row += 1;
                }
            }
            layer_norm(states, hidden, &self.embedding_norm, self.eps);
            let longest = texts.iter().map(|text| text.len()).max().unwrap_or(0);
            fit(scores, longest * longest);
            for layer in &self.layers {
                // Query, key and value of every word-piece.
                linear(qkv, states, &layer.qkv, total, None);
                // Attention within each text, a head at a time.
                fit(context, total * hidden);
                let mut start = 0;
                for text in texts {
                    self.attend(qkv, context, scores, start, text.len());
                    start += text.len();
                }
                // The output product, added to its input, normalised.
                linear(
                    attended,
                    context,
                    &layer.attention_out,
                    total,
                    Some(states.as_slice()),
                );
                layer_norm(attended, hidden, &layer.attention_norm, self.eps);
                // The feed-forward block: GELU product, then back to `hidden`, added to its
                // input, normalised; the result is the next layer's input.
                linear(intermediate, attended, &layer.intermediate, total, None);
                gelu(intermediate);
                linear(
                    states,
                    intermediate,
                    &layer.output,
                    total,
                    Some(attended.as_slice()),
                );
                layer_norm(states, hidden, &layer.output_norm, self.eps);
            }
            // The mean over each text's word-pieces, then unit length (sentence-transformers'
            // Normalize: x / max(‖x‖, 1e-12)).
            let mut out = Vec::with_capacity(texts.len());
            let mut start = 0;
            for text in texts {
                let mut mean = vec![0.0f32; hidden];
                for row in
                    states[start * hidden..(start + text.len()) * hidden].chunks_exact(hidden)
                {
                    for (sum, value) in mean.iter_mut().zip(row) {
                        *sum += value;
                    }
                }
                let count = text.len().max(1) as f32;
                for value in &mut mean {
                    *value /= count;
                }
                let norm = mean.iter().map(|value| value * value).sum::<f32>().sqrt();
                let norm = norm.max(1e-12);
                for value in &mut mean {
                    *value /= norm;
                }
                out.push(mean);
                start += text.len();
            }
            Ok(out)
        })
    }

    /// Attention of one text (word-pieces `start..start + len` of the batch): for each head,
    /// softmax(Q·Kᵀ/√d)·V into the head's columns of `context`.
    fn attend(
        &self,
        qkv: &[f32],
        context: &mut [f32],
        scores: &mut [f32],
        start: usize,
        len: usize,
    ) {
        if len == 0 {
            return;
        }
        let hidden = self.hidden;
        let width = hidden / self.heads;
        let scale = 1.0 / (width as f32).sqrt();
        let qkv_row = 3 * hidden;
        let scores = &mut scores[..len * len];
        for head in 0..self.heads {
            let column = head * width;
            let at = start * qkv_row + column;
            // Scores: Q (len × width) times Kᵀ (width × len), scaled.
            matmul(
                (&mut *scores, Matrix::rows(0, len, len, len)),
                (qkv, Matrix::rows(at, len, width, qkv_row)),
                (qkv, Matrix::columns(at + hidden, width, len, qkv_row)),
                false,
                scale,
            );
            for row in scores.chunks_exact_mut(len) {
                softmax(row);
            }
            // Context: the weights (len × len) times V (len × width).
            matmul(
                (
                    &mut *context,
                    Matrix::rows(start * hidden + column, len, width, hidden),
                ),
                (&*scores, Matrix::rows(0, len, len, len)),
                (qkv, Matrix::rows(at + 2 * hidden, len, width, qkv_row)),
                false,
                1.0,
            );
        }
    }
}

/// `out` holds exactly `len` values (its old values are overwritten by the caller).
fn fit(out: &mut Vec<f32>, len: usize) {
    out.resize(len, 0.0);
}

/// `out = input·Wᵀ + b (+ residual)` for `rows` rows.
fn linear(
    out: &mut Vec<f32>,
    input: &[f32],
    layer: &Linear,
    rows: usize,
    residual: Option<&[f32]>,
) {
    let (n, k) = (layer.outputs, layer.inputs);
    fit(out, rows * n);
    for (index, row) in out.chunks_exact_mut(n).enumerate() {
        row.copy_from_slice(&layer.bias);
        if let Some(residual) = residual {
            for (value, add) in row.iter_mut().zip(&residual[index * n..(index + 1) * n]) {
                *value += add;
            }
        }
    }
    // Wᵀ: element (i, j) is W[j][i], so its columns are W's rows.
    matmul(
        (out, Matrix::rows(0, rows, n, n)),
        (input, Matrix::rows(0, rows, k, k)),
        (&layer.weight, Matrix::columns(0, k, n, k)),
        true,
        1.0,
    );
}

/// Layer norm of each `width`-value row: (x − mean)/√(var + eps)·γ + β, the variance the
/// biased one (PyTorch's).
fn layer_norm(values: &mut [f32], width: usize, norm: &Norm, eps: f32) {
    for row in values.chunks_exact_mut(width) {
        let mean = sum_of(row, |value| value) / width as f32;
        let variance = sum_of(row, |value| (value - mean) * (value - mean)) / width as f32;
        let inverse = 1.0 / (variance + eps).sqrt();
        for ((value, gamma), beta) in row.iter_mut().zip(&norm.gamma).zip(&norm.beta) {
            *value = (*value - mean) * inverse * gamma + beta;
        }
    }
}

/// Lanes of the softmax's and the layer norm's sums: partial sums kept side by side, so
/// the loops vectorise (a single running sum is a chain the compiler must keep in order).
const LANES: usize = 8;

/// The sum of `term` over `values`, in [`LANES`] partial sums.
fn sum_of(values: &[f32], term: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let mut chunks = values.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (lane, value) in lanes.iter_mut().zip(chunk) {
            *lane += term(*value);
        }
    }
    lanes.iter().sum::<f32>()
        + chunks
            .remainder()
            .iter()
            .map(|value| term(*value))
            .sum::<f32>()
}

/// The largest of `values` (−∞ for none), in [`LANES`] partial maxima.
fn max(values: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut chunks = values.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (lane, value) in lanes.iter_mut().zip(chunk) {
            *lane = larger(*lane, *value);
        }
    }
    lanes
        .iter()
        .chain(chunks.remainder())
        .copied()
        .fold(f32::NEG_INFINITY, larger)
}

/// `f32::max` where neither is NaN (and, like it, `max` if `value` is NaN; `max` never is
/// here): a compare and select, which wasm has, where `f32::max`'s NaN rule is a call to
/// libm's `fmaxf` on wasm32 (wasm's own `f32.max` propagates NaN).
fn larger(max: f32, value: f32) -> f32 {
    if value > max { value } else { max }
}

/// Softmax of one row, in place.
fn softmax(row: &mut [f32]) {
    let max = max(row);
    for value in row.iter_mut() {
        *value = exp(*value - max);
    }
    let inverse = 1.0 / sum_of(row, |value| value);
    for value in row.iter_mut() {
        *value *= inverse;
    }
}

/// GELU, erf form: x·(1 + erf(x/√2))/2.
fn gelu(values: &mut [f32]) {
    for value in values.iter_mut() {
        let x = *value;
        *value = 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// eˣ for the softmax's x ≤ 0 (and any x below 88): x = n·ln 2 + r with |r| ≤ ln 2/2, eʳ
/// by Cephes' `expf` polynomial (its last coefficient, 0.500000012, is 0.5 in f32), 2ⁿ
/// from the exponent bits; within 2 ulp of the exact value above e⁻⁸⁷ (checked against
/// f64's in the tests), no branch, so the loop vectorises.
pub(crate) fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2²³: adding it rounds to an integer, kept in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    // n is in [-126, 127]: its bits are the low bits of `shifted`.
    let exponent = (shifted.to_bits() as i32 - ROUND.to_bits() as i32 + 127) as u32;
    e_r * f32::from_bits(exponent << 23)
}

/// erf(x) by the rational approximation of Eigen (and TensorFlow's GELU): an odd degree-13
/// polynomial over an even degree-8 one on [−4, 4], ±1 beyond (to f32 precision); within
/// a few ulp (checked against libm's f64 erf in the tests), no branch.
pub(crate) fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    p = p * x2 + 2.770_681_4e-8;
    p = p * x2 - 2.101_024e-6;
    p = p * x2 - 5.692_506_4e-5;
    p = p * x2 - 7.349_906_3e-4;
    p = p * x2 - 2.954_6e-3;
    p = p * x2 - 1.609_603_3e-2;
    let p = p * x;
    let mut q = -1.456_607_2e-5_f32;
    q = q * x2 - 2.133_740_6e-4;
    q = q * x2 - 1.682_827e-3;
    q = q * x2 - 7.373_329e-3;
    q = q * x2 - 1.426_473_9e-2;
    p / q
}

/// Where a matrix lies in a slice: element (i, j) at `offset + i·row_stride + j·col_stride`.
#[derive(Debug, Clone, Copy)]
struct Matrix {
    offset: usize,
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl Matrix {
    /// `rows × cols` from `offset`, each row's values side by side, rows `stride` apart.
    fn rows(offset: usize, rows: usize, cols: usize, stride: usize) -> Self {
        Self {
            offset,
            rows,
            cols,
            row_stride: stride,
            col_stride: 1,
        }
    }

    /// `rows × cols` from `offset`, each column's values side by side, columns `stride`
    /// apart (the transpose of a row-major matrix).
    fn columns(offset: usize, rows: usize, cols: usize, stride: usize) -> Self {
        Self {
            offset,
            rows,
            cols,
            row_stride: 1,
            col_stride: stride,
        }
    }

    /// Whether every element lies in a slice of `len` values.
    fn fits(self, len: usize) -> bool {
        self.rows == 0
            || self.cols == 0
            || self.offset + (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < len
    }
}

/// `dst = (dst if accumulate) + scale·lhs·rhs`, by gemm on the calling thread.
///
/// Panics when a matrix reaches past its slice or the shapes disagree: both are bugs of
/// this module, and the checks are what make the call below sound.
fn matmul(
    (dst, to): (&mut [f32], Matrix),
    (lhs, left): (&[f32], Matrix),
    (rhs, right): (&[f32], Matrix),
    accumulate: bool,
    scale: f32,
) {
    assert!(left.rows == to.rows && right.cols == to.cols && left.cols == right.rows);
    assert!(to.fits(dst.len()) && left.fits(lhs.len()) && right.fits(rhs.len()));
    if to.rows == 0 || to.cols == 0 {
        return;
    }
    let stride = |value: usize| isize::try_from(value).unwrap_or(isize::MAX);
    // SAFETY: every element gemm reads or writes — (i, j) of dst for i < rows, j < cols,
    // (i, p) of lhs and (p, j) of rhs for p < left.cols — lies inside its slice by the
    // asserts above; dst is borrowed mutably, so it overlaps neither input; gemm only reads
    // dst when `accumulate` is true, and every element of it is initialised f32.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            to.rows,
            to.cols,
            left.cols,
            dst.as_mut_ptr().add(to.offset),
            stride(to.col_stride),
            stride(to.row_stride),
            accumulate,
            lhs.as_ptr().add(left.offset),
            stride(left.col_stride),
            stride(left.row_stride),
            rhs.as_ptr().add(right.offset),
            stride(right.col_stride),
            stride(right.row_stride),
            1.0,
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::{erf, exp};

    #[test]
    fn exp_is_within_two_ulp_of_libm_where_softmax_uses_it() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x <= 10.0 {
            let exact = f64::from(x).exp();
            let got = f64::from(exp(x));
            let ulp = f64::from(f32::EPSILON) * exact;
            worst = worst.max((got - exact).abs() / ulp);
            x += 0.000_731;
        }
        assert!(worst <= 2.0, "{worst} ulp");
        assert_eq!(exp(0.0), 1.0);
        // Far below: the clamp's tiny value, never a NaN or a negative.
        assert!(exp(-1e4) >= 0.0 && exp(-1e4) < 1e-37);
        assert!(exp(f32::NEG_INFINITY) >= 0.0);
    }

    #[test]
    fn erf_is_within_a_few_ulp_of_libm() {
        let mut worst = 0.0f64;
        let mut x = -6.0f32;
        while x <= 6.0 {
            let exact = libm::erf(f64::from(x));
            let got = f64::from(erf(x));
            // Relative to the value, but never finer than an ulp of 1e-3 (erf(0) = 0).
            let ulp = f64::from(f32::EPSILON) * exact.abs().max(1e-3);
            worst = worst.max((got - exact).abs() / ulp);
            x += 0.000_37;
        }
        assert!(worst <= 8.0, "{worst} ulp");
        assert_eq!(erf(0.0), 0.0);
        // Beyond ±4 the clamp's value: ±1 to within an ulp.
        assert!((erf(10.0) - 1.0).abs() <= f32::EPSILON);
        assert!((erf(-10.0) + 1.0).abs() <= f32::EPSILON);
    }
}
