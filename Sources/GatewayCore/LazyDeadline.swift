package import NIOCore

/// A timeout that moves often but rarely fires (response, body and head timeouts, moved on
/// every read), kept cheap: moving it only stores a deadline; one scheduled task per
/// owner wakes up at or before the deadline and either fires or sleeps again until it.
/// Without this every read would cancel and schedule a task (two heap operations and a
/// closure allocation per read).
///
/// Times come from `eventLoop.now`, so tests on `EmbeddedEventLoop` control them. Owned
/// by one handler; touched only on its event loop.
package struct LazyDeadline {
    package init() {}

    package private(set) var deadline: NIODeadline?
    private var task: Scheduled<Void>?
    private var taskFiresAt: NIODeadline?

    /// Sets the deadline to `now + timeout`; `onExpiry` runs on the loop when it passes
    /// (unless moved or cleared first). `wake` is the owner's entry point that must call
    /// `expired(now:)` and act on its answer.
    /// `makeWake` is only called when a task must be scheduled, so moving the deadline
    /// allocates nothing.
    package mutating func set(
        _ deadline: NIODeadline,
        on eventLoop: any EventLoop,
        makeWake: () -> @Sendable () -> Void
    ) {
        self.deadline = deadline
        if let firesAt = self.taskFiresAt, firesAt <= deadline {
            return  // the pending wake-up comes early enough; it will re-check then
        }
        self.task?.cancel()
        self.taskFiresAt = deadline
        self.task = eventLoop.scheduleTask(deadline: deadline, makeWake())
    }

    /// No timeout applies until the next `set`.
    package mutating func clear() {
        self.deadline = nil
    }

    /// Stops the wake-up too (the owner goes away).
    package mutating func cancel() {
        self.deadline = nil
        self.task?.cancel()
        self.task = nil
        self.taskFiresAt = nil
    }

    /// Called from the wake-up: true if the deadline has passed (and it is cleared);
    /// otherwise the wake-up is rescheduled for the current deadline, if any.
    package mutating func expired(
        now: NIODeadline,
        on eventLoop: any EventLoop,
        makeWake: () -> @Sendable () -> Void
    ) -> Bool {
        self.task = nil
        self.taskFiresAt = nil
        guard let deadline = self.deadline else { return false }
        if now >= deadline {
            self.deadline = nil
            return true
        }
        self.taskFiresAt = deadline
        self.task = eventLoop.scheduleTask(deadline: deadline, makeWake())
        return false
    }
}
