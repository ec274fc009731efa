import Testing

@testable import GatewayConfig

private func parsed(_ entries: [String]) -> TrustedProxies? {
    if case .success(let proxies) = TrustedProxies.parse(entries) { return proxies }
    return nil
}

private func failure(_ entry: String) -> String? {
    if case .failure(let message) = TrustedProxies.parse([entry]) { return message }
    return nil
}

@Suite struct IPAddressTests {
    @Test(arguments: [
        ("0.0.0.0", "0.0.0.0"), ("255.255.255.255", "255.255.255.255"), ("10.1.2.3", "10.1.2.3"),
        ("::", "::"), ("::1", "::1"), ("2001:DB8::1", "2001:db8::1"), ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"), ("1::", "1::"), ("::ffff:192.0.2.1", "::ffff:c000:201"),
        ("64:ff9b::10.0.0.1", "64:ff9b::a00:1"), ("fe80::", "fe80::"), ("1:0:0:2::3", "1:0:0:2::3"),
    ])
    func validAddressesParse(text: String, canonical: String) {
        #expect(IPAddress.parse(text)?.description == canonical, "\(text)")
    }

    @Test(arguments: [
        "", "1.2.3", "1.2.3.4.5", "256.0.0.1", "01.2.3.4", "1.2.3.04", "1.2.3.-1", " 1.2.3.4", "1.2.3.4 ", "1..3.4",
        "0x1.2.3.4", "1.2.3.4/", ":", ":::", "1:::2", "1::2::3", ":1::", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7",
        "12345::",
        "g::1", "::1%eth0", "[::1]", "1:2:3:4:5:6:7::8", "1.2.3.4::", "::1.2.3", "::1.2.3.4:5", "1::2:3:4:5:6:7:8",
        "localhost", "１.2.3.4",
    ])
    func garbageIsRejected(text: String) {
        #expect(IPAddress.parse(text) == nil, "\(text)")
    }

    @Test func mappedV4IsRecognised() {
        #expect(IPAddress.parse("::ffff:10.0.0.1")?.unmappedV4 == 0x0A00_0001)
        #expect(IPAddress.parse("::10.0.0.1")?.unmappedV4 == nil)
        #expect(IPAddress.parse("10.0.0.1")?.unmappedV4 == 0x0A00_0001)
    }
}

@Suite struct TrustedProxiesTests {
    @Test func emptyTrustsNobody() {
        let none = TrustedProxies()
        #expect(none.isEmpty)
        #expect(!none.contains("127.0.0.1"))
        #expect(parsed([]) == none)
    }

    @Test func addressesAndBlocks() throws {
        let proxies = try #require(parsed(["127.0.0.1", "10.0.0.0/8", "::1", "2001:db8::/32", "192.168.1.0/24"]))
        #expect(proxies.description == #"["127.0.0.1", "10.0.0.0/8", "::1", "2001:db8::/32", "192.168.1.0/24"]"#)
        for trusted in [
            "127.0.0.1", "10.0.0.0", "10.255.255.255", "::1", "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
            "192.168.1.0", "192.168.1.255", "::ffff:10.9.8.7", "::ffff:127.0.0.1", "::1%lo",
        ] {
            #expect(proxies.contains(trusted), "\(trusted)")
        }
        for untrusted in [
            "127.0.0.2", "9.255.255.255", "11.0.0.0", "::2", "2001:db9::", "2001:db7:ffff::", "192.168.2.0",
            "::ffff:11.0.0.1", "::10.0.0.1", "garbage", "", "10.0.0.1/8",
        ] {
            #expect(!proxies.contains(untrusted), "\(untrusted)")
        }
    }

    @Test func prefixBoundaries() throws {
        let proxies = try #require(parsed(["0.0.0.0/0"]))
        #expect(proxies.contains("1.2.3.4"))
        #expect(proxies.contains("::ffff:1.2.3.4"))
        #expect(!proxies.contains("::1"))
        let everyV6 = try #require(parsed(["::/0"]))
        #expect(everyV6.contains("2001:db8::1"))
        #expect(!everyV6.contains("1.2.3.4"))
        // Prefixes across the 64-bit halves of an IPv6 address.
        let p63 = try #require(parsed(["2001:db8:0:fffe::/63"]))
        #expect(p63.contains("2001:db8:0:ffff:1::"))
        #expect(!p63.contains("2001:db8:0:fffd::"))
        let p65 = try #require(parsed(["2001:db8::8000:0:0:0/65"]))
        #expect(p65.contains("2001:db8::ffff:0:0:1"))
        #expect(!p65.contains("2001:db8::7fff:ffff:ffff:ffff"))
        let p127 = try #require(parsed(["::2/127"]))
        #expect(p127.contains("::3") && p127.contains("::2") && !p127.contains("::4") && !p127.contains("::1"))
        let p31 = try #require(parsed(["10.0.0.2/31"]))
        #expect(p31.contains("10.0.0.3") && !p31.contains("10.0.0.4") && !p31.contains("10.0.0.1"))
        #expect(try #require(parsed(["10.0.0.1/32"])).contains("10.0.0.1"))
        #expect(try #require(parsed(["::1/128"])).contains("::1"))
    }

    @Test func garbageAndAmbiguityAreRejected() {
        #expect(failure("10.0.0.1/8")?.contains("did you mean \"10.0.0.0/8\"") == true)
        #expect(failure("2001:db8::1/32")?.contains("did you mean \"2001:db8::/32\"") == true)
        #expect(failure("10.0.0.0/33")?.contains("0-32") == true)
        #expect(failure("::/129")?.contains("0-128") == true)
        for bad in [
            "10.0.0.0/", "10.0.0.0/08", "10.0.0.0/-1", "10.0.0.0/8/8", "10.0.0.0/ 8", "10.0.0.0/x", "localhost",
            "*", "10.0.0.*", "10.0.0.0-10.0.0.9", "", "fe80::1%eth0", "[::1]",
        ] {
            #expect(failure(bad) != nil, "\(bad)")
        }
        if case .failure(let message) = TrustedProxies.parse(["10.0.0.0/8", "10.0.0.0/8"]) {
            #expect(message.contains("listed twice"))
        } else {
            Issue.record("a duplicate entry was accepted")
        }
    }
}
