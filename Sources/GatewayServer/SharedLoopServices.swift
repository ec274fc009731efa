import GatewayAuth
import GatewayCore
import GatewayCrypto
import GatewayProxy
import GatewayRateLimit
import NIOPosix

/// The process-wide pieces every loop's assembly uses: the upstream connector, the API-key
/// hasher (keyed with the pepper, which needs a restart to change), the local token buckets,
/// the thread pool for scrypt and RSA, the outbound HTTP client and the JWKS refresher
/// services. Built once by `GatewayServer`; immutable; any thread.
struct SharedLoopServices: Sendable {
    var connector: UpstreamConnector
    var hmac: HMACSHA256
    /// One shard per loop, shared by all: a principal's local bucket is exact process-wide.
    var localLimiter: LocalRateLimiter
    /// Runs scrypt for logins and RSA signing off the event loops.
    var passwordPool: NIOThreadPool
    var fetcher: HTTPFetcher
    var poster: HTTPPoster
    /// Keeps `[auth.jwt]`'s remote issuers' keys fresh.
    var jwtRefresher: JWKSRefresherService
    /// Keeps the `[[sso.providers]]`' ID-token keys fresh.
    var ssoRefresher: JWKSRefresherService
    /// The one clock of the process: every loop, store and limiter reads this one.
    var clock: GatewayClock

    /// scrypt checks for logins on the pool, off the event loops.
    var checkPassword: PasswordCheck {
        let pool = self.passwordPool
        return { password, encoded, loop in
            pool.runIfActive(eventLoop: loop) { PasswordHasher.verify(password: password, encoded: encoded) }
        }
    }

    /// scrypt hashing with the current cost on the pool (a stale hash upgraded at login).
    var rehashPassword: PasswordRehash {
        let pool = self.passwordPool
        return { password, cost, loop in
            pool.runIfActive(eventLoop: loop) { try PasswordHasher.hash(password: password, cost: cost) }
        }
    }
}
