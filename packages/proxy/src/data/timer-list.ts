/**
 * Request timeouts without a Node timer per request. Timeouts of one duration expire in the order
 * they were added, so each duration keeps its entries in a linked list (append, unlink: O(1)) and
 * one Node timer armed for the oldest; when it fires it runs what is due and re-arms for the next.
 * The timer is unref'd (a request in flight holds its sockets, which keep the process alive) and
 * is not cleared when the list empties, so a steady stream of requests never touches Node's timers.
 *
 * What is due runs in a `setImmediate` after the timer fired, that is after the event loop's next
 * I/O poll, not in the timers phase: a process that did not run for a while (a machine short of
 * CPU preempted it in a callback) finds its deadlines past and its sockets readable at once, and
 * Node runs due timers before it polls — a response that arrived in time would lose to its
 * per-try timeout. Deferred, what arrived is read first, and a deadline cancelled meanwhile does
 * not fire (issue 18: after a 2 s stall, 20 of 20 answered requests timed out without this, 0 of
 * 20 with it).
 */
export interface Deadline {
  /** Stops the timeout; harmless after it fired or was cancelled. */
  cancel(): void;
}

class Entry implements Deadline {
  prev: Entry | undefined;
  next: Entry | undefined;
  linked = true;
  /** Past its time and waiting for the deferred run (see the file's comment). */
  due = false;
  constructor(
    readonly list: TimerList,
    readonly at: number,
    readonly fn: () => void,
  ) {}
  cancel(): void {
    if (this.linked) this.list.unlink(this);
    this.due = false;
  }
}

/** Entries past their time, run together after the next I/O poll. */
let dueNow: Entry[] = [];
const runDue = (): void => {
  const batch = dueNow;
  dueNow = [];
  for (const e of batch)
    if (e.due) {
      e.due = false;
      e.fn();
    }
};

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
      e.due = true;
      if (dueNow.push(e) === 1) setImmediate(runDue);
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
