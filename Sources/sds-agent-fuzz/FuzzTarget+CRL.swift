import SDSAgentCore

extension FuzzTarget {
  /// `CertificateRevocationList(derEncoded:)`, what a fetched or file CRL goes through first; an
  /// accepted CRL keeps its bytes and has a number and dates in order.
  static let crl = FuzzTarget(
    name: "crl",
    summary: "CertificateRevocationList(derEncoded:) on fetched bytes"
  ) { data in
    let list: CertificateRevocationList
    do {
      list = try CertificateRevocationList(derEncoded: Array(data))
    } catch {
      return "rejected: \(error)"
    }
    FuzzTarget.check(list.derBytes == Array(data), "a read CRL does not keep its bytes")
    FuzzTarget.check(list.number >= 0, "a CRL number below zero was read")
    for entry in list.entries {
      FuzzTarget.check(entry.serial.magnitude.count <= 20, "serial \(entry.serial) is over 20 octets")
    }
    return "CRL \(list.number) with \(list.entries.count) entries"
  }
}
