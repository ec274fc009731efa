import GatewayConfig
import GatewayCore
import GatewayOAuth

/// What `GET /oauth/authorize` needs to know about a client: its registration as the
/// validation reads it (built from the OAuth client registry's record). A value.
package struct AuthorizeClient: Sendable, Hashable {
    package var id: String
    package var name: String
    package var redirectURIs: [String]
    package var scopes: [String]
    package var isPublic: Bool
    package var allowsAuthorizationCode: Bool

    package init(
        id: String,
        name: String,
        redirectURIs: [String],
        scopes: [String],
        isPublic: Bool,
        allowsAuthorizationCode: Bool
    ) {
        self.id = id
        self.name = name
        self.redirectURIs = redirectURIs
        self.scopes = scopes
        self.isPublic = isPublic
        self.allowsAuthorizationCode = allowsAuthorizationCode
    }
}

/// A validated authorization request: what the flow record keeps and the code is bound to.
package struct AuthorizeRequest: Sendable, Hashable, Codable {
    package var clientID: String
    /// Exactly as the client sent it (a loopback URI keeps its port): the token request must
    /// repeat this string.
    package var redirectURI: String
    package var state: String?
    /// nil: the request named no scope (the client's scopes the user holds are granted).
    package var requestedScopes: [String]?
    /// The S256 challenge, or nil (confidential clients only).
    package var codeChallenge: String?

    package init(
        clientID: String,
        redirectURI: String,
        state: String?,
        requestedScopes: [String]?,
        codeChallenge: String?
    ) {
        self.clientID = clientID
        self.redirectURI = redirectURI
        self.state = state
        self.requestedScopes = requestedScopes
        self.codeChallenge = codeChallenge
    }

    enum CodingKeys: String, CodingKey {
        case state
        case clientID = "client_id"
        case redirectURI = "redirect_uri"
        case requestedScopes = "requested_scopes"
        case codeChallenge = "code_challenge"
    }
}

/// An error answered by redirecting to the client (RFC 6749 §4.1.2.1): only once the
/// redirect URI is known to be the client's.
package struct AuthorizeErrorRedirect: Sendable, Hashable, Codable {
    package var redirectURI: String
    package var error: String
    package var description: String
    package var state: String?

    package init(redirectURI: String, error: String, description: String, state: String?) {
        self.redirectURI = redirectURI
        self.error = error
        self.description = description
        self.state = state
    }
}

