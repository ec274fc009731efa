import GatewayTestSupport
import NIOCore
import NIOEmbedded
import Testing

@testable import GatewayProxy

/// `DeadlineSweep`: the per-loop deadline slots of client connections.
@Suite("DeadlineSweep")
struct DeadlineSweepTests {
    private static let second: Int64 = 1_000_000_000

    /// Every slot whose deadline passed by `now`, in the order the sweep gives them.
    private static func expired(_ sweep: inout DeadlineSweep, now: Int64) -> [Int] {
        var slots: [Int] = []
        while let slot = sweep.popExpired(now: now) { slots.append(slot) }
        return slots
    }

    @Test("an armed deadline fires once it has passed, not before, and only once")
    func arming() {
        var sweep = DeadlineSweep()
        let slot = sweep.register()
        sweep.arm(slot, duration: 10 * Self.second, now: 0)
        #expect(sweep.deadline(of: slot) == 10 * Self.second)
        #expect(sweep.earliest == 10 * Self.second)
        #expect(Self.expired(&sweep, now: 10 * Self.second - 1).isEmpty)
        #expect(Self.expired(&sweep, now: 10 * Self.second) == [slot])
        #expect(sweep.deadline(of: slot) == nil)
        #expect(sweep.armedCount == 0)
        #expect(Self.expired(&sweep, now: 100 * Self.second).isEmpty)
    }

    @Test("re-arming replaces the deadline, also with another duration")
    func rearming() {
        var sweep = DeadlineSweep()
        let first = sweep.register()
        let second = sweep.register()
        sweep.arm(first, duration: 60 * Self.second, now: 0)
        sweep.arm(second, duration: 60 * Self.second, now: 1 * Self.second)
        // The first's head arrived and a new idle wait began later: it is now behind the second.
        sweep.arm(first, duration: 60 * Self.second, now: 5 * Self.second)
        #expect(sweep.armedCount == 2)
        #expect(Self.expired(&sweep, now: 61 * Self.second) == [second])
        // A shorter duration (the header timeout) goes before later idle deadlines.
        sweep.arm(second, duration: 10 * Self.second, now: 62 * Self.second)
        #expect(sweep.earliest == 65 * Self.second)
        #expect(Self.expired(&sweep, now: 100 * Self.second) == [first, second])
    }

    @Test("a cancelled deadline never fires; cancelling twice or unarmed is harmless")
    func cancelling() {
        var sweep = DeadlineSweep()
        let slots = (0..<3).map { _ in sweep.register() }
        for slot in slots { sweep.arm(slot, duration: 10 * Self.second, now: 0) }
        sweep.cancel(slots[1])
        sweep.cancel(slots[1])
        let unarmed = sweep.register()
        sweep.cancel(unarmed)
        #expect(sweep.armedCount == 2)
        #expect(Self.expired(&sweep, now: 20 * Self.second) == [slots[0], slots[2]])
        // Cancelling the only one, head and tail at once, empties its list.
        sweep.arm(slots[0], duration: Self.second, now: 30 * Self.second)
        sweep.cancel(slots[0])
        #expect(sweep.earliest == nil)
    }

    @Test("deadlines of several durations fire earliest first, ties in arming order")
    func firingOrder() {
        var sweep = DeadlineSweep()
        let idle = (0..<3).map { _ in sweep.register() }
        let heads = (0..<3).map { _ in sweep.register() }
        // Idle deadlines at 60, 61, 62 s; head deadlines at 55, 61, 70 s.
        for (offset, slot) in idle.enumerated() {
            sweep.arm(slot, duration: 60 * Self.second, now: Int64(offset) * Self.second)
        }
        sweep.arm(heads[0], duration: 10 * Self.second, now: 45 * Self.second)
        sweep.arm(heads[1], duration: 10 * Self.second, now: 51 * Self.second)
        sweep.arm(heads[2], duration: 10 * Self.second, now: 60 * Self.second)
        #expect(sweep.earliest == 55 * Self.second)
        #expect(Self.expired(&sweep, now: 61 * Self.second) == [heads[0], idle[0], idle[1], heads[1]])
        #expect(Self.expired(&sweep, now: 70 * Self.second) == [idle[2], heads[2]])
    }

