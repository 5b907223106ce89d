//! Audio for speech models: WAV files (8-, 16-, 24- and 32-bit integer or 32-bit float PCM,
//! any number of channels, any rate) read with `hound`, mixed down to mono and resampled to
//! Whisper's 16 kHz with `rubato`'s FFT resampler; and the mel filterbank of the log-mel
//! spectrogram, librosa's `filters.mel` (Slaney's mel scale and area normalization), which
//! OpenAI's Whisper ships precomputed.

use std::path::Path;

use rubato::{FftFixedIn, Resampler};

use crate::error::{InferError, Result};

/// The rate Whisper hears, in samples per second.
pub const SAMPLE_RATE: u32 = 16_000;

/// Mono samples in [-1, 1] at [`SAMPLE_RATE`], and what the file held.
#[derive(Debug, Clone)]
pub struct Audio {
    pub samples: Vec<f32>,
    /// The file's own rate and channel count, before mixing and resampling.
    pub source_rate: u32,
    pub source_channels: u16,
}

impl Audio {
    /// The length in seconds.
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / SAMPLE_RATE as f64
    }
}

/// Reads a WAV file.
pub fn read_wav_file(path: &Path) -> Result<Audio> {
    let bytes = std::fs::read(path).map_err(|source| InferError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    decode_wav(&bytes).map_err(|e| match e {
        InferError::InvalidInput(message) => {
            InferError::InvalidInput(format!("`{}`: {message}", path.display()))
        }
        other => other,
    })
}

/// Decodes the bytes of a WAV file to 16 kHz mono.
pub fn decode_wav(bytes: &[u8]) -> Result<Audio> {
    if bytes.is_empty() {
        return Err(InferError::invalid("the audio is empty (0 bytes)"));
    }
    let mut reader = hound::WavReader::new(std::io::Cursor::new(bytes)).map_err(not_wav)?;
    let spec = reader.spec();
    if spec.channels == 0 || spec.sample_rate == 0 {
        return Err(InferError::invalid(format!(
            "the WAV header says {} channels at {} Hz",
            spec.channels, spec.sample_rate
        )));
    }
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => {
            if spec.bits_per_sample != 32 {
                return Err(InferError::invalid(format!(
                    "{}-bit float WAV is not supported (32-bit float and 8- to 32-bit integer \
                     PCM are)",
                    spec.bits_per_sample
                )));
            }
            reader
                .samples::<f32>()
                .collect::<std::result::Result<_, _>>()
                .map_err(bad_samples)?
        }
        hound::SampleFormat::Int => {
            let bits = spec.bits_per_sample;
            if !(8..=32).contains(&bits) {
                return Err(InferError::invalid(format!(
                    "{bits}-bit integer WAV is not supported"
                )));
            }
            let scale = 1.0 / (1u64 << (bits - 1)) as f64;
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| (v as f64 * scale) as f32))
                .collect::<std::result::Result<_, _>>()
                .map_err(bad_samples)?
        }
    };
    let channels = spec.channels as usize;
    let mono: Vec<f32> = if channels == 1 {
        interleaved
    } else {
        interleaved
            .chunks_exact(channels)
            .map(|frame| frame.iter().sum::<f32>() / channels as f32)
            .collect()
    };
    if mono.is_empty() {
        return Err(InferError::invalid(
            "the audio is empty: the WAV file holds no samples",
        ));
    }
    if mono.iter().any(|s| !s.is_finite()) {
        return Err(InferError::invalid(
            "the WAV file holds samples that are not finite numbers",
        ));
    }
    let samples = resample(&mono, spec.sample_rate, SAMPLE_RATE)?;
    Ok(Audio {
        samples,
        source_rate: spec.sample_rate,
        source_channels: spec.channels,
    })
}

