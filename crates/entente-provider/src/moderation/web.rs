//! The moderators' web page under `/moderation/`: server-rendered HTML, no
//! JavaScript. Log in with the moderator token (and a name for the log); the
//! session is a random cookie (`HttpOnly; Secure; SameSite=Strict`, expiring)
//! whose hash the provider keeps in memory. Every form that changes something
//! carries the session's CSRF token. All output is HTML-escaped; every answer is
//! `Cache-Control: no-store` with a Content-Security-Policy that allows no scripts.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use entente_wire::ids::UserId;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::admin::{ReportView, SanctionView, load_report, load_reports, load_sanctions};
use super::form::{Form, cookie, escape as e, parse_form};
use super::{ActionKind, ActionRequest, Session, act};
use crate::state::{AppState, now_secs};

/// The session cookie. `__Host-`: the browser only accepts it with `Secure`,
/// `Path=/` and no `Domain`, so no other host can set or shadow it.
pub const COOKIE: &str = "__Host-entente-mod";

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/moderation", get(|| async { redirect("/moderation/") }))
        .route("/moderation/", get(home))
        .route("/moderation/login", post(login))
        .route("/moderation/logout", post(logout))
        .route("/moderation/reports/{id}", get(report_page))
        .route("/moderation/act", post(action))
        .layer(axum::middleware::map_response(headers))
        .with_state(state)
}

async fn headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

