/**
 * Request timeouts without a Node timer per request. Timeouts of one duration expire in the order
 * they were added, so each duration keeps its entries in a linked list (append, unlink: O(1)) and
 * one Node timer armed for the oldest; when it fires it runs what is due and re-arms for the next.
 * The timer is unref'd (a request in flight holds its sockets, which keep the process alive) and
 * is not cleared when the list empties, so a steady stream of requests never touches Node's timers.
 */
export interface Deadline {
  /** Stops the timeout; harmless after it fired or was cancelled. */
  cancel(): void;
}

class Entry implements Deadline {
  prev: Entry | undefined;
  next: Entry | undefined;
  linked = true;
  constructor(
    readonly list: TimerList,
    readonly at: number,
    readonly fn: () => void,
  ) {}
  cancel(): void {
    if (this.linked) this.list.unlink(this);
  }
}

class TimerList {
  head: Entry | undefined;
  tail: Entry | undefined;
  private armed: NodeJS.Timeout | undefined;
  constructor(readonly ms: number) {}

  add(fn: () => void): Entry {
    const e = new Entry(this, performance.now() + this.ms, fn);
    if (this.tail) {
      this.tail.next = e;
      e.prev = this.tail;
      this.tail = e;
    } else {
      this.head = this.tail = e;
      if (!this.armed) this.arm(this.ms);
    }
    return e;
  }

  unlink(e: Entry): void {
    e.linked = false;
    if (e.prev) e.prev.next = e.next;
    else this.head = e.next;
    if (e.next) e.next.prev = e.prev;
    else this.tail = e.prev;
    e.prev = e.next = undefined;
  }

  private arm(ms: number): void {
    this.armed = setTimeout(this.fire, Math.max(1, Math.ceil(ms)));
    this.armed.unref();
  }

  private readonly fire = (): void => {
    this.armed = undefined;
    const now = performance.now();
    let e = this.head;
    while (e && e.at <= now) {
      this.unlink(e);
      e.fn();
      e = this.head;
    }
    if (e && !this.armed) this.arm(e.at - now);
  };
}

const lists = new Map<number, TimerList>();

/** Calls `fn` after `ms` milliseconds (> 0) unless cancelled first. */
export function deadline(ms: number, fn: () => void): Deadline {
  let l = lists.get(ms);
  if (!l) lists.set(ms, (l = new TimerList(ms)));
  return l.add(fn);
}
