//! Who is really asking, and over which scheme. On the TLS listener that is the peer itself.
//! Behind a load balancer that ends TLS (the plain listener in `serve` mode), it is what the
//! balancer says in `X-Forwarded-For` and `X-Forwarded-Proto` — believed only when the peer is
//! one of `[http] trusted_proxies`, since anyone else can write those headers.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hyper::header::HeaderMap;

use crate::config::Cidr;

/// Which listener a front serves, and so how it learns the client's address and scheme.
#[derive(Debug, Clone)]
pub(crate) enum Listener {
    /// TLS ends here: the peer is the client and the scheme is https.
    Tls,
    /// Plain HTTP, possibly behind balancers at these addresses.
    Plain {
        /// Peers whose forwarded headers are believed.
        trusted: Arc<[Cidr]>,
    },
}

/// The client as the gateway understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    /// The client's address: the peer, or the nearest untrusted hop of `X-Forwarded-For`.
    pub(crate) client: SocketAddr,
    /// `"https"` or `"http"`: the scheme the client used.
    pub(crate) proto: &'static str,
    /// The peer is a trusted balancer: its `X-Forwarded-For` chain is extended, not replaced.
    pub(crate) via_trusted: bool,
}

impl Origin {
    /// The peer is the client, on the listener's own scheme; forwarded headers count for
    /// nothing.
    fn direct(peer: SocketAddr, proto: &'static str) -> Origin {
        Origin {
            client: peer,
            proto,
            via_trusted: false,
        }
    }
}

impl Listener {
    /// The origin of a request from `peer` with `headers`.
    pub(crate) fn origin(&self, peer: SocketAddr, headers: &HeaderMap) -> Origin {
        let trusted = match self {
            Listener::Tls => return Origin::direct(peer, "https"),
            Listener::Plain { trusted } => trusted,
        };
        let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
        if !is_trusted(peer.ip()) {
            return Origin::direct(peer, "http");
        }
        // Walk the chain from the nearest hop: every trusted balancer appended the address it
        // saw, so the first untrusted one is the client. An entry that is not an address ends
        // the walk there: nothing left of it can be checked.
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer.ip();
        let mut port = peer.port();
        for hop in hops.iter().rev() {
            let Some(ip) = hop_address(hop) else { break };
            client = ip;
            // The client's own port is not forwarded.
            port = 0;
            if !is_trusted(ip) {
                break;
            }
        }
        // The balancer that met the client wrote the scheme it used; a later one may add its
        // own, so the first value counts.
        let proto = headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim);
        Origin {
            client: SocketAddr::new(client, port),
            proto: if proto.is_some_and(|p| p.eq_ignore_ascii_case("https")) {
                "https"
            } else {
                "http"
            },
            via_trusted: true,
        }
    }
}

/// An `X-Forwarded-For` entry: an address, bracketed IPv6, or either with a port.
fn hop_address(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Ok(addr) = hop.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    hop.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .and_then(|h| h.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn plain(trusted: &[&str]) -> Listener {
        Listener::Plain {
            trusted: trusted.iter().map(|c| c.parse().unwrap()).collect(),
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_static(value));
        }
        h
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 40000)
    }

    #[test]
    fn tls_believes_no_header() {
        let h = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "http"),
        ]);
        let o = Listener::Tls.origin(peer("10.0.0.9"), &h);
        assert_eq!(o.client, peer("10.0.0.9"));
        assert_eq!((o.proto, o.via_trusted), ("https", false));
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let h = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
        ]);
        let o = plain(&["10.0.0.0/8"]).origin(peer("192.168.1.5"), &h);
        assert_eq!(o.client, peer("192.168.1.5"));
        assert_eq!((o.proto, o.via_trusted), ("http", false));
        // No list at all: nobody is believed.
        let o = plain(&[]).origin(peer("10.0.0.1"), &h);
        assert_eq!((o.client, o.via_trusted), (peer("10.0.0.1"), false));
    }

    #[test]
    fn behind_trusted_balancers_the_nearest_untrusted_hop_is_the_client() {
        let lb = plain(&["10.0.0.0/8", "fd00::/8"]);
        // A client-forged first entry is left of the real client and never reached.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 203.0.113.7"),
            ("x-forwarded-for", "10.1.1.1"),
            ("x-forwarded-proto", "https"),
        ]);
        let o = lb.origin(peer("10.0.0.2"), &h);
        assert_eq!(o.client.ip().to_string(), "203.0.113.7");
        assert_eq!((o.proto, o.via_trusted), ("https", true));
        // Every hop trusted: the farthest one is the best we know.
        let h = headers(&[("x-forwarded-for", "10.9.9.9, 10.1.1.1")]);
        assert_eq!(
            lb.origin(peer("10.0.0.2"), &h).client.ip().to_string(),
            "10.9.9.9"
        );
        // No header: the balancer itself; no proto: http.
        let o = lb.origin(peer("10.0.0.2"), &HeaderMap::new());
        assert_eq!((o.client, o.proto), (peer("10.0.0.2"), "http"));
        // Ports and brackets as some balancers write them; IPv4-mapped peers match v4 blocks.
        let h = headers(&[("x-forwarded-for", "[2001:db8::1]:5555, 198.51.100.2:80")]);
        let mapped: SocketAddr = "[::ffff:10.0.0.2]:1".parse().unwrap();
        assert_eq!(
            lb.origin(mapped, &h).client.ip().to_string(),
            "198.51.100.2"
        );
        // Garbage stops the walk at the last hop that could be read.
        let h = headers(&[("x-forwarded-for", "203.0.113.9, nonsense, 10.1.1.1")]);
        assert_eq!(
            lb.origin(peer("10.0.0.2"), &h).client.ip().to_string(),
            "10.1.1.1"
        );
    }

    #[test]
    fn blocks_parse_strictly_and_match_by_prefix() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains("10.255.0.1".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert_eq!(one.to_string(), "127.0.0.1");
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        for (bad, says) in [
            ("10.1.2.3/8", "write `10.0.0.0/8`"),
            ("10.0.0.0/33", "from 0 to 32"),
            ("lb.example", "not an IP address"),
            ("10.0.0.0/", "prefix length"),
        ] {
            let e = bad.parse::<Cidr>().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