fn redirect(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} - Entente moderation</title><style>{STYLE}</style></head>\
         <body><h1>{title}</h1>{body}</body></html>",
        title = e(title),
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response()
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:70em;margin:1em auto;padding:0 1em}\
table{border-collapse:collapse;width:100%;margin-bottom:1em}td,th{border:1px solid #ccc;padding:.3em;text-align:left;vertical-align:top}\
pre{white-space:pre-wrap;background:#f4f4f4;padding:.5em}.flash{background:#e6f4e6;padding:.5em}\
.error{background:#fbe3e3;padding:.5em}form.inline{display:inline}label{display:block;margin:.3em 0}";

/// The session of a request, if it has a live one.
fn session(state: &AppState, headers: &HeaderMap) -> Option<(String, Session)> {
    let raw = headers.get(header::COOKIE)?.to_str().ok()?;
    let value = cookie(raw, COOKIE)?;
    let s = state.moderation.session(value, now_secs())?;
    Some((value.to_owned(), s))
}

fn login_page(status: StatusCode, error: Option<&str>) -> Response {
    let error = error
        .map(|m| format!("<p class=\"error\" id=\"error\">{}</p>", e(m)))
        .unwrap_or_default();
    page(
        status,
        "Sign in",
        &format!(
            "{error}<form method=\"post\" action=\"/moderation/login\" id=\"login\">\
             <label>Moderator token (in <code>moderator.token</code> in the provider's data directory) \
             <input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"off\" required></label>\
             <label>Your name, for the moderation log \
             <input type=\"text\" name=\"moderator\" id=\"moderator\" maxlength=\"64\"></label>\
             <button type=\"submit\" id=\"signin\">Sign in</button></form>"
        ),
    )
}

#[derive(Deserialize)]
struct HomeQuery {
    #[serde(default)]
    all: Option<String>,
}

async fn home(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HomeQuery>,
) -> Response {
    let Some((cookie_value, s)) = session(&state, &headers) else {
        return login_page(StatusCode::OK, None);
    };
    let all = q.all.is_some();
    let reports = match load_reports(&state, all).await {
        Ok(r) => r,
        Err(f) => return error_page(f.status, &f.message),
    };
    let sanctions = match load_sanctions(&state, 20).await {
        Ok(s) => s,
        Err(f) => return error_page(f.status, &f.message),
    };
    let flash = state
        .moderation
        .take_flash(&cookie_value)
        .map(|m| format!("<p class=\"flash\" id=\"flash\">{}</p>", e(&m)))
        .unwrap_or_default();
    let mut body = format!(
        "{}{flash}<h2>{} reports</h2>",
        header_bar(&s),
        if all { "All" } else { "Open" }
    );
    if reports.is_empty() {
        body.push_str("<p id=\"no-reports\">No reports.</p>");
    } else {
        body.push_str(
            "<table id=\"reports\"><tr><th>#</th><th>Received</th><th>Kind</th><th>Accused</th>\
             <th>Reported by</th><th>Reason</th><th>Messages</th><th>Status</th></tr>",
        );
        for r in &reports {
            body.push_str(&format!(
                "<tr><td><a href=\"/moderation/reports/{id}\" id=\"report-{id}\">{id}</a></td>\
                 <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} {}</td><td>{}</td><td>{}</td></tr>",
                time_ms(r.received_at),
                role_text(&r.role),
                e(&r.alleged_abuser),
                e(r.reporter.as_deref().unwrap_or(&r.reporter_domain)),
                r.reason,
                e(&r.note),
                r.messages.len(),
                e(&r.status),
                id = r.id,
            ));
        }
        body.push_str("</table>");
    }
    body.push_str(if all {
        "<p><a href=\"/moderation/\">Show open reports only</a></p>"
    } else {
        "<p><a href=\"/moderation/?all=1\">Show all reports</a></p>"
    });
    body.push_str(&sanction_table(
        &s,
        "Suspended local users",
        "suspended",
        ActionKind::Unsuspend,
        &sanctions.suspended_users,
    ));
    body.push_str(&sanction_table(
        &s,
        "Banned remote users",
        "banned-users",
        ActionKind::UnbanUser,
        &sanctions.banned_users,
    ));
    body.push_str(&sanction_table(
        &s,
        "Banned domains",
        "banned-domains",
        ActionKind::UnbanDomain,
        &sanctions.banned_domains,
    ));
    body.push_str(&format!(
        "<h2>Act</h2><form method=\"post\" action=\"/moderation/act\" id=\"act\">{}\
         <label>Action <select name=\"action\" id=\"act-action\">{}</select></label>\
         <label>User or domain <input type=\"text\" name=\"target\" id=\"act-target\"></label>\
         <label>Reason (for a warning: the text the user reads) \
         <input type=\"text\" name=\"reason\" id=\"act-reason\" maxlength=\"2000\"></label>\
         <label>Report it settles (optional) <input type=\"text\" name=\"report\" id=\"act-report\"></label>\
         <button type=\"submit\" id=\"act-submit\">Apply</button></form>",
        csrf_field(&s),
        ActionKind::ALL
            .iter()
            .map(|k| format!("<option value=\"{0}\">{0}</option>", k.name()))
            .collect::<String>()
    ));
    body.push_str("<h2>Recent actions</h2>");
    if sanctions.log.is_empty() {
        body.push_str("<p>None yet.</p>");
    } else {
        body.push_str(
            "<table id=\"log\"><tr><th>When</th><th>Who</th><th>Action</th><th>Target</th>\
             <th>Reason</th><th>Report</th></tr>",
        );
        for l in &sanctions.log {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                time_secs(l.at),
                e(&l.moderator),
                e(&l.action),
                e(&l.target),
                e(&l.reason),
                l.report.map(|r| r.to_string()).unwrap_or_default()
            ));
        }
        body.push_str("</table>");
    }
    page(StatusCode::OK, "Moderation", &body)
}

fn header_bar(s: &Session) -> String {
    format!(
        "<p>Signed in as <b id=\"who\">{}</b>. <a href=\"/moderation/\">Home</a> \
         <form method=\"post\" action=\"/moderation/logout\" class=\"inline\">{}\
         <button type=\"submit\" id=\"logout\">Sign out</button></form></p>",
        e(&s.moderator),
        csrf_field(s)
    )
}

fn csrf_field(s: &Session) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        e(&s.csrf)
    )
}

