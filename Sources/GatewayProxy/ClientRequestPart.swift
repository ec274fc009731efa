import GatewayHTTP1
import NIOCore

/// One piece of a client's request as `ClientRequestDecoder` hands it to `ProxyHandler`: the
/// parser's raw head (offsets into the client's bytes, no Strings), body bytes (chunked data
/// already decoded) and the end of the message. Request trailers are not carried: the gateway
/// drops them. A value; made and consumed on the connection's event loop.
enum ClientRequestPart {
    case head(HTTP1RequestHead)
    case body(ByteBuffer)
    case end
}
