import Crypto

/// The one key of the fuzz targets, for fuzzing only: the seed corpus has certificates
/// (ca-response) and tokens (jwt) made for it, so seeds reach the code past signature checks.
enum FuzzKey {
  static let p256 = try! P256.Signing.PrivateKey(
    pemRepresentation: """
      -----BEGIN PRIVATE KEY-----
      MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgM8rRhEjHJVRdYRut
      6LNTc+eQNGOTtcTv6Q8n+8KUXROhRANCAARnIuFYQf27coyRvdfGOVOTs+jicIJV
      bVS7xiUXYc9OxeIbHNtt9z9RMSk1mnw6EYN2pUcMjSFRoBgDa2TbgcyZ
      -----END PRIVATE KEY-----
      """)
}
