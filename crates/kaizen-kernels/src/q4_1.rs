//! Q4_1 weight matrices times one row of activations, with AVX2: the local LLM's decoding step.
//!
//! Decoding one token reads every weight once, so its speed is the memory bandwidth divided by
//! the model's bytes. candle multiplies Q4_1 (GGUF's 4-bit type with a scale and a minimum per
//! block of 32, 20 bytes) with scalar code only, so kaizen used to requantize such models to
//! Q8_0, which has SIMD kernels but takes 34 bytes per block: 1.7 times the bytes per token.
//! Here the Q4_1 blocks are kept as the file stores them and multiplied as llama.cpp does: the
//! row is quantized to 8 bits per block of 32 (Q8_1: a scale and the scaled sum), and each
//! block's integer dot product is one `maddubs` of 32 unsigned nibbles by 32 signed bytes.
//!
//! A block `(d, m, q[32])` holds the values `d · q[j] + m`, with the low nibbles of its 16
//! bytes for `j < 16` and the high nibbles for the rest. Against a row block `(dₓ, sₓ = dₓ ·
//! Σ qₓ, qₓ[32])` its dot product is `d · dₓ · Σ q[j] qₓ[j] + m · sₓ`.

use candle_core::quantized::{GgmlDType, QTensor};

/// Values per block.
const BLOCK: usize = 32;
/// Bytes per Q4_1 block: two f16 (scale, minimum) and 16 bytes of nibbles.
const BLOCK_BYTES: usize = 20;
/// Matrix rows per task of the thread pool.
const ROWS_PER_TASK: usize = 16;

/// A row block quantized to 8 bits.
#[derive(Clone, Copy)]
#[repr(C)]
struct RowBlock {
    qs: [i8; BLOCK],
    d: f32,
    /// `d · Σ qs`.
    s: f32,
}

/// Whether this CPU runs the SIMD kernel (AVX2, FMA and F16C: every x86 CPU since 2013).
pub fn supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A Q4_1 matrix of `rows × cols` in GGUF's block layout, row after row.
#[derive(Debug)]
pub struct Q4_1Matrix {
    rows: usize,
    cols: usize,
    data: Vec<u8>,
}

impl Q4_1Matrix {
    /// The matrix of `tensor`, or `None` when it is not a 2-D Q4_1 tensor on the CPU or the CPU
    /// lacks the kernel's instructions.
    pub fn from_qtensor(tensor: &QTensor) -> candle_core::Result<Option<Self>> {
        // A GPU's tensors stay there: candle multiplies them with its own kernels.
        if tensor.dtype() != GgmlDType::Q4_1 || !tensor.device().is_cpu() || !supported() {
            return Ok(None);
        }
        let Ok((rows, cols)) = tensor.shape().dims2() else {
            return Ok(None);
        };
        let data = tensor.data()?.into_owned();
        if !cols.is_multiple_of(BLOCK) || data.len() != rows * cols / BLOCK * BLOCK_BYTES {
            return Ok(None);
        }
        Ok(Some(Q4_1Matrix { rows, cols, data }))
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// `y = W · x`: `x` has `cols` values, `y` gets `rows`.
    pub fn gemv(&self, x: &[f32], y: &mut [f32]) {
        assert_eq!(x.len(), self.cols, "a row of {} values", self.cols);
        assert_eq!(y.len(), self.rows, "an output of {} values", self.rows);
        let row = quantize_row(x);
        let row_bytes = self.cols / BLOCK * BLOCK_BYTES;
        let tasks = self.rows.div_ceil(ROWS_PER_TASK);
        let y_ptr = y.as_mut_ptr() as usize;
        candle_core::utils::barrier_pool().execute_chunked(tasks, |range| {
            for task in range {
                let first = task * ROWS_PER_TASK;
                let last = self.rows.min(first + ROWS_PER_TASK);
                for r in first..last {
                    let weights = &self.data[r * row_bytes..(r + 1) * row_bytes];
                    // SAFETY: the kernel's instructions were checked when the matrix was made
                    // (`supported`), and both slices hold whole blocks of the same count.
                    let value = unsafe { dot(weights, &row) };
                    // SAFETY: each output index belongs to exactly one task, and `y` has
                    // `rows` values (asserted above), so no two workers write the same one.
                    unsafe { *(y_ptr as *mut f32).add(r) = value };
                }
            }
        });
    }
}

/// `x` in blocks of 32 quantized to 8 bits each (ggml's Q8_1).
fn quantize_row(x: &[f32]) -> Vec<RowBlock> {
    x.chunks_exact(BLOCK)
        .map(|values| {
            let amax = values.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let inverse = if d > 0.0 { 1.0 / d } else { 0.0 };
            let mut qs = [0i8; BLOCK];
            let mut sum = 0i32;
            for (q, v) in qs.iter_mut().zip(values) {
                *q = (v * inverse).round() as i8;
                sum += i32::from(*q);
            }
            RowBlock {
                qs,
                d,
                s: d * sum as f32,
            }
        })
        .collect()
}

/// One weight row (whole Q4_1 blocks) times the quantized row.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C, and `weights` must hold `row.len()` blocks.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot(weights: &[u8], row: &[RowBlock]) -> f32 {
    use std::arch::x86_64::*;
    debug_assert_eq!(weights.len(), row.len() * BLOCK_BYTES);
    let low_nibbles = _mm_set1_epi8(0x0F);
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm256_setzero_ps();
    let mut offset = 0f32;
    for (i, x) in row.iter().enumerate() {
        // SAFETY: block `i` lies within `weights` (the caller's promise); unaligned loads.
        unsafe {
            let block = weights.as_ptr().add(i * BLOCK_BYTES);
            let scales = _mm_cvtph_ps(_mm_cvtsi32_si128(std::ptr::read_unaligned(
                block as *const i32,
            )));
            let d = _mm_cvtss_f32(scales);
            let m = _mm_cvtss_f32(_mm_movehdup_ps(scales));
            let packed = _mm_loadu_si128(block.add(4) as *const __m128i);
            let low = _mm_and_si128(packed, low_nibbles);
            let high = _mm_and_si128(_mm_srli_epi16(packed, 4), low_nibbles);
            let q = _mm256_set_m128i(high, low);
            let qx = _mm256_loadu_si256(x.qs.as_ptr() as *const __m256i);
            // 15 · 127 · 2 fits an i16: maddubs never saturates here.
            let products = _mm256_madd_epi16(_mm256_maddubs_epi16(q, qx), ones);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * x.d), _mm256_cvtepi32_ps(products), acc);
            offset += m * x.s;
        }
    }
    let half = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    let quarter = _mm_add_ps(half, _mm_movehl_ps(half, half));
    let one = _mm_add_ss(quarter, _mm_movehdup_ps(quarter));
    _mm_cvtss_f32(one) + offset
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn dot(_weights: &[u8], _row: &[RowBlock]) -> f32 {
    unreachable!("Q4_1Matrix is only made where `supported()`")
}

