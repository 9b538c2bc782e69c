// QMP (QEMU Machine Protocol) over a unix socket: a pure line parser and a client with ids, events and timeouts.
//
// Wire: QEMU sends a greeting {"QMP":{...}}, the client must send qmp_capabilities, then each command
// {"execute","arguments","id"} gets exactly one {"return","id"} or {"error":{"class","desc"},"id"};
// asynchronous {"event","data","timestamp"} lines may arrive at any time, between responses too.
import { createConnection, type Socket } from 'node:net';
import {
  ErrorCode,
  HypervisorError,
  NovaCronError,
  ProtocolError,
  UnavailableError,
  errorMessage,
} from '../../../errors.js';

/** Longest QMP line accepted; query-migrate and query-block answers are a few KiB. */
export const MAX_QMP_LINE_BYTES = 8 * 1024 * 1024;

export interface QmpGreeting {
  readonly type: 'greeting';
  readonly version: {
    readonly qemu: { major: number; minor: number; micro: number };
    readonly package: string;
  };
  readonly capabilities: readonly string[];
}
export interface QmpReturn {
  readonly type: 'return';
  readonly id: string | undefined;
  readonly value: unknown;
}
export interface QmpErrorReply {
  readonly type: 'error';
  readonly id: string | undefined;
  readonly errorClass: string;
  readonly desc: string;
}
export interface QmpEvent {
  readonly type: 'event';
  readonly name: string;
  readonly data: unknown;
  /** Microseconds since the epoch, from QEMU's timestamp. */
  readonly timestampUs: number;
}
export type QmpMessage = QmpGreeting | QmpReturn | QmpErrorReply | QmpEvent;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function idOf(o: Record<string, unknown>): string | undefined {
  const id = o['id'];
  if (id === undefined) return undefined;
  if (typeof id === 'string') return id;
  if (typeof id === 'number') return String(id);
  throw new ProtocolError(`QMP id must be a string or number, got ${JSON.stringify(id)}`);
}

/** Classifies one decoded QMP line. Throws ProtocolError on anything that is not a QMP message. */
export function classifyQmpMessage(value: unknown): QmpMessage {
  if (!isObject(value)) throw new ProtocolError(`QMP message is not a JSON object: ${JSON.stringify(value)}`);
  if ('QMP' in value) {
    const q = value['QMP'];
    if (!isObject(q) || !isObject(q['version']) || !Array.isArray(q['capabilities']))
      throw new ProtocolError('malformed QMP greeting');
    const v = q['version'];
    const qemu = isObject(v['qemu']) ? v['qemu'] : {};
    return {
      type: 'greeting',
      version: {
        qemu: {
          major: Number(qemu['major'] ?? 0),
          minor: Number(qemu['minor'] ?? 0),
          micro: Number(qemu['micro'] ?? 0),
        },
        package: typeof v['package'] === 'string' ? v['package'] : '',
      },
      capabilities: q['capabilities'].map(String),
    };
  }
  if ('return' in value) return { type: 'return', id: idOf(value), value: value['return'] };
  if ('error' in value) {
    const e = value['error'];
    if (!isObject(e) || typeof e['class'] !== 'string' || typeof e['desc'] !== 'string')
      throw new ProtocolError(`malformed QMP error reply: ${JSON.stringify(value)}`);
    return { type: 'error', id: idOf(value), errorClass: e['class'], desc: e['desc'] };
  }
  if ('event' in value) {
    if (typeof value['event'] !== 'string') throw new ProtocolError('QMP event name is not a string');
    const ts = value['timestamp'];
    const timestampUs =
      isObject(ts) && typeof ts['seconds'] === 'number' && typeof ts['microseconds'] === 'number'
        ? ts['seconds'] * 1e6 + ts['microseconds']
        : 0;
    return { type: 'event', name: value['event'], data: value['data'] ?? {}, timestampUs };
  }
  throw new ProtocolError(`unknown QMP message: ${JSON.stringify(value).slice(0, 200)}`);
}

