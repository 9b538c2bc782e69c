// The services components offer to each other once started. Each subsystem adds its own optional
// field by declaration merging from its own module, e.g. in src/store/index.ts:
//   declare module '../boot/services.js' { interface Services { store?: Store } }
// so this file never becomes a list everyone edits. Read a dependency with `requireService`.
import { NovaCronError, ErrorCode } from '../errors.js';

// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface Services {}

/** Returns a started service or throws a clear error naming the component that should have provided it. */
export function requireService<K extends keyof Services>(
  services: Services,
  key: K,
): NonNullable<Services[K]> {
  const s = services[key];
  if (s === undefined || s === null) {
    throw new NovaCronError(ErrorCode.Internal, `service "${String(key)}" is not available`, {
      hint: `the component providing "${String(key)}" has not started; check the boot timeline`,
    });
  }
  return s as NonNullable<Services[K]>;
}
