//! The web console: plain HTML, CSS and ES modules (`assets/`), embedded in the binary and
//! served at `/` and `/console/…` on the API's listener. No token is needed for the page
//! itself; it asks for one and calls the API with it, as any other client (see
//! docs/console.md).
//!
//! Every response of the API carries [`CSP`] and `X-Content-Type-Options: nosniff`
//! ([`security_headers`]): no inline script or style, nothing loaded from elsewhere.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(rust_embed::Embed)]
#[folder = "src/api/console/assets/"]
struct Assets;

/// The Content-Security-Policy of every response: scripts, styles, images and API calls
/// from this origin only; no inline script or style, no plugins, no framing, no `<base>`.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The headers set on every response (unless a handler set them).
pub fn security_headers<S: Clone + Send + Sync + 'static>(r: axum::Router<S>) -> axum::Router<S> {
    use tower_http::set_header::SetResponseHeaderLayer;
    let set =
        |name, value| SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value));
    r.layer(set(header::CONTENT_SECURITY_POLICY, CSP))
        .layer(set(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(set(header::REFERRER_POLICY, "no-referrer"))
        .layer(set(header::X_FRAME_OPTIONS, "DENY"))
}

/// `GET /`: the page.
#[utoipa::path(
    get,
    path = "/",
    tag = "console",
    security(()),
    summary = "The console's page",
    responses(
        (status = 200, description = "The console (HTML)", content_type = "text/html", body = String)
    )
)]
pub async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// `GET /console/{*path}`: a script, a style sheet, the dictionary.
#[utoipa::path(
    get,
    path = "/console/{path}",
    tag = "console",
    security(()),
    summary = "A file of the console",
    params(("path" = String, Path, description = "The file, e.g. app.js, console.css, i18n.json")),
    responses(
        (status = 200, description = "A script, style sheet, image or the dictionary, with its own content type",
            content(
                (String = "text/javascript"),
                (String = "text/css"),
                (String = "application/json"),
                (String = "text/html"),
                (String = "image/svg+xml")
            )),
        (status = 304, description = "Unchanged (If-None-Match)"),
        (status = 404, description = "The console has no such file", body = crate::api::ErrorBody)
    )
)]
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

/// An embedded file with its content type and a validator: browsers revalidate each load
/// (`no-cache`) and get a 304 when the binary (so the file) is the same.
fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(file) = Assets::get(path) else {
        return super::ApiError::NotFound(format!("the console has no file {path:?}"))
            .into_response();
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mime = file.metadata.mimetype();
    // mime_guess names JavaScript `text/javascript`, HTML and CSS without a charset.
    let content_type = if mime.starts_with("text/") || mime == "application/json" {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    };
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, content_type)],
            file.data.into_owned(),
        )
            .into_response()
    };
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    r
}

#[cfg(test)]
mod tests;
