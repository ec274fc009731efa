import Foundation
import GatewayAuth
import GatewayCore
import GatewayTLS
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// Outbound HTTP for identity providers (GETs of JWKS and OIDC discovery, POSTs of token
/// introspection): one short-lived connection per exchange, a hard timeout for the whole exchange,
/// and a cap on the body, so a slow or hostile provider can neither hang a refresh nor
/// make the gateway buffer without bound.
enum HTTPFetchers {
    struct FetchError: Error, CustomStringConvertible {
        var description: String
    }

    /// Client TLS contexts by CA file ("" = the system trust store), built on first use
    /// (reading files) and kept: fetches are rare, so the lock is never on a request path.
    final class TLSContexts: Sendable {
        private let contexts = NIOLockedValueBox<[String: TLSContext]>([:])

        func context(caFile: String?) throws -> TLSContext {
            try contexts.withLockedValue { contexts in
                if let existing = contexts[caFile ?? ""] { return existing }
                var configuration = TLSClientConfiguration(caFile: caFile)
                configuration.applicationProtocols = ["http/1.1"]
                let context = try TLSContext.client(configuration)
                contexts[caFile ?? ""] = context
                return context
            }
        }
    }

    static func posix(group: any EventLoopGroup, tlsContexts: TLSContexts = TLSContexts()) -> HTTPFetcher {
        { url, timeout, maximumBytes, caFile in
            exchange(
                on: group.next(),
                method: .GET,
                url: url,
                headers: [],
                body: nil,
                timeout: timeout,
                maximumBytes: maximumBytes,
                caFile: caFile,
                tlsContexts: tlsContexts
            )
        }
    }

    /// Form POSTs (token introspection) on the caller's event loop: the exchange is
    /// non-blocking I/O there, and its answer lands where the request waits for it. The TLS
    /// context for each `caFile` should be built before (see `TLSContexts.context`) so no
    /// file is read on an event loop.
    static func poster(tlsContexts: TLSContexts) -> HTTPPoster {
        { request, loop in
            var headers = request.headers
            headers.append(("Content-Type", "application/x-www-form-urlencoded"))
            return exchange(
                on: loop,
                method: .POST,
                url: request.url,
                headers: headers,
                body: request.body,
                timeout: request.timeout,
                maximumBytes: request.maximumBytes,
                caFile: request.caFile,
                tlsContexts: tlsContexts
            )
        }
    }

    /// One request on a fresh connection from `loop`, bounded by `timeout` as a whole and
    /// by `maximumBytes` of answer; the future completes on `loop`.
    private static func exchange(
        on loop: any EventLoop,
        method: HTTPMethod,
        url: String,
        headers extraHeaders: [(name: String, value: String)],
        body: [UInt8]?,
        timeout: TimeAmount,
        maximumBytes: Int,
        caFile: String?,
        tlsContexts: TLSContexts
    ) -> EventLoopFuture<HTTPFetchResponse> {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
            let host = components.host, !host.isEmpty
        else {
            return loop.makeFailedFuture(FetchError(description: "not a valid URL"))
        }
        let tls: TLSContext?
        switch scheme {
        case "http":
            tls = nil
        case "https":
            do {
                tls = try tlsContexts.context(caFile: caFile)
            } catch {
                return loop.makeFailedFuture(FetchError(description: "TLS client setup failed: \(error)"))
            }
        default:
            return loop.makeFailedFuture(FetchError(description: "only http:// and https:// URLs can be fetched"))
        }
        let port = components.port ?? (tls == nil ? 80 : 443)
        let base = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
        let path = components.percentEncodedQuery.map { base + "?" + $0 } ?? base
        let promise = loop.makePromise(of: HTTPFetchResponse.self)
        let deadline = loop.scheduleTask(in: timeout) {
            promise.fail(FetchError(description: "no complete answer within \(timeout.nanoseconds / 1_000_000) ms"))
        }
        promise.futureResult.whenComplete { _ in deadline.cancel() }
        // An IPv6 literal keeps its brackets in Host.
        let hostName = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        let hostHeader = components.port.map { "\(hostName):\($0)" } ?? hostName
        let connectHost = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        // Verifies the chain and the host name; SNI = the URL's host.
                        _ = try TLSHandler.addClient(
                            to: channel,
                            context: tls,
                            serverName: connectHost,
                            handshakeTimeout: timeout
                        )
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(
                        FetchHandler(promise: promise, maximumBytes: maximumBytes)
                    )
                }
            }
            .connect(host: connectHost, port: port)
            .whenComplete { result in
                switch result {
                case .failure(let error):
                    promise.fail(FetchError(description: "cannot connect: \(error)"))
                case .success(let channel):
                    promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
                    var headers = HTTPHeaders()
                    headers.add(name: "Host", value: hostHeader)
                    headers.add(name: "Accept", value: "application/json")
                    headers.add(name: "User-Agent", value: "dbaudit-gateway/" + GatewayVersion.current)
                    headers.add(name: "Connection", value: "close")
                    for (name, value) in extraHeaders {
                        headers.add(name: name, value: value)
                    }
                    if let body {
                        headers.add(name: "Content-Length", value: String(body.count))
                    }
                    let head = HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: headers)
                    channel.write(HTTPClientRequestPart.head(head), promise: nil)
                    if let body, !body.isEmpty {
                        channel.write(
                            HTTPClientRequestPart.body(.byteBuffer(channel.allocator.buffer(bytes: body))),
                            promise: nil
                        )
                    }
                    channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
                }
            }
        return promise.futureResult
    }

    /// Collects one response. Owned by its channel's pipeline; event loop only.
    private final class FetchHandler: ChannelInboundHandler {
        typealias InboundIn = HTTPClientResponsePart

        private let promise: EventLoopPromise<HTTPFetchResponse>
        private let maximumBytes: Int
        private var status = 0
        private var cacheControl: String?
        private var body: [UInt8] = []

        init(promise: EventLoopPromise<HTTPFetchResponse>, maximumBytes: Int) {
            self.promise = promise
            self.maximumBytes = maximumBytes
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch self.unwrapInboundIn(data) {
            case .head(let head):
                self.status = Int(head.status.code)
                self.cacheControl = head.headers["cache-control"].first
            case .body(let buffer):
                guard self.body.count + buffer.readableBytes <= self.maximumBytes else {
                    self.promise.fail(FetchError(description: "answer larger than \(self.maximumBytes) bytes"))
                    context.close(promise: nil)
                    return
                }
                self.body += buffer.readableBytesView
            case .end:
                self.promise.succeed(
                    HTTPFetchResponse(status: self.status, cacheControl: self.cacheControl, body: self.body)
                )
                context.close(promise: nil)
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.promise.fail(FetchError(description: "connection closed before the answer was complete"))
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            self.promise.fail(FetchError(description: "\(error)"))
            context.close(promise: nil)
        }
    }
}
