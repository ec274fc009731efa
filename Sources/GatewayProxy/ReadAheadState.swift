import NIOCore

/// The read-ahead decisions of `ClientFrontHandler`: when the client socket is read, and when bytes read
/// ahead of demand go on to the handlers behind it.
///
/// NIO reads a socket only while some handler asks (`read()`): when none does at the end of
/// a read cycle, it takes the socket out of the epoll interest set, and puts it back when
/// one asks again. The handlers of a client connection stop asking for the length of every
/// exchange (the proxy while it authorizes, the request decoder until the response has
/// ended), which cost two `epoll_ctl` per request. The socket stays readable instead: a
/// client that waits for its response sends nothing, so nothing wakes the loop. Bytes that
/// do come while nobody asked (a pipelined request, a body while the upstream is slow) are
/// held here, and the socket is not read again until they went on: at most one read cycle
/// of bytes (what NIO would have handed the handlers in one go anyway).
///
/// A value owned by one handler, on its channel's event loop.
struct ReadAheadState {
    /// What to do about a `read()` from the handlers behind.
    enum ReadAction: Equatable {
        /// Ask the socket (a no-op for NIO when a read is already pending).
        case readSocket
        /// Hand the held bytes on, on the next loop tick (not inside the `read()` call).
        case scheduleDelivery
        /// A delivery is already scheduled.
        case none
    }

    /// What to do at the end of a read cycle.
    enum CycleEndAction: Equatable {
        /// Bytes went on in this cycle: pass the read-complete on, then ask the handlers
        /// behind whether they want more (what NIO's auto-read does after a cycle), and
        /// keep the socket readable.
        case passOnAndContinue
        /// Nothing went on and nothing is held: pass the read-complete on.
        case passOn
        /// Bytes are held: do not read the socket again until they went on.
        case hold
    }

    /// The handlers behind asked for bytes that no read cycle has delivered yet. A new
    /// connection is read at once (NIO's auto-read asks as soon as it is active).
    private var demand = true
    /// Bytes went on in the current read cycle.
    private var forwardedInCycle = false
    private var deliveryScheduled = false
    /// Bytes read while nobody behind asked, in order; everything later queues behind them.
    private(set) var held: ByteBuffer?

    /// Whether the handler must ask the socket for more on its own: nobody behind asked
    /// (else their `read()` did), and nothing is held (which bounds what is held to one read
    /// cycle).
    var readsAheadOfDemand: Bool { !self.demand && self.held == nil }

    mutating func readRequested() -> ReadAction {
        self.demand = true
        guard self.held != nil else { return .readSocket }
        guard !self.deliveryScheduled else { return .none }
        self.deliveryScheduled = true
        return .scheduleDelivery
    }

    /// Bytes came from the socket. Returns whether they go on now; if not, the handler
    /// holds them (`hold`).
    mutating func bytesArrived() -> Bool {
        guard self.demand, self.held == nil else { return false }
        self.forwardedInCycle = true
        return true
    }

    /// Keeps bytes that did not go on, behind those already held.
    mutating func hold(_ buffer: ByteBuffer) {
        if self.held == nil {
            self.held = buffer
        } else {
            self.held!.writeImmutableBuffer(buffer)
        }
    }

    mutating func readCycleEnded() -> CycleEndAction {
        if self.forwardedInCycle {
            self.forwardedInCycle = false
            // This cycle answered the handlers' request; they ask again when they want more.
            self.demand = false
            return .passOnAndContinue
        }
        return self.held == nil ? .passOn : .hold
    }

    /// The scheduled delivery runs: the held bytes, if the handlers still want them (a
    /// close may have flushed them meanwhile). Counts as a read cycle.
    mutating func takeForDelivery() -> ByteBuffer? {
        self.deliveryScheduled = false
        guard self.demand, let held = self.held else { return nil }
        self.held = nil
        self.demand = false
        return held
    }

    /// The end of the client's input follows the held bytes, or the handler leaves the
    /// pipeline: they go on first, asked for or not, as NIO itself hands on everything it
    /// reads up to an end of file.
    mutating func takeBeforeOtherEvents() -> ByteBuffer? {
        defer { self.held = nil }
        return self.held
    }

    /// The connection closed: held bytes were never asked for and never will be.
    mutating func dropHeld() {
        self.held = nil
    }
}
