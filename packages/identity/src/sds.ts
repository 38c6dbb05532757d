/**
 * The files a certificate is published as (see the README): Envoy SDS file-based secrets
 * (`path_config_source`), one DiscoveryResponse each, and PEM files. Pure: contents only.
 */

const SECRET_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';

/** `default.json`: the workload's certificate chain and key as an SDS Secret named `default`. */
export function sdsCertificateFile(certificateChainPem: string, privateKeyPem: string, versionInfo: string): string {
  return JSON.stringify({
    version_info: versionInfo,
    resources: [
      {
        '@type': SECRET_TYPE,
        name: 'default',
        tls_certificate: { certificate_chain: { inline_string: certificateChainPem }, private_key: { inline_string: privateKeyPem } },
      },
    ],
  }, null, 2);
}

/** `ROOTCA.json`: the trust bundle as an SDS Secret named `ROOTCA`. */
export function sdsTrustFile(trustBundlePem: string, versionInfo: string): string {
  return JSON.stringify({
    version_info: versionInfo,
    resources: [{ '@type': SECRET_TYPE, name: 'ROOTCA', validation_context: { trusted_ca: { inline_string: trustBundlePem } } }],
  }, null, 2);
}

/** Every file of one published certificate, by name in the SDS directory. */
export function credentialFiles(c: { certificateChain: string[]; trustBundle: string[]; keyPem: string; serialNumber: string }): Record<string, { content: string; mode: number }> {
  const chain = c.certificateChain.join('');
  const bundle = c.trustBundle.join('');
  return {
    'key.pem': { content: c.keyPem, mode: 0o600 },
    'cert-chain.pem': { content: chain, mode: 0o644 },
    'root-cert.pem': { content: bundle, mode: 0o644 },
    'default.json': { content: sdsCertificateFile(chain, c.keyPem, c.serialNumber), mode: 0o600 },
    'ROOTCA.json': { content: sdsTrustFile(bundle, c.serialNumber), mode: 0o644 },
  };
}
