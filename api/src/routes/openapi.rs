//! `/api/openapi.json`: the OpenAPI 3.1 document generated from the handlers.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::ResponseBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Runeflow API", description = "Workspace files, workflows, executions, data providers, schedules, HTTP endpoints, API tokens and git sync."),
    paths(
        super::health::healthz,
        super::health::readyz,
        super::files::write,
        super::files::read,
        super::files::remove,
        super::files::move_file,
        super::files::list,
        super::workflows::list,
        super::workflows::show,
        super::executions::create,
        super::executions::show,
        super::executions::cancel,
        super::data_providers::run,
        super::executions::list,
        super::schedules::create,
        super::schedules::list,
        super::schedules::show,
        super::schedules::remove,
        super::endpoints::call,
        super::endpoints::create_key,
        super::endpoints::list_keys,
        super::endpoints::revoke_key,
        super::tokens::create,
        super::tokens::list,
        super::tokens::revoke,
        super::git::push,
        super::git::pull,
        openapi_json,
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "endpoint_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Runeflow-Key"))),
        );
        // Every operation behind the token answers 401 without it: say so
        // once here rather than on each handler.
        let unauthorized = ResponseBuilder::new()
            .description("Missing or invalid bearer token")
            .build();
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    operation
                        .responses
                        .responses
                        .entry("401".to_owned())
                        .or_insert_with(|| unauthorized.clone().into());
                }
            }
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(openapi_json))
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "meta",
    responses((status = 200, description = "OpenAPI 3.1 document")),
    security(("bearer" = [])))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
