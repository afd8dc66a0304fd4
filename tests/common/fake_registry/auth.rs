//! Bearer-token auth: the `WWW-Authenticate` challenge, scope checks and the token
//! endpoint.

use std::fmt::Write as _;

use serde_json::json;

use super::reply::Reply;
use super::request::Request;
use super::{Auth, Mode, SERVICE, Shared};

/// The 401 a request without a fitting token gets, or `None` when it may pass.
pub(super) fn challenge(request: &Request, shared: &Shared, name: Option<&str>) -> Option<Reply> {
    let state = shared.state();
    let auth_loop = state.mode == Mode::AuthLoop;
    if state.auth.is_none() && !auth_loop {
        return None;
    }
    let scope = name.map(|n| format!("repository:{n}:pull"));
    let granted = request
        .bearer()
        .and_then(|token| state.tokens.get(token))
        .is_some_and(|issued| scope.as_deref().is_none_or(|s| scope_covers(issued, s)));
    if granted && !auth_loop {
        return None;
    }
    let port = request
        .header("host")
        .and_then(|h| h.rsplit_once(':'))
        .map_or_else(String::new, |(_, p)| p.to_owned());
    let realm = state
        .realm
        .clone()
        .unwrap_or_else(|| format!("http://127.0.0.1:{port}/token"));
    let mut value = format!("Bearer realm=\"{realm}\",service=\"{SERVICE}\"");
    if let Some(scope) = &scope {
        let _ = write!(value, ",scope=\"{scope}\"");
    }
    let mut reply = Reply::error(
        "401 Unauthorized",
        "UNAUTHORIZED",
        "authentication required",
        "",
    );
    reply.headers.push(("WWW-Authenticate", value));
    Some(reply)
}

/// Whether a token issued for `issued` (space-separated scopes) grants `wanted`.
pub(super) fn scope_covers(issued: &str, wanted: &str) -> bool {
    let Some((resource, actions)) = wanted.rsplit_once(':') else {
        return false;
    };
    issued.split(' ').any(|s| {
        s.rsplit_once(':')
            .is_some_and(|(r, a)| r == resource && a.split(',').any(|x| x == actions))
    })
}

/// `GET /token?service=..&scope=..`: Basic credentials checked, a token for the scope.
pub(super) fn token(request: &Request, shared: &Shared) -> Reply {
    let mut state = shared.state();
    if request.method != "GET" {
        return Reply::error(
            "405 Method Not Allowed",
            "UNSUPPORTED",
            "use GET",
            &request.method,
        );
    }
    if request.query("service") != [SERVICE] {
        return Reply::error(
            "400 Bad Request",
            "UNSUPPORTED",
            "unknown service",
            &request.target,
        );
    }
    let auth = state.auth.clone().unwrap_or_else(Auth::anonymous);
    let allowed = match request.basic_credentials() {
        Some(given) => auth.credentials.as_ref() == Some(&given),
        None => auth.anonymous && request.header("authorization").is_none(),
    };
    if !allowed {
        let mut reply = Reply::error(
            "401 Unauthorized",
            "UNAUTHORIZED",
            "invalid username or password",
            "",
        );
        reply
            .headers
            .push(("WWW-Authenticate", format!("Basic realm=\"{SERVICE}\"")));
        return reply;
    }
    let token = format!("fake-token-{}", state.tokens.len() + 1);
    state
        .tokens
        .insert(token.clone(), request.query("scope").join(" "));
    Reply::json(
        "200 OK",
        &json!({
            "token": token,
            "access_token": token,
            "expires_in": 300,
            "issued_at": "2026-01-01T00:00:00Z",
        }),
    )
}
