/** Fake Web Locks and a fake BroadcastChannel hub: several "tabs" of one browser in one process. */

import type { BroadcastChannelLike, LockManagerLike } from "../../src/environment.js";

/** An exclusive lock by name, granted in request order, like `navigator.locks`. */
export class FakeLocks implements LockManagerLike {
  private readonly tails = new Map<string, Promise<unknown>>();
  /** How many callbacks held a lock at once, at most. */
  maxHeld = 0;
  private held = 0;

  request<T>(name: string, callback: (lock: unknown) => Promise<T>): Promise<T> {
    const tail = this.tails.get(name) ?? Promise.resolve();
    const result = tail.then(async () => {
      this.held += 1;
      this.maxHeld = Math.max(this.maxHeld, this.held);
      try {
        return await callback({ name, mode: "exclusive" });
      } finally {
        this.held -= 1;
      }
    });
    this.tails.set(name, result.catch(() => undefined));
    return result;
  }
}

/** Every BroadcastChannel of one browser; messages reach the other channels of the same name, later. */
export class BroadcastHub {
  private readonly channels = new Set<HubChannel>();
  /** Every message posted, cloned. */
  readonly posted: unknown[] = [];
  readonly BroadcastChannel: new (name: string) => BroadcastChannelLike;

  constructor() {
    const hub = this;
    this.BroadcastChannel = class extends HubChannel {
      constructor(name: string) {
        super(name, hub);
      }
    };
  }

  join(channel: HubChannel): void {
    this.channels.add(channel);
  }

  leave(channel: HubChannel): void {
    this.channels.delete(channel);
  }

  deliver(from: HubChannel, message: unknown): void {
    const data = structuredClone(message);
    this.posted.push(data);
    for (const channel of this.channels) {
      if (channel !== from && channel.name === from.name) {
        setImmediate(() => channel.onmessage?.({ data: structuredClone(data) }));
      }
    }
  }
}

class HubChannel implements BroadcastChannelLike {
  onmessage: ((event: { data: unknown }) => void) | null = null;

  constructor(
    readonly name: string,
    private readonly hub: BroadcastHub,
  ) {
    hub.join(this);
  }

  private closed = false;

  postMessage(message: unknown): void {
    if (this.closed) throw new Error("InvalidStateError: the channel is closed"); // as browsers do
    this.hub.deliver(this, message);
  }

  close(): void {
    this.closed = true;
    this.hub.leave(this);
  }
}
