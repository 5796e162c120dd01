//! The JWT gate, before routing as in Heketi (an unauthenticated request to an unknown path
//! is 401, not 404). Open paths: `/hello`, `/readyz`, `/raft/status`, `/metrics`, and the peer
//! RPCs, which carry the cluster secret instead.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::error::ApiError;
use crate::api::AppState;
use crate::auth::{self, Role};

pub fn is_open_path(path: &str) -> bool {
    matches!(path, "/hello" | "/readyz" | "/raft/status" | "/metrics") || path.starts_with("/raft/rpc/")
}

pub async fn layer(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if is_open_path(&path) {
        return next.run(req).await;
    }
    let Some(verifier) = st.verifier() else {
        req.extensions_mut().insert(Role::Admin);
        return next.run(req).await;
    };
    let header = req.headers().get("authorization").and_then(|v| v.to_str().ok());
    let role = match verifier.verify(header, req.method().as_str(), &path, auth::now_unix()) {
        Ok(r) => r,
        Err(e) => return ApiError::Auth(e).into_response(),
    };
    if let Err(e) = auth::authorize(role, &path) {
        return ApiError::Auth(e).into_response();
    }
    req.extensions_mut().insert(role);
    next.run(req).await
}
