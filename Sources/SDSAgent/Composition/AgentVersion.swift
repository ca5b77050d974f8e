/// The release of sds-agent this build is. `sds-agent --version` prints it, and
/// `dev/package-deb.sh` takes the Debian package's upstream version from that output, so the
/// package and the binary always agree.
package enum AgentVersion {
  package static let current = "0.1.0"
}