/**
 * Splits a QMP byte stream into messages. Feed it chunks as they arrive (split anywhere, even inside a
 * UTF-8 sequence); it returns the complete messages. Throws ProtocolError on bad JSON, an unknown
 * message or a line over MAX_QMP_LINE_BYTES; after a throw the parser must not be used again.
 */
export class QmpParser {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  feed(chunk: Buffer): QmpMessage[] {
    const out: QmpMessage[] = [];
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl === -1) break;
      const piece = chunk.subarray(start, nl);
      const line = this.pendingBytes === 0 ? piece : Buffer.concat([...this.pending, piece]);
      this.pending = [];
      this.pendingBytes = 0;
      start = nl + 1;
      const text = line.toString('utf8').trim();
      if (text.length === 0) continue;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (err) {
        throw new ProtocolError(`QMP line is not JSON: ${text.slice(0, 200)}`, { cause: err });
      }
      out.push(classifyQmpMessage(value));
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.pendingBytes += rest.length;
      if (this.pendingBytes > MAX_QMP_LINE_BYTES)
        throw new ProtocolError(`QMP line longer than ${MAX_QMP_LINE_BYTES} bytes`);
      this.pending.push(Buffer.from(rest));
    }
    return out;
  }
}

/** Encodes one command line. Ids are strings so replies can be matched exactly. */
export function encodeQmpCommand(
  command: string,
  args: Readonly<Record<string, unknown>> | undefined,
  id: string,
): string {
  return `${JSON.stringify(args === undefined ? { execute: command, id } : { execute: command, arguments: args, id })}\r\n`;
}

export interface QmpConnectOptions {
  /** Greeting plus capabilities negotiation must finish within this (default 5 s). */
  readonly timeoutMs?: number;
  /** Default per-command timeout (default 30 s). */
  readonly commandTimeoutMs?: number;
}

export interface QmpExecuteOptions {
  readonly timeoutMs?: number;
}

/** QEMU RunState names as query-status reports them. */
export interface QmpStatus {
  readonly running: boolean;
  readonly status: string;
}

/** query-migrate, the fields the migration orchestrator reads (all optional on the wire). */
export interface QmpMigrationInfo {
  readonly status?: string;
  readonly 'total-time'?: number;
  readonly 'expected-downtime'?: number;
  readonly downtime?: number;
  readonly 'setup-time'?: number;
  readonly ram?: {
    readonly transferred: number;
    readonly remaining: number;
    readonly total: number;
    readonly duplicate: number;
    readonly normal: number;
    readonly 'dirty-pages-rate': number;
    readonly mbps: number;
    readonly 'dirty-sync-count': number;
  };
  readonly 'error-desc'?: string;
}

type Pending = {
  command: string;
  resolve: (v: unknown) => void;
  reject: (e: NovaCronError) => void;
  timer: NodeJS.Timeout;
};

/**
 * One QMP session. Commands may be issued concurrently (each has an id; QEMU answers in order).
 * Events go to `onEvent` listeners; `waitForEvent` awaits one. When the socket closes (QEMU exited or
 * was killed), every pending command rejects with UnavailableError and `closed` resolves.
 */
export class QmpClient {
  readonly greeting: QmpGreeting;
  /** Resolves when the connection is gone, with the reason. */
  readonly closed: Promise<string>;
  private readonly socket: Socket;
  private readonly parser: QmpParser;
  private readonly pending = new Map<string, Pending>();
  private readonly eventListeners = new Set<(e: QmpEvent) => void>();
  private readonly commandTimeoutMs: number;
  private nextId = 1;
  private closeReason: string | undefined;
  private resolveClosed!: (reason: string) => void;

  private constructor(
    socket: Socket,
    parser: QmpParser,
    greeting: QmpGreeting,
    commandTimeoutMs: number,
    buffered: QmpMessage[],
  ) {
    this.socket = socket;
    this.parser = parser;
    this.greeting = greeting;
    this.commandTimeoutMs = commandTimeoutMs;
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    socket.on('data', (chunk: Buffer) => {
      let messages: QmpMessage[];
      try {
        messages = this.parser.feed(chunk);
      } catch (err) {
        this.shutdown(`protocol error: ${errorMessage(err)}`);
        return;
      }
      for (const m of messages) this.dispatch(m);
    });
    socket.on('error', (err) => this.shutdown(`socket error: ${err.message}`));
    socket.on('close', () => this.shutdown('connection closed'));
    for (const m of buffered) this.dispatch(m);
  }

