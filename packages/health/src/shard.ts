/**
 * Which services this checker replica checks: the meta server's consistent-hash ring (the same
 * `HashRing` that shards sidecars over pilots), built here over the live checker ids the meta
 * server returns and keyed by service (`namespace/name`). Every replica that sees the same
 * membership computes the same split with no coordination; a replica leaving moves only its own
 * services, spread over the others; one joining takes about 1/N.
 */
import { HashRing } from '@octo-mesh/contracts';

export class ServiceShards {
  private ring: HashRing;

  constructor(
    private readonly self: string,
    members: readonly string[] = [self],
    private readonly vnodes = 256,
  ) {
    this.ring = new HashRing(members.length ? members : [self], vnodes);
  }

  get members(): readonly string[] {
    return this.ring.members;
  }

  /** Replaces the membership; returns whether it changed. The replica itself is always a member. */
  setMembers(live: readonly string[]): boolean {
    const next = [...new Set([...live, this.self])].sort();
    if (next.join('\n') === this.ring.members.join('\n')) return false;
    this.ring = new HashRing(next, this.vnodes);
    return true;
  }

  owner(service: string): string | undefined {
    return this.ring.lookup(service);
  }

  owns(service: string): boolean {
    return this.ring.lookup(service) === this.self;
  }
}
