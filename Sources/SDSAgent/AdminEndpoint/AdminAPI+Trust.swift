import Foundation
import SDSAgentCore

extension AdminAPI {
  /// `GET /debug/trust` (and `POST /ca/rotate-root`'s 202): each root of the own trust domain
  /// with its role, the federated domains, the root rotation under way, if one is, and the
  /// revocation lists served with the own bundle (the key is absent while none is served).
  package struct Trust: Codable, Sendable, Equatable {
    /// The rotation's phase: `idle` outside a rotation.
    package enum Phase: String, Codable, Sendable {
      case idle, prepared, switched

      init(_ rotation: RootRotation?) {
        switch rotation?.phase {
        case nil: self = .idle
        case .prepared: self = .prepared
        case .switched: self = .switched
        }
      }
    }

    /// A root's part in the rotation: `next` (prepared), `signing`, `previous` (retiring), or
    /// `trusted` (outside a rotation, or a root the agent does not sign with).
    package enum Role: String, Codable, Sendable {
      case signing, next, previous, trusted
    }

    package struct Root: Codable, Sendable, Equatable {
      package var subject: String
      package var serial: String
      package var notBefore: Date
      package var notAfter: Date
      package var phase: Role

      enum CodingKeys: String, CodingKey {
        case subject, serial, phase
        case notBefore = "not_before"
        case notAfter = "not_after"
      }
    }

    /// A federated trust domain: its file, the roots served, and why the file's content is not
    /// served, if it is not.
    package struct Federated: Codable, Sendable, Equatable {
      package var trustDomain: String
      package var file: String
      package var served: Bool
      package var roots: [AdminAPI.Root]
      package var lastError: String?

      enum CodingKeys: String, CodingKey {
        case file, served, roots
        case trustDomain = "trust_domain"
        case lastError = "last_error"
      }

      package func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.trustDomain, forKey: .trustDomain)
        try container.encode(self.file, forKey: .file)
        try container.encode(self.served, forKey: .served)
        try container.encode(self.roots, forKey: .roots)
        try container.encode(self.lastError, forKey: .lastError)
      }
    }

    package var trustDomain: String
    package var roots: [Root]
    package var federated: [Federated]
    package var phase: Phase
    package var rotatable: Bool
    /// The rotation under way; `nil` when idle.
    package var rotation: Rotation?
    /// Why the root cannot be rotated, when idle and it cannot.
    package var notRotatable: String?
    /// The revocation lists served; `nil` (absent) while none is.
    package var revocationLists: [AdminAPI.RevocationList]?
    /// Which contexts carry no revocation list though others do, and why; absent when none.
    package var revocationGap: String?

    enum CodingKeys: String, CodingKey {
      case roots, federated, phase, rotatable, rotation
      case trustDomain = "trust_domain"
      case notRotatable = "not_rotatable"
      case revocationLists = "revocation_lists"
      case revocationGap = "revocation_gap"
    }
  }
}

extension AdminAPI.Trust {
  /// A root rotation under way: when it was prepared, when it switches (and must have switched)
  /// and retires, and which step is due next. `streamsAwaited` only while prepared.
  package struct Rotation: Codable, Sendable, Equatable {
    package struct NextStep: Codable, Sendable, Equatable {
      package enum Step: String, Codable, Sendable {
        case `switch`, retire
      }

      package var step: Step
      package var at: Date
    }

    package var preparedAt: Date
    /// As `--root-overlap` takes it, such as `1h`.
    package var overlap: String
    package var switchAt: Date
    package var switchDeadline: Date
    package var newRoot: String
    package var oldRoot: String
    package var streamsAwaited: Int?
    package var switchedAt: Date?
    package var retireAt: Date?
    package var nextStep: NextStep

    enum CodingKeys: String, CodingKey {
      case overlap
      case preparedAt = "prepared_at"
      case switchAt = "switch_at"
      case switchDeadline = "switch_deadline"
      case newRoot = "new_root"
      case oldRoot = "old_root"
      case streamsAwaited = "streams_awaited"
      case switchedAt = "switched_at"
      case retireAt = "retire_at"
      case nextStep = "next_step"
    }

    package func encode(to encoder: any Encoder) throws {
      var container = encoder.container(keyedBy: CodingKeys.self)
      try container.encode(self.preparedAt, forKey: .preparedAt)
      try container.encode(self.overlap, forKey: .overlap)
      try container.encode(self.switchAt, forKey: .switchAt)
      try container.encode(self.switchDeadline, forKey: .switchDeadline)
      try container.encode(self.newRoot, forKey: .newRoot)
      try container.encode(self.oldRoot, forKey: .oldRoot)
      try container.encodeIfPresent(self.streamsAwaited, forKey: .streamsAwaited)
      try container.encode(self.switchedAt, forKey: .switchedAt)
      try container.encode(self.retireAt, forKey: .retireAt)
      try container.encode(self.nextStep, forKey: .nextStep)
    }
  }
}
