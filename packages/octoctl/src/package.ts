/**
 * `octoctl package push FILE [--repository URL] [--url-base URL]` and `octoctl package sign FILE --key KEY.pem`:
 * get a proxy package to the repository agents download from, and sign it for agents that trust
 * keys. The format, what is signed and the repository's API are @octo-mesh/proxy-package's.
 */
import { readFile } from 'node:fs/promises';
import { pushPackage, sha256File, signPackage } from '@octo-mesh/proxy-package';

/** Where the package repository is: the flag, the embedded mesh's state, else the default port. */
export const DEFAULT_REPOSITORY = 'http://127.0.0.1:15018';

/**
 * Uploads FILE to `repository`. The printed URL is where agents download it from, for the
 * ProxyVersion's `spec.package.url`: under `urlBase` when given — the repository as the pods see
 * it (in a cluster `http://<release>-package-repository.<namespace>.svc:15018`) while the push
 * goes through a port-forward — else under `repository`.
 */
export async function packagePush(file: string, repository: string, urlBase?: string): Promise<string> {
  const pushed = await pushPackage(repository, file);
  const url = urlBase === undefined ? pushed.url : `${urlBase.replace(/\/+$/, '')}/packages/${pushed.sha256}`;
  return `pushed ${file}\nurl:    ${url}\nsha256: ${pushed.sha256}\n`;
}

/** Whether `s` can be a repository base URL (http or https, nothing after the path). */
export const isRepositoryUrl = (s: string): boolean => /^https?:\/\/[^\s/?#]+(\/[^\s?#]*)?$/.test(s);

export async function packageSign(file: string, keyFile: string): Promise<string> {
  const key = await readFile(keyFile, 'utf8');
  const signature = await signPackage(file, key);
  return `file:      ${file}\nsha256:    ${await sha256File(file)}\nsignature: ${signature}\n`;
}
