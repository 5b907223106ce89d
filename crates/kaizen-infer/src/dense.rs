//! The f32 linear layers of the encoder models (BERT, Whisper): kaizen's kernel over weights
//! packed at load time on the CPU (`kaizen_kernels::PackedLinear`), candle's product elsewhere.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

#[derive(Debug, Clone)]
pub(crate) enum Dense {
    /// On the CPU: the weights packed for kaizen's kernel, which adds the bias.
    Packed(kaizen_kernels::PackedLinear),
    /// On an accelerator, or weights that are not f32: candle's product.
    Candle(candle_nn::Linear),
}

impl Dense {
    /// `weight`: `(outputs, inputs)`, the checkpoint's layout; `bias`: `outputs` values.
    pub(crate) fn new(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        let (outputs, inputs) = weight.dims2()?;
        if !weight.device().is_cpu() || weight.dtype() != DType::F32 {
            return Ok(Dense::Candle(candle_nn::Linear::new(weight, bias)));
        }
        let values = weight.flatten_all()?.to_vec1::<f32>()?;
        let bias = bias.map(|b| b.to_vec1::<f32>()).transpose()?;
        Ok(Dense::Packed(kaizen_kernels::PackedLinear::new(
            &values,
            bias.as_deref(),
            outputs,
            inputs,
        )))
    }

    /// The checkpoint's projections `vbs` of the same input (each an `(outputs, inputs)`
    /// `weight` and a `bias`), stacked into one product; one projection is a stack of one.
    pub(crate) fn load(vbs: &[VarBuilder], inputs: usize, outputs: usize) -> Result<Self> {
        let parts = vbs
            .iter()
            .map(|vb| {
                Ok((
                    vb.get((outputs, inputs), "weight")?,
                    vb.get(outputs, "bias")?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Self::stacked(parts)
    }

    /// Projections of the same input, each `(weight, bias)`, stacked into one product: their
    /// outputs side by side, in order.
    pub(crate) fn stacked(parts: Vec<(Tensor, Tensor)>) -> Result<Self> {
        let (weights, biases): (Vec<_>, Vec<_>) = parts.into_iter().unzip();
        Self::new(Tensor::cat(&weights, 0)?, Some(Tensor::cat(&biases, 0)?))
    }
}

impl Module for Dense {
    /// `x`: `(…, inputs)` → `(…, outputs)`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Dense::Packed(linear) => {
                let mut dims = x.dims().to_vec();
                let Some(inputs) = dims.pop() else {
                    candle_core::bail!("a linear layer's input has at least one dimension");
                };
                let rows = dims.iter().product::<usize>();
                let y = linear.forward_tensor(&x.reshape((rows, inputs))?)?;
                dims.push(linear.outputs());
                y.reshape(dims)
            }
            Dense::Candle(linear) => linear.forward(x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn the_packed_layer_equals_candles_at_any_rank() {
        let w = Tensor::randn(0f32, 1.0, (24, 10), &Device::Cpu).unwrap();
        let b = Tensor::randn(0f32, 1.0, 24, &Device::Cpu).unwrap();
        let packed = Dense::new(w.clone(), Some(b.clone())).unwrap();
        assert!(matches!(packed, Dense::Packed(_)));
        let candle = candle_nn::Linear::new(w, Some(b));
        for shape in [vec![7, 10], vec![2, 3, 10]] {
            let x = Tensor::randn(0f32, 1.0, shape.as_slice(), &Device::Cpu).unwrap();
            let (got, want) = (packed.forward(&x).unwrap(), candle.forward(&x).unwrap());
            assert_eq!(got.dims(), want.dims());
            let diff = kaizen_kernels::max_abs(&(got - want).unwrap());
            assert!(diff < 1e-4, "{shape:?}: {diff}");
        }
    }
}
