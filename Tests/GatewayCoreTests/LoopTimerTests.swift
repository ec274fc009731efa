import GatewayCore
import NIOCore
import NIOEmbedded
import Testing

/// `LoopTimer` on an `EmbeddedEventLoop`, whose clock only moves when the test says so.
@Suite struct LoopTimerTests {
    /// Counts expiries; holds the timer as owners do.
    private final class Owner {
        var expiries: [Int64] = []
        let loop: EmbeddedEventLoop
        lazy var timer = LoopTimer { [weak self] in
            guard let self else { return }
            self.expiries.append(Int64(self.loop.now.uptimeNanoseconds / 1_000_000_000))
        }

        init(loop: EmbeddedEventLoop) { self.loop = loop }
    }

    private func owner() -> (Owner, EmbeddedEventLoop) {
        let loop = EmbeddedEventLoop()
        return (Owner(loop: loop), loop)
    }

    @Test func firesOnceWhenTheDeadlinePasses() {
        let (owner, loop) = self.owner()
        owner.timer.arm(in: .seconds(5), on: loop)
        loop.advanceTime(by: .seconds(4))
        #expect(owner.expiries.isEmpty)
        #expect(owner.timer.deadline != nil)
        loop.advanceTime(by: .seconds(1))
        #expect(owner.expiries == [5])
        #expect(owner.timer.deadline == nil)
        loop.advanceTime(by: .seconds(10))
        #expect(owner.expiries == [5])
    }

    @Test func aLaterDeadlineIsKeptByTheEarlierWakeUp() {
        let (owner, loop) = self.owner()
        owner.timer.arm(in: .seconds(5), on: loop)
        loop.advanceTime(by: .seconds(3))
        owner.timer.arm(in: .seconds(5), on: loop)  // now due at 8
        loop.advanceTime(by: .seconds(2))  // the wake-up at 5 sleeps again
        #expect(owner.expiries.isEmpty)
        loop.advanceTime(by: .seconds(2))
        #expect(owner.expiries.isEmpty)
        loop.advanceTime(by: .seconds(1))
        #expect(owner.expiries == [8])
    }

    @Test func anEarlierDeadlineIsScheduledAnew() {
        let (owner, loop) = self.owner()
        owner.timer.arm(in: .seconds(10), on: loop)
        owner.timer.arm(in: .seconds(2), on: loop)
        loop.advanceTime(by: .seconds(2))
        #expect(owner.expiries == [2])
        loop.advanceTime(by: .seconds(20))
        #expect(owner.expiries == [2])
    }

    @Test func disarmedOrCancelledItNeverFires() {
        let (owner, loop) = self.owner()
        owner.timer.arm(in: .seconds(2), on: loop)
        owner.timer.disarm()
        loop.advanceTime(by: .seconds(5))
        #expect(owner.expiries.isEmpty)
        owner.timer.arm(in: .seconds(1), on: loop)  // re-armed after a disarm: fires again
        loop.advanceTime(by: .seconds(1))
        #expect(owner.expiries == [6])
        owner.timer.arm(in: .seconds(1), on: loop)
        owner.timer.cancel()
        loop.advanceTime(by: .seconds(5))
        #expect(owner.expiries == [6])
    }

    @Test func anOwnerThatWentAwayIsNotCalled() {
        let loop = EmbeddedEventLoop()
        weak var gone: Owner?
        do {
            let owner = Owner(loop: loop)
            owner.timer.arm(in: .seconds(1), on: loop)
            gone = owner
        }
        #expect(gone == nil)
        loop.advanceTime(by: .seconds(2))  // the pending wake-up finds no owner; nothing crashes
    }
}
