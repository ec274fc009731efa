import GatewayCore

/// One `[[oauth.clients]]` entry. The secret (confidential clients only) comes from
/// `secret_file` or `secret_env` and is never rendered.
package struct OAuthClientSettings: Sendable, Hashable {
    package var id: String
    package var name: String
    package var redirectURIs: [String] = []
    package var grantTypes: Set<OAuthGrantType> = [.authorizationCode, .refreshToken]
    package var scopes: [String] = []
    package var isPublic: Bool = false
    package var tokenFormat: OAuthTokenFormat = .jwt
    /// May introspect access tokens issued to any client (a resource server); without it a
    /// client learns only about its own tokens.
    package var isResourceServer: Bool = false
    package var secret: Secret?

    package init(
        id: String,
        name: String,
        redirectURIs: [String] = [],
        grantTypes: Set<OAuthGrantType> = [.authorizationCode, .refreshToken],
        scopes: [String] = [],
        isPublic: Bool = false,
        tokenFormat: OAuthTokenFormat = .jwt,
        isResourceServer: Bool = false,
        secret: Secret? = nil
    ) {
        self.isResourceServer = isResourceServer
        self.id = id
        self.name = name
        self.redirectURIs = redirectURIs
        self.grantTypes = grantTypes
        self.scopes = scopes
        self.isPublic = isPublic
        self.tokenFormat = tokenFormat
        self.secret = secret
    }
}

/// A rule a client breaks: the key (of `[[oauth.clients]]`, or the CLI flag's subject) and why.
package struct OAuthClientProblem: Error, Sendable, Hashable {
    package var key: String
    package var message: String

    package init(_ key: String, _ message: String) {
        self.key = key
        self.message = message
    }
}

extension OAuthClientSettings {
    /// Grant type names as given (config or `--grant-types`), or why not.
    package static func grantTypes(_ names: [String]) -> Result<Set<OAuthGrantType>, OAuthClientProblem> {
        var parsed = Set<OAuthGrantType>()
        for name in names {
            guard let type = OAuthGrantType(rawValue: name) else {
                let why =
                    ["password", "implicit", "token"].contains(name)
                    ? " (not supported: it exposes credentials or tokens)" : ""
                return .failure(
                    OAuthClientProblem(
                        "grant_types",
                        "unknown grant type \"\(name.prefix(40))\"\(why); known: \(OAuthGrantType.allCases.map(\.rawValue).joined(separator: ", "))"
                    )
                )
            }
            parsed.insert(type)
        }
        return .success(parsed)
    }

    /// Why `secret` cannot be a client secret, or nil. The value never appears in the text.
    package static func secretProblem(_ secret: String) -> String? {
        let bytes = secret.utf8
        guard bytes.count >= 32, bytes.count <= 256, bytes.allSatisfy(OAuthClientID.isUnreserved) else {
            return "the secret must be 32-256 characters of A-Z a-z 0-9 - . _ ~ (e.g. `openssl rand -hex 32`)"
        }
        return nil
    }

    /// The rules every client obeys, declared in the file or registered with the CLI.
    package func ruleProblems() -> [OAuthClientProblem] {
        var problems: [OAuthClientProblem] = []
        if self.name.isEmpty || self.name.utf8.count > 128
            || self.name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        {
            problems.append(.init("name", "must be 1-128 characters without control characters"))
        }
        if self.grantTypes.isEmpty {
            problems.append(.init("grant_types", "must name at least one grant type"))
        }
        if self.grantTypes.contains(.refreshToken), !self.grantTypes.contains(.authorizationCode) {
            problems.append(
                .init(
                    "grant_types",
                    "refresh_token needs authorization_code (refresh tokens are issued only for codes)"
                )
            )
        }
        if self.isPublic, self.grantTypes.contains(.clientCredentials) {
            problems.append(
                .init("grant_types", "client_credentials is for confidential clients only (this client is public)")
            )
        }
        if self.scopes.isEmpty {
            problems.append(.init("scopes", "must list at least one scope the client may ask for"))
        }
        for scope in self.scopes where !ScopeToken.isValid(scope) {
            problems.append(
                .init(
                    "scopes",
                    "\"\(scope.prefix(40))\" is not a scope token (printable ASCII without space, quote, backslash or comma)"
                )
            )
        }
        for uri in self.redirectURIs {
            if let problem = OAuthRedirectURI.problem(with: uri) {
                problems.append(.init("redirect_uris", "\"\(uri.prefix(80))\" \(problem)"))
            }
        }
        if self.grantTypes.contains(.authorizationCode), self.redirectURIs.isEmpty {
            problems.append(.init("redirect_uris", "authorization_code needs at least one redirect URI"))
        }
        return problems
    }
}

/// The character rules of client ids: only RFC 3986 unreserved characters, so an id
/// travels in a URL, a form and a Basic header without any encoding. Pure; any thread.
package enum OAuthClientID {
    package static let maximumLength = 64

    package static func isValid(_ id: some StringProtocol) -> Bool {
        let bytes = id.utf8
        guard !bytes.isEmpty, bytes.count <= maximumLength else { return false }
        return bytes.allSatisfy(isUnreserved)
    }

    /// `A-Z a-z 0-9 - . _ ~` (RFC 3986 §2.3).
    package static func isUnreserved(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
            || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_")
            || byte == UInt8(ascii: "~")
    }
}
