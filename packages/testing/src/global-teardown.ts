export default async function globalTeardown(): Promise<void> {
  await globalThis.__octoCluster?.stop({ keepWorkDir: process.env['OCTO_KEEP_CLUSTER'] === '1' });
  globalThis.__octoCluster = undefined;
}
