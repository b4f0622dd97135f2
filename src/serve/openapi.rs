//! `GET /api-doc/openapi.json`: the OpenAPI 3.1 document of every route, derived with utoipa
//! from the handlers' annotations and the bodies' types (so it cannot drift from the code).

use std::sync::OnceLock;

use axum::Json;
use utoipa::{
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};

use super::{admin, api, predict, v2};

/// The document's source.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "lstm-tch serve",
        description = "A trained lstm-tch text classifier over HTTP, with dynamic batching. \
            Routes and bodies follow text-embeddings-inference (`/predict`, `/info`, `/health`, \
            `/metrics`) and the Open Inference Protocol v2 (`/v2/...`). With `--api-key`, every \
            route but the health checks and the page needs `Authorization: Bearer KEY`."
    ),
    paths(
        predict::predict, predict::explain, api::info, api::health, api::ready, api::metrics,
        admin::reload, v2::server_metadata, v2::model_metadata, v2::model_ready, v2::infer,
    ),
    modifiers(&BearerKey)
)]
struct ApiDoc;

/// Declares the `api_key` security scheme (HTTP Bearer) the admin route names.
struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build();
        components.add_security_scheme("api_key", SecurityScheme::Http(scheme));
    }
}

/// The OpenAPI document.
pub async fn openapi() -> Json<&'static utoipa::openapi::OpenApi> {
    static DOCUMENT: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    Json(DOCUMENT.get_or_init(ApiDoc::openapi))
}
