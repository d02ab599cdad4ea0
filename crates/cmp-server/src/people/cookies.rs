//! The cookies of the browser login. Reading a `Cookie` header and writing a `Set-Cookie` are
//! a few lines each; a cookie crate would bring signing and jars CMP does not use (sessions
//! are opaque ids looked up on the server).

use axum::http::{HeaderMap, HeaderValue, header};

/// The session id (HttpOnly).
pub const SESSION: &str = "cmp_session";
/// The `state` of a login under way, so that a callback can be tied to the browser that
/// started it (HttpOnly, only sent to `/auth`).
pub const LOGIN: &str = "cmp_login";
/// The CSRF token, readable by the dashboard's script (double submit: it sends it back as the
/// `X-CSRF-Token` header, which another site cannot set).
pub const CSRF: &str = "cmp_csrf";
/// The header cookie-authenticated writes must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The value of the cookie `name`, from every `Cookie` header of the request.
pub fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"').to_string())
}

/// How a cookie is sent back.
pub struct CookieSpec<'a> {
    pub name: &'a str,
    pub value: &'a str,
    pub path: &'a str,
    /// `None`: until the browser closes; `Some(0)`: remove it now.
    pub max_age_secs: Option<i64>,
    pub http_only: bool,
    /// Only over HTTPS (set when CMP serves HTTPS).
    pub secure: bool,
}

impl CookieSpec<'_> {
    /// The `Set-Cookie` value; `SameSite=Lax` always, so that the provider's redirect back to
    /// the callback (a top-level GET) carries the login cookie but other sites' writes do not.
    pub fn header(&self) -> Option<HeaderValue> {
        let mut text = format!("{}={}; Path={}; SameSite=Lax", self.name, self.value, self.path);
        if let Some(age) = self.max_age_secs {
            text.push_str(&format!("; Max-Age={age}"));
        }
        if self.http_only {
            text.push_str("; HttpOnly");
        }
        if self.secure {
            text.push_str("; Secure");
        }
        HeaderValue::from_str(&text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_from_every_header_and_written_with_their_flags() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; cmp_login=st"));
        headers.append(header::COOKIE, HeaderValue::from_static("cmp_session=\"abc\""));
        assert_eq!(read(&headers, SESSION).as_deref(), Some("abc"));
        assert_eq!(read(&headers, LOGIN).as_deref(), Some("st"));
        assert_eq!(read(&headers, CSRF), None);
        let spec = CookieSpec {
            name: SESSION,
            value: "v",
            path: "/",
            max_age_secs: Some(0),
            http_only: true,
            secure: true,
        };
        assert_eq!(
            spec.header().unwrap(),
            "cmp_session=v; Path=/; SameSite=Lax; Max-Age=0; HttpOnly; Secure"
        );
    }
}
