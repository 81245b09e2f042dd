//! Value parsing with Go's rules, so a value etcd accepts is accepted here and
//! a value etcd refuses is refused with the same reason text (`parse error`,
//! `value out of range`, `URL must not contain a path: ...`).

use std::time::Duration;

use url::Url;

/// A parsed flag value. Which variant a flag holds follows its [`Kind`](super::flags::Kind).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Str(String),
    Bool(bool),
    Uint(u64),
    Int(i64),
    Duration(Duration),
    Urls(Vec<Url>),
    List(Vec<String>),
    Cluster(Vec<(String, Url)>),
}

/// Go's `strconv` failure kinds, which the `flag` package prints verbatim.
pub(crate) const PARSE_ERROR: &str = "parse error";
pub(crate) const RANGE_ERROR: &str = "value out of range";

/// Go `strconv.ParseBool`.
pub(crate) fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(PARSE_ERROR.to_string()),
    }
}

/// Go `strconv.ParseUint(s, 0, 64)`: `0x`, `0o`, `0b` and leading-`0` octal
/// prefixes and `_` digit separators are accepted, as etcd accepts them.
pub(crate) fn parse_uint(s: &str) -> Result<u64, String> {
    let (digits, radix) = split_radix(s);
    if digits.is_empty() || !underscores_ok(s) {
        return Err(PARSE_ERROR.to_string());
    }
    let mut n: u64 = 0;
    for c in digits.chars().filter(|&c| c != '_') {
        let d = c.to_digit(radix).ok_or_else(|| PARSE_ERROR.to_string())?;
        n = n
            .checked_mul(u64::from(radix))
            .and_then(|n| n.checked_add(u64::from(d)))
            .ok_or_else(|| RANGE_ERROR.to_string())?;
    }
    Ok(n)
}

/// Go `strconv.ParseInt(s, 0, 64)`.
pub(crate) fn parse_int(s: &str) -> Result<i64, String> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let magnitude = parse_uint(body)?;
    if neg {
        if magnitude > i64::MAX as u64 + 1 {
            return Err(RANGE_ERROR.to_string());
        }
        Ok((magnitude as i64).wrapping_neg())
    } else {
        i64::try_from(magnitude).map_err(|_| RANGE_ERROR.to_string())
    }
}

fn split_radix(s: &str) -> (&str, u32) {
    let lower = s.get(..2).map(str::to_ascii_lowercase);
    match lower.as_deref() {
        Some("0x") => (&s[2..], 16),
        Some("0o") => (&s[2..], 8),
        Some("0b") => (&s[2..], 2),
        _ if s.len() > 1 && s.starts_with('0') => (&s[1..], 8),
        _ => (s, 10),
    }
}

/// Go's `underscoreOK`: `_` may only sit between digits (or after a base prefix).
fn underscores_ok(s: &str) -> bool {
    if !s.contains('_') {
        return true;
    }
    let b = s.as_bytes();
    let prefixed = b.len() > 1 && b[0] == b'0' && b[1].is_ascii_alphabetic();
    let start = if prefixed { 2 } else { 0 };
    let mut prev_digit = prefixed;
    for &c in &b[start..] {
        if c == b'_' {
            if !prev_digit {
                return false;
            }
            prev_digit = false;
        } else {
            prev_digit = true;
        }
    }
    prev_digit
}

/// Go `time.ParseDuration`, with Go's error texts (`time: invalid duration "x"`).
/// Negative durations are refused: nothing in the config can use one.
pub(crate) fn parse_duration(orig: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {orig:?}");
    let (neg, mut s) = match orig.as_bytes().first() {
        Some(b'-') => (true, &orig[1..]),
        Some(b'+') => (false, &orig[1..]),
        _ => (false, orig),
    };
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, rest) = s.split_at(int_len);
        let (frac_part, rest) = match rest.strip_prefix('.') {
            Some(r) => {
                let n = r.bytes().take_while(u8::is_ascii_digit).count();
                r.split_at(n)
            }
            None => ("", rest),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (unit, rest) = rest.split_at(unit_len);
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration {orig:?}"));
        }
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(format!("time: unknown unit {unit:?} in duration {orig:?}")),
        };
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        let mut part = whole.checked_mul(scale).ok_or_else(invalid)?;
        // Fractions keep at most nanosecond precision, as Go's do.
        let mut frac_scale = scale;
        for d in frac_part.bytes() {
            frac_scale /= 10;
            part += u128::from(d - b'0') * frac_scale;
        }
        total = total.checked_add(part).ok_or_else(invalid)?;
        if total > i64::MAX as u128 {
            return Err(invalid());
        }
        s = rest;
    }
    if neg && total > 0 {
        return Err(format!("time: negative duration {orig:?} is not supported"));
    }
    u64::try_from(total)
        .map(Duration::from_nanos)
        .map_err(|_| invalid())
}