/// The checks of `GET /oauth/authorize`, free of I/O so each rule is a unit test: first
/// the query and the client id (`parse`), then, with the client looked up, everything else
/// (`validate`). Until the redirect URI is proven to be registered for the client every
/// refusal is a page, never a redirect (an open redirector otherwise); after that, errors go
/// back to the client with `error`, `state` and `iss`. Redirect URIs compare as
/// `OAuthRedirectURI.matches` says: exactly, but any port for a loopback URI (RFC 8252).
/// Pure; any thread.
package enum AuthorizeValidation {
    /// A refusal shown as a page (status and a sentence for the person at the browser).
    package struct PageError: Error, Sendable, Hashable {
        package var status: Int
        package var code: String
        package var message: String
    }

    package enum Outcome: Sendable, Hashable {
        case page(PageError)
        case redirect(AuthorizeErrorRedirect)
        case valid(AuthorizeRequest)
    }

    package static let maximumQueryBytes = 8 * 1024
    package static let maximumStateBytes = 1024

    /// The fields of the query and the client id they name.
    package static func parse(query: String) -> Result<(fields: FormFields, clientID: String), PageError> {
        let fields: FormFields
        switch FormFields.parse(query.utf8, maximumBytes: maximumQueryBytes) {
        case .success(let parsed): fields = parsed
        case .failure:
            return .failure(
                PageError(status: 400, code: "invalid_request", message: "The authorization request is malformed.")
            )
        }
        guard !fields.duplicates.contains("client_id"), let clientID = fields["client_id"], !clientID.isEmpty else {
            return .failure(
                PageError(
                    status: 400,
                    code: "invalid_request",
                    message: "The authorization request must name exactly one client (client_id)."
                )
            )
        }
        guard clientID.utf8.count <= 64, clientID.utf8.allSatisfy(FormFields.isUnreserved) else {
            return .failure(unknownClient)
        }
        return .success((fields, clientID))
    }

    static let unknownClient = PageError(
        status: 400,
        code: "invalid_client",
        message: "The application that sent you here is not registered with this gateway."
    )

    package static func validate(fields: FormFields, client: AuthorizeClient?) -> Outcome {
        guard let client else { return .page(unknownClient) }
        guard !fields.duplicates.contains("redirect_uri"), let redirectURI = fields["redirect_uri"],
            !redirectURI.isEmpty
        else {
            return .page(
                PageError(
                    status: 400,
                    code: "invalid_request",
                    message: "The authorization request must name exactly one redirect URI (redirect_uri)."
                )
            )
        }
        guard client.redirectURIs.contains(where: { OAuthRedirectURI.matches(registered: $0, presented: redirectURI) })
        else {
            return .page(
                PageError(
                    status: 400,
                    code: "invalid_request",
                    message: "The redirect URI is not registered for this application, so you are not sent back to it."
                )
            )
        }
        // From here on the redirect URI is the client's: errors go back to it.
        var state = fields["state"]
        func refuse(_ error: String, _ description: String) -> Outcome {
            .redirect(
                AuthorizeErrorRedirect(redirectURI: redirectURI, error: error, description: description, state: state)
            )
        }
        if let value = state, value.utf8.count > maximumStateBytes {
            state = nil
            return refuse("invalid_request", "state is longer than \(maximumStateBytes) bytes.")
        }
        if let name = fields.duplicates.sorted().first {
            return refuse("invalid_request", "The parameter \(name) is given more than once.")
        }
        guard let responseType = fields["response_type"] else {
            return refuse("invalid_request", "response_type is required.")
        }
        guard responseType == "code" else {
            return refuse("unsupported_response_type", "Only response_type=code is supported.")
        }
        guard client.allowsAuthorizationCode else {
            return refuse("unauthorized_client", "This client may not use the authorization code grant.")
        }
        let challenge = fields["code_challenge"]
        let method = fields["code_challenge_method"]
        switch (challenge, method) {
        case (nil, nil):
            if client.isPublic {
                return refuse(
                    "invalid_request",
                    "A public client must send a PKCE code_challenge with code_challenge_method=S256."
                )
            }
        case (nil, _?):
            return refuse("invalid_request", "code_challenge_method was sent without code_challenge.")
        case (_?, nil):
            return refuse("invalid_request", "code_challenge_method=S256 is required with a code_challenge.")
        case (let challenge?, let method?):
            guard method == "S256" else {
                return refuse("invalid_request", "Only code_challenge_method=S256 is supported.")
            }
            guard isValidChallenge(challenge) else {
                return refuse(
                    "invalid_request",
                    "code_challenge must be an S256 value: 43 characters of A-Z a-z 0-9 - _."
                )
            }
        }
        var requested: [String]?
        if let text = fields["scope"] {
            let scopes = text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            if !scopes.isEmpty {
                guard scopes.count <= 32, ScopeToken.areValid(scopes) else {
                    return refuse("invalid_scope", "scope must be a space-separated list of scopes.")
                }
                if scopes.contains(where: { !Scopes.all.contains($0) }) {
                    // Not echoed: the redirect carries this text back to the client's page.
                    return refuse("invalid_scope", "A requested scope does not exist.")
                }
                if let other = scopes.first(where: { !client.scopes.contains($0) }) {
                    return refuse("invalid_scope", "This client is not registered for the scope \(other).")
                }
                var seen = Set<String>()
                requested = scopes.filter { seen.insert($0).inserted }
            }
        }
        return .valid(
            AuthorizeRequest(
                clientID: client.id,
                redirectURI: redirectURI,
                state: state,
                requestedScopes: requested,
                codeChallenge: challenge
            )
        )
    }

    /// RFC 7636 §4.2: an S256 challenge is the base64url form of a SHA-256, 43 characters;
    /// anything else could never match a verifier, so the code it asks for is refused now
    /// rather than issued unredeemable.
    package static func isValidChallenge(_ challenge: String) -> Bool {
        PKCE.isValidChallenge(challenge)
    }

    /// The scopes to grant once the user is known: the requested ones (or, when none were
    /// named, the client's), each held by the user (`admin` holds every scope). Nil when the
    /// user lacks a requested scope, or holds none of the client's.
    package static func grantedScopes(requested: [String]?, clientScopes: [String], userScopes: [String]) -> [String]? {
        let holds = { (scope: String) in userScopes.contains("admin") || userScopes.contains(scope) }
        if let requested {
            guard requested.allSatisfy(holds) else { return nil }
            return requested
        }
        let granted = clientScopes.filter(holds)
        return granted.isEmpty ? nil : granted
    }

    /// The `Location` of an authorization response: `redirectURI` with `parameters` (and
    /// `iss`, RFC 9207) appended to its query.
    package static func location(redirectURI: String, parameters: [(String, String?)], issuer: String) -> String {
        var location = redirectURI
        var separator = redirectURI.contains("?") ? "&" : "?"
        for (name, value) in parameters + [("iss", issuer)] {
            guard let value else { continue }
            location += separator + name + "=" + FormFields.encode(value)
            separator = "&"
        }
        return location
    }
}
