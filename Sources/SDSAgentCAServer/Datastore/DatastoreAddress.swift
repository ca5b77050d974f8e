import Foundation
import NIOSSL
import PostgresNIO
import SDSAgentCore

/// Where the datastore is (`--datastore postgresql://USER@HOST:PORT/DB?sslmode=…`), parsed once.
/// The password comes from `--datastore-password-file`, else the URL, else libpq's `PGPASSWORD`;
/// it is never part of `description`.
package struct DatastoreAddress: Sendable, CustomStringConvertible {
  package static let setting = "--datastore"

  /// libpq's `sslmode` values this client honours.
  package enum SSLMode: String, Sendable, CaseIterable {
    case disable, allow, prefer, require
    case verifyCA = "verify-ca"
    case verifyFull = "verify-full"
  }

  package let host: String
  package let port: Int
  package let user: String
  package let database: String
  package let sslMode: SSLMode
  package let connectTimeout: Duration
  let password: String?

  /// Parses `text`; `environment` supplies libpq's `PGUSER` and `PGPASSWORD` when the URL does not.
  package init(
    parsing text: String, passwordFile: String? = nil, environment: [String: String] = [:]
  ) throws(ConfigurationError) {
    let allowed =
      "postgresql://USER@HOST:PORT/DATABASE, optionally with ?sslmode=disable|allow|prefer|require|verify-ca|"
      + "verify-full and connect_timeout=SECONDS"
    let shown = Self.redacting(text)
    guard let components = URLComponents(string: text),
      components.scheme == "postgresql" || components.scheme == "postgres",
      let host = components.host, !host.isEmpty
    else { throw ConfigurationError(key: "datastore", value: shown, allowed: allowed) }
    var sslMode = SSLMode.prefer
    var timeout = Duration.seconds(10)
    for item in components.queryItems ?? [] {
      switch (item.name, item.value) {
      case ("sslmode", let value?):
        guard let mode = SSLMode(rawValue: value) else {
          throw ConfigurationError(key: "datastore", value: shown, allowed: allowed)
        }
        sslMode = mode
      case ("connect_timeout", let value?):
        guard let seconds = Int(value), seconds > 0, seconds <= 3600 else {
          throw ConfigurationError(key: "datastore", value: shown, allowed: allowed)
        }
        timeout = .seconds(seconds)
      default:
        throw ConfigurationError(key: "datastore", value: shown, allowed: allowed)
      }
    }
    self.host = host
    self.port = components.port ?? 5432
    self.user = components.user ?? environment["PGUSER"] ?? "postgres"
    let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
    self.database = path.isEmpty ? self.user : path
    self.sslMode = sslMode
    self.connectTimeout = timeout
    if let passwordFile {
      guard let contents = try? String(contentsOfFile: passwordFile, encoding: .utf8) else {
        throw ConfigurationError(
          key: "datastore-password-file", value: passwordFile, allowed: "a readable file holding the password")
      }
      self.password = contents.trimmingCharacters(in: .newlines)
    } else {
      self.password = components.password ?? environment["PGPASSWORD"]
    }
  }

  /// The URL as logs may show it: no password.
  package var description: String {
    "postgresql://\(self.user)@\(self.host):\(self.port)/\(self.database)?sslmode=\(self.sslMode.rawValue)"
  }

  /// The connection's configuration for PostgresNIO.
  func configuration() throws -> PostgresConnection.Configuration {
    let tls: PostgresConnection.Configuration.TLS
    switch self.sslMode {
    case .disable:
      tls = .disable
    case .allow, .prefer, .require:
      // As libpq: these modes encrypt but do not verify the server.
      var client = TLSConfiguration.makeClientConfiguration()
      client.certificateVerification = .none
      let context = try NIOSSLContext(configuration: client)
      tls = self.sslMode == .require ? .require(context) : .prefer(context)
    case .verifyCA, .verifyFull:
      var client = TLSConfiguration.makeClientConfiguration()
      client.certificateVerification = self.sslMode == .verifyFull ? .fullVerification : .noHostnameVerification
      tls = .require(try NIOSSLContext(configuration: client))
    }
    var configuration = PostgresConnection.Configuration(
      host: self.host, port: self.port, username: self.user, password: self.password, database: self.database,
      tls: tls)
    configuration.options.connectTimeout = .seconds(Int64(self.connectTimeout.components.seconds))
    return configuration
  }

  /// `text` with any password in it replaced, for error messages.
  package static func redacting(_ text: String) -> String {
    guard var components = URLComponents(string: text), components.password != nil else { return text }
    components.password = "REDACTED"
    return components.string ?? "a URL with a password"
  }
}