  /** Connects, reads the greeting and negotiates capabilities (leaves command mode ready). */
  static async connect(path: string, options: QmpConnectOptions = {}): Promise<QmpClient> {
    const timeoutMs = options.timeoutMs ?? 5000;
    const socket = createConnection({ path });
    const parser = new QmpParser();
    const early: QmpMessage[] = [];
    try {
      const greeting = await new Promise<QmpGreeting>((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new NovaCronError(
                ErrorCode.DeadlineExceeded,
                `no QMP greeting on ${path} within ${timeoutMs} ms`,
              ),
            ),
          timeoutMs,
        );
        const fail = (err: unknown): void => {
          clearTimeout(timer);
          reject(
            err instanceof NovaCronError
              ? err
              : new UnavailableError(`cannot connect to QMP socket ${path}: ${errorMessage(err)}`, {
                  cause: err,
                }),
          );
        };
        const onData = (chunk: Buffer): void => {
          let msgs: QmpMessage[];
          try {
            msgs = parser.feed(chunk);
          } catch (err) {
            fail(err);
            return;
          }
          const [first, ...rest] = msgs;
          if (first === undefined) return;
          socket.off('data', onData);
          socket.off('error', fail);
          socket.off('close', onClose);
          clearTimeout(timer);
          if (first.type !== 'greeting') {
            reject(new ProtocolError(`expected a QMP greeting, got ${first.type}`));
            return;
          }
          early.push(...rest);
          socket.pause();
          resolve(first);
        };
        const onClose = (): void =>
          fail(new UnavailableError(`QMP socket ${path} closed before the greeting`));
        socket.on('data', onData);
        socket.once('error', fail);
        socket.once('close', onClose);
      });
      const client = new QmpClient(socket, parser, greeting, options.commandTimeoutMs ?? 30_000, early);
      socket.resume();
      await client.execute('qmp_capabilities', undefined, { timeoutMs });
      return client;
    } catch (err) {
      socket.destroy();
      throw err;
    }
  }

  get isClosed(): boolean {
    return this.closeReason !== undefined;
  }

  /**
   * Runs one command. Resolves with its `return` value; rejects with HypervisorError carrying QMP's error
   * class, UnavailableError when the connection goes, or DeadlineExceeded after the timeout (the command
   * may still complete inside QEMU).
   */
  execute<T = unknown>(
    command: string,
    args?: Readonly<Record<string, unknown>>,
    options: QmpExecuteOptions = {},
  ): Promise<T> {
    if (this.closeReason !== undefined)
      return Promise.reject(
        new UnavailableError(`QMP connection is closed (${this.closeReason}); cannot run ${command}`),
      );
    const id = `nc-${this.nextId++}`;
    const timeoutMs = options.timeoutMs ?? this.commandTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(
          new NovaCronError(
            ErrorCode.DeadlineExceeded,
            `QMP ${command} got no reply within ${timeoutMs} ms`,
            { retryable: true },
          ),
        );
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      this.socket.write(encodeQmpCommand(command, args, id));
    });
  }

  /** Subscribes to asynchronous events; returns the unsubscribe function. */
  onEvent(listener: (event: QmpEvent) => void): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  /** Resolves with the first event named `name` (and matching `predicate`) from now on. */
  waitForEvent(
    name: string,
    options: { timeoutMs: number; predicate?: (e: QmpEvent) => boolean },
  ): Promise<QmpEvent> {
    return new Promise((resolve, reject) => {
      const off = this.onEvent((e) => {
        if (e.name !== name || (options.predicate && !options.predicate(e))) return;
        cleanup();
        resolve(e);
      });
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new NovaCronError(
            ErrorCode.DeadlineExceeded,
            `no QMP event ${name} within ${options.timeoutMs} ms`,
          ),
        );
      }, options.timeoutMs);
      const onClosed = (reason: string): void => {
        cleanup();
        reject(new UnavailableError(`QMP connection closed (${reason}) while waiting for ${name}`));
      };
      let done = false;
      const cleanup = (): void => {
        done = true;
        off();
        clearTimeout(timer);
      };
      void this.closed.then((reason) => {
        if (!done) onClosed(reason);
      });
    });
  }

  /** Closes the connection (QEMU keeps running). Idempotent. */
  close(): void {
    this.shutdown('closed by client');
    this.socket.destroy();
  }

  // Typed wrappers for the commands the driver and the migration orchestrator use.
  queryStatus(): Promise<QmpStatus> {
    return this.execute<QmpStatus>('query-status');
  }
  stop(): Promise<unknown> {
    return this.execute('stop');
  }
  cont(): Promise<unknown> {
    return this.execute('cont');
  }
  systemPowerdown(): Promise<unknown> {
    return this.execute('system_powerdown');
  }
  /** Asks QEMU to exit; the reply may race the socket closing, so a closed connection counts as success. */
  async quit(): Promise<void> {
    try {
      await this.execute('quit');
    } catch (err) {
      if (!(err instanceof UnavailableError)) throw err;
    }
  }
  /** Destination side: start listening on `uri` (`unix:/path`, `tcp:host:port`, `fd:name`) after `-incoming defer`. */
  migrateIncoming(uri: string): Promise<unknown> {
    return this.execute('migrate-incoming', { uri });
  }
  /** Source side: start sending the migration stream to `uri`; progress via queryMigrate and MIGRATION events. */
  migrate(uri: string): Promise<unknown> {
    return this.execute('migrate', { uri });
  }
  queryMigrate(): Promise<QmpMigrationInfo> {
    return this.execute<QmpMigrationInfo>('query-migrate');
  }
  /** Must be called on both ends before migrating, e.g. {events: true, 'auto-converge': true}. */
  migrateSetCapabilities(capabilities: Readonly<Record<string, boolean>>): Promise<unknown> {
    return this.execute('migrate-set-capabilities', {
      capabilities: Object.entries(capabilities).map(([capability, state]) => ({ capability, state })),
    });
  }
  /** e.g. {'downtime-limit': 300, 'max-bandwidth': 0, 'multifd-channels': 4}. */
  migrateSetParameters(parameters: Readonly<Record<string, unknown>>): Promise<unknown> {
    return this.execute('migrate-set-parameters', parameters);
  }
  migrateCancel(): Promise<unknown> {
    return this.execute('migrate_cancel');
  }

  private dispatch(m: QmpMessage): void {
    switch (m.type) {
      case 'event':
        for (const l of this.eventListeners) l(m);
        return;
      case 'return':
      case 'error': {
        const p = m.id === undefined ? undefined : this.pending.get(m.id);
        if (p === undefined || m.id === undefined) {
          // A reply nobody waits for (timed out earlier): drop it. An error without an id is QEMU
          // rejecting a line it could not parse, which would be our bug; close rather than guess.
          if (m.type === 'error' && m.id === undefined) this.shutdown(`QMP error without id: ${m.desc}`);
          return;
        }
        this.pending.delete(m.id);
        clearTimeout(p.timer);
        if (m.type === 'return') p.resolve(m.value);
        else
          p.reject(
            new HypervisorError(`QMP ${p.command} failed: ${m.desc}`, {
              qmpClass: m.errorClass,
              code: m.errorClass === 'CommandNotFound' ? ErrorCode.Internal : ErrorCode.InvalidState,
            }),
          );
        return;
      }
      case 'greeting':
        this.shutdown('unexpected second QMP greeting');
        return;
    }
  }

  private shutdown(reason: string): void {
    if (this.closeReason !== undefined) return;
    this.closeReason = reason;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new UnavailableError(`QMP ${p.command} interrupted: ${reason}`));
      this.pending.delete(id);
    }
    this.socket.destroy();
    this.resolveClosed(reason);
  }
}
