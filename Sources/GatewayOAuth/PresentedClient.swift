import Foundation
package import GatewayCore

/// The client credentials one request presents (RFC 6749 §2.3): HTTP Basic
/// (`client_secret_basic`, id and secret form-urlencoded per §2.3.1, raw values accepted
/// too because common clients send them unencoded), `client_id` + `client_secret` in the
/// body (`client_secret_post`), or only `client_id` (a public client, `none`). Using two
/// methods at once is refused. Parsing only: the secret is checked by the endpoint. A value;
/// any thread.
package struct PresentedClient: Sendable, Equatable {
    package enum Method: String, Sendable {
        case basic = "client_secret_basic"
        case post = "client_secret_post"
        case none
    }

    package var clientID: String
    /// The secret as decoded and, when different, as sent: either may match.
    package var secretCandidates: [String]
    package var method: Method

    package static func parse(authorization: [String], form: FormParameters) throws(GatewayError) -> PresentedClient {
        guard authorization.count <= 1 else { throw OAuthError.invalidRequest("Send one Authorization header.") }
        if let header = authorization.first {
            let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            guard parts.count == 2, parts[0].lowercased() == "basic" else {
                throw OAuthError.invalidClient(
                    "Client authentication must use HTTP Basic (client_secret_basic) or client_secret_post."
                )
            }
            guard parts[1].utf8.count <= 2048,
                let data = Data(base64Encoded: String(parts[1]).trimmingCharacters(in: .whitespaces)),
                let text = String(data: data, encoding: .utf8), let colon = text.firstIndex(of: ":")
            else {
                throw OAuthError.invalidClient("The Basic credentials are not base64 of client_id:client_secret.")
            }
            let rawID = String(text[..<colon])
            let rawSecret = String(text[text.index(after: colon)...])
            let id = FormParameters.decode(Array(rawID.utf8)) ?? rawID
            var candidates: [String] = []
            if let decoded = FormParameters.decode(Array(rawSecret.utf8)), !decoded.isEmpty {
                candidates.append(decoded)
            }
            if !rawSecret.isEmpty, !candidates.contains(rawSecret) { candidates.append(rawSecret) }
            guard !id.isEmpty, !candidates.isEmpty else {
                throw OAuthError.invalidClient("The Basic credentials have an empty client id or secret.")
            }
            if form.contains("client_secret") {
                throw OAuthError.invalidRequest(
                    "Use one client authentication method: HTTP Basic or client_secret in the body, not both."
                )
            }
            if let bodyID = form["client_id"], bodyID != id {
                throw OAuthError.invalidRequest(
                    "client_id in the body differs from the one in the Authorization header."
                )
            }
            return PresentedClient(clientID: id, secretCandidates: candidates, method: .basic)
        }
        guard let id = form["client_id"] else {
            throw OAuthError.invalidClient(
                "Client authentication is required: HTTP Basic, client_secret_post, or client_id for a public client."
            )
        }
        if let secret = form["client_secret"] {
            return PresentedClient(clientID: id, secretCandidates: [secret], method: .post)
        }
        return PresentedClient(clientID: id, secretCandidates: [], method: .none)
    }
}
