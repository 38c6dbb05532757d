/**
 * Resource versions of the dispatcher's store: decimal strings of a counter that only grows (the
 * in-memory store) or Kubernetes `resourceVersion`s (etcd revisions). Compare them only with
 * {@link compareVersions}; never do arithmetic on them.
 */
export type Version = string;

/** Orders two store versions; the empty string counts as 0. */
export function compareVersions(a: Version, b: Version): number {
  const x = BigInt(a || '0');
  const y = BigInt(b || '0');
  return x < y ? -1 : x > y ? 1 : 0;
}
