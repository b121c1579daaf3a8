//! Target `token`: how the HTTP layer reads a session token (bearer header
//! or session cookie), the CSRF origin check, and the client address.
//!
//! Input: header lines `name: value`; the first byte's low bit selects the
//! TLS-proxy cookie name. Checks: never panics; a refusal is 401; an
//! accepted token is 1–512 visible ASCII characters taken verbatim from the
//! header it came from (bearer wins over the cookie; behind TLS only the
//! `__Host-` cookie counts); a token the host sets as a cookie reads back
//! unchanged.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Request};
use syshost::http::auth::{
    check_csrf, client_ip, cookie_name, extract_token, origin_of, set_cookie, TokenSource,
};

/// Tokens worth splicing into header inputs.
pub const DICTIONARY: &[&str] = &[
    "authorization: ",
    "cookie: ",
    "origin: ",
    "sec-fetch-site: ",
    "x-forwarded-for: ",
    "Bearer ",
    "bearer",
    "BEARER  ",
    "Basic ",
    "syshost_session=",
    "__Host-syshost_session=",
    "; ",
    ";",
    "=",
    "\"",
    "\n",
    "same-origin",
    "cross-site",
    "http://127.0.0.1:8080",
    "https://id.acme.test/",
    "null",
    "127.0.0.1",
    "::1",
    "[::1]:80",
    ", ",
    "\t",
    "\u{7f}",
    "\u{80}",
    "é",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
];

/// Seed inputs.
pub fn seeds() -> Vec<Vec<u8>> {
    [
        "\0authorization: Bearer abc",
        "\0authorization: Bearer abc\ncookie: syshost_session=def",
        "\0cookie: a=b; syshost_session=\"def\"; c=d",
        "\x01cookie: __Host-syshost_session=tls; syshost_session=plain",
        "\0authorization: Basic eDp5",
        "\0authorization: Bearer",
        "\0cookie: syshost_session=",
        "\0origin: http://127.0.0.1:8080\ncookie: syshost_session=x",
        "\0sec-fetch-site: same-origin\nx-forwarded-for: 10.0.0.1, 127.0.0.1",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

const PUBLIC_ORIGIN: &str = "http://127.0.0.1:8080";

/// Runs the target; returns the outcome class.
pub fn fuzz(data: &[u8]) -> String {
    let tls = data.first().is_some_and(|b| b & 1 == 1);
    let mut headers = HeaderMap::new();
    for line in data.get(1..).unwrap_or(&[]).split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            headers.append(n, v);
        }
    }
    let outcome = match extract_token(&headers, tls) {
        Ok(Some((token, source))) => {
            assert!(!token.is_empty() && token.len() <= 512, "{token:?}");
            assert!(token.bytes().all(|b| b.is_ascii_graphic()), "{token:?}");
            let from = match source {
                TokenSource::Bearer => header::AUTHORIZATION,
                TokenSource::Cookie => {
                    assert!(!headers.contains_key(header::AUTHORIZATION));
                    header::COOKIE
                }
            };
            assert!(
                headers.get_all(&from).iter().any(|v| v
                    .as_bytes()
                    .windows(token.len())
                    .any(|w| w == token.as_bytes())),
                "token {token:?} is not in any {from} header"
            );
            if source == TokenSource::Cookie {
                assert!(
                    headers.get_all(header::COOKIE).iter().any(|v| v
                        .as_bytes()
                        .windows(cookie_name(tls).len())
                        .any(|w| w == cookie_name(tls).as_bytes())),
                    "cookie token without a {} cookie",
                    cookie_name(tls)
                );
            }
            // The Set-Cookie the host would send for a token of the cookie
            // alphabet (RFC 6265 cookie-octets; issued tokens are hex)
            // reads back unchanged.
            if token.bytes().all(|b| !b";,\\\"".contains(&b)) {
                round_trip(&token, tls);
            }
            format!("token:{source:?}")
        }
        Ok(None) => "anonymous".to_string(),
        Err(e) => {
            assert_eq!(e.status.as_u16(), 401, "{e:?}");
            format!("refused:{}", e.message)
        }
    };
    let csrf = check_csrf(&headers, PUBLIC_ORIGIN).is_ok();
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let o = origin_of(origin);
        assert!(o.contains("://"), "{o:?}");
    }
    let mut request = Request::new(Body::empty());
    *request.headers_mut() = headers;
    let direct = client_ip(&request, false);
    assert_eq!(direct, None, "no peer address, no trusted header");
    let forwarded = client_ip(&request, true).is_some();
    format!("{outcome}|csrf:{csrf}|fwd:{forwarded}")
}

fn round_trip(token: &str, tls: bool) {
    let set = set_cookie(token, tls);
    let pair = set.split(';').next().unwrap_or("");
    let mut jar = HeaderMap::new();
    jar.insert(
        header::COOKIE,
        HeaderValue::from_str(pair).expect("a set cookie is a valid header"),
    );
    assert_eq!(
        extract_token(&jar, tls).ok().flatten(),
        Some((token.to_string(), TokenSource::Cookie)),
        "{set:?}"
    );
}
