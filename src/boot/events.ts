// In-process event bus: components publish lifecycle events; the WebSocket endpoint and the
// CLI's watchers subscribe. Delivery is synchronous and best-effort: a throwing listener is isolated.
import { EventEmitter } from 'node:events';

export interface NovaCronEvent {
  /** Dotted type, e.g. `boot.component`, `component.status`, `vm.state`, `migration.progress`. */
  readonly type: string;
  /** ISO-8601 time the event was published. */
  readonly at: string;
  readonly data: Readonly<Record<string, unknown>>;
}

export type EventListener = (event: NovaCronEvent) => void;

export class EventBus {
  readonly #emitter = new EventEmitter();
  readonly #now: () => Date;
  readonly #recent: NovaCronEvent[] = [];
  readonly #keep: number;

  constructor(options: { now?: () => Date; keepRecent?: number } = {}) {
    this.#now = options.now ?? (() => new Date());
    this.#keep = options.keepRecent ?? 200;
    this.#emitter.setMaxListeners(0);
  }

  publish(type: string, data: Readonly<Record<string, unknown>> = {}): NovaCronEvent {
    const event: NovaCronEvent = { type, at: this.#now().toISOString(), data };
    this.#recent.push(event);
    if (this.#recent.length > this.#keep) this.#recent.shift();
    for (const listener of this.#emitter.listeners('event') as EventListener[]) {
      try {
        listener(event);
      } catch {
        // A broken subscriber must not break the publisher (e.g. a VM state change).
      }
    }
    return event;
  }

  /** Subscribes to every event; returns the unsubscribe function. */
  subscribe(listener: EventListener): () => void {
    this.#emitter.on('event', listener);
    return () => this.#emitter.off('event', listener);
  }

  /** The last events published (oldest first), for clients that connect late. */
  recent(): readonly NovaCronEvent[] {
    return [...this.#recent];
  }
}
