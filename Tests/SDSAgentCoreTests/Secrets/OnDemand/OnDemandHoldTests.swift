import SDSAgentCore
import Synchronization
import Testing

/// The on-demand names one stream holds, waits for or was refused, as a value (issue #21,
/// classes 3 and 4).
@Suite struct OnDemandHoldTests {
  /// Refuses every name, as the patterns (`notAllowed`) or the rate (`overRate`) would.
  final class RefusingAdmission: OnDemandAdmission {
    let refusal: OnDemandRefusal
    let withdrawn = Mutex(0)

    init(_ refusal: OnDemandRefusal) {
      self.refusal = refusal
    }

    func allows(caller: SPIFFEID) -> Bool { true }
    func admit(_ name: String) -> Result<DNSName, OnDemandRefusal> { .failure(self.refusal) }
    func admitWaiting(_ name: DNSName) -> Bool { false }
    func release(_ name: DNSName) {}
    func withdraw(_ name: DNSName) { self.withdrawn.withLock { $0 += 1 } }
  }

  /// The client subscribes to each name in turn and unsubscribes from the one before.
  func cycle(_ count: Int, through hold: inout OnDemandHold, by admission: RefusingAdmission) {
    for index in 0..<count {
      let name = "n\(index).evil.example"
      hold.admit([name], by: admission)
      hold.keep(only: [RequestedSecret(name: name, resource: .refused(name))], by: admission)
    }
  }

  @Test func cyclingDistinctRefusedNamesKeepsOnlyThoseStillSubscribed() {
    var hold = OnDemandHold()
    self.cycle(10_000, through: &hold, by: RefusingAdmission(.notAllowed))
    #expect(hold.refused.count == 1)
    #expect(hold.unserved == ["n9999.evil.example"])
  }

  @Test func cyclingDistinctNamesRefusedOverTheRateWaitsOnlyForThoseStillSubscribed() {
    var hold = OnDemandHold()
    let admission = RefusingAdmission(.overRate)
    self.cycle(10_000, through: &hold, by: admission)
    #expect(hold.waiting.count == 1 && hold.refused.isEmpty)
    #expect(admission.withdrawn.withLock { $0 } == 9_999, "a name no longer subscribed is still waited for")
    hold.releaseAll(by: admission)
    #expect(admission.withdrawn.withLock { $0 } == 10_000)
  }
}