fn not_wav(e: hound::Error) -> InferError {
    match e {
        hound::Error::IoError(e) if is_short_read(&e) => {
            InferError::invalid("the WAV file is truncated: it ends inside its header")
        }
        hound::Error::FormatError(reason) => InferError::invalid(format!(
            "the audio is not a WAV file ({reason}); send RIFF/WAVE PCM audio"
        )),
        hound::Error::Unsupported => InferError::invalid(
            "this WAV encoding is not supported (compressed WAV such as ADPCM or A-law); \
             convert it to PCM, e.g. `ffmpeg -i in.wav -c:a pcm_s16le out.wav`",
        ),
        other => InferError::invalid(format!("the audio is not a readable WAV file: {other}")),
    }
}

/// hound reports a file that ends early as `UnexpectedEof` or as its own "Failed to read
/// enough bytes."
fn is_short_read(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::UnexpectedEof || e.to_string().contains("enough bytes")
}

fn bad_samples(e: hound::Error) -> InferError {
    match e {
        hound::Error::IoError(e) if is_short_read(&e) => {
            InferError::invalid("the WAV file is truncated: its data ends early")
        }
        other => InferError::invalid(format!("cannot read the WAV samples: {other}")),
    }
}

/// Resamples mono `input` from `from` Hz to `to` Hz with rubato's synchronous FFT resampler
/// (no drift, no aliasing above the new Nyquist frequency). The output has
/// `ceil(len · to / from)` samples, aligned with the input (the resampler's delay removed).
pub fn resample(input: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    if from == to {
        return Ok(input.to_vec());
    }
    let engine = |e: &dyn std::fmt::Display| {
        InferError::InvalidInput(format!("cannot resample from {from} Hz to {to} Hz: {e}"))
    };
    let mut resampler =
        FftFixedIn::<f32>::new(from as usize, to as usize, 1024, 2, 1).map_err(|e| engine(&e))?;
    let expected = (input.len() as u64 * to as u64).div_ceil(from as u64) as usize;
    let delay = resampler.output_delay();
    let mut out = Vec::with_capacity(expected + delay + 2048);
    let mut buffer = resampler.output_buffer_allocate(true);
    let mut pos = 0;
    while input.len() - pos >= resampler.input_frames_next() {
        let n = resampler.input_frames_next();
        let (used, written) = resampler
            .process_into_buffer(&[&input[pos..pos + n]], &mut buffer, None)
            .map_err(|e| engine(&e))?;
        out.extend_from_slice(&buffer[0][..written]);
        pos += used;
    }
    if pos < input.len() {
        let (_, written) = resampler
            .process_partial_into_buffer(Some(&[&input[pos..]][..]), &mut buffer, None)
            .map_err(|e| engine(&e))?;
        out.extend_from_slice(&buffer[0][..written]);
    }
    // Flush what the resampler still holds until the delayed tail is out.
    while out.len() < expected + delay {
        let (_, written) = resampler
            .process_partial_into_buffer(None::<&[&[f32]]>, &mut buffer, None)
            .map_err(|e| engine(&e))?;
        if written == 0 {
            break;
        }
        out.extend_from_slice(&buffer[0][..written]);
    }
    let end = (delay + expected).min(out.len());
    Ok(out[delay.min(end)..end].to_vec())
}

