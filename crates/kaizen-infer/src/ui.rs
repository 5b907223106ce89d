//! A web page per task, in the spirit of a Gradio demo: paste a text (or name a page, or
//! upload a WAV file), press Run, see the result and how long the server took. One
//! self-contained HTML file (no assets, no build step) that calls the task's `/v1/...` route;
//! `kaizen server` serves it at `/app/{task}`.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

/// The page, with `{{TASK}}`, `{{TITLE}}` and `{{LEAD}}` to fill in.
const TEMPLATE: &str = include_str!("../ui/task.html");

/// The tasks with a page: name, title, one line of explanation.
const TASKS: &[(&str, &str, &str)] = &[
    (
        "summarize",
        "Summarize",
        "A few of the text's own sentences, ranked by sentence embeddings (all-MiniLM-L6-v2), \
         or a summary written by a small LLM (SmolLM2-135M-Instruct); long texts are chunked.",
    ),
    (
        "sentiment",
        "Sentiment",
        "Polarity from -1 to 1 and subjectivity from 0 to 1, as TextBlob scores them.",
    ),
    (
        "phrases",
        "Noun phrases",
        "The noun phrases of a text, in order, as TextBlob's extractors keep them.",
    ),
    (
        "embed",
        "Embeddings",
        "Sentence embeddings of each line, and how similar the lines are (cosine).",
    ),
    (
        "ask",
        "Ask",
        "An answer from the passages of the text closest to the question: the closest \
         sentence, or written by the local LLM from those passages.",
    ),
    (
        "transcribe",
        "Transcribe",
        "Speech to text with Whisper tiny.en: a WAV file's text and its timed segments.",
    ),
];

/// `GET /app`: the first task's page.
pub(crate) async fn index() -> Redirect {
    Redirect::to("/app/summarize")
}

/// `GET /app/{task}`.
pub(crate) async fn page(Path(task): Path<String>) -> Response {
    match TASKS.iter().find(|(name, _, _)| *name == task) {
        Some((name, title, lead)) => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            render(name, title, lead),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!(
                "no page for `{task}`; the pages are {}",
                TASKS
                    .iter()
                    .map(|(name, _, _)| format!("/app/{name}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
            .into_response(),
    }
}

/// The template filled in; the values are the constants above, so no escaping is needed.
fn render(task: &str, title: &str, lead: &str) -> String {
    TEMPLATE
        .replace("{{TASK}}", task)
        .replace("{{TITLE}}", title)
        .replace("{{LEAD}}", lead)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_page_is_filled_in_and_calls_its_route() {
        for (name, title, _) in TASKS {
            let html = render(name, title, "lead");
            assert!(!html.contains("{{"), "{name}: a placeholder is left");
            assert!(html.contains(&format!("data-task=\"{name}\"")));
            assert!(html.contains(&format!("<h1>{title}</h1>")));
        }
        // The script posts to `/v1/{task}`: each task must have that route.
        assert!(TEMPLATE.contains("fetch(`/v1/${task}`"));
    }
}
