//! The words the generated logs are made of: real user agents, client addresses from the ranges their
//! owners really use, referrers, host names and path fragments, with weights that give the mix of a
//! small shop's web server (mostly browsers, a steady share of crawlers, scanners probing for
//! WordPress and `.env`, health checks from tools).

use rand::rngs::StdRng;
use rand::Rng;

/// Picks one item of a weighted table.
pub(crate) fn pick<T: Copy>(rng: &mut StdRng, table: &[(T, u32)]) -> T {
    *pick_ref(rng, table)
}

/// Picks one item of a weighted table, by reference. The tables are short, so a linear scan beats a
/// prebuilt index.
pub(crate) fn pick_ref<'a, T>(rng: &mut StdRng, table: &'a [(T, u32)]) -> &'a T {
    let total: u32 = table.iter().map(|(_, weight)| weight).sum();
    let mut roll = rng.gen_range(0..total);
    for (item, weight) in table {
        if roll < *weight {
            return item;
        }
        roll -= weight;
    }
    unreachable!("the roll is below the total weight")
}

/// Picks one item, all equally likely.
pub(crate) fn one_of<T: Copy>(rng: &mut StdRng, items: &[T]) -> T {
    items[rng.gen_range(0..items.len())]
}

/// Who sends requests; it decides what they ask for and from which addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Visitor {
    Browser,
    /// Googlebot and bingbot, from their published ranges.
    SearchCrawler,
    /// SEO crawlers that do not publish ranges.
    Crawler,
    /// Vulnerability scanners probing for known paths.
    Scanner,
    /// curl, SDKs, health checks and monitoring.
    Tool,
}

pub(crate) struct Agent {
    pub ua: &'static str,
    pub visitor: Visitor,
    /// Where this agent's addresses come from, when it is not a random residential one.
    pub range: Option<Range>,
}

#[derive(Clone, Copy)]
pub(crate) enum Range {
    Googlebot,
    Bingbot,
    /// Private addresses: probes and services inside the network.
    Internal,
}

const fn agent(ua: &'static str, visitor: Visitor) -> Agent {
    Agent { ua, visitor, range: None }
}

/// Real user-agent strings, with a weight for how often a client in the pool uses each.
pub(crate) const AGENTS: &[(Agent, u32)] = &[
    (agent("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", Visitor::Browser), 26),
    (agent("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", Visitor::Browser), 9),
    (agent("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36", Visitor::Browser), 16),
    (agent("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", Visitor::Browser), 14),
    (agent("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15", Visitor::Browser), 5),
    (agent("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", Visitor::Browser), 6),
    (agent("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", Visitor::Browser), 4),
    (agent("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", Visitor::Browser), 1),
    (agent("Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1", Visitor::Browser), 2),
    (Agent { ua: "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", visitor: Visitor::SearchCrawler, range: Some(Range::Googlebot) }, 2),
    (Agent { ua: "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", visitor: Visitor::SearchCrawler, range: Some(Range::Googlebot) }, 2),
    (Agent { ua: "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", visitor: Visitor::SearchCrawler, range: Some(Range::Bingbot) }, 2),
    (agent("Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", Visitor::Crawler), 1),
    (agent("Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)", Visitor::Crawler), 1),
    (agent("Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)", Visitor::Crawler), 1),
    (agent("Mozilla/5.0 zgrab/0.x", Visitor::Scanner), 1),
    (agent("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/78.0.3904.108 Safari/537.36", Visitor::Scanner), 1),
    (agent("python-requests/2.32.3", Visitor::Scanner), 1),
    (agent("curl/8.5.0", Visitor::Tool), 1),
    (agent("Go-http-client/1.1", Visitor::Tool), 1),
    (Agent { ua: "kube-probe/1.31", visitor: Visitor::Tool, range: Some(Range::Internal) }, 1),
    (Agent { ua: "Prometheus/2.55.1", visitor: Visitor::Tool, range: Some(Range::Internal) }, 1),
    // nginx logs a missing User-Agent header as "-".
    (agent("-", Visitor::Tool), 1),
];

