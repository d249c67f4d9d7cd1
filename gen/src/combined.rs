//! Access-log lines in nginx's predefined `combined` format:
//!
//! ```text
//! $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"
//! ```
//!
//! Each request's query string ends in `rid=<seq>`, the line's sequence number, so every line is unique
//! and can be counted downstream; everything else is chosen to look like a real shop's traffic.
//!
//! References:
//! - <https://nginx.org/en/docs/http/ngx_http_log_module.html#log_format>

use std::fmt::Write;

use chrono::{DateTime, Datelike, Timelike, Utc};
use rand::rngs::StdRng;
use rand::Rng;

use crate::generator::Client;
use crate::vocabulary::{self, one_of, pick, Visitor, CATEGORIES, EXTERNAL_REFERRERS, WORDS};

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Writes one access-log line (without newline) into `out`.
pub(crate) fn write_line(
    out: &mut String,
    rng: &mut StdRng,
    client: &Client,
    host: &str,
    seq: u64,
    time: &DateTime<Utc>,
) {
    let visitor = client.agent.visitor;
    let resource = pick(rng, resources_for(visitor));
    let method = resource.method(rng);
    let path = resource.path(rng, method);
    let status = resource.status(rng, method);
    let bytes = body_bytes(rng, resource, method, status);
    let user = if resource == Resource::Admin && status == 200 { "admin" } else { "-" };
    let protocol = match visitor {
        Visitor::Browser => pick(rng, &[("HTTP/2.0", 65), ("HTTP/1.1", 35)]),
        Visitor::SearchCrawler => pick(rng, &[("HTTP/1.1", 80), ("HTTP/2.0", 20)]),
        Visitor::Scanner => pick(rng, &[("HTTP/1.1", 85), ("HTTP/1.0", 15)]),
        Visitor::Crawler | Visitor::Tool => "HTTP/1.1",
    };
    let separator = if path.contains('?') { '&' } else { '?' };
    let _ = write!(out, "{} - {user} [", client.addr);
    write_time_local(out, time);
    let _ = write!(out, "] \"{method} {path}{separator}rid={seq} {protocol}\" {status} {bytes} \"");
    write_referrer(out, rng, visitor, resource, host);
    let _ = write!(out, "\" \"{}\"", client.agent.ua);
}

/// `$time_local` for UTC: `20/Nov/2026:23:59:00 +0000`.
fn write_time_local(out: &mut String, time: &DateTime<Utc>) {
    let _ = write!(
        out,
        "{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000",
        time.day(),
        MONTHS[time.month0() as usize],
        time.year(),
        time.hour(),
        time.minute(),
        time.second()
    );
}

/// What a request asks for; it decides the method, path, status and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resource {
    Home,
    Page,
    Product,
    Category,
    Search,
    Script,
    Style,
    Image,
    ApiRead,
    ApiWrite,
    Login,
    Health,
    Robots,
    Sitemap,
    Favicon,
    Probe,
    Admin,
}

fn resources_for(visitor: Visitor) -> &'static [(Resource, u32)] {
    use Resource::*;
    match visitor {
        Visitor::Browser => &[
            (Home, 8),
            (Page, 10),
            (Product, 14),
            (Category, 6),
            (Search, 5),
            (Script, 10),
            (Style, 6),
            (Image, 18),
            (ApiRead, 12),
            (ApiWrite, 5),
            (Login, 2),
            (Favicon, 2),
            (Admin, 1),
        ],
        Visitor::SearchCrawler => &[
            (Home, 4),
            (Page, 25),
            (Product, 30),
            (Category, 12),
            (Robots, 6),
            (Sitemap, 5),
            (Image, 10),
            (Script, 4),
            (Style, 4),
        ],
        Visitor::Crawler => {
            &[(Home, 5), (Page, 30), (Product, 30), (Category, 15), (Robots, 10), (Sitemap, 5), (Probe, 5)]
        }
        Visitor::Scanner => &[(Probe, 80), (Home, 8), (Robots, 4), (Admin, 4), (Login, 4)],
        Visitor::Tool => &[(Health, 55), (ApiRead, 30), (ApiWrite, 10), (Home, 5)],
    }
}

const STATIC_HASHES: &[&str] = &["3f9a1c2e", "b81d07aa", "c4e2f915", "0d7e66b3"];

