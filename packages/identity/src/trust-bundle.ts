/** Trust bundles (PEM roots) given to a workload so it can check the mesh CA's serving certificate. */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * The PEM certificates of a trust bundle, each checked to parse; throws naming what is wrong
 * (the caller adds the field). A text with other blocks (keys, comments) keeps only certificates.
 */
export function parseTrustBundle(text: string): string[] {
  const pems = text.match(PEM_CERT) ?? [];
  if (pems.length === 0) throw new Error('no PEM certificate (-----BEGIN CERTIFICATE-----) in the file');
  return pems.map((pem, i) => {
    try {
      new X509Certificate(pem);
    } catch (err) {
      throw new Error(`certificate ${i + 1} of ${pems.length} does not parse: ${(err as Error).message}`);
    }
    return `${pem}\n`;
  });
}

/** Reads a trust bundle file; throws naming `field` and the file. */
export async function readTrustBundleFile(file: string, field = 'caTrustBundleFile'): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`${field}: cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    return parseTrustBundle(text);
  } catch (err) {
    throw new Error(`${field}: ${file}: ${(err as Error).message}`);
  }
}
