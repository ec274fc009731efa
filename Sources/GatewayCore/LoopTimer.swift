package import NIOCore

/// The one wake-up of an owner on its event loop, for a deadline that moves often but rarely
/// passes (response, body and head timeouts, moved on every read; the oldest Redis command's
/// deadline). Moving it only stores the new deadline: one scheduled task wakes up at or
/// before the deadline and either calls `onExpiry` or sleeps again until the deadline.
/// Without this every read would cancel and schedule a task (two heap operations and a
/// closure allocation per read), and every owner would carry its own copy of this glue.
///
/// Times come from the loop's `now`, so tests on `EmbeddedEventLoop` control them. Owned by
/// one object and touched only on that object's event loop (the first `arm` names it);
/// `onExpiry` runs there. Owners hold it as a `lazy var` whose `onExpiry` captures them
/// weakly, so an owner that never arms a timer allocates nothing.
///
/// The wake-up is a scheduled callback with the timer itself as its handler, not a
/// scheduled closure: every idle keep-alive connection holds one armed timer, and a
/// `scheduleTask` would keep a promise, its future and three closure contexts alive per
/// connection for as long as it idles (about 300 bytes each, measured with massif).
package final class LoopTimer {
    private let onExpiry: () -> Void
    private var eventLoop: (any EventLoop)?
    /// When `onExpiry` is due; nil while disarmed.
    package private(set) var deadline: NIODeadline?
    private var task: NIOScheduledCallback?
    private var taskFiresAt: NIODeadline?

    package init(onExpiry: @escaping () -> Void) {
        self.onExpiry = onExpiry
    }

    /// `onExpiry` runs on `eventLoop` once `deadline` has passed, unless moved, disarmed or
    /// cancelled first. Allocates nothing when a pending wake-up comes early enough.
    package func arm(at deadline: NIODeadline, on eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
        self.deadline = deadline
        if let firesAt = self.taskFiresAt, firesAt <= deadline {
            return  // the pending wake-up comes early enough; it re-checks then
        }
        self.schedule(at: deadline, on: eventLoop)
    }

    /// `arm(at: eventLoop.now + timeout, on: eventLoop)`.
    package func arm(in timeout: TimeAmount, on eventLoop: any EventLoop) {
        self.arm(at: eventLoop.now + timeout, on: eventLoop)
    }

    /// No expiry until the next `arm`; a pending wake-up stays scheduled (it finds nothing to
    /// do), so disarming and re-arming on every request costs no task.
    package func disarm() {
        self.deadline = nil
    }

    /// Disarms and cancels the pending wake-up too (the owner goes away).
    package func cancel() {
        self.deadline = nil
        self.task?.cancel()
        self.task = nil
        self.taskFiresAt = nil
    }

    private func schedule(at deadline: NIODeadline, on eventLoop: any EventLoop) {
        self.task?.cancel()
        self.taskFiresAt = deadline
        // Throws only while the loop shuts down, when no timer needs to fire any more.
        self.task = try? eventLoop.assumeIsolated().scheduleCallback(at: deadline, handler: self)
    }

    private func woke() {
        self.task = nil
        self.taskFiresAt = nil
        guard let deadline = self.deadline, let eventLoop = self.eventLoop else { return }
        if eventLoop.now >= deadline {
            self.deadline = nil
            self.onExpiry()
        } else {
            self.schedule(at: deadline, on: eventLoop)
        }
    }
}

extension LoopTimer: NIOScheduledCallbackHandler {
    package func handleScheduledCallback(eventLoop: some EventLoop) {
        self.woke()
    }
}
