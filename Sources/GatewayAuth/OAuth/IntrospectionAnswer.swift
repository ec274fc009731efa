import GatewayCore

/// What one RFC 7662 introspection response says, read strictly: an exchange that did
/// not answer 200 with a JSON object whose `active` is a boolean (and whose other members
/// have the RFC's types) is a failure of the endpoint, never a verdict on the token. Pure;
/// any thread.
package enum IntrospectionAnswer: Equatable {
    /// The token may be used: who holds it and until when.
    case active(subject: String, clientID: String?, scopes: [String], issuer: String?, expiresAt: Int64)
    /// The token may not be used; `reason` is for the log (never the token).
    case inactive(reason: String)

    /// Why an answer could not be used. Its description is safe to log.
    package struct Failure: Error, Equatable, CustomStringConvertible {
        package var description: String
        init(_ description: String) { self.description = description }
    }

    /// The largest answer read (introspection answers are a few hundred bytes).
    package static let maximumBytes = 64 * 1024

    package static func parse(status: Int, body: [UInt8], now: Int64) throws(Failure) -> IntrospectionAnswer {
        guard status == 200 else { throw Failure("the endpoint answered status \(status)") }
        guard body.count <= maximumBytes else { throw Failure("the answer is larger than \(maximumBytes) bytes") }
        let object: JSONObject
        do {
            object = try StrictJSON.parseObject(body)
        } catch {
            throw Failure("the answer is not a JSON object: \(error.description)")
        }
        guard case .bool(let active)? = object["active"] else { throw Failure("the answer has no boolean \"active\"") }
        guard active else { return .inactive(reason: "the endpoint says the token is not active") }

        func text(_ name: String) throws(Failure) -> String? {
            switch object[name] {
            case nil, .null?: return nil
            case .string(let value)? where !value.isEmpty && value.utf8.count <= 256: return value
            default: throw Failure("\"\(name)\" is not a string of 1-256 bytes")
            }
        }
        func date(_ name: String) throws(Failure) -> Int64? {
            guard let value = object[name], value != .null else { return nil }
            guard let seconds = value.numericDate else { throw Failure("\"\(name)\" is not a number") }
            return seconds
        }
        let subject = try text("sub")
        let clientID = try text("client_id")
        let issuer = try text("iss")
        let tokenType = try text("token_type")
        var scopes: [String] = []
        if let scope = object["scope"], scope != .null {
            guard let list = scope.string, let parsed = ScopeToken.parseList(list), parsed.count <= 64 else {
                throw Failure("\"scope\" is not a space-separated list of at most 64 scope tokens")
            }
            scopes = parsed
        }
        let expiresAt = try date("exp")
        let notBefore = try date("nbf")
        guard let name = subject ?? clientID.map({ "client:" + $0 }) else {
            throw Failure("an active answer names neither \"sub\" nor \"client_id\"")
        }
        // The gateway never lets a token live forever: without exp it cannot bound its use.
        guard let expiresAt else { return .inactive(reason: "the endpoint gave no exp for an active token") }
        guard now < expiresAt else { return .inactive(reason: "the token has expired (exp)") }
        if let notBefore, notBefore > now { return .inactive(reason: "the token is not valid yet (nbf)") }
        if let tokenType, tokenType.lowercased() == "refresh_token" {
            return .inactive(reason: "the token is a refresh token")
        }
        return .active(subject: name, clientID: clientID, scopes: scopes, issuer: issuer, expiresAt: expiresAt)
    }
}
