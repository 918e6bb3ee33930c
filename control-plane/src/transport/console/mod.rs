//! The web console: plain HTML, CSS and JavaScript built into the binary, served at `/`. It
//! talks only to the JSON API under `/api/v1`, as any other client would.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

/// Each asset: its path, content type and text.
const ASSETS: &[(&str, &str, &str)] = &[
    ("/", "text/html; charset=utf-8", include_str!("index.html")),
    (
        "/console.css",
        "text/css; charset=utf-8",
        include_str!("console.css"),
    ),
    (
        "/api.js",
        "text/javascript; charset=utf-8",
        include_str!("api.js"),
    ),
    (
        "/pages.js",
        "text/javascript; charset=utf-8",
        include_str!("pages.js"),
    ),
    (
        "/lbs.js",
        "text/javascript; charset=utf-8",
        include_str!("lbs.js"),
    ),
    (
        "/shift.js",
        "text/javascript; charset=utf-8",
        include_str!("shift.js"),
    ),
    (
        "/services.js",
        "text/javascript; charset=utf-8",
        include_str!("services.js"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_str!("app.js"),
    ),
];

pub fn router() -> Router {
    ASSETS
        .iter()
        .fold(Router::new(), |r, &(path, content_type, text)| {
            r.route(
                path,
                get(move || async move {
                    (
                        [
                            (header::CONTENT_TYPE, content_type),
                            (header::CACHE_CONTROL, "no-cache"),
                        ],
                        text,
                    )
                        .into_response()
                }),
            )
        })
}
