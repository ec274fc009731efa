import NIOConcurrencyHelpers

/// The outcome of the admin listener's bind, awaited by the gateway before it binds its own
/// listeners. Set once by `AdminService.run`; awaited from any task (a lock guards it).
final class AdminBinding: Sendable {
    private enum State {
        case waiting([CheckedContinuation<Int, any Error>])
        case bound(Int)
        case failed(any Error)
    }

    private let state = NIOLockedValueBox(State.waiting([]))

    func succeed(_ port: Int) { self.finish(.success(port)) }

    func fail(_ error: any Error) { self.finish(.failure(error)) }

    private func finish(_ result: Result<Int, any Error>) {
        let waiters = self.state.withLockedValue { state -> [CheckedContinuation<Int, any Error>] in
            guard case .waiting(let waiters) = state else { return [] }
            switch result {
            case .success(let port): state = .bound(port)
            case .failure(let error): state = .failed(error)
            }
            return waiters
        }
        for waiter in waiters { waiter.resume(with: result) }
    }

    /// The bound port; throws why the listener could not be opened.
    func port() async throws -> Int {
        try await withCheckedThrowingContinuation { continuation in
            let ready = self.state.withLockedValue { state -> Result<Int, any Error>? in
                switch state {
                case .waiting(let waiters):
                    state = .waiting(waiters + [continuation])
                    return nil
                case .bound(let port):
                    return .success(port)
                case .failed(let error):
                    return .failure(error)
                }
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}
