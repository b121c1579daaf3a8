//! Authentication over HTTP: bearer tokens, the session cookie, CSRF checks
//! for cookie-authenticated state changes, and the client address.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Request};

use super::errors::{ApiError, CSRF_REJECTED};

/// The session cookie's name over plain HTTP.
pub const COOKIE_NAME: &str = "syshost_session";
/// The session cookie's name behind a TLS proxy (`http.tls_proxy = true`).
pub const SECURE_COOKIE_NAME: &str = "__Host-syshost_session";
/// Longest token accepted before asking the resolver.
const MAX_TOKEN_LEN: usize = 512;

/// Where the request's token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer …`.
    Bearer,
    /// The session cookie.
    Cookie,
}

/// The cookie name in use.
pub fn cookie_name(tls_proxy: bool) -> &'static str {
    if tls_proxy {
        SECURE_COOKIE_NAME
    } else {
        COOKIE_NAME
    }
}

/// The request's token: the `Authorization: Bearer` header wins over the
/// cookie. An `Authorization` header of another scheme, or a malformed
/// token, is `unauthenticated` (never silently anonymous).
pub fn extract_token(
    headers: &HeaderMap,
    tls_proxy: bool,
) -> Result<Option<(String, TokenSource)>, ApiError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let text = value
            .to_str()
            .map_err(|_| ApiError::unauthenticated("malformed Authorization header"))?;
        let (scheme, token) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::unauthenticated(
                "unsupported Authorization scheme; use 'Bearer <token>'",
            ));
        }
        return check_token(token.trim()).map(|t| Some((t, TokenSource::Bearer)));
    }
    let name = cookie_name(tls_proxy);
    for value in headers.get_all(header::COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        for pair in text.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=') {
                if k.trim() == name {
                    let v = v.trim().trim_matches('"');
                    if v.is_empty() {
                        return Ok(None);
                    }
                    return check_token(v).map(|t| Some((t, TokenSource::Cookie)));
                }
            }
        }
    }
    Ok(None)
}

fn check_token(token: &str) -> Result<String, ApiError> {
    if token.is_empty()
        || token.len() > MAX_TOKEN_LEN
        || !token.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ApiError::unauthenticated("session expired or unknown"));
    }
    Ok(token.to_string())
}

/// The `Set-Cookie` value that stores `token` (a session cookie: no Max-Age).
pub fn set_cookie(token: &str, tls_proxy: bool) -> String {
    let secure = if tls_proxy { "; Secure" } else { "" };
    format!(
        "{}={token}; HttpOnly; SameSite=Lax; Path=/{secure}",
        cookie_name(tls_proxy)
    )
}

/// The `Set-Cookie` value that clears the session cookie.
pub fn clear_cookie(tls_proxy: bool) -> String {
    let secure = if tls_proxy { "; Secure" } else { "" };
    format!(
        "{}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0{secure}",
        cookie_name(tls_proxy)
    )
}

/// The origin (`scheme://host[:port]`, lower-case) of an absolute URL.
pub fn origin_of(url: &str) -> String {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    format!(
        "{}://{}",
        scheme.to_ascii_lowercase(),
        authority.to_ascii_lowercase()
    )
}

/// CSRF rule for cookie-authenticated state changes: `Origin` must equal
/// the public origin, or `Sec-Fetch-Site` must be `same-origin`.
pub fn check_csrf(headers: &HeaderMap, public_origin: &str) -> Result<(), ApiError> {
    let origin_ok = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|o| {
            o.trim()
                .trim_end_matches('/')
                .eq_ignore_ascii_case(public_origin)
        });
    let fetch_site_ok = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|s| s.trim().eq_ignore_ascii_case("same-origin"));
    if origin_ok || fetch_site_ok {
        Ok(())
    } else {
        Err(ApiError::new(
            CSRF_REJECTED,
            format!(
                "a cookie-authenticated POST needs Origin: {public_origin} (or Sec-Fetch-Site: same-origin); programs should use Authorization: Bearer"
            ),
        ))
    }
}

/// The client address: the peer, or the first `X-Forwarded-For` entry when
/// `trust_proxy_headers` is set (falling back to the peer).
pub fn client_ip<B>(req: &Request<B>, trust_proxy_headers: bool) -> Option<IpAddr> {
    if trust_proxy_headers {
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .and_then(|first| {
                first
                    .parse::<IpAddr>()
                    .ok()
                    .or_else(|| first.parse::<SocketAddr>().ok().map(|s| s.ip()))
            });
        if forwarded.is_some() {
            return forwarded;
        }
    }
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn bearer_wins_and_other_schemes_are_refused() {
        let h = headers(&[
            ("authorization", "Bearer abc"),
            ("cookie", "syshost_session=def"),
        ]);
        assert_eq!(
            extract_token(&h, false).unwrap(),
            Some(("abc".to_string(), TokenSource::Bearer))
        );
        let h = headers(&[("authorization", "Basic eDp5")]);
        assert_eq!(extract_token(&h, false).unwrap_err().status.as_u16(), 401);
        let h = headers(&[("cookie", "a=b; syshost_session=def")]);
        assert_eq!(
            extract_token(&h, false).unwrap(),
            Some(("def".to_string(), TokenSource::Cookie))
        );
        // Behind TLS only the __Host- cookie counts.
        assert_eq!(extract_token(&h, true).unwrap(), None);
        assert_eq!(extract_token(&HeaderMap::new(), false).unwrap(), None);
    }

    #[test]
    fn cookies_and_origins() {
        assert_eq!(
            set_cookie("t", true),
            "__Host-syshost_session=t; HttpOnly; SameSite=Lax; Path=/; Secure"
        );
        assert!(clear_cookie(false).contains("Max-Age=0"));
        assert_eq!(
            origin_of("https://Accounts.example.com/x/y"),
            "https://accounts.example.com"
        );
        assert_eq!(origin_of("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        let o = "http://127.0.0.1:8080";
        assert!(check_csrf(&headers(&[("origin", o)]), o).is_ok());
        assert!(check_csrf(&headers(&[("sec-fetch-site", "same-origin")]), o).is_ok());
        assert!(check_csrf(&headers(&[("origin", "http://evil.example")]), o).is_err());
        assert!(check_csrf(&HeaderMap::new(), o).is_err());
    }
}
