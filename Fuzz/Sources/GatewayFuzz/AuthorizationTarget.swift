import Foundation
import GatewayAuth
import GatewayOAuth
import GatewayPages

/// The `Authorization` header parsers: `Bearer` (every protected route, the session
/// endpoints) and `Basic` client credentials (the OAuth endpoints). The first line of the
/// input is the header, the rest an optional form body. A bearer token must be token68 and
/// read back from `Bearer <token>`; Basic credentials, encoded again, must read back as the
/// same client. Stateless; the fuzzer's thread.
enum AuthorizationTarget {
    static func run(_ input: UnsafeBufferPointer<UInt8>) {
        let newline = input.firstIndex(of: UInt8(ascii: "\n")) ?? input.endIndex
        let header = String(decoding: input[..<newline], as: UTF8.self)
        let body = newline < input.endIndex ? Array(input[(newline + 1)...]) : []

        if let token = Authenticator.bearerToken(header) {
            invariant(!token.isEmpty, "an empty bearer token")
            invariant(header.hasSuffix(token), "the token is not the end of the header")
            invariant(header.lowercased().hasPrefix("bearer "), "a bearer token without the Bearer scheme")
            let allowed = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=".utf8)
            invariant(token.utf8.allSatisfy(allowed.contains), "a bearer token outside token68: \(token)")
            invariant(Authenticator.bearerToken("Bearer \(token)") == token, "the bearer token does not read back")
        }

        let form = (try? FormParameters.parse(body)) ?? FormParameters()
        guard let client = try? PresentedClient.parse(authorization: [header], form: form) else { return }
        invariant(client.method == .basic, "a header was given but the method is \(client.method)")
        invariant(!client.clientID.isEmpty && !client.secretCandidates.isEmpty, "empty id or secret accepted")
        let id = client.clientID
        let secret = client.secretCandidates[0]
        // A raw (undecodable) value holding control characters cannot be re-encoded losslessly.
        let encodable = { (text: String) in !text.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F } }
        guard encodable(id), encodable(secret) else { return }
        let credentials = Data("\(FormFields.encode(id)):\(FormFields.encode(secret))".utf8).base64EncodedString()
        // Percent-encoding can make the credentials longer than the 2,048 bytes a Basic value may
        // have; refusing those is the parser's bound, not a round-trip failure.
        guard credentials.utf8.count <= 2048 else { return }
        guard let again = try? PresentedClient.parse(authorization: ["Basic \(credentials)"], form: FormParameters())
        else {
            invariant(false, "re-encoded Basic credentials are refused")
            return
        }
        invariant(again.clientID == id, "the client id does not read back")
        invariant(again.secretCandidates.first == secret, "the secret does not read back")
    }
}
