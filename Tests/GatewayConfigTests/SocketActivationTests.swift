import GatewayConfig
import Testing

/// `LISTEN_PID`/`LISTEN_FDS`/`LISTEN_FDNAMES` as `sd_listen_fds` reads them, each passed
/// descriptor checked to be a listening TCP socket, and the passed sockets checked against
/// `[server] listen`.
@Suite struct SocketActivationTests {
    private static let pid: Int32 = 4242
    private static let a = ListenAddress(host: "127.0.0.1", port: 8080)
    private static let b = ListenAddress(host: "::", port: 8443)

    private func parse(
        _ environment: [String: String],
        facts: [Int32: SocketActivation.DescriptorFacts] = [:]
    ) throws(SocketActivation.Problem) -> SocketActivation.Received {
        var asked: [Int32] = []
        let received = try SocketActivation.parse(environment: environment, pid: Self.pid) { descriptor in
            asked.append(descriptor)
            return facts[descriptor]
                ?? SocketActivation.DescriptorFacts(
                    isOpen: false,
                    isSocket: false,
                    isStream: false,
                    isListening: false,
                    address: nil
                )
        }
        // Only the passed descriptors are ever looked at.
        #expect(asked.allSatisfy { $0 >= 3 })
        return received
    }

    private func problem(
        _ environment: [String: String],
        facts: [Int32: SocketActivation.DescriptorFacts] = [:]
    ) -> String {
        do {
            let received = try self.parse(environment, facts: facts)
            Issue.record("expected a problem, got \(received)")
            return ""
        } catch {
            return error.description
        }
    }

    @Test func noVariablesMeansNoActivation() throws {
        #expect(try self.parse([:]) == .none)
        #expect(try self.parse(["PATH": "/bin"]) == .none)
    }