fn sanction_table(
    s: &Session,
    title: &str,
    id: &str,
    undo: ActionKind,
    rows: &[SanctionView],
) -> String {
    let mut out = format!("<h2>{}</h2>", e(title));
    if rows.is_empty() {
        out.push_str(&format!("<p id=\"{id}-none\">None.</p>"));
        return out;
    }
    out.push_str(&format!(
        "<table id=\"{id}\"><tr><th>Who</th><th>Reason</th><th>Since</th><th></th></tr>"
    ));
    for r in rows {
        out.push_str(&format!(
            "<tr><td>{t}</td><td>{}</td><td>{}</td><td>\
             <form method=\"post\" action=\"/moderation/act\" class=\"inline\">{}\
             <input type=\"hidden\" name=\"action\" value=\"{}\">\
             <input type=\"hidden\" name=\"target\" value=\"{t}\">\
             <button type=\"submit\">{}</button></form></td></tr>",
            e(&r.reason),
            time_secs(r.since),
            csrf_field(s),
            undo.name(),
            undo.name(),
            t = e(&r.target),
        ));
    }
    out.push_str("</table>");
    out
}

fn role_text(role: &str) -> &'static str {
    match role {
        "hub" => "verified at our hub",
        _ => "about our user (from the hub)",
    }
}

async fn report_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some((_, s)) = session(&state, &headers) else {
        return login_page(StatusCode::UNAUTHORIZED, Some("Sign in first."));
    };
    let Ok(id) = id.parse::<u64>() else {
        return error_page(StatusCode::NOT_FOUND, "no such report");
    };
    let r = match load_report(&state, id).await {
        Ok(r) => r,
        Err(f) => return error_page(f.status, &f.message),
    };
    let mut body = header_bar(&s);
    body.push_str(&format!(
        "<table id=\"report\"><tr><th>Status</th><td id=\"status\">{}{}</td></tr>\
         <tr><th>Received</th><td>{}</td></tr><tr><th>Kind</th><td>{}</td></tr>\
         <tr><th>Room</th><td>{}</td></tr><tr><th>Hub</th><td>{}</td></tr>\
         <tr><th>Accused</th><td id=\"accused\">{}</td></tr>\
         <tr><th>Reported by</th><td>{}</td></tr>\
         <tr><th>Reason</th><td>{} {}</td></tr></table><h2>Reported messages</h2>",
        e(&r.status),
        r.resolution
            .as_deref()
            .map(|x| format!(" ({})", e(x)))
            .unwrap_or_default(),
        time_ms(r.received_at),
        role_text(&r.role),
        e(&r.room),
        e(&r.hub),
        e(&r.alleged_abuser),
        e(r.reporter.as_deref().unwrap_or(&r.reporter_domain)),
        r.reason,
        e(&r.note),
    ));
    for (i, m) in r.messages.iter().enumerate() {
        body.push_str(&format!(
            "<p>Accepted by the hub {}:</p><pre class=\"message\" id=\"message-{i}\">{}</pre>",
            time_ms(m.accepted_at),
            if m.is_text {
                e(&m.text)
            } else {
                format!("<i>{}</i>", e(&m.text))
            }
        ));
    }
    body.push_str(&report_actions(&state, &s, &r));
    page(StatusCode::OK, &format!("Report {}", r.id), &body)
}

/// The actions that fit a report's accused user.
fn report_actions(state: &AppState, s: &Session, r: &ReportView) -> String {
    let mut actions: Vec<(ActionKind, String, &str)> = Vec::new();
    match UserId::parse_any(&r.alleged_abuser) {
        Ok(u) if state.is_local(u.domain()) => {
            actions.push((
                ActionKind::Warn,
                u.to_string(),
                "Warn (the reason is the text they read)",
            ));
            actions.push((ActionKind::Suspend, u.to_string(), "Suspend the account"));
        }
        Ok(u) => {
            actions.push((ActionKind::BanUser, u.to_string(), "Ban this remote user"));
            actions.push((
                ActionKind::BanDomain,
                u.domain().to_string(),
                "Ban the whole domain",
            ));
        }
        Err(_) => {}
    }
    actions.push((ActionKind::Dismiss, r.id.to_string(), "Dismiss the report"));
    let mut out = String::from("<h2>Act on this report</h2>");
    for (kind, target, label) in actions {
        out.push_str(&format!(
            "<form method=\"post\" action=\"/moderation/act\" id=\"form-{k}\">{}\
             <input type=\"hidden\" name=\"action\" value=\"{k}\">\
             <input type=\"hidden\" name=\"target\" value=\"{}\">\
             <input type=\"hidden\" name=\"report\" value=\"{}\">\
             <label>{} ({}): reason <input type=\"text\" name=\"reason\" id=\"reason-{k}\" maxlength=\"2000\" required></label>\
             <button type=\"submit\" id=\"do-{k}\">{k}</button></form>",
            csrf_field(s),
            e(&target),
            r.id,
            e(label),
            e(&target),
            k = kind.name(),
        ));
    }
    out
}

