//! Speech to text: `POST /v1/transcribe`'s answers to bad requests (checked before any model is
//! loaded), and Whisper tiny.en imported from the CTranslate2 files `scripts/setup.sh` copies to
//! `models/whisper-tiny.en-ct2`, loaded by candle (every tensor it asks for is there) and run on
//! a few seconds of audio. The e2e suite checks the transcripts of real speech.

use kaizen_infer::Transcriber;
use kaizen_infer::audio::{self, SAMPLE_RATE};
use kaizen_infer::ct2::import_whisper;

use super::*;

/// A 16-bit mono WAV file of `samples` at `rate`.
fn wav(samples: &[f32], rate: u32) -> Vec<u8> {
    let mut cursor = std::io::Cursor::new(Vec::new());
    {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer = hound::WavWriter::new(&mut cursor, spec).unwrap();
        for s in samples {
            writer.write_sample((s * 32_767.0) as i16).unwrap();
        }
        writer.finalize().unwrap();
    }
    cursor.into_inner()
}

async fn post_audio(
    app: &axum::Router,
    query: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let request = Request::post(format!("/v1/transcribe{query}"))
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Query, content type, body; the status, error code and a part of the message answered.
type Case = (
    &'static str,
    &'static str,
    Vec<u8>,
    StatusCode,
    &'static str,
    &'static str,
);

#[tokio::test]
async fn http_transcribe_errors_in_mlflow_shape() {
    let app = app(PathBuf::from("/nonexistent/model"));
    let tone = wav(&[0.1; 8000], 8000);
    let cases: [Case; 6] = [
        (
            "",
            "audio/wav",
            b"just some text".to_vec(),
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER_VALUE",
            "not a WAV file",
        ),
        (
            "",
            "audio/wav",
            Vec::new(),
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER_VALUE",
            "empty",
        ),
        (
            "",
            "application/json",
            b"{}".to_vec(),
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER_VALUE",
            "audio/wav",
        ),
        (
            "?summarize=true&sentences=0",
            "audio/wav",
            tone.clone(),
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER_VALUE",
            "sentences",
        ),
        (
            "?language=fr",
            "audio/wav",
            tone.clone(),
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER_VALUE",
            "language",
        ),
        // A good file on a server without the model: the server's state, not the caller's.
        (
            "",
            "audio/wav",
            tone,
            StatusCode::SERVICE_UNAVAILABLE,
            "TEMPORARILY_UNAVAILABLE",
            "speech model",
        ),
    ];
    for (query, content_type, body, status, code, message) in cases {
        let (got, answer) = post_audio(&app, query, content_type, body).await;
        assert_eq!(got, status, "{query} {content_type}: {answer}");
        assert_eq!(answer["error_code"], code, "{answer}");
        let text = answer["message"].as_str().unwrap();
        assert!(text.contains(message), "{query}: {text}");
    }
}

#[test]
fn the_imported_model_loads_and_transcribes() {
    let root = std::env::var_os("KAIZEN_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"));
    let src = root.join("whisper-tiny.en-ct2");
    if !src.join("model.bin").is_file() {
        eprintln!(
            "skipped: no CTranslate2 Whisper model at {} (run scripts/setup.sh)",
            src.display()
        );
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("whisper-tiny.en");
    let summary = import_whisper(&src, &dir).unwrap();
    assert_eq!(summary.spec, "WhisperSpec");
    assert_eq!(summary.config["d_model"], 384);
    let transcriber = Transcriber::load(&dir).unwrap();
    assert_eq!(transcriber.name(), "whisper-tiny.en");

    // Two seconds of quiet noise at 8 kHz, resampled: whatever the model makes of it, the
    // segments lie within the audio.
    let mut state = 12_345u32;
    let noise: Vec<f32> = (0..16_000)
        .map(|_| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            ((state >> 16) as f32 / 65_536.0 - 0.5) * 0.002
        })
        .collect();
    let audio = audio::decode_wav(&wav(&noise, 8_000)).unwrap();
    assert_eq!(audio.samples.len(), 2 * SAMPLE_RATE as usize);
    let transcript = transcriber.transcribe(&audio).unwrap();
    assert_eq!(transcript.audio_seconds, 2.0);
    assert_eq!(transcript.model, "whisper-tiny.en");
    for s in &transcript.segments {
        assert!(0.0 <= s.start && s.start <= s.end && s.end <= 2.0, "{s:?}");
    }
}
