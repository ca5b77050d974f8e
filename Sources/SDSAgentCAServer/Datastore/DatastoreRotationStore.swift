import SDSAgentCore

/// The rotation supervisor's store on a datastore: each phase is a transaction there
/// (`CADatastore+Rotation`) before the supervisor takes it.
struct DatastoreRotationStore: RootRotationStore {
  let datastore: CADatastore

  func prepared(_ rotation: RootRotation, next: CAMaterial) throws(RootRotationError) {
    try self.datastore.prepare(rotation, next: next)
  }

  func switched(_ rotation: RootRotation, from previous: CAMaterial) throws(RootRotationError) {
    try self.datastore.switchRoot(rotation)
  }

  func retired() throws(RootRotationError) {
    try self.datastore.retire()
  }
}
