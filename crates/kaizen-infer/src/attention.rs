//! Attention of one new position, for the decoding steps of the llama and Whisper decoders.

use candle_core::{CpuStorage, Result, Storage, Tensor};

/// One position's attention over cached keys and values, read in place
/// (`kaizen_kernels::attend_one`): `q` is `(heads, 1, head_dim)`, `k` and `v` `(kv_heads, len,
/// head_dim)` with each position's values contiguous (an attention cache's filled part, or a
/// contiguous tensor).
/// `None` where the tensors are not f32 on the CPU in the cache's layout; the caller then takes
/// the matrix products.
pub(crate) fn attend_in_place(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
) -> Option<Result<Tensor>> {
    let (kv_heads, len, head_dim) = k.dims3().ok()?;
    let (k_storage, k_layout) = k.storage_and_layout();
    let (v_storage, v_layout) = v.storage_and_layout();
    let (Storage::Cpu(CpuStorage::F32(keys)), Storage::Cpu(CpuStorage::F32(values))) =
        (&*k_storage, &*v_storage)
    else {
        return None;
    };
    let stride = k_layout.stride();
    if v.dims() != k.dims()
        || v_layout.stride() != stride
        || stride[2] != 1
        || stride[1] != head_dim
    {
        return None;
    }
    let run = || {
        let query: Vec<f32> = q.flatten_all()?.to_vec1()?;
        let mut out = vec![0f32; query.len()];
        let cache = kaizen_kernels::CacheLayout {
            kv_heads,
            head_dim,
            head_stride: stride[0],
            len,
        };
        kaizen_kernels::attend_one(
            &query,
            &keys[k_layout.start_offset()..],
            &values[v_layout.start_offset()..],
            cache,
            scale as f32,
            &mut out,
        );
        let width = out.len();
        Tensor::from_vec(out, (1, width), q.device())
    };
    Some(run())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::kv_cache::KvCache;
    use kaizen_kernels::max_abs;

    #[test]
    fn attention_in_place_reads_the_cache_as_the_products_do() {
        let dev = Device::Cpu;
        let (kv_heads, n_rep, head_dim) = (2, 3, 8);
        let mut cache = KvCache::new(1, 16);
        let fill = |len| Tensor::randn(0f32, 1.0, (kv_heads, len, head_dim), &dev).unwrap();
        cache.append(&fill(5), &fill(5)).unwrap();
        let (k, v) = cache.append(&fill(1), &fill(1)).unwrap();
        let q = Tensor::randn(0f32, 1.0, (kv_heads * n_rep, 1, head_dim), &dev).unwrap();
        let scale = 0.3;
        let got = attend_in_place(&q, &k, &v, scale).unwrap().unwrap();
        let grouped = q.reshape((kv_heads, n_rep, head_dim)).unwrap();
        let att = (grouped.matmul(&k.t().unwrap()).unwrap() * scale).unwrap();
        let att = candle_nn::ops::softmax_last_dim(&att).unwrap();
        let expected = att
            .matmul(&v)
            .unwrap()
            .reshape((1, kv_heads * n_rep * head_dim))
            .unwrap();
        assert!(max_abs(&(got - expected).unwrap()) < 1e-5);
        // Not the cache's layout (a transposed view): the caller takes the products.
        let t = k.transpose(1, 2).unwrap();
        assert!(attend_in_place(&q, &t, &t, scale).is_none());
    }
}
