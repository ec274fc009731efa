package import NIOCore

/// One event loop's view of the failed-authentication budgets of client addresses: which
/// addresses have spent theirs (refused until a token is back) and how many store lookups
/// each may have in flight, so that a budget is never overspent by requests sent all at
/// once. The budget itself is a token bucket of the shared `RateLimiter` (Redis or local),
/// charged only when an authentication fails; this view is what lets the check before a
/// lookup cost nothing.
///
/// Pure state, the time passed in: a value owned by its loop's `FailedAuthenticationLimiter`,
/// touched only on that loop.
package struct FailureBudget {
    /// What a request with a credential not known good may do.
    package enum Admission: Equatable {
        case proceed
        /// The address's budget is spent (or its remaining failures are all being looked
        /// up): 429 with these numbers, before any store lookup.
        case refuse(RateLimitDecision)
    }

    private struct Entry {
        /// Store lookups under way for the address on this loop.
        var lookups = 0
        /// Charges sent to the limiter and not answered yet.
        var charges = 0
        /// Failures the budget can still take, as last learned (nil: never charged, a full
        /// bucket), less the charges under way.
        var remaining: Int?
        /// The budget is spent (a charge took the last token, or the limiter refused one):
        /// refused until then.
        var refusedUntil: NIODeadline?
        /// When the bucket is full again if nothing else fails: the entry then says nothing.
        var fullAt: NIODeadline
        var sequence: UInt64 = 0

        var isIdle: Bool { self.lookups == 0 && self.charges == 0 }
    }

    private var entries: [String: Entry] = [:]
    private var order: CircularBuffer<(key: String, sequence: UInt64)> = CircularBuffer(initialCapacity: 64)
    private var nextSequence: UInt64 = 0
    /// The policy's bucket; its burst is the budget, what an address never charged may
    /// have in flight.
    package private(set) var shape: TokenBucket.Shape
    private var burst: Int { Int(self.shape.burst) }
    private let maximumEntries: Int

    package init(_ shape: TokenBucket.Shape, maximumEntries: Int = 10_000) {
        self.shape = shape
        self.maximumEntries = max(1, maximumEntries)
    }

    /// Addresses this view remembers (tests, bounds).
    package var count: Int { self.entries.count }

    /// A new budget from a reload: what was learned stays, bounded by the new budget.
    package mutating func reshape(_ shape: TokenBucket.Shape) {
        self.shape = shape
        let burst = self.burst
        for key in Array(self.entries.keys) {
            if let remaining = self.entries[key]?.remaining {
                self.entries[key]?.remaining = min(remaining, burst)
            }
        }
    }

    /// Before a request's credential, not known good in the cache, is judged: refused when
    /// the address spent its budget, or when this loop's failures used up what was left and
    /// the limiter has not answered their charges yet. With `lookup` the request is about
    /// to ask the store, and is also refused when the address's remaining failures are all
    /// already being looked up (at least one lookup at a time is let through once the
    /// refusal's time is over); otherwise call `lookupFinished` when the store answered.
    package mutating func admit(_ key: String, lookup: Bool, now: NIODeadline) -> Admission {
        guard var entry = self.entries[key] else {
            if lookup {
                self.store(key, Entry(lookups: 1, fullAt: now))
            }
            return .proceed
        }
        if let until = entry.refusedUntil {
            if now < until {
                return .refuse(self.refusal(fullAt: entry.fullAt, now: now, until: until))
            }
            // A token is back: one more failure may be tried.
            entry.refusedUntil = nil
            entry.remaining = max(entry.remaining ?? 0, 1)
        } else if entry.isIdle, now >= entry.fullAt {
            entry.remaining = nil
        }
        if entry.remaining == 0, entry.charges > 0 {
            // Spent as far as this loop counted, and the limiter has not answered yet: its
            // answer (a refusal, or tokens regained meanwhile) decides the next request.
            self.entries[key] = entry
            return .refuse(self.refusal(fullAt: entry.fullAt, now: now, until: now + .seconds(1)))
        }
        if lookup {
            let allowance = max(1, entry.remaining ?? self.burst)
            guard entry.lookups < allowance else {
                self.entries[key] = entry
                return .refuse(self.refusal(fullAt: entry.fullAt, now: now, until: now + .seconds(1)))
            }
            entry.lookups += 1
        }
        self.entries[key] = entry
        return .proceed
    }

    /// The store answered a lookup `admit(lookup: true)` let through.
    package mutating func lookupFinished(_ key: String, now: NIODeadline) {
        guard var entry = self.entries[key] else { return }
        entry.lookups = max(0, entry.lookups - 1)
        self.entries[key] = entry
        self.dropIfSilent(key, now: now)
    }

    /// An authentication from the address failed: the caller charges the limiter and
    /// reports its answer to `charged`. Until then the failure counts against the
    /// remaining budget here.
    package mutating func failed(_ key: String, now: NIODeadline) {
        var entry = self.entries[key] ?? Entry(fullAt: now)
        entry.charges += 1
        entry.remaining = max(0, (entry.remaining ?? self.burst) - 1)
        // Until the limiter answers: one more token to refill before the bucket is full.
        entry.fullAt = max(entry.fullAt, now) + self.tokenInterval
        if self.entries[key] == nil {
            self.store(key, entry)
        } else {
            self.entries[key] = entry
        }
    }

    /// The limiter's answer to a charge (nil: it could not be asked; the local estimate
    /// stands). Returns true when this answer newly refuses the address (for a log line).
    @discardableResult
    package mutating func charged(_ key: String, _ decision: RateLimitDecision?, now: NIODeadline) -> Bool {
        guard var entry = self.entries[key] else { return false }
        entry.charges = max(0, entry.charges - 1)
        guard let decision else {
            self.entries[key] = entry
            return false
        }
        entry.fullAt = now + .seconds(Int64(decision.resetSeconds))
        var until: NIODeadline?
        if !decision.allowed {
            until = now + .seconds(Int64(max(1, decision.retryAfterSeconds)))
        } else if decision.remaining == 0 {
            // That failure took the last token: the budget is spent now, not at the next
            // failure. Refused until the next token, as far as the rounded-up reset tells.
            let untilNextToken =
                TimeAmount.seconds(Int64(decision.resetSeconds)) - self.tokenInterval * Int64(self.burst - 1)
            if untilNextToken > .zero { until = now + untilNextToken }
        }
        var newlyRefused = false
        if let until {
            newlyRefused = entry.refusedUntil.map { $0 <= now } ?? true
            entry.refusedUntil = max(entry.refusedUntil ?? until, until)
            entry.remaining = 0
        } else {
            // Charges still under way will each take one more.
            entry.remaining = max(0, decision.remaining - entry.charges)
        }
        self.entries[key] = entry
        return newlyRefused
    }

    /// The refusal's numbers: the bucket is empty until `until`.
    private func refusal(fullAt: NIODeadline, now: NIODeadline, until: NIODeadline) -> RateLimitDecision {
        let wait = max(1, Self.wholeSeconds(from: now, to: until))
        return RateLimitDecision(
            policy: self.shape.policy,
            allowed: false,
            limit: self.burst,
            remaining: 0,
            resetSeconds: max(wait, Self.wholeSeconds(from: now, to: fullAt)),
            retryAfterSeconds: wait,
            windowSeconds: Int(self.shape.windowSeconds)
        )
    }

    /// The time the bucket takes to gain one token.
    private var tokenInterval: TimeAmount {
        .nanoseconds(ceilingDivide(self.shape.periodSeconds * TokenBucket.ticksPerSecond, by: self.shape.rate))
    }

    /// Seconds from `now` to `deadline`, rounded up; 0 when it has passed.
    private static func wholeSeconds(from now: NIODeadline, to deadline: NIODeadline) -> Int {
        guard deadline > now else { return 0 }
        let nanoseconds = deadline.uptimeNanoseconds - now.uptimeNanoseconds
        return Int((nanoseconds + 999_999_999) / 1_000_000_000)
    }

    /// An entry with nothing under way and nothing learned that still matters goes.
    private mutating func dropIfSilent(_ key: String, now: NIODeadline) {
        guard let entry = self.entries[key], entry.isIdle else { return }
        let refused = entry.refusedUntil.map { now < $0 } ?? false
        if !refused, entry.remaining == nil || now >= entry.fullAt {
            self.entries[key] = nil
        }
    }

    private mutating func store(_ key: String, _ entry: Entry) {
        var entry = entry
        self.nextSequence &+= 1
        entry.sequence = self.nextSequence
        // Beyond the bound the longest-known address is forgotten: it can cause at most one
        // more failure per loop before it is learned again.
        while self.entries.count >= self.maximumEntries, let oldest = self.order.popFirst() {
            if self.entries[oldest.key]?.sequence == oldest.sequence {
                self.entries[oldest.key] = nil
            }
        }
        self.entries[key] = entry
        self.order.append((key, entry.sequence))
        if self.order.count > 2 * self.maximumEntries + 64 {
            let entries = self.entries
            self.order = CircularBuffer(self.order.filter { entries[$0.key]?.sequence == $0.sequence })
        }
    }
}
