/// A store that has not answered within its limit (a datastore that accepts connections but
/// never replies): the row is held as if the store were down, and the answer leaves.
package struct LedgerStoreStalled: Error, CustomStringConvertible {
  package init() {}

  package var description: String { "the issuance ledger's datastore did not answer in time" }
}
