import GatewayCore
import GatewayCrypto
import GatewayProxy
import NIOCore
import NIOHTTP1

/// Serves one admin connection, one request at a time. Its channel's loop only.
final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let token: [UInt8]?
    private let sources: AdminServer.Sources
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var bodyTooLarge = false
    /// `POST /explain` bodies: a request description with one token, never more.
    static let maximumBodyBytes = 32 * 1024

    init(token: [UInt8]?, sources: AdminServer.Sources) {
        self.token = token
        self.sources = sources
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.body = []
            self.bodyTooLarge = false
        case .body(let buffer):
            if self.body.count + buffer.readableBytes > Self.maximumBodyBytes {
                self.bodyTooLarge = true
                self.body = []
            } else if !self.bodyTooLarge {
                self.body += buffer.readableBytesView
            }
        case .end:
            guard let head = self.head else { return }
            self.head = nil
            let body = self.body
            self.body = []
            self.respond(to: head, body: body, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, body: [UInt8], context: ChannelHandlerContext) {
        if let token = self.token {
            let presented = head.headers["authorization"].first.flatMap { value -> [UInt8]? in
                guard value.lowercased().hasPrefix("bearer ") else { return nil }
                return Array(value.dropFirst(7).utf8)
            }
            guard let presented, HMACSHA256.constantTimeEquals(presented, token) else {
                self.write(
                    status: .unauthorized,
                    contentType: "application/json",
                    body: GatewayError.unauthorized("The admin endpoints need the admin token.").jsonBody(
                        requestID: "admin"
                    ),
                    extra: [("WWW-Authenticate", "Bearer realm=\"dbaudit-admin\"")],
                    context: context
                )
                return
            }
        }
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let sources = self.sources
        if path == "/explain" {
            self.explain(head, body: body, context: context)
            return
        }
        guard head.method == .GET || head.method == .HEAD else {
            self.write(
                status: .methodNotAllowed,
                contentType: "application/json",
                body: GatewayError.methodNotAllowed.jsonBody(requestID: "admin"),
                context: context
            )
            return
        }
        switch path {
        case "/healthz":
            self.write(status: .ok, contentType: "application/json", body: "{\"status\":\"ok\"}\n", context: context)
        case "/readyz":
            let promise = context.eventLoop.makePromise(of: (Bool, [(String, String)]).self)
            promise.completeWithTask { await sources.readiness() }
            promise.futureResult.whenSuccess { ready, checks in
                let (handler, context) = loopBound.value
                var body = "{\"status\":\(JSONText.quoted(ready ? "ready" : "not_ready")),\"checks\":{"
                body += checks.map { "\(JSONText.quoted($0.0)):\(JSONText.quoted($0.1))" }.joined(separator: ",")
                body += "}}\n"
                handler.write(
                    status: ready ? .ok : .serviceUnavailable,
                    contentType: "application/json",
                    body: body,
                    context: context
                )
            }
        case "/metrics":
            let promise = context.eventLoop.makePromise(of: String.self)
            promise.completeWithTask { PrometheusText.render(await sources.metrics()) }
            promise.futureResult.whenSuccess { text in
                let (handler, context) = loopBound.value
                handler.write(
                    status: .ok,
                    contentType: "text/plain; version=0.0.4; charset=utf-8",
                    body: text,
                    context: context
                )
            }
        default:
            self.write(
                status: .notFound,
                contentType: "application/json",
                body: GatewayError.notFound.jsonBody(requestID: "admin"),
                context: context
            )
        }
    }

    /// `POST /explain`: the body names the request; the answer is the `explain --json`
    /// document, whatever the decision. A token on the admin listener is required: the
    /// endpoint looks credentials up, so an open listener must not offer it.
    private func explain(_ head: HTTPRequestHead, body: [UInt8], context: ChannelHandlerContext) {
        guard self.token != nil else {
            let error = GatewayError(
                status: 403,
                code: "explain_disabled",
                description: "POST /explain needs an [admin] token (token_file)."
            )
            self.write(
                status: .forbidden,
                contentType: "application/json",
                body: error.jsonBody(requestID: "admin"),
                context: context
            )
            return
        }
        guard head.method == .POST else {
            self.write(
                status: .methodNotAllowed,
                contentType: "application/json",
                body: GatewayError.methodNotAllowed.jsonBody(requestID: "admin"),
                extra: [("Allow", "POST")],
                context: context
            )
            return
        }
        if self.bodyTooLarge {
            self.write(
                status: .payloadTooLarge,
                contentType: "application/json",
                body: GatewayError.bodyTooLarge(limit: Self.maximumBodyBytes).jsonBody(requestID: "admin"),
                context: context
            )
            return
        }
        let request: ExplainRequest
        switch AdminExplainBody.parse(body) {
        case .success(let parsed):
            request = parsed
        case .failure(let error):
            self.write(
                status: .badRequest,
                contentType: "application/json",
                body: error.jsonBody(requestID: "admin"),
                context: context
            )
            return
        }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let sources = self.sources
        let promise = context.eventLoop.makePromise(of: ExplainReport?.self)
        promise.completeWithTask { await sources.explain(request) }
        promise.futureResult.whenSuccess { report in
            let (handler, context) = loopBound.value
            guard let report else {
                handler.write(
                    status: .serviceUnavailable,
                    contentType: "application/json",
                    body: GatewayError.authUnavailable.jsonBody(requestID: "admin"),
                    context: context
                )
                return
            }
            handler.write(status: .ok, contentType: "application/json", body: report.json, context: context)
        }
    }

    private func write(
        status: HTTPResponseStatus,
        contentType: String,
        body: String,
        extra: [(String, String)] = [],
        context: ChannelHandlerContext
    ) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        headers.add(name: "Cache-Control", value: "no-store")
        for (name, value) in extra { headers.add(name: name, value: value) }
        context.write(
            self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))),
            promise: nil
        )
        context.write(
            self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))),
            promise: nil
        )
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
    }
}
