//! f32 linear layers (`y = x · Wᵀ + b`) with the weights packed once, at load time, for the
//! kernel that reads them: the encoder models' projections.
//!
//! A general matrix product (candle's, through the `gemm` crate) lays out both operands for its
//! micro-kernel on every call, or reads the weights in strides when they are not packed, and
//! blocks the rows by 16: a short sentence of 11 tokens wastes a third of each block. A model's
//! weights never change, so here each one is stored as it is read: panels of 16 outputs, each
//! panel the `inputs × 16` block, contiguous. The kernel keeps up to 6 rows × 16 outputs of sums
//! in registers and starts them from the bias; each panel is read from memory once per 48 rows
//! (its later row blocks find it in L1), in order, with the next lines prefetched. onnxruntime's
//! MLAS does the same with its pre-packed weights. For one short sentence the weights (42 MB
//! for MiniLM, more than the L3) come from memory on every call, so the order and the prefetch
//! matter as much as the arithmetic.

use candle_core::{Storage, Tensor};

/// Outputs per panel: two AVX registers.
const PANEL: usize = 16;
/// Rows whose sums the kernel keeps in registers at once (6 × 2 accumulators of 16 AVX).
const ROW_BLOCK: usize = 6;
/// Rows per pass over a task's panels: 48 rows of 1536 inputs are 288 KiB, within a core's
/// L2 cache.
const CHUNK_ROWS: usize = 48;
/// How far ahead the kernel prefetches the weights, in steps of one 64-byte line (16 weights):
/// 4 KiB. Without it, a short sentence's products waited on memory for a third of their time
/// (2.2 ms instead of 3.5 for MiniLM's 24 products on 2 cores).
const PREFETCH_STEPS: usize = 64;
/// Below this many multiply-adds a product runs on the calling thread: waking the pool would
/// cost more than it saves.
const PARALLEL_WORK: usize = 1 << 16;

/// One input's weights for a panel's 16 outputs: a cache line, aligned as one so that the
/// kernel's loads and prefetches never straddle two.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; PANEL]);

impl Line {
    fn values(lines: &[Line]) -> &[f32] {
        // SAFETY: `Line` is 16 f32 with no padding (64 bytes, aligned to 64), so `n` lines are
        // `16 n` consecutive, initialized f32.
        unsafe { std::slice::from_raw_parts(lines.as_ptr().cast::<f32>(), lines.len() * PANEL) }
    }
}

/// A linear layer's weights in panels, with its bias.
#[derive(Debug, Clone)]
pub struct PackedLinear {
    inputs: usize,
    outputs: usize,
    /// `ceil(outputs / 16)` panels of `inputs` lines; missing outputs are zero.
    panels: Vec<Line>,
    /// `panels × 16` values; missing outputs are zero.
    bias: Vec<f32>,
}

impl PackedLinear {
    /// `weight`: `outputs × inputs`, row after row (the checkpoint's `nn.Linear` layout);
    /// `bias`: `outputs` values, or none (zero).
    pub fn new(weight: &[f32], bias: Option<&[f32]>, outputs: usize, inputs: usize) -> Self {
        assert_eq!(
            weight.len(),
            outputs * inputs,
            "{outputs} × {inputs} weights"
        );
        let panel_count = outputs.div_ceil(PANEL);
        let mut panels = vec![Line([0f32; PANEL]); panel_count * inputs];
        for (o, row) in weight.chunks_exact(inputs).enumerate() {
            let panel = &mut panels[(o / PANEL) * inputs..];
            for (line, &w) in panel.iter_mut().zip(row) {
                line.0[o % PANEL] = w;
            }
        }
        let mut padded_bias = vec![0f32; panel_count * PANEL];
        if let Some(bias) = bias {
            assert_eq!(bias.len(), outputs, "{outputs} biases");
            padded_bias[..outputs].copy_from_slice(bias);
        }
        PackedLinear {
            inputs,
            outputs,
            panels,
            bias: padded_bias,
        }
    }

    pub fn inputs(&self) -> usize {
        self.inputs
    }

    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// `x`: an f32 tensor on the CPU, `(rows, inputs)` → `(rows, outputs)`.
    pub fn forward_tensor(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (rows, inputs) = x.dims2()?;
        if inputs != self.inputs {
            candle_core::bail!("a linear layer of {} inputs got {inputs}", self.inputs);
        }
        let x = x.contiguous()?;
        let mut out = vec![0f32; rows * self.outputs];
        {
            let (storage, layout) = x.storage_and_layout();
            let Storage::Cpu(cpu) = &*storage else {
                candle_core::bail!("packed linear layers run on the CPU");
            };
            let values = cpu.as_slice::<f32>()?;
            let Some((start, end)) = layout.contiguous_offsets() else {
                candle_core::bail!("a contiguous tensor has contiguous offsets");
            };
            self.forward(&values[start..end], &mut out);
        }
        Tensor::from_vec(out, (rows, self.outputs), x.device())
    }

