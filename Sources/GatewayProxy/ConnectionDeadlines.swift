package import GatewayCore
package import NIOCore

/// A connection whose deadline `ConnectionDeadlines` watches.
protocol DeadlineOwner: AnyObject {
    /// The armed deadline passed (it is disarmed now). Called on the loop, from a sweep.
    func deadlinePassed()
}

/// The idle and header deadlines of one event loop's client connections, checked by one
/// sweep for the whole loop instead of a timer per connection: an idle keep-alive
/// connection costs a slot of `DeadlineSweep` (24 bytes), not a scheduled task, and moving
/// a deadline on every request only relinks that slot.
///
/// The sweep wakes up at the earliest deadline, but at most once per `precision`, so the
/// deadlines of many connections fire together and each fires at most `precision` late;
/// with no deadline armed nothing is scheduled. Time is the injected `GatewayClock` (tests
/// move a `ManualClock` and call `sweep()`); the wake-up is a callback on the loop, with
/// this object as its handler (no closure or promise per wake-up).
///
/// One per event loop, owned by its `LoopContext`; touched only on that loop (the front
/// handlers of its connections register and arm there), so it needs no lock.
package final class ConnectionDeadlines {
    /// How late a deadline may fire (documented with `header_timeout` and `idle_timeout`).
    package static let precision = TimeAmount.milliseconds(250)

    private let eventLoop: any EventLoop
    private let clock: GatewayClock
    private var deadlines = DeadlineSweep()
    /// Indexed by slot; nil for a free slot.
    private var owners: [(any DeadlineOwner)?] = []
    private var wakeUp: NIOScheduledCallback?
    /// When the pending wake-up runs (clock nanoseconds).
    private var wakeUpAt: Int64?
    private var lastSweep = Int64.min

    package init(eventLoop: any EventLoop, clock: GatewayClock) {
        self.eventLoop = eventLoop
        self.clock = clock
    }

    /// Deadlines armed now.
    package var armedCount: Int { self.deadlines.armedCount }

    /// Connections registered now.
    package var registeredCount: Int { self.deadlines.registeredCount }

    /// A slot for `owner`, held strongly until `unregister`.
    func register(_ owner: any DeadlineOwner) -> Int {
        let slot = self.deadlines.register()
        if slot == self.owners.count {
            self.owners.append(owner)
        } else {
            self.owners[slot] = owner
        }
        return slot
    }

    /// The owner of `slot` went away: its deadline is cancelled and the slot freed.
    func unregister(_ slot: Int) {
        self.deadlines.unregister(slot)
        if slot >= 0, slot < self.owners.count {
            self.owners[slot] = nil
        }
    }

    /// The owner of `slot` is called once `timeout` from now has passed, unless re-armed or
    /// cancelled first.
    func arm(_ slot: Int, in timeout: TimeAmount) {
        let now = Self.nanoseconds(self.clock.now())
        guard let deadline = self.deadlines.arm(slot, duration: timeout.nanoseconds, now: now) else { return }
        self.wake(at: deadline, now: now)
    }

    /// No call for `slot` until armed again. The pending wake-up stays (it finds nothing or
    /// another deadline), so cancelling on every request schedules nothing.
    func cancel(_ slot: Int) {
        self.deadlines.cancel(slot)
    }

    /// Calls the owner of every deadline passed by now, earliest first. An owner may arm,
    /// cancel or unregister any slot (its own included) from its call.
    package func sweep() {
        let now = Self.nanoseconds(self.clock.now())
        self.lastSweep = now
        while let slot = self.deadlines.popExpired(now: now) {
            self.owners[slot]?.deadlinePassed()
        }
        if let next = self.deadlines.earliest {
            self.wake(at: next, now: Self.nanoseconds(self.clock.now()))
        }
    }

    private func wake(at deadline: Int64, now: Int64) {
        // Not sooner than `precision` after the last sweep: close deadlines share a wake-up.
        let at = max(deadline, self.lastSweep &+ ConnectionDeadlines.precision.nanoseconds)
        if let pending = self.wakeUpAt, pending <= at { return }
        if let wakeUp = self.wakeUp {
            wakeUp.cancel()
        }
        self.wakeUpAt = at
        // Throws only while the loop shuts down, when no deadline needs to fire any more.
        self.wakeUp = try? self.eventLoop.assumeIsolated().scheduleCallback(
            in: .nanoseconds(max(0, at - now)),
            handler: self
        )
    }

    private static func nanoseconds(_ deadline: NIODeadline) -> Int64 {
        Int64(clamping: deadline.uptimeNanoseconds)
    }
}

extension ConnectionDeadlines: NIOScheduledCallbackHandler {
    package func handleScheduledCallback(eventLoop: some EventLoop) {
        self.wakeUp = nil
        self.wakeUpAt = nil
        self.sweep()
    }
}
