// The VM state machine (pure): which lifecycle states exist, which transitions are legal, and
// what each operator operation asks for. The VM service applies a transition only through
// `transition`, so an illegal change can never reach the database.
import { InvalidStateError } from '../errors.js';

export const VmState = {
  Pending: 'pending',
  Scheduled: 'scheduled',
  Starting: 'starting',
  Running: 'running',
  Stopping: 'stopping',
  Stopped: 'stopped',
  Migrating: 'migrating',
  Failed: 'failed',
  Deleting: 'deleting',
} as const;
export type VmState = (typeof VmState)[keyof typeof VmState];
export const VM_STATES: readonly VmState[] = Object.values(VmState);

/**
 * Legal transitions. Read as "from → allowed targets":
 * - a new VM is `pending` until the scheduler places it (`scheduled`), then `starting` → `running`;
 * - `stopping` → `stopped`; a stopped or failed VM can be started again (`starting`) or re-placed
 *   (`scheduled`, for restart through the scheduler);
 * - `migrating` ends `running` (on the destination after commit, or on the source after rollback)
 *   or `failed`;
 * - anything but `deleting` can fail; `deleting` is final (the row is then removed).
 */
export const TRANSITIONS: Readonly<Record<VmState, readonly VmState[]>> = {
  pending: ['scheduled', 'failed', 'deleting'],
  scheduled: ['starting', 'stopped', 'failed', 'deleting'],
  starting: ['running', 'stopping', 'failed'],
  running: ['stopping', 'migrating', 'failed'],
  stopping: ['stopped', 'failed'],
  stopped: ['starting', 'scheduled', 'deleting'],
  migrating: ['running', 'failed'],
  failed: ['starting', 'scheduled', 'stopping', 'stopped', 'deleting'],
  deleting: [],
};

export function canTransition(from: VmState, to: VmState): boolean {
  return TRANSITIONS[from].includes(to);
}

/** Returns `to` when legal; otherwise throws InvalidStateError naming the VM and both states. */
export function transition(vm: { readonly name: string; readonly state: VmState }, to: VmState): VmState {
  if (!canTransition(vm.state, to)) {
    const allowed = TRANSITIONS[vm.state];
    throw new InvalidStateError(`vm ${vm.name}: cannot go from ${vm.state} to ${to}`, {
      key: vm.name,
      details: { from: vm.state, to, allowed },
      hint: allowed.length
        ? `from ${vm.state} a VM may go to: ${allowed.join(', ')}`
        : `${vm.state} is final`,
    });
  }
  return to;
}

/** Operator operations and the states they may be asked from. */
export const VmOperation = {
  Start: 'start',
  Stop: 'stop',
  Restart: 'restart',
  Delete: 'delete',
  Migrate: 'migrate',
} as const;
export type VmOperation = (typeof VmOperation)[keyof typeof VmOperation];

const OPERATION_FROM: Readonly<Record<VmOperation, readonly VmState[]>> = {
  start: ['stopped', 'failed', 'scheduled'],
  stop: ['starting', 'running', 'failed'],
  restart: ['running', 'stopped', 'failed'],
  delete: ['pending', 'scheduled', 'starting', 'running', 'stopping', 'stopped', 'failed'],
  migrate: ['running', 'stopped'],
};

/** Throws InvalidStateError when `op` cannot be asked of a VM in its current state. */
export function assertOperationAllowed(
  vm: { readonly name: string; readonly state: VmState },
  op: VmOperation,
): void {
  if (!OPERATION_FROM[op].includes(vm.state)) {
    throw new InvalidStateError(`vm ${vm.name}: cannot ${op} while ${vm.state}`, {
      key: vm.name,
      details: { state: vm.state, operation: op, allowedFrom: OPERATION_FROM[op] },
      hint: `${op} is allowed from: ${OPERATION_FROM[op].join(', ')}`,
    });
  }
}

export function isOperationAllowed(state: VmState, op: VmOperation): boolean {
  return OPERATION_FROM[op].includes(state);
}
