import SDSAgentCAServer
import SDSAgentCore
import Testing

/// The datastore's migrations: numbered from 1 without gaps, applied from where a datastore is,
/// and a datastore of a newer version refused rather than touched.
@Suite struct DatastoreSchemaTests {
  @Test func theMigrationsAreNumberedFromOneWithoutGaps() {
    #expect(DatastoreSchema.migrations.map(\.version) == Array(1...DatastoreSchema.latestVersion))
    #expect(DatastoreSchema.migrations.allSatisfy { !$0.statements.isEmpty })
  }

  @Test func anEmptyDatastoreGetsEveryMigration() {
    #expect(DatastoreSchema.plan(current: nil) == .migrate(Array(1...DatastoreSchema.latestVersion)))
    #expect(DatastoreSchema.plan(current: DatastoreSchema.latestVersion) == .upToDate)
  }

  @Test func anOlderDatastoreGetsOnlyTheLaterMigrations() {
    let three = (1...3).map { DatastoreSchema.Migration(version: $0, statements: ["SELECT \($0)"]) }
    #expect(DatastoreSchema.plan(current: 1, migrations: three) == .migrate([2, 3]))
    #expect(DatastoreSchema.plan(current: 3, migrations: three) == .upToDate)
    #expect(DatastoreSchema.plan(current: nil, migrations: three) == .migrate([1, 2, 3]))
  }

  @Test func aNewerDatastoreIsRefused() {
    #expect(
      DatastoreSchema.plan(current: DatastoreSchema.latestVersion + 1)
        == .newer(found: DatastoreSchema.latestVersion + 1, known: DatastoreSchema.latestVersion))
  }
}
