//! The dashboard's files, embedded at build time (see `build.rs`), for `cmpd` to serve.

use std::borrow::Cow;

use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "$OUT_DIR/dist"]
struct Dist;

/// Where Vite puts the files whose names carry a hash of their content.
const HASHED_PREFIX: &str = "assets/";

/// One file of the dashboard.
pub struct WebFile {
    pub body: Cow<'static, [u8]>,
    pub content_type: String,
    /// A strong validator: the SHA-256 of the content, quoted.
    pub etag: String,
    /// Whether the name changes with the content, so that it can be cached for good.
    pub immutable: bool,
    /// A gzip copy of the body, when one was built and is smaller.
    pub gzip: Option<Cow<'static, [u8]>>,
}

/// The file at `path` (no leading `/`), if the dashboard has one.
pub fn file(path: &str) -> Option<WebFile> {
    let found = Dist::get(path)?;
    let etag = format!(
        "\"{}\"",
        found.metadata.sha256_hash().iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    Some(WebFile {
        content_type: found.metadata.mimetype().to_string(),
        body: found.data,
        etag,
        immutable: path.starts_with(HASHED_PREFIX),
        gzip: Dist::get(&format!("{path}.gz")).map(|gz| gz.data),
    })
}

/// The page every dashboard route answers with; the script then routes in the browser.
pub fn index() -> Option<WebFile> {
    file("index.html")
}
