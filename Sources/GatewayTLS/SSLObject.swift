import CGatewayOpenSSL
import GatewayCrypto
import NIOCore
import Synchronization

/// One OpenSSL `SSL*` and its two memory BIOs: `networkIn` holds ciphertext received
/// from the peer until OpenSSL reads it, `networkOut` holds ciphertext OpenSSL produced
/// until the handler sends it.
///
/// Owned by exactly one `TLSConnection`, used only on its channel's event loop; frees the
/// `SSL*` (and with it both BIOs) in `deinit`. Keeps its `TLSContext` alive, which the
/// SNI callback relies on.
final class SSLObject {
    let ssl: OpaquePointer
    private let networkIn: OpaquePointer
    private let networkOut: OpaquePointer
    let context: TLSContext

    /// `SSL*` objects alive in this process (tests check that every one is freed).
    static let live = Atomic<Int>(0)

    init(context: TLSContext) throws(TLSError) {
        OpenSSLErrorQueue.clear()
        guard let ssl = SSL_new(context.pointer) else {
            throw TLSError(.configuration, reasons: ["SSL_new failed"] + OpenSSLErrorQueue.drain())
        }
        guard let networkIn = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            throw TLSError(.configuration, reasons: ["BIO_new failed"])
        }
        guard let networkOut = BIO_new(BIO_s_mem()) else {
            BIO_free(networkIn)
            SSL_free(ssl)
            throw TLSError(.configuration, reasons: ["BIO_new failed"])
        }
        // An empty memory BIO must read as "retry later", not as end of file (the
        // default), or OpenSSL would take every pause in the stream for a truncation.
        _ = cgw_BIO_set_mem_eof_return(networkIn, -1)
        _ = cgw_BIO_set_mem_eof_return(networkOut, -1)
        SSL_set_bio(ssl, networkIn, networkOut)  // the SSL owns both BIOs from here
        self.ssl = ssl
        self.networkIn = networkIn
        self.networkOut = networkOut
        self.context = context
        Self.live.add(1, ordering: .relaxed)
    }

    deinit {
        SSL_free(self.ssl)
        Self.live.subtract(1, ordering: .relaxed)
    }

    /// Hands ciphertext from the network to OpenSSL. A memory BIO grows as needed, so
    /// it takes everything.
    func receiveCiphertext(_ buffer: ByteBuffer) {
        buffer.withUnsafeReadableBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let chunk = min(bytes.count - offset, Int(Int32.max))
                let written = BIO_write(self.networkIn, bytes.baseAddress! + offset, Int32(chunk))
                guard written > 0 else { return }  // only on allocation failure
                offset += Int(written)
            }
        }
    }

    /// Ciphertext received but not yet consumed by OpenSSL.
    var bufferedCiphertext: Int { Int(BIO_ctrl_pending(self.networkIn)) }

    /// Whether OpenSSL produced ciphertext that must be sent.
    var hasOutboundCiphertext: Bool { BIO_ctrl_pending(self.networkOut) > 0 }

    /// Takes all ciphertext OpenSSL produced so far, or nil if there is none.
    func takeOutboundCiphertext(allocator: ByteBufferAllocator) -> ByteBuffer? {
        let pending = Int(BIO_ctrl_pending(self.networkOut))
        guard pending > 0 else { return nil }
        var buffer = allocator.buffer(capacity: pending)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: pending) { bytes in
            let read = BIO_read(self.networkOut, bytes.baseAddress, Int32(pending))
            return max(0, Int(read))
        }
        return buffer
    }
}
