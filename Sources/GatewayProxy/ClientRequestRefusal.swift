import GatewayHTTP1

/// The strict parser refused a client's bytes: the rule broken, and what it had read of the
/// request (method, target, the client's request id) when its request line was complete, so
/// the refusal can be answered as the addressed endpoint answers its errors. Fired by
/// `ClientRequestDecoder` as an error, in order after the responses still owed. A value;
/// made on the connection's event loop.
struct ClientRequestRefusal: Error {
    let error: HTTP1ParseError
    let request: HTTP1RefusedRequest?
}