/// First octets of IPv4 blocks allocated to residential and hosting providers.
const IPV4_FIRST_OCTETS: &[u8] = &[
    5, 23, 31, 37, 45, 46, 51, 62, 66, 73, 77, 78, 81, 82, 85, 89, 91, 93, 95, 98, 104, 109, 151, 172, 176, 178, 185,
    188, 193, 194, 203, 212, 213, 217,
];

/// IPv6 prefixes (the first two groups) of large access networks (DTAG, Free, Comcast, AT&T, BT).
const IPV6_PREFIXES: &[&str] = &["2003:e2", "2a01:e0a", "2601:18c", "2600:1700", "2a00:23c8"];

/// Share of browser clients on IPv6, in percent.
const IPV6_PERCENT: u32 = 15;

/// An address for a client of this agent, as nginx prints `$remote_addr`.
pub(crate) fn address(rng: &mut StdRng, agent: &Agent) -> String {
    match agent.range {
        Some(Range::Googlebot) if rng.gen_ratio(1, 4) => {
            format!("2001:4860:4801:{:x}::{:x}", rng.gen_range(0x10..0x90), rng.gen_range(1..0x40))
        }
        Some(Range::Googlebot) => {
            format!("66.249.{}.{}", rng.gen_range(64..80), rng.gen_range(1..255))
        }
        Some(Range::Bingbot) => {
            let block = one_of(rng, &["40.77.167", "157.55.39", "207.46.13"]);
            format!("{block}.{}", rng.gen_range(1..255))
        }
        Some(Range::Internal) => format!("10.0.{}.{}", rng.gen_range(0..4), rng.gen_range(2..255)),
        None if agent.visitor == Visitor::Browser && rng.gen_ratio(IPV6_PERCENT, 100) => format!(
            "{}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}",
            one_of(rng, IPV6_PREFIXES),
            rng.gen::<u16>(),
            rng.gen::<u16>(),
            rng.gen::<u16>(),
            rng.gen::<u16>(),
            rng.gen::<u16>(),
            rng.gen::<u16>(),
        ),
        None => format!(
            "{}.{}.{}.{}",
            one_of(rng, IPV4_FIRST_OCTETS),
            rng.gen_range(0..=255),
            rng.gen_range(0..=255),
            rng.gen_range(1..255)
        ),
    }
}

/// Virtual hosts of the server, with weights.
pub(crate) const HOSTS: &[(&str, u32)] =
    &[("example.com", 50), ("www.example.com", 30), ("shop.example.com", 15), ("api.example.com", 5)];

/// Where visitors arriving from elsewhere come from.
pub(crate) const EXTERNAL_REFERRERS: &[&str] = &[
    "https://www.google.com/",
    "https://www.google.de/",
    "https://www.bing.com/",
    "https://duckduckgo.com/",
    "https://t.co/",
    "https://www.facebook.com/",
    "https://news.ycombinator.com/",
    "android-app://com.google.android.gm/",
];

pub(crate) const WORDS: &[&str] = &[
    "coffee", "grinder", "espresso", "kettle", "mug", "filter", "beans", "roast", "travel", "ceramic", "glass",
    "steel", "gift", "set", "black", "white", "large", "mini", "pro", "classic",
];

pub(crate) const CATEGORIES: &[&str] = &["coffee", "tea", "equipment", "accessories", "gifts", "sale"];

/// A `word-word` slug for products and articles.
pub(crate) fn slug(rng: &mut StdRng) -> String {
    format!("{}-{}", one_of(rng, WORDS), one_of(rng, WORDS))
}

/// Paths scanners probe for, which this server does not have.
pub(crate) const PROBES: &[&str] = &[
    "/wp-login.php",
    "/xmlrpc.php",
    "/wp-admin/setup-config.php",
    "/.env",
    "/.git/config",
    "/admin/.env",
    "/phpmyadmin/index.php",
    "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
    "/cgi-bin/luci/;stok=/locale",
    "/actuator/env",
    "/owa/auth/logon.aspx",
    "/server-status",
];

/// Internal upstreams nginx proxies to.
pub(crate) fn upstream(rng: &mut StdRng) -> String {
    format!("10.0.{}.{}:8080", rng.gen_range(1..4), rng.gen_range(10..40))
}
