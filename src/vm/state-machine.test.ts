import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  TRANSITIONS,
  VM_STATES,
  assertOperationAllowed,
  canTransition,
  transition,
  type VmState,
} from './state-machine.js';
import { InvalidStateError } from '../errors.js';

test('the happy path is legal', () => {
  const path: VmState[] = ['pending', 'scheduled', 'starting', 'running', 'stopping', 'stopped', 'deleting'];
  for (let i = 1; i < path.length; i++)
    assert.ok(canTransition(path[i - 1]!, path[i]!), `${path[i - 1]} -> ${path[i]}`);
});

test('an illegal transition names the VM, both states and what is allowed', () => {
  assert.throws(
    () => transition({ name: 'web1', state: 'stopped' }, 'running'),
    (e: unknown) =>
      e instanceof InvalidStateError &&
      e.message === 'vm web1: cannot go from stopped to running' &&
      /starting, scheduled, deleting/.test(e.describe()),
  );
  assert.throws(
    () => transition({ name: 'x', state: 'deleting' }, 'running'),
    (e: unknown) => e instanceof InvalidStateError && /deleting is final/.test(e.describe()),
  );
});

test('operations are checked against the current state', () => {
  assert.doesNotThrow(() => assertOperationAllowed({ name: 'a', state: 'running' }, 'stop'));
  assert.throws(
    () => assertOperationAllowed({ name: 'a', state: 'deleting' }, 'start'),
    /cannot start while deleting/,
  );
});

test('every state is reachable from pending', () => {
  const seen = new Set<VmState>(['pending']);
  const queue: VmState[] = ['pending'];
  while (queue.length) {
    for (const n of TRANSITIONS[queue.shift()!]) {
      if (!seen.has(n)) {
        seen.add(n);
        queue.push(n);
      }
    }
  }
  assert.deepEqual([...seen].sort(), [...VM_STATES].sort());
});

test('property: random walks through legal transitions only ever visit known states; illegal steps throw and change nothing', () => {
  fc.assert(
    fc.property(fc.array(fc.constantFrom(...VM_STATES), { maxLength: 60 }), (targets) => {
      let vm = { name: 'p', state: 'pending' as VmState, generation: 0 };
      for (const to of targets) {
        const before = { ...vm };
        if (canTransition(vm.state, to)) {
          vm = { ...vm, state: transition(vm, to), generation: vm.generation + 1 };
          assert.ok(vm.generation > before.generation);
        } else {
          assert.throws(() => transition(vm, to), InvalidStateError);
          assert.deepEqual(vm, before);
        }
        assert.ok(VM_STATES.includes(vm.state));
      }
    }),
  );
});
