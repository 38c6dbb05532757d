export default async function globalTeardown(): Promise<void> {
  const cluster = globalThis.__octoNodeCluster;
  if (!cluster) return;
  const done = await cluster.stop({ keepRoot: process.env['OCTO_KEEP_CLUSTER'] === '1' });
  process.stderr.write(`[cluster] stopped: ${done.length} cleanup steps\n`);
}
