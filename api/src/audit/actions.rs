//! The action each non-GET route is recorded as. Routes are matched by
//! their template (`/api/schedules/{id}`), as axum matched them; a unit
//! test checks every such operation of the OpenAPI document is named here.

use axum::http::Method;

/// The action of `method` on route template `route`, or `None` for a
/// route this table does not name (recorded as `<METHOD> <route>`).
pub fn action_for(method: &Method, route: &str) -> Option<&'static str> {
    // `/api/files/{*path}`, `/api/files/` and `/api/files/move` all hold
    // a file path (a file may be called `move`).
    if route.starts_with("/api/files/") {
        match *method {
            Method::PUT => return Some("file.write"),
            Method::DELETE => return Some("file.delete"),
            _ => {}
        }
    }
    let action = match (method.as_str(), route) {
        ("POST", "/api/files/move") => "file.move",
        ("POST", "/api/executions") => "execution.run",
        ("POST", "/api/executions/{id}/cancel") => "execution.cancel",
        ("POST", "/api/data-providers/{name}") => "data_provider.run",
        ("POST", "/api/schedules") => "schedule.create",
        ("DELETE", "/api/schedules/{id}") => "schedule.delete",
        ("POST", "/api/schedules/{id}/pause") => "schedule.pause",
        ("POST", "/api/schedules/{id}/resume") => "schedule.resume",
        ("POST", "/api/workflows/{name}/keys") => "endpoint_key.create",
        ("DELETE", "/api/workflows/{name}/keys/{id}") => "endpoint_key.revoke",
        ("POST", "/api/endpoints/{name}") => "endpoint.call",
        ("POST", "/api/tokens") => "token.create",
        ("DELETE", "/api/tokens/{id}") => "token.revoke",
        // A handler notes `secret.set` when the value is a secret.
        ("PUT", "/api/config/{key}") => "config.set",
        ("DELETE", "/api/config/{key}") => "config.delete",
        ("POST", "/api/git/push") => "git.push",
        ("POST", "/api/git/pull") => "git.pull",
        _ => return None,
    };
    Some(action)
}

/// Whether requests with `method` are recorded: everything but reads.
pub fn is_recorded(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::OpenApi;

    #[test]
    fn every_documented_write_has_an_action() {
        let doc = crate::ApiDoc::openapi();
        let mut named = 0;
        for (path, item) in &doc.paths.paths {
            let operations = [
                (Method::PUT, item.put.is_some()),
                (Method::POST, item.post.is_some()),
                (Method::DELETE, item.delete.is_some()),
                (Method::PATCH, item.patch.is_some()),
            ];
            for (method, present) in operations {
                if present {
                    assert!(
                        action_for(&method, path).is_some(),
                        "{method} {path} has no audit action"
                    );
                    named += 1;
                }
            }
        }
        assert!(named >= 15, "only {named} write operations documented");
    }

    #[test]
    fn file_routes_and_the_move_route() {
        assert_eq!(
            action_for(&Method::PUT, "/api/files/{*path}"),
            Some("file.write")
        );
        assert_eq!(
            action_for(&Method::PUT, "/api/files/move"),
            Some("file.write")
        );
        assert_eq!(
            action_for(&Method::POST, "/api/files/move"),
            Some("file.move")
        );
        assert_eq!(
            action_for(&Method::DELETE, "/api/files/"),
            Some("file.delete")
        );
        assert!(!is_recorded(&Method::GET) && is_recorded(&Method::POST));
    }
}
