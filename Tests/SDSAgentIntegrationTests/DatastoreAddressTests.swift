import Foundation
import SDSAgentCAServer
import SDSAgentCore
import SDSAgentTestSupport
import Testing

/// `--datastore`: PostgreSQL's URL with its usual parameters; the password never shown.
@Suite struct DatastoreAddressTests {
  @Test func aURLGivesHostPortUserDatabaseAndSSLMode() throws {
    let address = try DatastoreAddress(parsing: "postgresql://ca@db.example:6432/sds?sslmode=disable")
    #expect(address.host == "db.example" && address.port == 6432 && address.user == "ca")
    #expect(address.database == "sds" && address.sslMode == .disable)
    let defaults = try DatastoreAddress(parsing: "postgres://db.example", environment: ["PGUSER": "u"])
    #expect(defaults.port == 5432 && defaults.user == "u" && defaults.database == "u" && defaults.sslMode == .prefer)
    #expect(try DatastoreAddress(parsing: "postgresql://a@h/d?connect_timeout=3").connectTimeout == .seconds(3))
  }

  @Test(arguments: [
    "http://h/d", "postgresql:///d", "postgresql://h/d?sslmode=sometimes", "postgresql://h/d?options=x",
    "postgresql://h/d?connect_timeout=0",
  ])
  func aBadURLIsRefusedNamingTheSetting(url: String) {
    #expect {
      try DatastoreAddress(parsing: url)
    } throws: { error in (error as? ConfigurationError)?.key == "datastore" }
  }

  @Test func thePasswordIsNeverShown() throws {
    let address = try DatastoreAddress(
      parsing: "postgresql://ca:hunter2@h/d", environment: ["PGPASSWORD": "other"])
    #expect(!address.description.contains("hunter2"))
    #expect {
      try DatastoreAddress(parsing: "postgresql://ca:hunter2@h/d?sslmode=bad")
    } throws: { error in
      !String(describing: error).contains("hunter2") && (error as? ConfigurationError)?.key == "datastore"
    }
  }

  @Test func aPasswordFileThatCannotBeReadIsRefusedNamingIt() {
    #expect {
      try DatastoreAddress(parsing: "postgresql://ca@h/d", passwordFile: TemporaryDirectory.make() + "/none")
    } throws: { error in (error as? ConfigurationError)?.key == "datastore-password-file" }
  }
}
