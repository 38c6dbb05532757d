/**
 * `octoctl package push FILE [--repository URL]` and `octoctl package sign FILE --key KEY.pem`:
 * get a proxy package to the repository agents download from, and sign it for agents that trust
 * keys. The format, what is signed and the repository's API are @octo-mesh/proxy-package's.
 */
import { readFile } from 'node:fs/promises';
import { pushPackage, sha256File, signPackage } from '@octo-mesh/proxy-package';

/** Where the package repository is: the flag, the embedded mesh's state, else the default port. */
export const DEFAULT_REPOSITORY = 'http://127.0.0.1:15018';

export async function packagePush(file: string, repository: string): Promise<string> {
  const { url, sha256 } = await pushPackage(repository, file);
  return `pushed ${file}\nurl:    ${url}\nsha256: ${sha256}\n`;
}

export async function packageSign(file: string, keyFile: string): Promise<string> {
  const key = await readFile(keyFile, 'utf8');
  const signature = await signPackage(file, key);
  return `file:      ${file}\nsha256:    ${await sha256File(file)}\nsignature: ${signature}\n`;
}
