package import NIOCore
package import NIOEmbedded
package import Testing

/// Raised after a test has recorded that a future it expected to fail succeeded.
package struct ExpectedFailure: Error {
    package init() {}
}

/// The outcome of a future on an `EmbeddedEventLoop` after the loop ran everything it had,
/// or nil while it is still pending. (On the embedded loop a callback on a completed future
/// runs at once, so no waiting is involved.)
package func completion<Value>(
    of future: EventLoopFuture<Value>,
    on loop: EmbeddedEventLoop
) -> Result<Value, any Error>? {
    loop.run()
    return completion(of: future)
}

/// The outcome of a future on an embedded loop as it stands, without running the loop (for
/// tests that feed bytes one at a time and watch when a reply completes); nil while pending.
package func completion<Value>(of future: EventLoopFuture<Value>) -> Result<Value, any Error>? {
    var result: Result<Value, any Error>?
    future.assumeIsolated().whenComplete { result = $0 }
    return result
}

/// The error of a future that has failed, nil while it is pending or if it succeeded.
package func failureIfAny<Value>(of future: EventLoopFuture<Value>) -> (any Error)? {
    guard case .failure(let error) = completion(of: future) else { return nil }
    return error
}

/// The value of a future that must already have succeeded.
package func value<Value>(
    of future: EventLoopFuture<Value>,
    on loop: EmbeddedEventLoop,
    sourceLocation: SourceLocation = #_sourceLocation
) throws -> Value {
    let result = try #require(
        completion(of: future, on: loop),
        "the future is still pending",
        sourceLocation: sourceLocation
    )
    return try result.get()
}

/// The error of a future that must already have failed.
package func failure<Value>(
    of future: EventLoopFuture<Value>,
    on loop: EmbeddedEventLoop,
    sourceLocation: SourceLocation = #_sourceLocation
) throws -> any Error {
    let result = try #require(
        completion(of: future, on: loop),
        "the future is still pending",
        sourceLocation: sourceLocation
    )
    return try failure(of: result, sourceLocation: sourceLocation)
}

/// The error of a result that must be a failure.
package func failure<Value, Failure: Error>(
    of result: Result<Value, Failure>,
    sourceLocation: SourceLocation = #_sourceLocation
) throws -> Failure {
    switch result {
    case .success(let value):
        Issue.record("expected a failure, got \(value)", sourceLocation: sourceLocation)
        throw ExpectedFailure()
    case .failure(let error):
        return error
    }
}

/// The error of a result, nil if it succeeded.
package func failureIfAny<Value, Failure: Error>(of result: Result<Value, Failure>) -> Failure? {
    guard case .failure(let error) = result else { return nil }
    return error
}
