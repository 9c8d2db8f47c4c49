//! The client's address, for rate limits: the TCP peer, or the address a trusted proxy says it
//! forwarded for. Headers from anyone else are ignored, or every client could pick its own
//! bucket. IPv6 clients are counted per /64 (one subscriber's prefix).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use axum::extract::ConnectInfo;
use http::request::Parts;

/// An IP network such as `10.0.0.0/8` or `2001:db8::/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// A CIDR that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an IP network like 10.0.0.0/8 or 2001:db8::/32")]
pub struct InvalidIpNet(String);

impl FromStr for IpNet {
    type Err = InvalidIpNet;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidIpNet(text.to_owned());
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Self { addr, prefix })
    }
}

impl IpNet {
    /// Whether `ip` is inside the network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask(u32::from(net).into(), 32, self.prefix)
                    == mask(u32::from(ip).into(), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask(u128::from(net), 128, self.prefix) == mask(u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn mask(bits: u128, width: u8, prefix: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    let keep = u32::from(width - prefix.min(width));
    (bits >> keep) << keep
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The one header the trusted proxies write. Only that one is read: a proxy that appends to
/// `X-Forwarded-For` passes a client's own `Forwarded` through untouched (nginx, AWS ALB), so
/// believing the other would let every client pick its bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For` (the default: nginx, HAProxy, AWS ALB, most CDNs).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=` (RFC 7239).
    Forwarded,
}

impl FromStr for ForwardedHeader {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(Self::XForwardedFor),
            "forwarded" => Ok(Self::Forwarded),
            _ => Err(format!("`{text}` is neither x-forwarded-for nor forwarded")),
        }
    }
}

/// Finds the client's address of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientIpPolicy {
    /// Proxies whose forwarded header is believed (default none).
    pub trusted_proxies: Vec<IpNet>,
    /// Which header they write (default `X-Forwarded-For`); the other is ignored.
    pub header: ForwardedHeader,
}

impl ClientIpPolicy {
    /// The client's address: the peer (from `ConnectInfo<SocketAddr>` in the request's
    /// extensions), or, when the peer is a trusted proxy, the right-most forwarded address that
    /// is not itself a trusted proxy. `None` when the server does not give the peer.
    pub fn client_ip(&self, parts: &Parts) -> Option<IpAddr> {
        let peer = canonical(parts.extensions.get::<ConnectInfo<SocketAddr>>()?.0.ip());
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let forwarded = forwarded_for(parts, self.header);
        let client = forwarded
            .iter()
            .rev()
            .copied()
            .map(canonical)
            .find(|ip| !self.is_trusted(*ip));
        // Every hop trusted: the left-most is the client.
        Some(client.or(forwarded.first().copied()).unwrap_or(peer))
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(ip))
    }
}

/// The bucket of a client address: the address for IPv4, its /64 for IPv6.
pub fn ip_bucket(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let prefix = Ipv6Addr::from(mask(u128::from(v6), 128, 64));
            format!("{prefix}/64")
        }
    }
}

/// The addresses of `header`, left to right; a value that does not parse ends the list there
/// (nothing to its left can be trusted).
fn forwarded_for(parts: &Parts, header: ForwardedHeader) -> Vec<IpAddr> {
    let values: Vec<String> = match header {
        ForwardedHeader::Forwarded => forwarded_values(parts),
        ForwardedHeader::XForwardedFor => parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_owned())
            .collect(),
    };
    let parsed: Vec<Option<IpAddr>> = values.iter().map(|v| parse_node(v)).collect();
    // Keep only the unbroken run of parseable addresses at the right end.
    let start = parsed
        .iter()
        .rposition(Option::is_none)
        .map_or(0, |i| i + 1);
    parsed[start..].iter().flatten().copied().collect()
}

/// The `for=` values of `Forwarded` (RFC 7239), left to right.
fn forwarded_values(parts: &Parts) -> Vec<String> {
    parts
        .headers
        .get_all(http::header::FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                name.eq_ignore_ascii_case("for")
                    .then_some(value.trim().to_owned())
            })
        })
        .collect()
}

