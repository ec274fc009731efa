import Foundation
import GatewayCore
import GatewayProxy

/// The body of the admin listener's `POST /explain`, parsed strictly:
/// `{"method": "GET", "path": "/v1/...", "token": "...", "headers": ["Name: value"],
/// "client_address": "10.0.0.7"}` (`token`, `headers`, `client_address` optional). Pure;
/// any thread.
enum AdminExplainBody {
    private struct Body: Decodable {
        var method: String
        var path: String
        var token: String?
        var headers: [String]?
        var clientAddress: String?

        enum CodingKeys: String, CodingKey {
            case method, path, token, headers
            case clientAddress = "client_address"
        }
    }

    static func parse(_ bytes: [UInt8]) -> Result<ExplainRequest, GatewayError> {
        let body: Body
        do {
            guard case let object as [String: Any] = try JSONSerialization.jsonObject(with: Data(bytes)) else {
                return .failure(.badRequest("The body must be a JSON object."))
            }
            let known: Set<String> = ["method", "path", "token", "headers", "client_address"]
            if let unknown = object.keys.first(where: { !known.contains($0) }) {
                return .failure(
                    .badRequest("Unknown member \"\(unknown)\"; expected method, path, token, headers, client_address.")
                )
            }
            body = try JSONDecoder().decode(Body.self, from: Data(bytes))
        } catch {
            return .failure(
                .badRequest("The body must be {\"method\", \"path\"[, \"token\", \"headers\", \"client_address\"]}.")
            )
        }
        guard !body.method.isEmpty, body.method.utf8.count <= 32,
            body.method.utf8.allSatisfy({ $0 >= 0x41 && $0 <= 0x5A })
        else {
            return .failure(.badRequest("method must be an upper-case method such as GET."))
        }
        guard body.path.hasPrefix("/"), body.path.utf8.count <= 8192 else {
            return .failure(.badRequest("path must start with / (at most 8192 bytes)."))
        }
        var headers: [(name: String, value: String)] = []
        for field in body.headers ?? [] {
            guard let parsed = ExplainRequest.parseHeader(field) else {
                return .failure(.badRequest("Each header must be \"Name: value\"."))
            }
            headers.append(parsed)
        }
        if let token = body.token {
            guard !headers.contains(where: { $0.name.lowercased() == "authorization" }) else {
                return .failure(
                    .badRequest("Give the credential either as token or as an Authorization header, not both.")
                )
            }
            headers.append(("Authorization", "Bearer " + token))
        }
        return .success(
            ExplainRequest(
                method: body.method,
                target: body.path,
                headers: headers,
                clientAddress: body.clientAddress ?? "127.0.0.1"
            )
        )
    }
}