    /// `x`: rows of `inputs` values; `out` gets the same number of rows of `outputs` values.
    pub fn forward(&self, x: &[f32], out: &mut [f32]) {
        assert!(
            x.len().is_multiple_of(self.inputs),
            "rows of {} values",
            self.inputs
        );
        let rows = x.len() / self.inputs;
        assert_eq!(out.len(), rows * self.outputs, "{rows} rows of outputs");
        let panel_count = self.outputs.div_ceil(PANEL);
        let out_ptr = out.as_mut_ptr() as usize;
        let run = |panels: std::ops::Range<usize>| {
            // Rows in chunks whose inputs stay in the core's cache; within a chunk, each panel
            // is read from memory once and then from L1 for the chunk's other row blocks.
            for chunk_start in (0..rows).step_by(CHUNK_ROWS) {
                let chunk_end = rows.min(chunk_start + CHUNK_ROWS);
                for panel in panels.clone() {
                    for first_row in (chunk_start..chunk_end).step_by(ROW_BLOCK) {
                        let block_rows = ROW_BLOCK.min(chunk_end - first_row);
                        // SAFETY: the tasks split the panels, so each output element (row,
                        // panel column) is written by exactly one of them, and `out` holds
                        // `rows × outputs` values (asserted above).
                        unsafe {
                            self.block(
                                x,
                                first_row,
                                block_rows,
                                panel,
                                (out_ptr as *mut f32).add(first_row * self.outputs),
                            )
                        };
                    }
                }
            }
        };
        if rows * self.inputs * self.outputs < PARALLEL_WORK {
            run(0..panel_count);
        } else {
            candle_core::utils::barrier_pool().execute_chunked(panel_count, run);
        }
    }

    /// Rows `first_row..first_row + block_rows` of the product, panel `panel`'s outputs, written
    /// from `out` on (the block's first row, in rows of `outputs`).
    ///
    /// # Safety
    /// `out` must be valid for the block's rows of `outputs` values, and no other thread may
    /// touch the panel's columns of those rows.
    unsafe fn block(
        &self,
        x: &[f32],
        first_row: usize,
        block_rows: usize,
        panel: usize,
        out: *mut f32,
    ) {
        let k = self.inputs;
        let x = &x[first_row * k..(first_row + block_rows) * k];
        let weights = Line::values(&self.panels[panel * k..(panel + 1) * k]);
        let bias = &self.bias[panel * PANEL..(panel + 1) * PANEL];
        let mut sums = [[0f32; PANEL]; ROW_BLOCK];
        if simd() {
            // SAFETY: `simd()` checked the instructions; the slices have the lengths the
            // kernel reads (`block_rows × k`, `k × 16`, 16).
            unsafe {
                match block_rows {
                    1 => block_avx::<1>(x, weights, bias, k, &mut sums),
                    2 => block_avx::<2>(x, weights, bias, k, &mut sums),
                    3 => block_avx::<3>(x, weights, bias, k, &mut sums),
                    4 => block_avx::<4>(x, weights, bias, k, &mut sums),
                    5 => block_avx::<5>(x, weights, bias, k, &mut sums),
                    _ => block_avx::<6>(x, weights, bias, k, &mut sums),
                }
            }
        } else {
            block_plain(x, weights, bias, k, block_rows, &mut sums);
        }
        let first_col = panel * PANEL;
        let cols = PANEL.min(self.outputs - first_col);
        for (r, row) in sums.iter().take(block_rows).enumerate() {
            // SAFETY: the caller's promise: this row's panel columns are ours and in bounds.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    row.as_ptr(),
                    out.add(r * self.outputs + first_col),
                    cols,
                )
            };
        }
    }
}