/// `203.0.113.7`, `"[2001:db8::1]:4711"`, `203.0.113.7:80`.
fn parse_node(value: &str) -> Option<IpAddr> {
    let value = value.trim().trim_matches('"');
    if let Ok(ip) = value.parse() {
        return Some(ip);
    }
    if let Ok(socket) = value.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    let inner = value.strip_prefix('[')?.split(']').next()?;
    inner.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(peer: &str, headers: &[(&str, &str)]) -> Parts {
        let mut request = http::Request::builder();
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (mut parts, ()) = request.body(()).unwrap().into_parts();
        parts
            .extensions
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        parts
    }

    fn policy(nets: &[&str]) -> ClientIpPolicy {
        ClientIpPolicy {
            trusted_proxies: nets.iter().map(|n| n.parse().unwrap()).collect(),
            header: ForwardedHeader::default(),
        }
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn headers_are_ignored_unless_the_peer_is_trusted() {
        let spoofed = parts("198.51.100.9:5000", &[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(policy(&[]).client_ip(&spoofed), ip("198.51.100.9"));
        assert_eq!(
            policy(&["10.0.0.0/8"]).client_ip(&spoofed),
            ip("198.51.100.9")
        );
        let proxied = parts(
            "10.0.0.2:5000",
            &[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.3")],
        );
        assert_eq!(
            policy(&["10.0.0.0/8"]).client_ip(&proxied),
            ip("203.0.113.7"),
            "the right-most untrusted hop; what the client wrote to its left is ignored"
        );
        let garbage = parts("10.0.0.2:5000", &[("x-forwarded-for", "203.0.113.7, junk")]);
        assert_eq!(policy(&["10.0.0.0/8"]).client_ip(&garbage), ip("10.0.0.2"));
    }

    #[test]
    fn forwarded_is_read_with_ports_and_brackets() {
        let p = parts(
            "127.0.0.1:1",
            &[(
                "forwarded",
                "for=192.0.2.60;proto=http, for=\"[2001:db8:cafe::17]:4711\"",
            )],
        );
        let forwarded = ClientIpPolicy {
            header: ForwardedHeader::Forwarded,
            ..policy(&["127.0.0.1"])
        };
        assert_eq!(forwarded.client_ip(&p), ip("2001:db8:cafe::17"));
    }

    #[test]
    fn only_the_header_the_proxy_writes_is_read() {
        // nginx appends the peer to X-Forwarded-For and passes the client's Forwarded through.
        let p = parts(
            "10.0.0.2:5000",
            &[
                ("forwarded", "for=6.6.6.6"),
                ("x-forwarded-for", "203.0.113.7"),
            ],
        );
        assert_eq!(policy(&["10.0.0.0/8"]).client_ip(&p), ip("203.0.113.7"));
        let forwarded = ClientIpPolicy {
            header: ForwardedHeader::Forwarded,
            ..policy(&["10.0.0.0/8"])
        };
        assert_eq!(forwarded.client_ip(&p), ip("6.6.6.6"));
        assert_eq!("Forwarded".parse(), Ok(ForwardedHeader::Forwarded));
        assert!("x-real-ip".parse::<ForwardedHeader>().is_err());
    }

    #[test]
    fn ipv6_is_bucketed_per_64_and_mapped_v4_is_v4() {
        let a = ip_bucket("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = ip_bucket("2001:db8:1:2:bbbb::2".parse().unwrap());
        let c = ip_bucket("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_eq!(ip_bucket("::ffff:192.0.2.1".parse().unwrap()), "192.0.2.1");
        assert!(
            "::ffff:0:0/96"
                .parse::<IpNet>()
                .unwrap()
                .contains("::1".parse().unwrap())
                .eq(&false)
        );
        assert!(
            "0.0.0.0/0"
                .parse::<IpNet>()
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("nope".parse::<IpNet>().is_err());
    }

    #[test]
    fn no_connect_info_means_no_address() {
        let (parts, ()) = http::Request::new(()).into_parts();
        assert_eq!(policy(&[]).client_ip(&parts), None);
    }
}
