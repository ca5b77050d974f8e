import SDSAgentCore

/// The Envoy bootstrap fragment an operator pastes to use the agent: a `sds-grpc` cluster on
/// the socket and the `sds_config` that points at it. `sds-agent run` prints it; the E2E tests
/// validate it with Envoy.
package enum EnvoyBootstrapSnippet {
  package static func yaml(socketPath: String, identification: CallerIdentification = .agent) -> String {
    (identification.usesToken ? self.tokenForwarding(socketPath: socketPath) : "") + """
      # Envoy bootstrap fragment for sds-agent. Use this sds_config wherever a TLS context names a
      # secret: tls_certificate_sds_secret_configs (name: default) and
      # validation_context_sds_secret_config (name: ROOTCA).
      #   sds_config:
      #     resource_api_version: V3
      #     api_config_source:
      #       api_type: GRPC
      #       transport_api_version: V3
      #       grpc_services:
      #       - envoy_grpc: {cluster_name: sds-grpc}
      static_resources:
        clusters:
        - name: sds-grpc
          type: STATIC
          connect_timeout: 1s
          typed_extension_protocol_options:
            envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
              "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
              explicit_http_config:
                http2_protocol_options: {}
          load_assignment:
            cluster_name: sds-grpc
            endpoints:
            - lb_endpoints:
              - endpoint:
                  address:
                    pipe:
                      path: \(socketPath)

      """
  }

  /// How Envoy forwards its token (token modes): Google gRPC with the file-based metadata plugin,
  /// which sends the token file in Istio's `istio_sds_credentials_header-bin`.
  static func tokenForwarding(socketPath: String) -> String {
    """
    # This agent identifies callers by a forwarded token: use this sds_config instead, with the
    # workload's service-account token in the file (re-read by Envoy on every call):
    #   sds_config:
    #     resource_api_version: V3
    #     api_config_source:
    #       api_type: GRPC
    #       transport_api_version: V3
    #       grpc_services:
    #       - google_grpc:
    #           target_uri: unix:\(socketPath)
    #           stat_prefix: sds
    #           channel_credentials: {local_credentials: {}}
    #           credentials_factory_name: envoy.grpc_credentials.file_based_metadata
    #           call_credentials:
    #           - from_plugin:
    #               name: envoy.grpc_credentials.file_based_metadata
    #               typed_config:
    #                 "@type": type.googleapis.com/envoy.config.grpc_credential.v3.FileBasedMetadataConfig
    #                 secret_data: {filename: /var/run/secrets/tokens/istio-token}
    #                 header_key: istio_sds_credentials_header-bin

    """
  }
}
