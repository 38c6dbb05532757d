/** The consistent-hash ring lives in @octo-mesh/contracts: the health checker shards services on the same ring. */
export { HashRing, ringHash } from '@octo-mesh/contracts';