async fn login(State(state): State<AppState>, body: Bytes) -> Response {
    let form = match parse_form(&body) {
        Ok(f) => f,
        Err(err) => return login_page(StatusCode::BAD_REQUEST, Some(&err.to_string())),
    };
    if !state.moderation.token_matches(form.get("token")) {
        tracing::warn!("moderation sign-in with a wrong token");
        return login_page(StatusCode::FORBIDDEN, Some("Wrong moderator token."));
    }
    let name = form.get("moderator").trim();
    if name.chars().count() > super::MAX_MODERATOR || name.chars().any(char::is_control) {
        return login_page(
            StatusCode::BAD_REQUEST,
            Some("The name must be at most 64 printable characters."),
        );
    }
    let name = if name.is_empty() { "moderator" } else { name };
    let (value, _) = state.moderation.login(name.to_owned(), now_secs());
    let cookie = format!(
        "{COOKIE}={value}; Path=/; Max-Age={}; HttpOnly; Secure; SameSite=Strict",
        state.moderation.session_secs()
    );
    let mut r = redirect("/moderation/");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// The session and form of a state-changing request, with its CSRF token checked.
fn checked(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(String, Session, Form), Box<Response>> {
    let Some((value, s)) = session(state, headers) else {
        return Err(Box::new(login_page(
            StatusCode::UNAUTHORIZED,
            Some("Your session expired or you are not signed in; sign in again."),
        )));
    };
    let form = parse_form(body)
        .map_err(|err| Box::new(error_page(StatusCode::BAD_REQUEST, &err.to_string())))?;
    let sent = form.get("csrf");
    if sent.is_empty() || !bool::from(sent.as_bytes().ct_eq(s.csrf.as_bytes())) {
        return Err(Box::new(error_page(
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token: submit the form from the moderation page",
        )));
    }
    Ok((value, s, form))
}

async fn logout(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (value, _, _) = match checked(&state, &headers, &body) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    state.moderation.logout(&value);
    let mut r = redirect("/moderation/");
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "__Host-entente-mod=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict",
        ),
    );
    r
}

async fn action(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (value, s, form) = match checked(&state, &headers, &body) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let report = match form.get("report").trim() {
        "" => None,
        t => match t.parse::<u64>() {
            Ok(id) => Some(id),
            Err(_) => {
                return error_page(StatusCode::BAD_REQUEST, "the report must be a number");
            }
        },
    };
    let req = ActionRequest {
        action: form.get("action").to_owned(),
        target: form.get("target").to_owned(),
        reason: form.get("reason").to_owned(),
        report,
        moderator: s.moderator.clone(),
    };
    match act(&state, req).await {
        Ok(done) => {
            state.moderation.set_flash(&value, format!("Done: {done}."));
            redirect("/moderation/")
        }
        Err(f) => error_page(f.status, &f.message),
    }
}

fn error_page(status: StatusCode, message: &str) -> Response {
    page(
        status,
        "Not done",
        &format!(
            "<p class=\"error\" id=\"error\">{}</p><p><a href=\"/moderation/\">Back</a></p>",
            e(message)
        ),
    )
}

/// `YYYY-MM-DD HH:MM:SS UTC` of a UNIX time in seconds.
fn time_secs(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn time_ms(ms: u64) -> String {
    time_secs(ms / 1000)
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(time_secs(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(time_secs(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(time_secs(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }
}