/// Hz to mels on Slaney's scale (librosa's `hz_to_mel(htk=False)`): linear below 1 kHz,
/// logarithmic above.
fn hz_to_mel(hz: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= min_log_hz {
        min_log_mel + (hz / min_log_hz).ln() / logstep
    } else {
        hz / f_sp
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel {
        min_log_hz * (logstep * (mel - min_log_mel)).exp()
    } else {
        f_sp * mel
    }
}

/// librosa's `filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)` (fmin 0, fmax
/// sr / 2, Slaney scale and norm): `n_mels` triangular filters over the `n_fft / 2 + 1`
/// frequency bins, row-major, as `pcm_to_mel` takes them. Computed in f64 like librosa, returned
/// as f32 like librosa's default dtype.
pub fn mel_filters(sample_rate: u32, n_fft: usize, n_mels: usize) -> Vec<f32> {
    let bins = n_fft / 2 + 1;
    let sr = sample_rate as f64;
    let fft_freqs: Vec<f64> = (0..bins)
        .map(|i| i as f64 * (sr / 2.0) / (bins - 1) as f64)
        .collect();
    let (min_mel, max_mel) = (hz_to_mel(0.0), hz_to_mel(sr / 2.0));
    let mel_freqs: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(min_mel + (max_mel - min_mel) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut weights = vec![0f32; n_mels * bins];
    for m in 0..n_mels {
        let (lo, center, hi) = (mel_freqs[m], mel_freqs[m + 1], mel_freqs[m + 2]);
        let norm = 2.0 / (hi - lo);
        for (k, &f) in fft_freqs.iter().enumerate() {
            let lower = (f - lo) / (center - lo);
            let upper = (hi - f) / (hi - center);
            weights[m * bins + k] = (lower.min(upper).max(0.0) * norm) as f32;
        }
    }
    weights
}

/// Whisper's log-mel spectrogram of 16 kHz `samples`, `(n_mels, frames)` row-major, computed
/// as candle-transformers' `pcm_to_mel` (whisper.cpp's definition) computes it: frames every
/// `hop` samples of `n_fft` samples under a periodic Hann window, not centred; the audio padded
/// with zeros to whole 15-second blocks plus one; the power spectrum with bins `1..n_fft/2`
/// doubled (their mirror images folded in); `filters` (see [`mel_filters`]); `log10` clamped to
/// 8 below the maximum; `x / 4 + 1`.
///
/// kaizen's own because candle's FFT is a recursive radix-2 split ending in naive DFTs for
/// Whisper's 400-point frames (400 = 16 × 25), with its twiddles computed by `sin` and `cos`
/// per use: a tenth of a transcription's time. This one runs realfft's planned transform, over
/// the thread pool.
pub fn log_mel(
    samples: &[f32],
    filters: &[f32],
    n_fft: usize,
    hop: usize,
    n_mels: usize,
) -> Vec<f32> {
    use rayon::prelude::*;

    let bins = n_fft / 2 + 1;
    assert_eq!(
        filters.len(),
        n_mels * bins,
        "{n_mels} filters over {bins} bins"
    );
    // Blocks of 15 s (1500 frames), one more than the audio needs.
    const PAD_FRAMES: usize = 1500;
    let frames = (samples.len() / hop).div_ceil(PAD_FRAMES) * PAD_FRAMES + PAD_FRAMES;
    let window: Vec<f32> = (0..n_fft)
        .map(|i| 0.5 * (1.0 - (2.0 * std::f32::consts::PI * i as f32 / n_fft as f32).cos()))
        .collect();
    let fft = realfft::RealFftPlanner::<f32>::new().plan_fft_forward(n_fft);
    // Frame-major while computing (each task owns whole frames), transposed at the end.
    let mut by_frame = vec![0f32; frames * n_mels];
    by_frame
        .par_chunks_mut(n_mels * 64)
        .enumerate()
        .for_each(|(chunk, out)| {
            let mut input = fft.make_input_vec();
            let mut spectrum = fft.make_output_vec();
            let mut scratch = fft.make_scratch_vec();
            let mut power = vec![0f32; bins];
            for (k, mel) in out.chunks_exact_mut(n_mels).enumerate() {
                let offset = (chunk * 64 + k) * hop;
                for (j, x) in input.iter_mut().enumerate() {
                    *x = samples.get(offset + j).map_or(0.0, |s| s * window[j]);
                }
                fft.process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                    .expect("buffers made by the plan");
                for (j, (p, c)) in power.iter_mut().zip(&spectrum).enumerate() {
                    let folded = if j >= 1 && j < n_fft / 2 { 2.0 } else { 1.0 };
                    *p = folded * c.norm_sqr();
                }
                for (m, value) in mel.iter_mut().enumerate() {
                    let filter = &filters[m * bins..(m + 1) * bins];
                    let sum: f32 = filter.iter().zip(&power).map(|(f, p)| f * p).sum();
                    *value = sum.max(1e-10).log10();
                }
            }
        });
    let floor = by_frame.iter().copied().fold(f32::NEG_INFINITY, f32::max) - 8.0;
    let mut mel = vec![0f32; n_mels * frames];
    for (frame, values) in by_frame.chunks_exact(n_mels).enumerate() {
        for (m, &v) in values.iter().enumerate() {
            mel[m * frames + frame] = v.max(floor) / 4.0 + 1.0;
        }
    }
    mel
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(
        spec: hound::WavSpec,
        write: impl FnOnce(&mut hound::WavWriter<&mut std::io::Cursor<Vec<u8>>>),
    ) -> Vec<u8> {
        let mut cursor = std::io::Cursor::new(Vec::new());
        {
            let mut writer = hound::WavWriter::new(&mut cursor, spec).unwrap();
            write(&mut writer);
            writer.finalize().unwrap();
        }
        cursor.into_inner()
    }

    fn spec(channels: u16, rate: u32, bits: u16, float: bool) -> hound::WavSpec {
        hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: if float {
                hound::SampleFormat::Float
            } else {
                hound::SampleFormat::Int
            },
        }
    }

    #[test]
    fn integer_and_float_samples_are_scaled_to_unit_range() {
        let bytes = wav(spec(1, 16_000, 16, false), |w| {
            for v in [0i32, 16_384, -32_768, 32_767] {
                w.write_sample(v as i16).unwrap();
            }
        });
        let audio = decode_wav(&bytes).unwrap();
        assert_eq!(audio.samples, vec![0.0, 0.5, -1.0, 32_767.0 / 32_768.0]);
        assert_eq!((audio.source_rate, audio.source_channels), (16_000, 1));

        let bytes = wav(spec(1, 16_000, 24, false), |w| {
            w.write_sample(-(1i32 << 23)).unwrap();
            w.write_sample(1i32 << 22).unwrap();
        });
        assert_eq!(decode_wav(&bytes).unwrap().samples, vec![-1.0, 0.5]);

        let bytes = wav(spec(1, 16_000, 32, false), |w| {
            w.write_sample(i32::MIN).unwrap();
            w.write_sample(1i32 << 30).unwrap();
        });
        assert_eq!(decode_wav(&bytes).unwrap().samples, vec![-1.0, 0.5]);

        let bytes = wav(spec(1, 16_000, 32, true), |w| {
            w.write_sample(0.25f32).unwrap();
            w.write_sample(-0.75f32).unwrap();
        });
        assert_eq!(decode_wav(&bytes).unwrap().samples, vec![0.25, -0.75]);
    }

    #[test]
    fn channels_are_averaged_to_mono() {
        let bytes = wav(spec(2, 16_000, 16, false), |w| {
            for v in [16_384i16, 0, -16_384, -16_384] {
                w.write_sample(v).unwrap();
            }
        });
        let audio = decode_wav(&bytes).unwrap();
        assert_eq!(audio.samples, vec![0.25, -0.5]);
        assert_eq!(audio.source_channels, 2);
    }

    #[test]
    fn a_tone_keeps_its_frequency_and_length_when_resampled() {
        // 1 s of 440 Hz at 22,050 Hz (espeak-ng's rate) becomes 16,000 samples of 440 Hz.
        let from = 22_050;
        let tone: Vec<f32> = (0..from)
            .map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / from as f32).sin() * 0.5)
            .collect();
        let out = resample(&tone, from, SAMPLE_RATE).unwrap();
        assert_eq!(out.len(), 16_000);
        // Away from the edges the output is the same sine sampled at 16 kHz.
        let worst = (1000..15_000)
            .map(|i| {
                let want = (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 16_000.0).sin() * 0.5;
                (out[i] - want).abs()
            })
            .fold(0f32, f32::max);
        assert!(worst < 0.01, "largest deviation {worst}");
        // Identity at the target rate.
        assert_eq!(
            resample(&tone[..10], 16_000, 16_000).unwrap(),
            tone[..10].to_vec()
        );
    }

    #[test]
    fn not_wav_empty_and_truncated_input_are_clear_errors() {
        let message = |bytes: &[u8]| decode_wav(bytes).unwrap_err().to_string();
        assert!(message(b"").contains("empty"));
        assert!(message(b"hello, this is a text file").contains("not a WAV file"));
        assert!(message(b"RIFF").contains("truncated"));
        let bytes = wav(spec(1, 16_000, 16, false), |_| {});
        assert!(message(&bytes).contains("no samples"));
        let full = wav(spec(1, 16_000, 16, false), |w| {
            for _ in 0..100 {
                w.write_sample(1i16).unwrap();
            }
        });
        // Every prefix of a valid file is refused or read, never a panic.
        for n in 0..full.len() {
            let _ = decode_wav(&full[..n]);
        }
        let kind = decode_wav(b"nope").unwrap_err().kind();
        assert_eq!(kind, crate::ErrorKind::Invalid);
    }

    #[test]
    fn mel_filters_match_librosa() {
        // The values OpenAI's Whisper ships (librosa's output, saved in mel_filters.npz).
        let f = mel_filters(16_000, 400, 80);
        assert_eq!(f.len(), 80 * 201);
        let at = |m: usize, k: usize| f[m * 201 + k];
        for &(m, k, want) in MEL_REFERENCE {
            let got = at(m, k) as f64;
            assert!(
                (got - want).abs() <= 1e-6 * want.abs().max(1e-3),
                "filter {m} bin {k}: {got} != {want}"
            );
        }
        // Each filter is one triangle: nonzero on a contiguous run of bins.
        for m in 0..80 {
            let nonzero: Vec<usize> = (0..201).filter(|&k| at(m, k) > 0.0).collect();
            assert!(!nonzero.is_empty(), "filter {m} is empty");
            assert_eq!(nonzero.len(), nonzero[nonzero.len() - 1] - nonzero[0] + 1);
        }
    }

    /// (filter, bin, weight) of Whisper's `mel_filters.npz`; see the file's header.
    const MEL_REFERENCE: &[(usize, usize, f64)] = &include!("../tests/data/mel_reference.in");

    #[test]
    fn log_mel_matches_candles_definition() {
        use candle_transformers::models::whisper as w;
        let filters = mel_filters(SAMPLE_RATE, w::N_FFT, 80);
        // A chirp with some noise, 3.3 s: not a whole number of hops or blocks.
        let samples: Vec<f32> = (0..52_817)
            .map(|i| {
                let t = i as f32 / SAMPLE_RATE as f32;
                0.3 * (2.0 * std::f32::consts::PI * (200.0 + 900.0 * t) * t).sin()
                    + 0.01 * ((i * 7919 % 1000) as f32 / 1000.0 - 0.5)
            })
            .collect();
        let ours = log_mel(&samples, &filters, w::N_FFT, w::HOP_LENGTH, 80);
        let config: w::Config = serde_json::from_value(serde_json::json!({
            "num_mel_bins": 80, "max_source_positions": 1500, "d_model": 384,
            "encoder_attention_heads": 6, "encoder_layers": 4, "vocab_size": 51864,
            "max_target_positions": 448, "decoder_attention_heads": 6, "decoder_layers": 4,
        }))
        .unwrap();
        let theirs = w::audio::pcm_to_mel(&config, &samples, &filters);
        assert_eq!(ours.len(), theirs.len());
        let worst = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-3, "largest difference {worst}");
    }
}