impl Resource {
    fn method(self, rng: &mut StdRng) -> &'static str {
        use Resource::*;
        match self {
            Home | Page | Product | Category => pick(rng, &[("GET", 97), ("HEAD", 3)]),
            Health => pick(rng, &[("GET", 80), ("HEAD", 20)]),
            ApiWrite => pick(rng, &[("POST", 70), ("PUT", 20), ("DELETE", 10)]),
            Login => pick(rng, &[("GET", 50), ("POST", 50)]),
            Probe => pick(rng, &[("GET", 80), ("POST", 15), ("HEAD", 5)]),
            Search | Script | Style | Image | ApiRead | Robots | Sitemap | Favicon | Admin => "GET",
        }
    }

    /// The request path, with a query string for some resources (`rid=` is added by the caller).
    fn path(self, rng: &mut StdRng, method: &str) -> String {
        use Resource::*;
        let id = rng.gen_range(1000..99_999);
        match self {
            Home => pick(rng, &[("/", 9), ("/index.html", 1)]).to_string(),
            Page => match rng.gen_range(0..4) {
                0 => format!("/blog/2026/{:02}/{}", rng.gen_range(1..12), vocabulary::slug(rng)),
                1 => format!("/docs/{}/{}", one_of(rng, CATEGORIES), vocabulary::slug(rng)),
                _ => one_of(rng, &["/about", "/contact", "/pricing", "/careers", "/shipping"]).to_string(),
            },
            Product if rng.gen_ratio(2, 5) => format!(
                "/products/{}?color={}&size={}",
                vocabulary::slug(rng),
                one_of(rng, &["black", "white", "steel"]),
                one_of(rng, &["s", "m", "l"])
            ),
            Product => format!("/products/{}", vocabulary::slug(rng)),
            Category => format!(
                "/category/{}?page={}&sort={}",
                one_of(rng, CATEGORIES),
                rng.gen_range(1..12),
                one_of(rng, &["newest", "price_asc", "price_desc", "popular"])
            ),
            Search => {
                format!("/search?q={}+{}&page={}", one_of(rng, WORDS), one_of(rng, WORDS), rng.gen_range(1..5))
            }
            Script => format!(
                "/static/js/{}.{}.js",
                one_of(rng, &["app", "vendor", "runtime", "checkout"]),
                one_of(rng, STATIC_HASHES)
            ),
            Style if rng.gen_ratio(1, 5) => "/static/fonts/inter-var.woff2".to_string(),
            Style => format!("/static/css/{}.{}.css", one_of(rng, &["main", "checkout"]), one_of(rng, STATIC_HASHES)),
            Image => match rng.gen_range(0..6) {
                0 => "/images/logo.svg".to_string(),
                1 => format!("/images/banners/{}.webp", one_of(rng, WORDS)),
                _ => format!(
                    "/images/products/{}-{}.jpg?w={}",
                    vocabulary::slug(rng),
                    rng.gen_range(1..8),
                    one_of(rng, &[320, 640, 1280])
                ),
            },
            ApiRead => match rng.gen_range(0..5) {
                0 => format!(
                    "/api/v1/products?category={}&limit=20&offset={}",
                    one_of(rng, CATEGORIES),
                    20 * rng.gen_range(0..10)
                ),
                1 => format!("/api/v1/products/{id}"),
                2 => "/api/v1/cart".to_string(),
                3 => format!("/api/v1/users/{id}/orders"),
                _ => format!("/api/v2/recommendations?product={id}"),
            },
            ApiWrite => match method {
                "POST" => {
                    one_of(rng, &["/api/v1/events", "/api/v1/cart/items", "/api/v1/orders", "/api/v1/auth/token"])
                        .to_string()
                }
                "PUT" if rng.gen() => format!("/api/v1/cart/items/{id}"),
                "PUT" => format!("/api/v1/users/{id}/address"),
                _ if rng.gen() => format!("/api/v1/cart/items/{id}"),
                _ => format!("/api/v1/sessions/{:016x}", rng.gen::<u64>()),
            },
            Login if method == "GET" && rng.gen() => "/account/login?next=%2Faccount%2Forders".to_string(),
            Login => "/account/login".to_string(),
            Health => one_of(rng, &["/healthz", "/status", "/nginx_status", "/metrics"]).to_string(),
            Robots => "/robots.txt".to_string(),
            Sitemap => one_of(rng, &["/sitemap.xml", "/sitemap-products.xml"]).to_string(),
            Favicon => one_of(rng, &["/favicon.ico", "/apple-touch-icon.png"]).to_string(),
            Probe => one_of(rng, vocabulary::PROBES).to_string(),
            Admin => one_of(
                rng,
                &["/admin/", "/admin/orders?status=pending", "/admin/reports?from=2026-11-01&to=2026-11-20"],
            )
            .to_string(),
        }
    }

    fn status(self, rng: &mut StdRng, method: &str) -> u16 {
        use Resource::*;
        let table: &[(u16, u32)] = match (self, method) {
            (Home | Page | Product | Category | Search, _) => {
                &[(200, 170), (304, 12), (301, 4), (302, 2), (404, 6), (499, 2), (500, 2), (502, 1), (503, 1)]
            }
            (Script | Style, _) => &[(200, 72), (304, 26), (404, 2)],
            (Image, _) => &[(200, 70), (304, 24), (206, 2), (404, 4)],
            (ApiRead, _) => &[(200, 88), (401, 3), (404, 3), (429, 2), (500, 2), (502, 1), (504, 1)],
            (ApiWrite, "POST") => &[(201, 60), (200, 20), (400, 8), (401, 3), (422, 5), (500, 3), (502, 1)],
            (ApiWrite, "PUT") => &[(200, 85), (400, 5), (404, 5), (409, 3), (500, 2)],
            (ApiWrite, _) => &[(204, 80), (404, 15), (500, 5)],
            (Login, "POST") => &[(302, 70), (200, 20), (429, 10)],
            (Login, _) => &[(200, 1)],
            (Health, _) => &[(200, 98), (503, 2)],
            (Robots | Sitemap, _) => &[(200, 95), (304, 5)],
            (Favicon, _) => &[(200, 60), (304, 30), (404, 10)],
            (Probe, _) => &[(404, 85), (403, 10), (301, 5)],
            (Admin, _) => &[(401, 40), (200, 40), (403, 20)],
        };
        pick(rng, table)
    }

    /// Size of a successful response body.
    fn size(self, rng: &mut StdRng) -> u32 {
        use Resource::*;
        match self {
            Home => rng.gen_range(18_000..46_000),
            Page => rng.gen_range(8_000..60_000),
            Product => rng.gen_range(25_000..90_000),
            Category => rng.gen_range(30_000..80_000),
            Search => rng.gen_range(12_000..40_000),
            Script => rng.gen_range(40_000..420_000),
            Style => rng.gen_range(8_000..90_000),
            Image => rng.gen_range(4_000..800_000),
            ApiRead => rng.gen_range(150..12_000),
            ApiWrite => rng.gen_range(20..600),
            Login => rng.gen_range(4_000..7_000),
            Health => rng.gen_range(2..20),
            Robots => 112,
            Sitemap => rng.gen_range(5_000..80_000),
            Favicon => 15_086,
            Admin => rng.gen_range(3_000..12_000),
            Probe => 153,
        }
    }
}

