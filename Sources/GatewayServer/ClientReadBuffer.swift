package import NIOCore

/// How accepted client connections size the buffer NIO reads their bytes into. Values only;
/// the listener's bootstrap (GatewayServer) installs `allocator` on every accepted channel,
/// whose event loop then owns the buffer.
///
/// NIO keeps each channel's last receive buffer for reuse as long as the channel lives, so
/// an idle keep-alive connection holds one buffer of the size its last read asked for. NIO's
/// default starts at 2,048 bytes: with 10,000 idle connections that is 20 MiB of buffers
/// holding one small request head each. Starting at 1,024 bytes (nginx's default
/// `client_header_buffer_size`) covers a request head with an API key in one read; the
/// adaptive allocator still doubles the next buffer whenever a read fills the current one
/// (up to `maximum`), so a large head, a token-heavy request or a body upload costs at
/// most one extra read before the connection's buffer has grown to fit.
package enum ClientReadBuffer {
    /// The first read's buffer (bytes) of an accepted client connection.
    package static let initial = 1024
    /// The smallest buffer the allocator shrinks to after consecutive small reads.
    package static let minimum = 64
    /// The largest buffer one read uses (NIO's default), for body uploads.
    package static let maximum = 64 * 1024

    package static var allocator: AdaptiveRecvByteBufferAllocator {
        AdaptiveRecvByteBufferAllocator(minimum: minimum, initial: initial, maximum: maximum)
    }
}
