import type net from 'node:net';
import type tls from 'node:tls';
import { uriSan } from '@octo-mesh/contracts/access.js';

/**
 * The identity of the peer on a downstream connection: the URI SAN (a SPIFFE ID) of the client
 * certificate it presented on a TLS filter chain, when that certificate was verified against the
 * chain's trust bundle. Plaintext connections and unverified peers have none (see
 * packages/identity/README.md, "How the proxy gets its TLS").
 */
export function peerPrincipal(socket: net.Socket | undefined): string | undefined {
  const t = socket as tls.TLSSocket | undefined;
  if (!t || typeof t.getPeerCertificate !== 'function' || !t.authorized) return undefined;
  return uriSan(t.getPeerCertificate());
}
