//! Response bodies as Heketi writes them: Go `http.Error` text (`text/plain; charset=utf-8`,
//! `nosniff`, message + newline) and Go `json.Encoder` JSON (compact, newline, `<>&` escaped).

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use serde::Serialize;

pub fn text(status: StatusCode, msg: &str) -> Response {
    let mut r = Response::new(Body::from(format!("{msg}\n")));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    r
}

/// Go's encoder escapes `<`, `>` and `&` inside strings (`crate::gojson`).
pub fn go_json<T: Serialize>(v: &T) -> String {
    crate::gojson::to_string(v)
}

pub fn json<T: Serialize>(status: StatusCode, v: &T) -> Response {
    let mut r = Response::new(Body::from(format!("{}\n", go_json(v))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    r
}

/// A success with no body (cluster delete: 200, no Content-Type).
pub fn empty(status: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}

/// Parses a JSON request body; a parse failure is Heketi's 422.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, crate::api::error::ApiError> {
    serde_json::from_slice(body).map_err(|e| crate::api::error::ApiError::Unparsable(e.to_string()))
}

/// An optional JSON body: empty means the defaults.
pub fn parse_optional_body<T: serde::de::DeserializeOwned + Default>(
    body: &[u8],
) -> Result<T, crate::api::error::ApiError> {
    if body.is_empty() {
        Ok(T::default())
    } else {
        parse_body(body)
    }
}

/// Heketi's 202: `Location: /queue/<id>`, no body (Go's `http.Redirect` for a POST).
pub fn accepted(location: &str) -> Response {
    let mut r = empty(StatusCode::ACCEPTED);
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// Go's `http.Redirect` for a GET: status, `Location`, and a small HTML body.
pub fn redirect_html(status: StatusCode, location: &str, text: &str) -> Response {
    let mut r = Response::new(Body::from(format!("<a href=\"{location}\">{text}</a>.\n\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}
