/// Why a CRL the agent follows (from a distribution point or a `--ca-crl` file) was not taken.
/// The codes are a closed set: the `reason` label of `sds_agent_crl_fetch_errors_total`.
package struct CRLFetchFailure: AgentFailure {
  package enum Code: String, Sendable, CaseIterable {
    /// No connection to the distribution point, or it closed before answering in full.
    case unreachable
    /// The distribution point took longer than the fetch's time limit.
    case timeout
    /// The distribution point answered with a status other than 200.
    case httpStatus = "http_status"
    /// The answer or the file is longer than a CRL the agent reads.
    case tooLarge = "too_large"
    /// The file does not exist or cannot be read.
    case unreadable
    /// Not a CRL the agent reads (DER or PEM, v2, with a number and a nextUpdate).
    case unparsable
    /// No certificate of the trust bundle signed it.
    case unverified
    /// Its CRL number is below the one held.
    case older
    /// It is past its nextUpdate.
    case expired
  }

  /// Where the CRL came from: the `source` label of the counter.
  package enum Source: String, Sendable, CaseIterable {
    case distributionPoint = "distribution_point"
    case file
  }

  package let code: Code
  package let message: String
  package let cause: (any Error)?

  package init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
    self.code = code
    self.message = message
    self.cause = cause
  }

  package var description: String { self.failureText }
}
