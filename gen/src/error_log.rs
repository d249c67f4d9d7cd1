//! Error-log lines in nginx's format:
//!
//! ```text
//! 2026/11/21 10:00:00 [error] 1234#0: *5678 open() "/usr/share/nginx/html/x" failed (2: No such file or directory), client: 1.2.3.4, server: example.com, request: "GET /x HTTP/1.1", host: "example.com"
//! ```
//!
//! `1234#0` is the worker's pid and thread; `*5678` is the connection number, which here is the line's
//! sequence number, so every line is unique and can be counted downstream. Messages are the ones a
//! busy reverse proxy really logs at `warn`, `error` and `crit`. Each entry is one line: nginx can log
//! multi-line entries (an upstream's stderr), but those would not be countable line by line.
//!
//! References:
//! - <https://nginx.org/en/docs/ngx_core_module.html#error_log>
//! - `ngx_log_error_core()` and `ngx_http_log_error()` in nginx's src/core/ngx_log.c and
//!   src/http/ngx_http_request.c (the `, client: ..., server: ...` context).

use std::fmt::Write;

use chrono::{DateTime, Datelike, Timelike, Utc};
use rand::rngs::StdRng;
use rand::Rng;

use crate::generator::Client;
use crate::vocabulary::{self, one_of, pick};

/// The kinds of entry, with their level and how often they occur.
#[derive(Debug, Clone, Copy)]
enum Entry {
    FileNotFound,
    UpstreamTimedOut,
    UpstreamRefused,
    UpstreamReset,
    RateLimited,
    DirectoryIndex,
    Forbidden,
    ResponseBuffered,
    BodyBuffered,
    UpstreamDisabled,
    SslHandshake,
    FpmSocket,
}

const ENTRIES: &[(Entry, u32)] = &[
    (Entry::FileNotFound, 30),
    (Entry::UpstreamTimedOut, 12),
    (Entry::UpstreamRefused, 10),
    (Entry::UpstreamReset, 6),
    (Entry::RateLimited, 6),
    (Entry::DirectoryIndex, 3),
    (Entry::Forbidden, 3),
    (Entry::ResponseBuffered, 12),
    (Entry::BodyBuffered, 6),
    (Entry::UpstreamDisabled, 3),
    (Entry::SslHandshake, 3),
    (Entry::FpmSocket, 2),
];

const DOCUMENT_ROOT: &str = "/usr/share/nginx/html";