/// Whether this CPU runs the AVX2/FMA kernel.
fn simd() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `R` rows of `x` (of `k` values) times one panel, plus the bias, into `sums`.
///
/// # Safety
/// The CPU must have AVX2 and FMA; `x` must hold `R × k` values and `weights` `k × 16`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_avx<const R: usize>(
    x: &[f32],
    weights: &[f32],
    bias: &[f32],
    k: usize,
    sums: &mut [[f32; PANEL]; ROW_BLOCK],
) {
    use std::arch::x86_64::*;
    debug_assert!(x.len() >= R * k && weights.len() >= k * PANEL && bias.len() >= PANEL);
    // SAFETY (every load below): indices stay within the lengths the caller promised.
    unsafe {
        let b0 = _mm256_loadu_ps(bias.as_ptr());
        let b1 = _mm256_loadu_ps(bias.as_ptr().add(8));
        let mut acc = [[b0, b1]; R];
        let w = weights.as_ptr();
        let xp = x.as_ptr();
        for i in 0..k {
            // Each step reads one line of the panel; ask for the line `PREFETCH_STEPS` ahead.
            // Past the panel's end that is the next panel, or nothing (a prefetch never faults).
            _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add((i + PREFETCH_STEPS) * PANEL) as *const i8);
            let w0 = _mm256_loadu_ps(w.add(i * PANEL));
            let w1 = _mm256_loadu_ps(w.add(i * PANEL + 8));
            for (r, sum) in acc.iter_mut().enumerate() {
                let a = _mm256_broadcast_ss(&*xp.add(r * k + i));
                sum[0] = _mm256_fmadd_ps(a, w0, sum[0]);
                sum[1] = _mm256_fmadd_ps(a, w1, sum[1]);
            }
        }
        for (row, sum) in sums.iter_mut().zip(&acc) {
            _mm256_storeu_ps(row.as_mut_ptr(), sum[0]);
            _mm256_storeu_ps(row.as_mut_ptr().add(8), sum[1]);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn block_avx<const R: usize>(
    _x: &[f32],
    _weights: &[f32],
    _bias: &[f32],
    _k: usize,
    _sums: &mut [[f32; PANEL]; ROW_BLOCK],
) {
    unreachable!("only called where `simd()`")
}

/// The same block in plain code, for CPUs without AVX2/FMA.
fn block_plain(
    x: &[f32],
    weights: &[f32],
    bias: &[f32],
    k: usize,
    rows: usize,
    sums: &mut [[f32; PANEL]; ROW_BLOCK],
) {
    for (r, sum) in sums.iter_mut().take(rows).enumerate() {
        sum.copy_from_slice(&bias[..PANEL]);
        for (i, w) in weights.chunks_exact(PANEL).take(k).enumerate() {
            let a = x[r * k + i];
            for (s, w) in sum.iter_mut().zip(w) {
                *s = a.mul_add(*w, *s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 - 1001.0) / 1001.0)
            .collect()
    }

    fn reference(x: &[f32], w: &[f32], b: &[f32], outputs: usize, inputs: usize) -> Vec<f32> {
        let rows = x.len() / inputs;
        let mut out = vec![0f32; rows * outputs];
        for r in 0..rows {
            for o in 0..outputs {
                let dot: f64 = (0..inputs)
                    .map(|i| f64::from(x[r * inputs + i]) * f64::from(w[o * inputs + i]))
                    .sum();
                out[r * outputs + o] = (dot + f64::from(b[o])) as f32;
            }
        }
        out
    }

    #[test]
    fn products_equal_the_plain_definition_at_every_shape() {
        // Partial panels (outputs not a multiple of 16), partial row blocks (rows not a multiple
        // of 6), and products on both sides of the threshold for the thread pool.
        for &(rows, outputs, inputs) in &[
            (1, 16, 8),
            (5, 37, 19),
            (11, 384, 384),
            (13, 100, 64),
            (64, 1536, 384),
        ] {
            let x = values(rows * inputs, 1);
            let w = values(outputs * inputs, 2);
            let b = values(outputs, 3);
            let linear = PackedLinear::new(&w, Some(&b), outputs, inputs);
            assert_eq!((linear.inputs(), linear.outputs()), (inputs, outputs));
            let mut out = vec![f32::NAN; rows * outputs];
            linear.forward(&x, &mut out);
            let want = reference(&x, &w, &b, outputs, inputs);
            for (got, want) in out.iter().zip(&want) {
                assert!(
                    (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                    "{rows}×{outputs}×{inputs}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn the_plain_kernel_equals_the_simd_one() {
        let (k, rows) = (40, 5);
        let x = values(rows * k, 4);
        let w = values(PANEL * k, 5);
        let linear = PackedLinear::new(&w, None, PANEL, k);
        let mut plain = [[0f32; PANEL]; ROW_BLOCK];
        block_plain(
            &x,
            Line::values(&linear.panels),
            &linear.bias,
            k,
            rows,
            &mut plain,
        );
        let mut out = vec![0f32; rows * PANEL];
        linear.forward(&x, &mut out);
        for (r, row) in plain.iter().take(rows).enumerate() {
            for (c, v) in row.iter().enumerate() {
                let got = out[r * PANEL + c];
                assert!((got - v).abs() <= 1e-5 * v.abs().max(1.0), "{got} vs {v}");
            }
        }
    }
}
