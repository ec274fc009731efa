package import GatewayTLS

/// The TLS contexts built from one configuration: the listeners' (`[server.tls]`) and the
/// upstream's (`https://` upstream). Built off the event loops (they read files), shared
/// read-only by every loop, replaced as a whole on reload. Any thread.
package struct GatewayTLSContexts: Sendable {
    package var server: TLSContext?
    package var upstream: TLSContext?

    package init(server: TLSContext? = nil, upstream: TLSContext? = nil) {
        self.server = server
        self.upstream = upstream
    }
}
