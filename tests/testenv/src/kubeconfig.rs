//! Kubeconfig files for the cluster's admin and for each component.
//!
//! The context is named after the cluster, so several local clusters' files merge cleanly with
//! `KUBECONFIG=a:b:c` and `kubectl --context <cluster>`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::pki::CertAndKey;

/// A kubeconfig YAML document for `user` (labelled `user_label`) at `server`.
///
/// `cluster` must be a DNS label (checked by [`crate::ClusterConfig`]), so no YAML quoting is
/// needed.
pub(crate) fn render(
    cluster: &str,
    server: &str,
    ca_pem: &str,
    user_label: &str,
    user: &CertAndKey,
) -> String {
    let user_name = format!("{cluster}-{user_label}");
    format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: {cluster}\n\
         \x20 cluster:\n\
         \x20   server: {server}\n\
         \x20   certificate-authority-data: {ca}\n\
         users:\n\
         - name: {user_name}\n\
         \x20 user:\n\
         \x20   client-certificate-data: {cert}\n\
         \x20   client-key-data: {key}\n\
         contexts:\n\
         - name: {cluster}\n\
         \x20 context:\n\
         \x20   cluster: {cluster}\n\
         \x20   user: {user_name}\n\
         current-context: {cluster}\n",
        ca = STANDARD.encode(ca_pem),
        cert = STANDARD.encode(&user.cert_pem),
        key = STANDARD.encode(&user.key_pem),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocm_api::kube::config::Kubeconfig;

    #[test]
    fn rendered_kubeconfig_parses_with_kube_and_names_context_after_cluster() {
        let user = CertAndKey {
            cert_pem: "CERT".into(),
            key_pem: "KEY".into(),
        };
        let yaml = render("hub", "https://127.0.0.1:6443", "CA", "admin", &user);
        let config = Kubeconfig::from_yaml(&yaml).unwrap();
        assert_eq!(config.current_context.as_deref(), Some("hub"));
        let cluster = config.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
        assert_eq!(
            cluster.certificate_authority_data.as_deref(),
            Some(STANDARD.encode("CA").as_str())
        );
        assert_eq!(config.auth_infos[0].name, "hub-admin");
    }
}