/// The same product in plain code: what the SIMD kernel must equal.
#[cfg(test)]
fn dot_scalar(weights: &[u8], row: &[RowBlock]) -> f32 {
    let mut total = 0f32;
    for (block, x) in weights.chunks_exact(BLOCK_BYTES).zip(row) {
        let half = |at: usize| f16_to_f32(u16::from_le_bytes([block[at], block[at + 1]]));
        let (d, m) = (half(0), half(2));
        let mut integer = 0i32;
        for j in 0..BLOCK / 2 {
            integer += i32::from(block[4 + j] & 0x0F) * i32::from(x.qs[j]);
            integer += i32::from(block[4 + j] >> 4) * i32::from(x.qs[j + BLOCK / 2]);
        }
        total += d * x.d * integer as f32 + m * x.s;
    }
    total
}

/// An IEEE half-precision number's value (finite ones).
#[cfg(test)]
fn f16_to_f32(bits: u16) -> f32 {
    let exponent = i32::from((bits >> 10) & 0x1F);
    let fraction = f32::from(bits & 0x3FF);
    let magnitude = if exponent == 0 {
        fraction * 2f32.powi(-24)
    } else {
        (1.0 + fraction / 1024.0) * 2f32.powi(exponent - 15)
    };
    if bits >> 15 == 1 {
        -magnitude
    } else {
        magnitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn matrix(rows: usize, cols: usize) -> (QTensor, Tensor) {
        let w = Tensor::randn(0f32, 0.5, (rows, cols), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q4_1).unwrap();
        let dequantized = q.dequantize(&Device::Cpu).unwrap();
        (q, dequantized)
    }

    #[test]
    fn the_product_matches_the_dequantized_matrix() {
        if !supported() {
            return;
        }
        // 37 rows: the last task of the pool gets a partial group.
        let (q, w) = matrix(37, 96);
        let m = Q4_1Matrix::from_qtensor(&q).unwrap().unwrap();
        assert_eq!((m.rows(), m.cols()), (37, 96));
        let x: Vec<f32> = (0..96).map(|i| ((i * 7 % 13) as f32 - 6.0) / 3.0).collect();
        let mut y = vec![0f32; 37];
        m.gemv(&x, &mut y);
        let exact: Vec<f32> = w
            .matmul(
                &Tensor::new(x.as_slice(), &Device::Cpu)
                    .unwrap()
                    .unsqueeze(1)
                    .unwrap(),
            )
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let scale = exact.iter().fold(0f32, |a, v| a.max(v.abs()));
        for (got, want) in y.iter().zip(&exact) {
            // Only the row's 8-bit quantization separates the two.
            assert!((got - want).abs() < 0.02 * scale, "{got} vs {want}");
        }
        // The SIMD kernel computes what the plain code does.
        let row = quantize_row(&x);
        let row_bytes = 96 / BLOCK * BLOCK_BYTES;
        for (r, got) in y.iter().enumerate() {
            let plain = dot_scalar(&m.data[r * row_bytes..(r + 1) * row_bytes], &row);
            assert!(
                (got - plain).abs() <= 1e-5 * plain.abs().max(1.0),
                "{got} vs {plain}"
            );
        }
    }

    #[test]
    fn only_two_dimensional_q4_1_matrices_are_taken() {
        let w = Tensor::randn(0f32, 1.0, (4, 64), &Device::Cpu).unwrap();
        let q8 = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        assert!(Q4_1Matrix::from_qtensor(&q8).unwrap().is_none());
        let zero = quantize_row(&[0.0; BLOCK]);
        assert_eq!((zero[0].d, zero[0].s), (0.0, 0.0));
    }
}
