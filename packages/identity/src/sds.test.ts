import { describe, expect, it } from '@jest/globals';
import { credentialFiles, sdsCertificateFile, sdsTrustFile } from './sds.js';

describe('SDS files', () => {
  it('default.json is a DiscoveryResponse with one Secret "default" holding chain and key inline', () => {
    const f = JSON.parse(sdsCertificateFile('CHAIN', 'KEY', 'v1'));
    expect(f).toEqual({
      version_info: 'v1',
      resources: [{ '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret', name: 'default', tls_certificate: { certificate_chain: { inline_string: 'CHAIN' }, private_key: { inline_string: 'KEY' } } }],
    });
  });

  it('ROOTCA.json holds the trust bundle as validation_context.trusted_ca', () => {
    expect(JSON.parse(sdsTrustFile('R1R2', 'v1')).resources[0]).toEqual({ '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret', name: 'ROOTCA', validation_context: { trusted_ca: { inline_string: 'R1R2' } } });
  });

  it.each([
    // columns: file, mode (the key and the file embedding it are private)
    ['key.pem', 0o600],
    ['default.json', 0o600],
    ['cert-chain.pem', 0o644],
    ['root-cert.pem', 0o644],
    ['ROOTCA.json', 0o644],
  ])('%s is written with mode %o', (name, mode) => {
    const files = credentialFiles({ certificateChain: ['A', 'B'], trustBundle: ['R1', 'R2'], keyPem: 'K', serialNumber: 's' });
    expect(files[name]!.mode).toBe(mode);
    expect(Object.keys(files).sort()).toEqual(['ROOTCA.json', 'cert-chain.pem', 'default.json', 'key.pem', 'root-cert.pem']);
    expect(files['cert-chain.pem']!.content).toBe('AB');
    expect(files['root-cert.pem']!.content).toBe('R1R2');
  });
});