    @Test("a connection closed before its deadline is never called, and its slot is reused")
    func closedBeforeDeadline() {
        var sweep = DeadlineSweep()
        let closed = sweep.register()
        let open = sweep.register()
        sweep.arm(closed, duration: 10 * Self.second, now: 0)
        sweep.arm(open, duration: 10 * Self.second, now: 0)
        sweep.unregister(closed)
        #expect(sweep.registeredCount == 1)
        // Operations on a released slot do nothing.
        sweep.arm(closed, duration: Self.second, now: 0)
        #expect(sweep.deadline(of: closed) == nil)
        #expect(Self.expired(&sweep, now: 20 * Self.second) == [open])
        // A new connection takes the freed slot, unarmed.
        let reused = sweep.register()
        #expect(reused == closed)
        #expect(sweep.deadline(of: reused) == nil)
        #expect(sweep.registeredCount == 2)
    }

    @Test("a list emptied of one duration is taken over by a new duration (a reload)")
    func listsAreReused() {
        var sweep = DeadlineSweep()
        let slot = sweep.register()
        sweep.arm(slot, duration: 10 * Self.second, now: 0)
        sweep.cancel(slot)
        sweep.arm(slot, duration: 3 * Self.second, now: 0)
        let other = sweep.register()
        sweep.arm(other, duration: 10 * Self.second, now: 0)
        #expect(Self.expired(&sweep, now: 10 * Self.second) == [slot, other])
    }

    @Test("a clock that went back never puts a deadline before one armed earlier with the same duration")
    func clockGoingBack() {
        var sweep = DeadlineSweep()
        let first = sweep.register()
        let second = sweep.register()
        sweep.arm(first, duration: 10 * Self.second, now: 5 * Self.second)
        sweep.arm(second, duration: 10 * Self.second, now: 1 * Self.second)
        #expect(sweep.deadline(of: second) == 15 * Self.second)
        #expect(Self.expired(&sweep, now: 15 * Self.second) == [first, second])
    }
}

/// Records which owners the sweep called, and acts from inside the call.
private final class RecordingOwner: DeadlineOwner {
    let name: String
    let log: Log
    var onCall: () -> Void = {}

    final class Log {
        var calls: [String] = []
    }

    init(_ name: String, log: Log) {
        self.name = name
        self.log = log
    }

    func deadlinePassed() {
        self.log.calls.append(self.name)
        self.onCall()
    }
}

/// `ConnectionDeadlines`: one sweep per loop, on the injected clock.
@Suite("ConnectionDeadlines")
struct ConnectionDeadlinesTests {
    private let loop = EmbeddedEventLoop()
    private let clock = ManualClock()
    private let log = RecordingOwner.Log()

    private func advance(by amount: TimeAmount) {
        self.clock.advance(by: amount)
        self.loop.advanceTime(by: amount)
    }

    @Test("the loop wakes the sweep at the earliest deadline; owners are called in deadline order")
    func wakesAtTheEarliestDeadline() {
        let deadlines = ConnectionDeadlines(eventLoop: self.loop, clock: self.clock.clock)
        let idle = RecordingOwner("idle", log: self.log)
        let head = RecordingOwner("head", log: self.log)
        let idleSlot = deadlines.register(idle)
        let headSlot = deadlines.register(head)
        deadlines.arm(idleSlot, in: .seconds(60))
        deadlines.arm(headSlot, in: .seconds(10))
        self.advance(by: .seconds(9))
        #expect(self.log.calls.isEmpty)
        self.advance(by: .seconds(1))
        #expect(self.log.calls == ["head"])
        self.advance(by: .seconds(49))
        #expect(self.log.calls == ["head"])
        self.advance(by: .seconds(1))
        #expect(self.log.calls == ["head", "idle"])
        #expect(deadlines.armedCount == 0)
        #expect(deadlines.registeredCount == 2)
    }

