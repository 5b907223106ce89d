//! Attention of one new position over a model's key/value cache: the decoding step of a
//! generation.
//!
//! As matrix products (`q · Kᵀ`, softmax, `· V`) each step is half a dozen tensor operations per
//! layer, and the products copy ("pack") the cached keys for every head before reading them. At
//! a context of 600 tokens that took a third of a step. Here the step reads each cached key and
//! value once, in place, with the heads spread over the thread pool.

/// Where one layer's cache lies: keys and values `(kv_heads, positions, head_dim)`, each head
/// `head_stride` values after the previous one (the cache's capacity times `head_dim`), of which
/// the first `len` positions are filled.
#[derive(Debug, Clone, Copy)]
pub struct CacheLayout {
    pub kv_heads: usize,
    pub head_dim: usize,
    pub head_stride: usize,
    pub len: usize,
}

/// Softmax-weighted values for each of the `q.len() / head_dim` query heads; query head `h`
/// reads key/value head `h / (heads / kv_heads)` (grouped-query attention). `out` gets
/// `(heads, head_dim)`.
pub fn attend_one(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    cache: CacheLayout,
    scale: f32,
    out: &mut [f32],
) {
    let CacheLayout {
        kv_heads,
        head_dim,
        head_stride,
        len,
    } = cache;
    let heads = q.len() / head_dim;
    assert!(
        heads > 0 && heads.is_multiple_of(kv_heads),
        "{heads} heads over {kv_heads}"
    );
    assert_eq!(out.len(), q.len(), "one output per query value");
    let needed = (kv_heads - 1) * head_stride + len * head_dim;
    assert!(
        keys.len() >= needed && values.len() >= needed,
        "the cache holds {len} positions"
    );
    let group = heads / kv_heads;
    let out_ptr = out.as_mut_ptr() as usize;
    candle_core::utils::barrier_pool().execute_chunked(heads, |range| {
        let mut scores = vec![0f32; len];
        for h in range {
            let base = (h / group) * head_stride;
            let query = &q[h * head_dim..(h + 1) * head_dim];
            let mut max = f32::NEG_INFINITY;
            for (t, score) in scores.iter_mut().enumerate() {
                let key = &keys[base + t * head_dim..base + (t + 1) * head_dim];
                *score = dot(query, key) * scale;
                max = max.max(*score);
            }
            let mut total = 0f32;
            for score in scores.iter_mut() {
                *score = (*score - max).exp();
                total += *score;
            }
            // SAFETY: head `h` belongs to exactly one task and owns `out[h * head_dim..][..head_dim]`,
            // which lies within `out` (its length is asserted above), so no two workers write
            // the same values, and nothing else reads `out` until the pool returns.
            let row = unsafe {
                std::slice::from_raw_parts_mut((out_ptr as *mut f32).add(h * head_dim), head_dim)
            };
            row.fill(0.0);
            for (t, &weight) in scores.iter().enumerate() {
                let value = &values[base + t * head_dim..base + (t + 1) * head_dim];
                let weight = weight / total;
                for (o, v) in row.iter_mut().zip(value) {
                    *o += weight * v;
                }
            }
        }
    });
}

/// A dot product in eight independent sums, so that the compiler keeps it in SIMD registers.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0f32; 8];
    let (a8, a_rest) = a.split_at(a.len() / 8 * 8);
    let (b8, b_rest) = b.split_at(a8.len());
    for (x, y) in a8.chunks_exact(8).zip(b8.chunks_exact(8)) {
        for i in 0..8 {
            sums[i] += x[i] * y[i];
        }
    }
    let tail: f32 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
    sums.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::max_abs;
    use candle_core::{Device, Tensor};

    #[test]
    fn one_position_attends_as_the_matrix_products_do() {
        // 6 query heads over 2 key/value heads of 12 values; a cache of capacity 20 holding 13.
        let (heads, kv_heads, head_dim, capacity, len) = (6, 2, 12, 20, 13);
        let dev = Device::Cpu;
        let q = Tensor::randn(0f32, 1.0, (heads, head_dim), &dev).unwrap();
        let k = Tensor::randn(0f32, 1.0, (kv_heads, capacity, head_dim), &dev).unwrap();
        let v = Tensor::randn(0f32, 1.0, (kv_heads, capacity, head_dim), &dev).unwrap();
        let scale = 1.0 / (head_dim as f32).sqrt();

        let mut out = vec![0f32; heads * head_dim];
        let cache = CacheLayout {
            kv_heads,
            head_dim,
            head_stride: capacity * head_dim,
            len,
        };
        attend_one(
            &q.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            &k.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            &v.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            cache,
            scale,
            &mut out,
        );

        // The same with tensors: each key/value head answers its group of query heads.
        let group = heads / kv_heads;
        let k = k.narrow(1, 0, len).unwrap();
        let v = v.narrow(1, 0, len).unwrap();
        let q = q.reshape((kv_heads, group, head_dim)).unwrap();
        let att = (q.matmul(&k.t().unwrap()).unwrap() * scale as f64).unwrap();
        let exp = att
            .broadcast_sub(&att.max_keepdim(2).unwrap())
            .unwrap()
            .exp()
            .unwrap();
        let att = exp.broadcast_div(&exp.sum_keepdim(2).unwrap()).unwrap();
        let expected = att.matmul(&v).unwrap().reshape((heads, head_dim)).unwrap();
        let got = Tensor::from_vec(out, (heads, head_dim), &dev).unwrap();
        let diff = max_abs(&(got - expected).unwrap());
        assert!(diff < 1e-5, "outputs differ by {diff}");
    }

    #[test]
    fn dot_products_of_any_length() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..19).map(|i| 1.0 - i as f32 * 0.1).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - plain).abs() < 1e-4);
    }
}
