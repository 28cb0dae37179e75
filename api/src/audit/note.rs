//! What a response tells the audit middleware (as response extensions,
//! since an outer layer cannot see the request's): who acted ([`Actor`],
//! set by whoever authenticated the caller) and, optionally, a handler's
//! better action or target ([`AuditNote`]).

use axum::response::{IntoResponse, IntoResponseParts, Response, ResponseParts};

/// The caller a response answered: a token's name, `bootstrap`, or
/// `endpoint-key:<key name>`. A response without one (no credentials, an
/// unknown token) is not recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(pub String);

impl Actor {
    /// The actor of a call made with endpoint key `key_name`.
    pub fn endpoint_key(key_name: &str) -> Self {
        Actor(format!("endpoint-key:{key_name}"))
    }
}

/// A handler's refinement of its audit row. The target names what was
/// acted on (paths, names, ids) and must never hold a value the caller
/// sent (a config value, a secret, parameters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditNote {
    /// Replaces the action the route implies (e.g. `secret.set`).
    pub action: Option<&'static str>,
    /// Replaces the target taken from the path parameters.
    pub target: Option<String>,
}

impl AuditNote {
    /// A note that names the target only.
    pub fn target(target: impl Into<String>) -> Self {
        AuditNote {
            action: None,
            target: Some(target.into()),
        }
    }

    /// A note that names the action only (the target stays the path's).
    pub fn action(action: &'static str) -> Self {
        AuditNote {
            action: Some(action),
            target: None,
        }
    }

    /// Attaches this note to `response` unless the handler attached one
    /// already (a success names more, e.g. the new id, than the request).
    pub fn or_on(self, response: impl IntoResponse) -> Response {
        let mut response = response.into_response();
        if response.extensions().get::<AuditNote>().is_none() {
            response.extensions_mut().insert(self);
        }
        response
    }
}

impl IntoResponseParts for AuditNote {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        res.extensions_mut().insert(self);
        Ok(res)
    }
}

impl IntoResponseParts for Actor {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        res.extensions_mut().insert(self);
        Ok(res)
    }
}
