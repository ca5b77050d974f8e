import SDSAgentCore
import Testing

/// Every on-demand refusal has the one error shape: its code is the metric label, its message
/// says what happened and its remedy what to do.
@Suite struct OnDemandRefusalTests {
  @Test(arguments: OnDemandRefusal.allCases) func aRefusalSaysWhatHappenedAndWhatToDo(_ refusal: OnDemandRefusal) {
    let failure: any AgentFailure = refusal
    #expect(refusal.code == refusal)
    #expect(refusal.code.rawValue == refusal.rawValue)
    #expect(!failure.message.isEmpty)
    #expect(failure.remedy?.isEmpty == false)
    #expect(failure.failureText.hasPrefix(failure.message))
    #expect(refusal.description == "\(refusal.rawValue): \(refusal.message)")
  }
}
