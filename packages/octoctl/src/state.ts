import { readFileSync } from 'node:fs';
import { DEFAULT_STATE_FILE, type EmbeddedState } from '@octo-mesh/contracts';

export { DEFAULT_STATE_FILE, type EmbeddedState } from '@octo-mesh/contracts';

/**
 * The state file's content, or undefined when no embedded mesh wrote one (no file). A file that
 * exists but cannot be read or parsed is an error naming it.
 */
export function readState(path = process.env['OCTO_STATE'] ?? DEFAULT_STATE_FILE): EmbeddedState | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read the embedded mesh's state file ${path}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text) as EmbeddedState;
  } catch (err) {
    throw new Error(`the embedded mesh's state file ${path} is not JSON: ${(err as Error).message}`);
  }
}
