//! CPU kernels that candle lacks or has only in scalar form, for `kaizen-infer`'s models: Q4_1
//! weights times a row, linear layers over pre-packed f32 weights, one position's attention over
//! a cache, the exact GELU.
//!
//! A crate of its own so that it is optimized in every build profile (see the workspace's
//! `[profile.dev.package.kaizen-kernels]`): unoptimized SIMD code is slower than the scalar
//! code it replaces, and the tests generate with these kernels.

pub mod attention;
pub mod gelu;
pub mod linear;
pub mod q4_1;

pub use attention::{CacheLayout, attend_one};
pub use gelu::gelu_erf;
pub use linear::PackedLinear;
pub use q4_1::Q4_1Matrix;

/// Runs `work` on a worker of rayon's global pool and waits for it.
///
/// candle's f32 matrix products fork onto that pool. Called from a thread outside it (a tokio
/// blocking thread, the CLI's main thread), every product is a job injected into the pool and a
/// wait for it: two wake-ups across threads per product, which took a third of the time of a
/// short sentence's embedding. From a worker, the products fork and join in place.
pub fn on_thread_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| work())
}

/// The largest absolute value of `t`: how far apart two results are, in tests.
#[doc(hidden)]
pub fn max_abs(t: &candle_core::Tensor) -> f32 {
    t.abs()
        .and_then(|a| a.max_all())
        .and_then(|m| m.to_scalar::<f32>())
        .expect("an f32 tensor")
}