    @Test("a deadline re-armed before it passed moves; a cancelled one never fires")
    func rearmAndCancel() {
        let deadlines = ConnectionDeadlines(eventLoop: self.loop, clock: self.clock.clock)
        let moved = RecordingOwner("moved", log: self.log)
        let cancelled = RecordingOwner("cancelled", log: self.log)
        let movedSlot = deadlines.register(moved)
        let cancelledSlot = deadlines.register(cancelled)
        deadlines.arm(movedSlot, in: .seconds(10))
        deadlines.arm(cancelledSlot, in: .seconds(10))
        self.advance(by: .seconds(5))
        deadlines.arm(movedSlot, in: .seconds(10))
        deadlines.cancel(cancelledSlot)
        self.advance(by: .seconds(6))
        #expect(self.log.calls.isEmpty)
        self.advance(by: .seconds(4))
        #expect(self.log.calls == ["moved"])
    }

    @Test("a connection closed before its deadline is not called and not kept")
    func closedBeforeItsDeadline() {
        let deadlines = ConnectionDeadlines(eventLoop: self.loop, clock: self.clock.clock)
        weak var weakOwner: RecordingOwner?
        do {
            let owner = RecordingOwner("closed", log: self.log)
            weakOwner = owner
            let slot = deadlines.register(owner)
            deadlines.arm(slot, in: .seconds(10))
            deadlines.unregister(slot)
        }
        #expect(weakOwner == nil)
        self.advance(by: .seconds(20))
        #expect(self.log.calls.isEmpty)
        #expect(deadlines.registeredCount == 0)
    }

    @Test("deadlines close together share one wake-up, each at most the precision late")
    func closeDeadlinesShareAWakeUp() {
        let deadlines = ConnectionDeadlines(eventLoop: self.loop, clock: self.clock.clock)
        let first = RecordingOwner("first", log: self.log)
        let second = RecordingOwner("second", log: self.log)
        let firstSlot = deadlines.register(first)
        let secondSlot = deadlines.register(second)
        deadlines.arm(firstSlot, in: .milliseconds(1000))
        self.advance(by: .milliseconds(100))
        deadlines.arm(secondSlot, in: .milliseconds(1000))
        self.advance(by: .milliseconds(900))
        #expect(self.log.calls == ["first"])
        // The second's deadline (1,100 ms) comes before the next sweep may run (1,250 ms).
        self.advance(by: .milliseconds(100))
        #expect(self.log.calls == ["first"])
        self.advance(by: ConnectionDeadlines.precision - .milliseconds(100))
        #expect(self.log.calls == ["first", "second"])
    }

    @Test("an owner may re-arm, cancel or unregister from its call")
    func reentrantOwners() {
        let deadlines = ConnectionDeadlines(eventLoop: self.loop, clock: self.clock.clock)
        let rearming = RecordingOwner("rearming", log: self.log)
        let closing = RecordingOwner("closing", log: self.log)
        let victim = RecordingOwner("victim", log: self.log)
        let rearmingSlot = deadlines.register(rearming)
        let closingSlot = deadlines.register(closing)
        let victimSlot = deadlines.register(victim)
        rearming.onCall = { deadlines.arm(rearmingSlot, in: .seconds(10)) }
        // Closing one connection may close another whose deadline passed in the same sweep.
        closing.onCall = {
            deadlines.unregister(closingSlot)
            deadlines.unregister(victimSlot)
        }
        for slot in [rearmingSlot, closingSlot, victimSlot] { deadlines.arm(slot, in: .seconds(10)) }
        self.advance(by: .seconds(10))
        #expect(self.log.calls == ["rearming", "closing"])
        #expect(deadlines.registeredCount == 1)
        self.advance(by: .seconds(10))
        #expect(self.log.calls == ["rearming", "closing", "rearming"])
    }

    @Test("without an armed deadline nothing is scheduled; a sweep called early fires nothing")
    func nothingArmed() {
        let deadlines = ConnectionDeadlines(eventLoop: self.loop, clock: self.clock.clock)
        let owner = RecordingOwner("owner", log: self.log)
        let slot = deadlines.register(owner)
        deadlines.sweep()
        #expect(self.log.calls.isEmpty)
        deadlines.arm(slot, in: .seconds(1))
        deadlines.sweep()
        #expect(self.log.calls.isEmpty)
        self.clock.advance(seconds: 1)
        deadlines.sweep()
        #expect(self.log.calls == ["owner"])
    }
}
