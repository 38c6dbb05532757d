/**
 * Where the embedded mesh's components listen, written by the runner (`npm start`,
 * packages/mesh) to `.octo/embedded/state.json` so that octoctl finds them without flags.
 * Addresses are `host:port`.
 */
export interface EmbeddedState {
  startedAt: string;
  pid: number;
  dispatcher: { grpc: string; admin: string };
  meta: { grpc: string; admin: string };
  pilots: { id: string; xds: string; admin: string; pid?: number }[];
  sidecars: { nodeId: string; namespace: string; workload: string; version: string; admin: string; inbound: string; outbound: string; app: string; pid?: number }[];
  /** The runner's own HTTP endpoint (/traffic: request rates and failures seen by the load generator). */
  runner: { admin: string };
  /** The watched directory of manifests. */
  manifests: string;
  /** The proxy package repository's base URL (`octoctl package push` uploads there). */
  repository?: { url: string };
  /** The operator's HTTP endpoint (/healthz, /readyz, /metrics). */
  operator?: { admin: string; pid?: number };
  /**
   * The mesh CA and the administrator's certificate directory (`sa/octo-admin`; cert-chain.pem,
   * key.pem, root-cert.pem) octoctl uses when the control plane speaks mTLS.
   */
  security?: { caUrl: string; adminTlsDir: string; trustDomain: string; controlNamespace: string };
}

/** The state file, relative to the directory `npm start` ran in. */
export const DEFAULT_STATE_FILE = '.octo/embedded/state.json';