    @Test func socketsFromDescriptorThreeInOrderWithNames() throws {
        let received = try self.parse(
            ["LISTEN_PID": "4242", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "dbaudit-gateway.socket:tls"],
            facts: [3: .listeningTCP(Self.a), 4: .listeningTCP(Self.b)]
        )
        #expect(
            received
                == .sockets([
                    SocketActivation.Socket(descriptor: 3, name: "dbaudit-gateway.socket", address: Self.a),
                    SocketActivation.Socket(descriptor: 4, name: "tls", address: Self.b),
                ])
        )
        let unnamed = try self.parse(["LISTEN_PID": "4242", "LISTEN_FDS": "1"], facts: [3: .listeningTCP(Self.a)])
        #expect(unnamed == .sockets([SocketActivation.Socket(descriptor: 3, name: nil, address: Self.a)]))
    }

    @Test func variablesForAnotherProcessAreIgnored() throws {
        guard case .ignored(let reason) = try self.parse(["LISTEN_PID": "1", "LISTEN_FDS": "1"]) else {
            Issue.record("expected ignored")
            return
        }
        #expect(reason.contains("LISTEN_PID=1") && reason.contains("4242"))
        guard case .ignored = try self.parse(["LISTEN_FDS": "1"]) else {
            Issue.record("LISTEN_FDS without LISTEN_PID must be ignored")
            return
        }
    }

    @Test func malformedVariablesAreProblems() {
        #expect(self.problem(["LISTEN_PID": "abc", "LISTEN_FDS": "1"]).contains("LISTEN_PID=abc is not a process id"))
        #expect(self.problem(["LISTEN_PID": "0", "LISTEN_FDS": "1"]).contains("LISTEN_PID=0"))
        #expect(self.problem(["LISTEN_PID": "4242", "LISTEN_FDS": "-1"]).contains("LISTEN_FDS=-1 is not a number"))
        #expect(self.problem(["LISTEN_PID": "4242", "LISTEN_FDS": " 1"]).contains("is not a number"))
        #expect(self.problem(["LISTEN_PID": "4242", "LISTEN_FDS": "65"]).contains("more than the 64"))
        #expect(self.problem(["LISTEN_PID": "4242", "LISTEN_FDS": "99999999999"]).contains("is not a number"))
        let names = self.problem(
            ["LISTEN_PID": "4242", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "one"],
            facts: [3: .listeningTCP(Self.a), 4: .listeningTCP(Self.b)]
        )
        #expect(names.contains("LISTEN_FDNAMES names 1 descriptor(s) but LISTEN_FDS=2"))
        // Environment text in a message is bounded and printable.
        let long = self.problem(["LISTEN_PID": String(repeating: "\u{1}x", count: 100), "LISTEN_FDS": "1"])
        #expect(long.count < 120 && !long.contains("\u{1}"))
    }

    @Test func eachDescriptorMustBeAListeningTCPSocket() {
        let env = ["LISTEN_PID": "4242", "LISTEN_FDS": "1"]
        let closed = SocketActivation.DescriptorFacts(
            isOpen: false,
            isSocket: false,
            isStream: false,
            isListening: false,
            address: nil
        )
        #expect(self.problem(env, facts: [3: closed]).contains("fd 3 passed in LISTEN_FDS is not open"))
        var file = closed
        file.isOpen = true
        #expect(self.problem(env, facts: [3: file]).contains("is not a socket"))
        var datagram = SocketActivation.DescriptorFacts.listeningTCP(Self.a)
        datagram.isStream = false
        #expect(self.problem(env, facts: [3: datagram]).contains("not a stream socket"))
        var unix = SocketActivation.DescriptorFacts.listeningTCP(Self.a)
        unix.address = nil
        #expect(self.problem(env, facts: [3: unix]).contains("not an IPv4 or IPv6 socket"))
        var connected = SocketActivation.DescriptorFacts.listeningTCP(Self.a)
        connected.isListening = false
        #expect(self.problem(env, facts: [3: connected]).contains("fd 3 passed in LISTEN_FDS is not listening"))
        let named = self.problem(env.merging(["LISTEN_FDNAMES": "web"]) { $1 }, facts: [3: connected])
        #expect(named.contains("fd 3 (web) passed in LISTEN_FDS is not listening"))
        // The same address twice.
        let twice = self.problem(
            ["LISTEN_PID": "4242", "LISTEN_FDS": "2"],
            facts: [3: .listeningTCP(Self.a), 4: .listeningTCP(ListenAddress(host: "127.0.0.1", port: 8080))]
        )
        #expect(twice.contains("fd 4 127.0.0.1:8080 is passed twice"))
    }

    @Test func withoutExplicitListenThePassedSocketsAreServed() throws {
        let sockets = [
            SocketActivation.Socket(descriptor: 3, name: nil, address: Self.a),
            SocketActivation.Socket(descriptor: 4, name: nil, address: Self.b),
        ]
        // The default listen (0.0.0.0:8080) does not count.
        let served = try SocketActivation.assign(
            sockets,
            configured: [ListenAddress(host: "0.0.0.0", port: 8080)],
            explicit: false
        )
        #expect(served == sockets)
    }

    @Test func explicitListenMustMatchThePassedSocketsExactly() throws {
        let sockets = [
            SocketActivation.Socket(descriptor: 3, name: nil, address: Self.a),
            SocketActivation.Socket(descriptor: 4, name: nil, address: ListenAddress(host: "::", port: 8443)),
        ]
        // Same addresses, other order and another spelling of ::: served in listen's order.
        let served = try SocketActivation.assign(
            sockets,
            configured: [ListenAddress(host: "0:0::0", port: 8443), Self.a],
            explicit: true
        )
        #expect(served.map(\.descriptor) == [4, 3])

        func mismatch(_ configured: [ListenAddress]) -> String {
            do {
                _ = try SocketActivation.assign(sockets, configured: configured, explicit: true)
                Issue.record("expected a mismatch for \(configured)")
                return ""
            } catch {
                return error.description
            }
        }
        let missing = mismatch([Self.a])  // a passed socket is not in listen
        #expect(missing.contains("[server] listen = [127.0.0.1:8080] does not match the sockets passed"))
        #expect(missing.contains("fd 3 127.0.0.1:8080, fd 4 [::]:8443"))
        let other = mismatch([Self.a, ListenAddress(host: "::", port: 9443)])
        #expect(other.contains("[::]:9443") && other.contains("fd 4 [::]:8443"))
        #expect(mismatch([Self.a, ListenAddress(host: "0.0.0.0", port: 8443)]).contains("does not match"))
    }

    @Test func theLoaderTellsAnExplicitListenFromTheDefault() throws {
        let upstream = "[upstream]\nurl = \"http://127.0.0.1:9000\"\n"
        let defaults = try ConfigurationLoader.parse(text: upstream, file: "g.conf")
        #expect(!defaults.server.listenIsExplicit)
        #expect(defaults.server.listen == [ListenAddress(host: "0.0.0.0", port: 8080)])
        let explicit = try ConfigurationLoader.parse(
            text: "[server]\nlisten = [\"0.0.0.0:8080\"]\n" + upstream,
            file: "g.conf"
        )
        #expect(explicit.server.listenIsExplicit)
    }

    @Test func noPassedSocketIsAProblem() {
        #expect(throws: SocketActivation.Problem.self) {
            try SocketActivation.assign([], configured: [Self.a], explicit: false)
        }
    }
}