/// Formats a duration the way Go's `time.Duration.String` does for the
/// round values used as defaults (`5s`, `2h0m0s`, `100ms`), for help and warnings.
pub(crate) fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000_000_000 {
        return match ns {
            n if n % 1_000_000 == 0 => format!("{}ms", n / 1_000_000),
            n if n % 1_000 == 0 => format!("{}µs", n / 1_000),
            n => format!("{n}ns"),
        };
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let frac = d.subsec_nanos();
    let s = if frac == 0 {
        format!("{s}")
    } else {
        format!("{s}.{}", format!("{frac:09}").trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m{s}s"),
        (h, m) => format!("{h}h{m}m{s}s"),
    }
}

/// How a URL list flag is used; etcd checks listen URLs harder than advertised ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UrlRole {
    /// Bound locally: the host must be an IP address or `localhost`.
    Listen,
    /// Told to others: any host name, but not an empty one.
    Advertise,
}

/// etcd's `types.NewURLs` plus the role check: a comma-separated list, each URL
/// http/https/unix/unixs with `host:port` and no path; sorted and de-duplicated
/// as etcd's `UniqueURLs` are. An empty string is an empty list, as in etcd.
pub(crate) fn parse_urls(s: &str, role: UrlRole) -> Result<Vec<Url>, String> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let mut urls = s
        .split(',')
        .map(|part| parse_url(part.trim(), role))
        .collect::<Result<Vec<_>, _>>()?;
    urls.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    urls.dedup();
    Ok(urls)
}

/// One URL, checked in the order Go's `url.Parse` and etcd's `NewURLs` check it.
pub(crate) fn parse_url(input: &str, role: UrlRole) -> Result<Url, String> {
    let scheme_err = || format!("URL scheme must be http, https, unix, or unixs: {input}");
    let (scheme, rest) = match go_scheme(input) {
        Err(()) => return Err(format!("parse {input:?}: missing protocol scheme")),
        Ok(Some((scheme, rest))) => (scheme.to_ascii_lowercase(), rest),
        Ok(None) => {
            let first_segment = input.split('/').next().unwrap_or("");
            if first_segment.contains(':') {
                return Err(format!(
                    "parse {input:?}: first path segment in URL cannot contain colon"
                ));
            }
            return Err(scheme_err());
        }
    };
    match scheme.as_str() {
        "http" | "https" => check_http_authority(input, rest)?,
        "unix" | "unixs" => {}
        _ => return Err(scheme_err()),
    }
    let url = Url::parse(input).map_err(|e| format!("parse {input:?}: {e}"))?;
    if role == UrlRole::Listen && (scheme == "http" || scheme == "https") {
        match url.host() {
            Some(url::Host::Ipv4(_)) | Some(url::Host::Ipv6(_)) => {}
            Some(url::Host::Domain("localhost")) => {}
            _ => return Err(format!("expected IP in URL for binding ({input})")),
        }
    }
    Ok(url)
}

/// Go's `getScheme`: `Ok(None)` when the text has no scheme, `Err` for a leading colon.
fn go_scheme(s: &str) -> Result<Option<(&str, &str)>, ()> {
    for (i, c) in s.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i == 0 => return Err(()),
            ':' => return Ok(Some((&s[..i], &s[i + 1..]))),
            _ => return Ok(None),
        }
    }
    Ok(None)
}

/// etcd requires `host:port` and forbids a path for http(s) URLs.
fn check_http_authority(input: &str, after_scheme: &str) -> Result<(), String> {
    let form_err = || format!("URL address does not have the form \"host:port\": {input}");
    let Some(rest) = after_scheme.strip_prefix("//") else {
        return Err(form_err());
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        let Some(close) = v6.find(']') else {
            return Err(format!("parse {input:?}: missing ']' in host"));
        };
        if !v6[close + 1..].starts_with(':') {
            return Err(form_err());
        }
        &v6[..close]
    } else {
        match host_port.split_once(':') {
            Some((host, port)) if !port.contains(':') => host,
            _ => return Err(form_err()),
        }
    };
    if host.is_empty() {
        return Err(format!("unexpected empty host ({input})"));
    }
    if tail.starts_with('/') {
        return Err(format!("URL must not contain a path: {input}"));
    }
    Ok(())
}

/// etcd's `types.NewURLsMap` for `--initial-cluster`: `name=url` pairs separated
/// by commas; a name may repeat to give a member several peer URLs. Pairs keep
/// their order; each member's URLs are checked like any advertised URL.
pub(crate) fn parse_cluster(s: &str) -> Result<Vec<(String, Url)>, String> {
    let mut members = Vec::new();
    for item in s.split(',').filter(|item| !item.is_empty()) {
        let (name, url) = item.split_once('=').unwrap_or((item, ""));
        members.push((name.to_string(), parse_url(url.trim(), UrlRole::Advertise)?));
    }
    Ok(members)
}

/// A comma-separated list of strings (etcd's `StringsValue`); empty items dropped.
pub(crate) fn parse_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(String::from)
        .collect()
}

/// The URL as the user wrote it, without the `/` the `url` crate adds to http URLs.
pub(crate) fn display_url(u: &Url) -> String {
    let s = u.as_str();
    if u.path() == "/" && u.query().is_none() && u.fragment().is_none() {
        s.strip_suffix('/').unwrap_or(s).to_string()
    } else {
        s.to_string()
    }
}
