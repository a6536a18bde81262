/**
 * The client's typed event emitter: `on`, `off`, `emit`, and whether anyone listens. Listener
 * lists are copied on change, so a listener added or removed while an event is emitted takes
 * effect from the next one (as with Node's and eventemitter3's emitters). Small on purpose: the
 * client and React bindings stay under their 10 kB budget.
 */
// The events are `(...args) => void` functions; `object` keeps interfaces (no index signature) allowed.
export class Emitter<E extends object> {
  private readonly lists: Partial<Record<keyof E, unknown[]>> = {}

  on<K extends keyof E>(event: K, listener: E[K]): void {
    this.lists[event] = [...(this.lists[event] ?? []), listener]
  }

  /** Removes every registration of `listener` for `event`. */
  off<K extends keyof E>(event: K, listener: E[K]): void {
    const list = this.lists[event]?.filter((l) => l !== listener)
    if (list?.length) this.lists[event] = list
    else delete this.lists[event]
  }

  emit<K extends keyof E>(event: K, ...args: E[K] extends (...a: infer A) => unknown ? A : never): void {
    for (const listener of this.lists[event] ?? []) (listener as (...a: unknown[]) => void)(...args)
  }

  /** Whether anyone listens to any event. */
  get listened(): boolean {
    return Object.keys(this.lists).length > 0
  }
}