/// `$body_bytes_sent`: nothing for HEAD, 204, 304 and 499 (client closed), nginx's built-in error
/// pages for the statuses nginx answers itself, and JSON error bodies from the API.
fn body_bytes(rng: &mut StdRng, resource: Resource, method: &str, status: u16) -> u32 {
    let api = matches!(resource, Resource::ApiRead | Resource::ApiWrite);
    match status {
        _ if method == "HEAD" => 0,
        204 | 304 | 499 => 0,
        200 | 201 => resource.size(rng),
        206 => rng.gen_range(65_536..1_048_576),
        400..=499 if api => rng.gen_range(40..300),
        301 => 169,
        302 => 145,
        400 => 157,
        401 => 179,
        403 | 404 => 153,
        429 => 169,
        500 => 177,
        502 => 157,
        503 => 197,
        504 => 167,
        _ => rng.gen_range(40..300),
    }
}

/// `$http_referer`: pages are reached from search engines, links or by typing the address; their
/// assets and API calls are referred by the page that loads them. Crawlers, scanners and tools send
/// none.
fn write_referrer(out: &mut String, rng: &mut StdRng, visitor: Visitor, resource: Resource, host: &str) {
    use Resource::*;
    if visitor != Visitor::Browser {
        out.push('-');
        return;
    }
    let internal = match resource {
        Home | Page | Product | Category | Search | Admin => match rng.gen_range(0..20) {
            0..=8 => None,
            9..=15 => {
                out.push_str(one_of(rng, EXTERNAL_REFERRERS));
                return;
            }
            _ => Some(()),
        },
        Script | Style | Image | ApiRead | ApiWrite | Login | Favicon => Some(()),
        Health | Robots | Sitemap | Probe => None,
    };
    match internal {
        None => out.push('-'),
        Some(()) if rng.gen_ratio(1, 3) => {
            let _ = write!(out, "https://{host}/");
        }
        Some(()) => {
            let _ = write!(out, "https://{host}/products/{}", vocabulary::slug(rng));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use chrono::TimeDelta;
    use regex::Regex;

    use crate::generator::{Clock, Generator, Kind};

    /// The `combined` format as log parsers (Logstash's `COMBINEDAPACHELOG`, GoAccess) read it.
    const COMBINED: &str = r#"^(?<addr>[0-9a-f.:]+) - (?<user>\S+) \[(?<time>\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000)\] "(?<method>[A-Z]+) (?<path>/\S*) (?<proto>HTTP/\d\.\d)" (?<status>\d{3}) (?<bytes>\d+) "(?<referrer>[^"]*)" "(?<agent>[^"]*)"$"#;

    #[test]
    fn lines_parse_as_combined_and_carry_their_seq() {
        let combined = Regex::new(COMBINED).unwrap();
        let rid = Regex::new(r"[?&]rid=(\d+)$").unwrap();
        let start = "2026-11-20T23:59:59Z".parse().unwrap();
        let clock = Clock::Fixed { start, step: TimeDelta::milliseconds(500) };
        let (mut methods, mut statuses, mut agents) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        let (mut ipv6, mut with_referrer, mut with_query) = (0, 0, 0);
        for line in Generator::new(5, clock, 0.0).take(20_000) {
            assert_eq!(line.kind, Kind::Access);
            let fields = combined.captures(&line.text).unwrap_or_else(|| panic!("not combined: {}", line.text));
            let path = &fields["path"];
            assert_eq!(rid.captures(path).unwrap()[1].parse::<u64>().unwrap(), line.seq, "{}", line.text);
            assert_eq!(&fields["time"], line.time.format("%d/%b/%Y:%H:%M:%S +0000").to_string());
            assert!(!fields["agent"].is_empty());
            methods.insert(fields["method"].to_string());
            statuses.insert(fields["status"].parse::<u16>().unwrap());
            agents.insert(fields["agent"].to_string());
            ipv6 += usize::from(fields["addr"].contains(':'));
            with_referrer += usize::from(&fields["referrer"] != "-");
            with_query += usize::from(path.contains('&'));
        }
        assert_eq!(methods, ["DELETE", "GET", "HEAD", "POST", "PUT"].map(String::from).into());
        for status in [200, 201, 204, 301, 302, 304, 403, 404, 500, 502, 503] {
            assert!(statuses.contains(&status), "no status {status} in {statuses:?}");
        }
        assert!(agents.iter().any(|agent| agent.contains("Googlebot")));
        assert!(agents.iter().any(|agent| agent.contains("Firefox")));
        assert!(agents.len() >= 15, "{} user agents", agents.len());
        assert!((1000..5000).contains(&ipv6), "{ipv6} IPv6 clients in 20000 lines");
        assert!(with_referrer > 5000 && with_referrer < 15_000, "{with_referrer} referrers");
        assert!(with_query > 1000, "{with_query} paths with their own query string");
    }

    #[test]
    fn empty_bodies_have_zero_bytes() {
        let combined = Regex::new(COMBINED).unwrap();
        for line in Generator::new(6, Clock::Wall, 0.0).take(20_000) {
            let fields = combined.captures(&line.text).unwrap();
            if fields["method"] == *"HEAD" || ["204", "304"].contains(&&fields["status"]) {
                assert_eq!(&fields["bytes"], "0", "{}", line.text);
            }
        }
    }
}
