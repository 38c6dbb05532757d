/**
 * The webhook's own TLS certificates. The DER writer moved to @octo-mesh/identity (which the mesh
 * CA shares); this module keeps the injector's names for it.
 */
export { issueCa, issueServing, caCommonName, type IssuedCert } from '@octo-mesh/identity';
