// Pure mapping of QEMU run states to NovaCron's observed states, and of handle state to and from JSON.
import type { ObservedVmState, PersistedHandleState } from '../../driver.js';
import { parsePersistedHandleState } from '../../driver.js';

/** Name of the QEMU driver in handles, health and the API. */
export const QEMU_DRIVER_NAME = 'qemu';

/**
 * QEMU's RunState (query-status `status`, qapi/run-state.json) as an observed VM state. Unknown names map
 * to `unknown` so a newer QEMU never breaks inspection.
 */
export function observedFromRunState(status: string): ObservedVmState {
  switch (status) {
    case 'running':
      return 'running';
    case 'prelaunch':
      return 'created';
    case 'paused':
    case 'suspended':
    case 'debug':
    case 'watchdog':
    case 'save-vm':
    case 'restore-vm':
      return 'paused';
    case 'inmigrate':
      return 'incoming';
    case 'finish-migrate':
      return 'migrating';
    case 'postmigrate':
      return 'migrated';
    case 'shutdown':
      return 'shutdown';
    case 'internal-error':
    case 'io-error':
    case 'guest-panicked':
      return 'crashed';
    default:
      return 'unknown';
  }
}

/** Parses handle.json contents written by the driver; undefined when unreadable or not a QEMU handle. */
export function parseQemuHandleFile(text: string): PersistedHandleState | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  const parsed = parsePersistedHandleState(value);
  if (typeof parsed === 'string' || parsed.driver !== QEMU_DRIVER_NAME) return undefined;
  return parsed;
}
