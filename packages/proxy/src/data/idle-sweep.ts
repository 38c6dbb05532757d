/**
 * Idle timeouts for kept-alive connections (downstream, and the upstream HTTP/1.1 pool) without a
 * Node timer per connection.
 * `socket.setTimeout` re-arms a timer on every read and every write — once or twice per proxied
 * request, for a timeout that almost never fires. Here a connection marks itself active by
 * copying a counter (no clock read, no timer), and one unref'd interval per timeout, ticking four
 * times per timeout, closes the connections that stayed idle for four ticks: a connection goes
 * between 1× and 1.25× the timeout after its last activity.
 */
export interface Sweepable {
  /** The sweep's `tick` at the connection's last activity (it copies it on each read and response). */
  lastTick: number;
  /** Whether the connection has nothing in progress and may be closed. */
  readonly idle: boolean;
  /** Closes the connection for idleness. */
  expire(): void;
}

const TICKS = 4;

export class IdleSweep {
  tick = 0;
  private readonly members = new Set<Sweepable>();
  private timer: NodeJS.Timeout | undefined;

  constructor(readonly timeoutMs: number) {}

  add(c: Sweepable): void {
    c.lastTick = this.tick;
    this.members.add(c);
    if (!this.timer) {
      this.timer = setInterval(() => this.sweep(), Math.max(1, Math.ceil(this.timeoutMs / TICKS)));
      this.timer.unref();
    }
  }

  delete(c: Sweepable): void {
    this.members.delete(c);
    this.stopWhenEmpty();
  }

  /** Closes what has been idle for the whole timeout; exported for the table test. */
  sweep(): void {
    this.tick++;
    for (const c of this.members) {
      if (c.idle && this.tick - c.lastTick > TICKS) {
        this.members.delete(c);
        c.expire();
      }
    }
    this.stopWhenEmpty();
  }

  private stopWhenEmpty(): void {
    if (this.members.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}

const sweeps = new Map<number, IdleSweep>();
/** The shared sweep for one timeout value (listeners use a handful of values at most). */
export function idleSweep(timeoutMs: number): IdleSweep {
  let s = sweeps.get(timeoutMs);
  if (!s) sweeps.set(timeoutMs, (s = new IdleSweep(timeoutMs)));
  return s;
}
