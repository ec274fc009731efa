package import GatewayConfig

/// The address of the client behind a request: the TCP peer, unless the peer is one of
/// `[server] trusted_proxies`, in which case `X-Forwarded-For` is read from the right,
/// skipping trusted hops, and the first untrusted address is the client (the header's
/// left part is whatever the client wrote and is never believed). Pure; any thread.
package enum ClientAddress {
    package static func resolve(peer: String, forwardedFor: [String], trusted: TrustedProxies) -> String {
        guard !trusted.isEmpty, !forwardedFor.isEmpty, trusted.contains(peer) else { return peer }
        var hops: [Substring] = []
        for line in forwardedFor {
            for part in line.split(separator: ",") { hops.append(part) }
        }
        var client = peer
        for hop in hops.reversed() {
            let text = hop.trimmingCharacters(in: .whitespaces)
            guard let address = IPAddress.parse(text) else {
                // Garbage in the chain: stop at the last hop we could vouch for.
                return client
            }
            client = address.description
            if !trusted.contains(address) { return client }
        }
        return client
    }
}

extension ClientAddress {
    /// The token-bucket key of a client address: IPv4 as is, IPv6 by its /64 prefix (one
    /// subscriber usually holds a whole /64, so per-address limits on full IPv6 addresses
    /// would stop nobody), IPv4-mapped IPv6 as the IPv4 address.
    package static func bucketKey(_ address: String) -> String {
        guard let parsed = IPAddress.parse(address) else { return "addr:" + address }
        if let v4 = parsed.unmappedV4 { return "addr:" + IPAddress.v4(v4).description }
        guard case .v6(let high, _) = parsed else { return "addr:" + parsed.description }
        return "addr6:" + IPAddress.v6(high: high, low: 0).description + "/64"
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: Set<Character>) -> Substring {
        var slice = self[...]
        while let first = slice.first, set.contains(first) { slice = slice.dropFirst() }
        while let last = slice.last, set.contains(last) { slice = slice.dropLast() }
        return slice
    }
}

extension Set where Element == Character {
    fileprivate static var whitespaces: Set<Character> { [" ", "\t"] }
}