/// Writes one error-log line (without newline) into `out`.
pub(crate) fn write_line(
    out: &mut String,
    rng: &mut StdRng,
    client: &Client,
    host: &str,
    pid: u32,
    seq: u64,
    time: &DateTime<Utc>,
) {
    let entry = pick(rng, ENTRIES);
    let level = match entry {
        Entry::ResponseBuffered | Entry::BodyBuffered | Entry::UpstreamDisabled => "warn",
        Entry::SslHandshake | Entry::FpmSocket => "crit",
        _ => "error",
    };
    let _ = write!(
        out,
        "{:04}/{:02}/{:02} {:02}:{:02}:{:02} [{level}] {pid}#0: *{seq} ",
        time.year(),
        time.month(),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    );
    let id = rng.gen_range(1000..99_999);
    let api_path = match rng.gen_range(0..3) {
        0 => format!("/api/v1/products/{id}"),
        1 => format!("/api/v1/users/{id}/orders"),
        _ => "/api/v1/orders".to_string(),
    };
    let upstream = vocabulary::upstream(rng);
    // What follows the message: the request context nginx appends for errors inside a request.
    let (method, path, upstream) = match entry {
        Entry::FileNotFound => {
            let path = match rng.gen_range(0..4) {
                0 => format!("/images/products/{}-{}.jpg", vocabulary::slug(rng), rng.gen_range(1..8)),
                1 => one_of(rng, &["/favicon.ico", "/apple-touch-icon.png", "/apple-touch-icon-precomposed.png"])
                    .to_string(),
                _ => one_of(rng, &["/.env", "/.git/config", "/admin/.env", "/server-status", "/robots.txt.bak"])
                    .to_string(),
            };
            let _ = write!(out, "open() \"{DOCUMENT_ROOT}{path}\" failed (2: No such file or directory)");
            ("GET", path, None)
        }
        Entry::UpstreamTimedOut => {
            out.push_str("upstream timed out (110: Connection timed out) while reading response header from upstream");
            ("GET", api_path, Some(format!("http://{upstream}")))
        }
        Entry::UpstreamRefused => {
            out.push_str("connect() failed (111: Connection refused) while connecting to upstream");
            ("GET", api_path, Some(format!("http://{upstream}")))
        }
        Entry::UpstreamReset => {
            out.push_str("recv() failed (104: Connection reset by peer) while reading response header from upstream");
            ("POST", api_path, Some(format!("http://{upstream}")))
        }
        Entry::RateLimited => {
            let _ = write!(
                out,
                "limiting requests, excess: {}.{:03} by zone \"perip\"",
                rng.gen_range(5..40),
                rng.gen_range(0..1000)
            );
            ("GET", format!("/search?q={}", one_of(rng, vocabulary::WORDS)), None)
        }
        Entry::DirectoryIndex => {
            let dir = one_of(rng, &["/static/", "/images/", "/uploads/"]);
            let _ = write!(out, "directory index of \"{DOCUMENT_ROOT}{dir}\" is forbidden");
            ("GET", dir.to_string(), None)
        }
        Entry::Forbidden => {
            out.push_str("access forbidden by rule");
            ("GET", one_of(rng, &["/admin/", "/nginx_status", "/.git/HEAD"]).to_string(), None)
        }
        Entry::ResponseBuffered => {
            let file = rng.gen_range(1..100_000_000u64);
            let _ = write!(
                out,
                "an upstream response is buffered to a temporary file /var/cache/nginx/proxy_temp/{}/{:02}/{file:010} while reading upstream",
                file % 10,
                file / 10 % 100
            );
            (
                "GET",
                format!("/api/v1/products?limit=500&offset={}", 500 * rng.gen_range(0..20)),
                Some(format!("http://{upstream}")),
            )
        }
        Entry::BodyBuffered => {
            let _ = write!(
                out,
                "a client request body is buffered to a temporary file /var/cache/nginx/client_temp/{:010}",
                rng.gen_range(1..100_000_000u64)
            );
            ("POST", one_of(rng, &["/api/v1/orders", "/api/v1/uploads", "/api/v1/events"]).to_string(), None)
        }
        Entry::UpstreamDisabled => {
            out.push_str("upstream server temporarily disabled while reading response header from upstream");
            ("GET", api_path, Some(format!("http://{upstream}")))
        }
        Entry::SslHandshake => {
            let reason = one_of(
                rng,
                &[
                    "error:0A00006C:SSL routines::bad key share",
                    "error:0A000102:SSL routines::unsupported protocol",
                    "error:0A0000C1:SSL routines::no shared cipher",
                ],
            );
            // During the handshake there is no request yet: only the client and the listening socket.
            let _ = write!(
                out,
                "SSL_do_handshake() failed (SSL: {reason}) while SSL handshaking, client: {}, server: 0.0.0.0:443",
                client.addr
            );
            return;
        }
        Entry::FpmSocket => {
            out.push_str("connect() to unix:/run/php/php8.2-fpm.sock failed (2: No such file or directory) while connecting to upstream");
            ("GET", "/index.php".to_string(), Some("fastcgi://unix:/run/php/php8.2-fpm.sock:".to_string()))
        }
    };
    let _ = write!(out, ", client: {}, server: example.com, request: \"{method} {path} HTTP/1.1\"", client.addr);
    if let Some(upstream) = upstream {
        let upstream_path = if upstream.starts_with("fastcgi") { "" } else { &path };
        let _ = write!(out, ", upstream: \"{upstream}{upstream_path}\"");
    }
    let _ = write!(out, ", host: \"{host}\"");
    if matches!(entry, Entry::FileNotFound) && rng.gen_ratio(1, 3) {
        let _ = write!(out, ", referrer: \"https://{host}/\"");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use chrono::TimeDelta;
    use regex::Regex;

    use crate::generator::{Clock, Generator, Kind};

    /// nginx's error-log line as log parsers read it: time, level, pid#tid, *connection, message.
    const ERROR_LOG: &str = r"^(?<time>\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}) \[(?<level>warn|error|crit)\] (?<pid>\d+)#(?<tid>\d+): \*(?<conn>\d+) (?<message>.+?)(?:, client: (?<client>[0-9a-f.:]+), server: (?<server>\S+?)(?:, request: .(?<request>[A-Z]+ /\S* HTTP/1\.1).(?:, upstream: .(?<upstream>[^\x22]+).)?, host: .(?<host>[^\x22]+).(?:, referrer: .[^\x22]+.)?)?)?$";

    #[test]
    fn lines_parse_as_nginx_errors_and_carry_their_seq() {
        let error_log = Regex::new(ERROR_LOG).unwrap();
        let start = "2026-11-20T23:59:59Z".parse().unwrap();
        let clock = Clock::Fixed { start, step: TimeDelta::milliseconds(500) };
        let (mut levels, mut pids, mut messages) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        let mut with_upstream = 0;
        for line in Generator::new(7, clock, 1.0).take(5000) {
            assert_eq!(line.kind, Kind::Error);
            let fields = error_log.captures(&line.text).unwrap_or_else(|| panic!("not an nginx error: {}", line.text));
            assert_eq!(fields["conn"].parse::<u64>().unwrap(), line.seq);
            assert_eq!(&fields["time"], line.time.format("%Y/%m/%d %H:%M:%S").to_string());
            assert!(fields.name("client").is_some(), "{}", line.text);
            levels.insert(fields["level"].to_string());
            pids.insert(fields["pid"].to_string());
            messages.insert(fields["message"].split(['(', '"']).next().unwrap().to_string());
            with_upstream += usize::from(fields.name("upstream").is_some());
        }
        assert_eq!(levels, ["crit", "error", "warn"].map(String::from).into());
        assert_eq!(pids.len(), 4, "one pid per worker: {pids:?}");
        assert!(messages.len() >= 10, "{messages:?}");
        assert!(with_upstream > 1000, "{with_upstream} lines with an upstream");
    }
}
