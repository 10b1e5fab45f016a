//! The client's address: the TCP peer, or (behind a trusted proxy) the right-most address in
//! `X-Forwarded-For` that is not itself a trusted proxy. Addresses a client can write itself are
//! never believed: only entries appended by trusted proxies count.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer_ip = canonical(peer.ip());
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer_ip) {
        return peer_ip;
    }
    // Every X-Forwarded-For header, in order, as one list (a proxy may add a second header).
    let chain: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer_ip;
    for entry in chain.iter().rev() {
        match entry.parse::<IpAddr>() {
            Ok(ip) => {
                client = canonical(ip);
                if !is_trusted(&client) {
                    return client;
                }
            }
            // A value a trusted proxy would not write: stop at the last address we could read.
            Err(_) => return client,
        }
    }
    client
}

/// An IPv4 address reached over IPv6 (`::ffff:a.b.c.d`) is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let peer: SocketAddr = "192.0.2.9:4000".parse().unwrap();
        let ip = client_ip(peer, &headers(&["10.1.1.1"]), &nets(&["127.0.0.1/32"]));
        assert_eq!(ip, "192.0.2.9".parse::<IpAddr>().unwrap());
        assert_eq!(
            client_ip(peer, &headers(&["10.1.1.1"]), &[]),
            "192.0.2.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_entry_counts() {
        let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let trusted = nets(&["127.0.0.1/32", "10.9.0.0/16"]);
        // The client wrote "1.2.3.4" itself; the proxies appended 198.51.100.7 and 10.9.0.5.
        let h = headers(&["1.2.3.4, 198.51.100.7", "10.9.0.5"]);
        assert_eq!(
            client_ip(peer, &h, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        // No header: the proxy itself.
        assert_eq!(client_ip(peer, &HeaderMap::new(), &trusted), peer.ip());
        // Garbage after a readable address stops the walk there.
        let h = headers(&["198.51.100.7, not-an-address"]);
        assert_eq!(client_ip(peer, &h, &trusted), peer.ip());
        // IPv4-mapped IPv6 peers match IPv4 rules.
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:4000".parse().unwrap();
        let h = headers(&["203.0.113.1"]);
        assert_eq!(
            client_ip(mapped, &h, &trusted),
            "203.0.113.1".parse::<IpAddr>().unwrap()
        );
    }

    proptest! {
        /// Whatever the header says, the result is the peer or an address from the header, and
        /// never one a trusted proxy did not vouch for (left of an untrusted entry).
        #[test]
        fn any_header_gives_an_address_from_the_chain(value in "[ -~]{0,120}") {
            let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
            let Ok(v) = value.parse() else { return Ok(()) };
            let mut h = HeaderMap::new();
            h.insert("x-forwarded-for", v);
            let ip = client_ip(peer, &h, &nets(&["127.0.0.0/8"]));
            let listed = value.split(',').any(|e| e.trim().parse::<IpAddr>().ok().map(canonical) == Some(ip));
            prop_assert!(ip == peer.ip() || listed);
        }
    }
}
