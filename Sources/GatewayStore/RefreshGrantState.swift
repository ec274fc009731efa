/// A refresh grant as found, and whether its token is current (`live`) or already rotated.
package struct RefreshGrantState: Sendable, Hashable {
    package var grant: RefreshGrant
    package var isLive: Bool

    package init(grant: RefreshGrant, isLive: Bool) {
        self.grant = grant
        self.isLive = isLive
    }
}
