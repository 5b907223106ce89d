//! CPU kernels that candle lacks or has only in scalar form, for `kaizen-infer`'s models.
//!
//! A crate of its own so that it is optimized in every build profile (see the workspace's
//! `[profile.dev.package.kaizen-kernels]`): unoptimized SIMD code is slower than the scalar
//! code it replaces, and the tests generate with these kernels.

pub mod gelu;
pub mod q4_1;

pub use gelu::gelu_erf;
pub use q4_1::Q4_1Matrix;

/// The largest absolute value of `t`: how far apart two results are, in tests.
#[doc(hidden)]
pub fn max_abs(t: &candle_core::Tensor) -> f32 {
    t.abs()
        .and_then(|a| a.max_all())
        .and_then(|m| m.to_scalar::<f32>())
        .expect("an f32 tensor")
}
