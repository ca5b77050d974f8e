/// The Envoy bootstrap fragment an operator pastes to use the agent: a `sds-grpc` cluster on
/// the socket and the `sds_config` that points at it. `sds-agent run` prints it; the E2E tests
/// validate it with Envoy.
public enum EnvoyBootstrapSnippet {
  public static func yaml(socketPath: String) -> String {
    """
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
}
