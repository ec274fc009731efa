import GatewayCore
import Testing

@Suite struct GatewayErrorTests {
    @Test func jsonBodyHasTheThreeMembers() {
        let body = GatewayError.upstreamTimeout.jsonBody(requestID: "abc")
        #expect(
            body
                == #"{"error":"upstream_timeout","error_description":"The upstream service did not answer in time; try again shortly.","request_id":"abc"}"#
        )
    }
}
