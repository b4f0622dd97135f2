//! `GET /`: the page people use the model from (embedded in the binary; no CDN).

use axum::response::Html;

/// The page, as built into the binary.
pub async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}
