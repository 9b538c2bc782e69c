// WebSocket /ws on the REST port: streams every EventBus event as one JSON text message
// `{"type","at","data"}`, starting with the recent events (so a late client sees the boot), then
// live ones. Optional `?types=boot.,component.` keeps only events whose type starts with a prefix.
// The upgrade is authorised by the REST auth hook (header or `?token=`), read scope.
import type { FastifyInstance } from 'fastify';
import type { WebSocket } from 'ws';
import type { EventBus, NovaCronEvent } from '../../boot/events.js';

/** A client further behind than this many bytes is disconnected rather than buffered without bound. */
export const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;
/** Close code for a client that cannot keep up (RFC 6455 "try again later"). */
export const CLOSE_TOO_SLOW = 1013;

/** Prefix filter from `?types=a.,b.`; null keeps everything. Pure. */
export function eventFilter(types: string | undefined): ((e: NovaCronEvent) => boolean) | null {
  const prefixes = (types ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (prefixes.length === 0) return null;
  return (e) => prefixes.some((p) => e.type === p || e.type.startsWith(p));
}

/** Each event is serialised once, however many clients receive it. */
const texts = new WeakMap<NovaCronEvent, string>();
function serialised(e: NovaCronEvent): string {
  let t = texts.get(e);
  if (t === undefined) {
    t = JSON.stringify(e);
    texts.set(e, t);
  }
  return t;
}

export function eventsWebSocketRoute(app: FastifyInstance, events: EventBus): void {
  // @fastify/websocket hides WebSocket routes from OpenAPI; /ws is part of the API, so show it.
  app.addHook('onRoute', (route) => {
    if (route.url === '/ws' && route.schema) route.schema.hide = false;
  });
  app.get(
    '/ws',
    {
      websocket: true,
      schema: {
        tags: ['events'],
        summary:
          'WebSocket event stream (JSON messages {type, at, data}): boot.component, component.status, node.ready, node.mode, node.stopping and every other published event; recent events first. Token by Authorization header or ?token=',
        querystring: {
          type: 'object',
          properties: {
            token: { type: 'string', description: 'API token (for browsers, which cannot set headers)' },
            types: { type: 'string', description: 'Comma-separated type prefixes to keep, e.g. boot.,vm.' },
          },
        },
      },
      config: { scope: 'read' },
    },
    (socket: WebSocket, request) => {
      const keep = eventFilter((request.query as { types?: string }).types);
      // Events published in one turn of the event loop (a group commit publishes hundreds) are
      // written together: queued, then sent as separate messages with the TCP socket corked, so
      // the kernel sees one write instead of one per event. Order is kept.
      let queued: string[] = [];
      let scheduled = false;
      const flush = (): void => {
        scheduled = false;
        const batch = queued;
        queued = [];
        if (socket.readyState !== socket.OPEN) return;
        const tcp = request.socket;
        tcp.cork();
        try {
          for (const m of batch) socket.send(m);
        } finally {
          tcp.uncork();
        }
      };
      const send = (e: NovaCronEvent): void => {
        if (keep && !keep(e)) return;
        if (socket.bufferedAmount > MAX_BUFFERED_BYTES) {
          socket.close(CLOSE_TOO_SLOW, 'client too slow');
          return;
        }
        queued.push(serialised(e));
        if (!scheduled) {
          scheduled = true;
          setImmediate(flush);
        }
      };
      for (const e of events.recent()) send(e);
      const unsubscribe = events.subscribe(send);
      socket.on('close', unsubscribe);
      socket.on('error', unsubscribe);
      // Clients only listen; anything they send is ignored.
    },
  );
}
