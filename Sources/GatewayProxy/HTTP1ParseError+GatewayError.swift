import GatewayCore
import GatewayHTTP1

extension HTTP1ParseError {
    /// The error the gateway answers a request the parser refused with: the statuses and
    /// codes it answered before the strict parser (431 for heads over the limit, 405 for
    /// CONNECT, 505 for other HTTP versions, 400 for the rest), with the rule broken as the
    /// description.
    func gatewayError(maxHeaderBytes: Int) -> GatewayError {
        switch self {
        case .headTooLarge, .tooManyHeaderFields:
            return .headersTooLarge(limit: maxHeaderBytes)
        case .connectNotSupported:
            return .methodNotAllowed
        case .unsupportedVersion:
            return GatewayError(status: 505, code: "http_version_not_supported", description: self.rule)
        case .chunkLineTooLong, .trailersTooLarge:
            return .badRequest(
                "The request's chunked body framing is invalid (chunk extensions or trailers over \(maxHeaderBytes) bytes)."
            )
        default:
            return .badRequest(self.rule)
        }
    }
}
