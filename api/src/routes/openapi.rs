//! `/api/openapi.json`: the OpenAPI 3.1 document generated from the handlers.

use axum::http::Method;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::ResponseBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::auth::required_scope;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Runeflow API", description = "Workspace files, workflows, executions, data providers, schedules, HTTP endpoints, API tokens, config and secrets, the audit log and git sync."),
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
        super::schedules::pause,
        super::schedules::resume,
        super::endpoints::call,
        super::endpoints::create_key,
        super::endpoints::list_keys,
        super::endpoints::revoke_key,
        super::tokens::create,
        super::tokens::list,
        super::tokens::revoke,
        super::config::put,
        super::config::list,
        super::config::show,
        super::config::remove,
        super::audit::list,
        super::git::push,
        super::git::pull,
        openapi_json,
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// Security schemes, and on every operation behind a token its 401, its
/// 403 and the scope it needs (`x-runeflow-scope`).
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
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                (Method::GET, &mut item.get),
                (Method::PUT, &mut item.put),
                (Method::POST, &mut item.post),
                (Method::DELETE, &mut item.delete),
                (Method::PATCH, &mut item.patch),
            ];
            for (method, operation) in operations {
                let Some(operation) = operation else { continue };
                if operation.security.as_ref().is_none_or(|s| s.is_empty()) {
                    continue;
                }
                operation
                    .responses
                    .responses
                    .entry("401".to_owned())
                    .or_insert_with(|| unauthorized.clone().into());
                // The scope a bearer token needs here (see `auth.rs`).
                let scope = required_scope(&method, path);
                operation
                    .extensions
                    .get_or_insert_with(Default::default)
                    .insert("x-runeflow-scope".to_owned(), scope.as_str().into());
                operation
                    .responses
                    .responses
                    .entry("403".to_owned())
                    .or_insert_with(|| {
                        ResponseBuilder::new()
                            .description(format!("The token lacks the `{scope}` scope"))
                            .build()
                            .into()
                    });
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
