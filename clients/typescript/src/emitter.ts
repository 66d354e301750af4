/**
 * A small typed event emitter: `on(type, listener)` returns the function that unsubscribes.
 *
 * A listener that throws does not stop the others or the client: its error is reported through
 * `onListenerError` (by default `console.error`), never rethrown into the client's machinery.
 *
 * @module
 */

/** A listener of events of type `T`. */
export type Listener<T> = (event: T) => void;

/** Emits events whose payloads `Events` maps by type name. */
export class Emitter<Events extends object> {
  private readonly listeners = new Map<keyof Events, Set<Listener<never>>>();

  constructor(private readonly onListenerError: (error: unknown) => void = (error) => console.error(error)) {}

  /** Call `listener` for every event of `type` from now on; the returned function stops that. */
  on<K extends keyof Events>(type: K, listener: Listener<Events[K]>): () => void {
    let set = this.listeners.get(type);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(type, set);
    }
    set.add(listener as Listener<never>);
    return () => {
      set.delete(listener as Listener<never>);
    };
  }

  /** Like {@link on}, for the next event of `type` only. */
  once<K extends keyof Events>(type: K, listener: Listener<Events[K]>): () => void {
    const off = this.on(type, (event) => {
      off();
      listener(event);
    });
    return off;
  }

  /** Hand `event` to every listener of `type`, in subscription order. */
  emit<K extends keyof Events>(type: K, event: Events[K]): void {
    const set = this.listeners.get(type);
    if (set === undefined) return;
    for (const listener of [...set] as Listener<Events[K]>[]) {
      try {
        listener(event);
      } catch (error) {
        this.onListenerError(error);
      }
    }
  }

  /** Forget every listener. */
  clear(): void {
    this.listeners.clear();
  }
}
