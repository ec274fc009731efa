/// Why the HTTP/1 parser refused its input: each case names the rule broken (RFC 9112 or the
/// gateway's own limits). After an error the parser reads nothing more; the connection is
/// answered with an error and closed. A value; any thread.
package enum HTTP1ParseError: Error, Hashable, Sendable {
    /// The head (empty lines before it included) is longer than `maxHeadBytes`, or head and
    /// trailers together are.
    case headTooLarge
    /// More header fields (trailer fields included) than `maxHeaderCount`.
    case tooManyHeaderFields
    /// A line ends in LF without CR, or a chunk's data is not followed by CRLF.
    case bareLF
    /// A CR not followed by LF.
    case bareCR
    /// The method is not a token of the known HTTP methods.
    case invalidMethod
    /// CONNECT: the gateway never opens tunnels.
    case connectNotSupported
    /// The request target is not origin-form (`/path[?query]`, visible ASCII, no `#`).
    case invalidTarget
    /// The request line is not `method SP target SP HTTP/d.d`.
    case invalidRequestLine
    /// A response's status line is not `HTTP/1.x SP 3DIGIT [SP reason]`.
    case invalidStatusLine
    /// A well-formed version other than HTTP/1.0 or HTTP/1.1.
    case unsupportedVersion
    /// A field name that is not a token (whitespace before the colon, an empty name, no colon).
    case invalidFieldName
    /// A field line starting with whitespace (obsolete line folding).
    case obsoleteLineFolding
    /// A field value with a control character (NUL, CR, LF, DEL, ...).
    case invalidFieldValue
    /// An HTTP/1.1 request without Host.
    case missingHost
    /// More than one Host.
    case duplicateHost
    /// A Host value that is not `host[:port]`.
    case invalidHost
    /// A Content-Length that is not 1 to 18 decimal digits.
    case invalidContentLength
    /// Content-Length given twice (even with equal values: llhttp refuses it too).
    case duplicateContentLength
    /// Content-Length and Transfer-Encoding together.
    case contentLengthWithTransferEncoding
    /// A Transfer-Encoding other than one `chunked`, or any on HTTP/1.0.
    case unsupportedTransferEncoding
    /// A Connection value that is not a list of tokens.
    case invalidConnection
    /// A chunk size that is not hex digits, or does not fit 63 bits.
    case invalidChunkSize
    /// A chunk extension that is not `;token[=token|quoted-string]`.
    case invalidChunkExtension
    /// A chunk-size line longer than `maxChunkLineBytes`.
    case chunkLineTooLong
    /// A trailer section longer than `maxTrailerBytes`.
    case trailersTooLarge
    /// A trailer field that frames the message or controls the connection (Content-Length,
    /// Transfer-Encoding, Connection, Upgrade): llhttp acts on some of them, so they would
    /// make the two parsers disagree about where the next request starts.
    case framingTrailerField

    /// One line for logs and error descriptions.
    package var rule: String {
        switch self {
        case .headTooLarge: "The request head is larger than the limit."
        case .tooManyHeaderFields: "The request has too many header fields."
        case .bareLF: "Lines must end in CRLF."
        case .bareCR: "A CR must be followed by LF."
        case .invalidMethod: "The method is not a known HTTP method."
        case .connectNotSupported: "CONNECT is not supported."
        case .invalidTarget: "The request target must be an absolute path such as /v1/databases."
        case .invalidRequestLine: "The request line must be METHOD SP target SP HTTP-version."
        case .invalidStatusLine: "The status line must be HTTP-version SP status-code SP reason."
        case .unsupportedVersion: "Only HTTP/1.0 and HTTP/1.1 are supported."
        case .invalidFieldName: "A header name contains characters that are not allowed."
        case .obsoleteLineFolding: "Header line folding is not allowed."
        case .invalidFieldValue: "A header value contains control characters."
        case .missingHost: "An HTTP/1.1 request must carry exactly one Host header."
        case .duplicateHost: "An HTTP/1.1 request must carry exactly one Host header."
        case .invalidHost: "The Host header is not a valid host[:port]."
        case .invalidContentLength: "Content-Length must be a decimal number of bytes."
        case .duplicateContentLength: "Content-Length must be given once."
        case .contentLengthWithTransferEncoding:
            "A request must not carry both Content-Length and Transfer-Encoding."
        case .unsupportedTransferEncoding: "The only supported Transfer-Encoding is a single \"chunked\"."
        case .invalidConnection: "The Connection header must be a list of tokens."
        case .invalidChunkSize: "A chunk size must be hexadecimal digits."
        case .invalidChunkExtension: "A chunk extension is malformed."
        case .chunkLineTooLong: "A chunk-size line is longer than the limit."
        case .trailersTooLarge: "The trailer section is larger than the limit."
        case .framingTrailerField: "A trailer must not carry framing or connection fields."
        }
    }
}
