import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Where the embedded mesh's components listen, written by the runner (`npm start`) to
 * `.octo/embedded/state.json` so that octoctl finds them without flags. **contract** between
 * packages/mesh and octoctl; addresses are `host:port`.
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
}

export const DEFAULT_STATE_FILE = join('.octo', 'embedded', 'state.json');

/** The state file's content, or undefined when no embedded mesh wrote one. */
export function readState(path = process.env['OCTO_STATE'] ?? DEFAULT_STATE_FILE): EmbeddedState | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as EmbeddedState;
  } catch {
    return undefined;
  }
}
