//! `GET /`: the page people use the model from, `page.html`, built into the binary.
//!
//! One self-contained file (inline CSS and JavaScript; no CDN, no web font, no framework), so
//! it works offline and behind any proxy. Users type or paste reviews, one per line, and press
//! the button (or Ctrl+Enter); the page calls `POST /predict` and `POST /explain` (same origin,
//! relative paths) and shows each review's label, its probabilities as bars, and a heat map of
//! `/explain`'s gates per token (a row per gate and direction, then the running probability of
//! the label; colour: the value in [0, 1] on viridis; the exact value in each cell's title).
//! `GET /info` fills the header line. An English / 中文 switch changes every string (the first
//! choice follows the browser's language). A 401 opens a field for the API key, sent as
//! `Authorization: Bearer KEY` from then on (kept for the browser tab's session). Errors from
//! the API show on one line.
//!
//! The route needs no key (the page asks for it itself). The test reads the DOM through stable
//! hooks: `#reviews`, `#classify`, `#lang-en` / `#lang-zh`, `#api-key` / `#use-key`, `#error`,
//! `#model-info`, `#results[data-state]`, `.result[data-label]`, `.prob[data-class][data-value]`,
//! `.heatmap tr[data-gate][data-direction]`, `tr[data-row="probability"]`, `td[data-value]`
//! (tests/suite/serve_page.rs drives it in headless Chromium).

use axum::response::Html;

/// The page, as built into the binary: `text/html; charset=utf-8`.
pub async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}
