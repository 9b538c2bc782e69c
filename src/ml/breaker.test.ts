import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CircuitBreaker } from './breaker.js';

function make(threshold = 3, resetMs = 1000) {
  let now = 0;
  const changes: string[] = [];
  const b = new CircuitBreaker({
    failureThreshold: threshold,
    resetMs,
    now: () => now,
    onChange: (from, to) => changes.push(`${from}->${to}`),
  });
  return { b, changes, advance: (ms: number) => (now += ms) };
}

test('opens after N consecutive failures, not after N scattered ones', () => {
  const { b } = make(3);
  b.failure();
  b.failure();
  b.success();
  b.failure();
  b.failure();
  assert.equal(b.state, 'closed');
  b.failure();
  assert.equal(b.state, 'open');
  assert.equal(b.allow(), false);
});

test('half-open after the pause lets exactly one trial through; success closes', () => {
  const { b, changes, advance } = make(2, 1000);
  b.failure();
  b.failure();
  advance(999);
  assert.equal(b.allow(), false);
  advance(1);
  assert.equal(b.state, 'half-open');
  assert.equal(b.allow(), true);
  assert.equal(b.allow(), false, 'one trial at a time');
  b.success();
  assert.equal(b.state, 'closed');
  assert.equal(b.allow(), true);
  assert.deepEqual(changes, ['closed->open', 'open->half-open', 'half-open->closed']);
});

test('a failed trial re-opens for another full pause', () => {
  const { b, advance } = make(1, 500);
  b.failure();
  advance(500);
  assert.equal(b.allow(), true);
  b.failure();
  assert.equal(b.state, 'open');
  advance(499);
  assert.equal(b.state, 'open');
  advance(1);
  assert.equal(b.state, 'half-open');
});

test('a success reported while open (a health check) closes the breaker', () => {
  const { b } = make(1, 10_000);
  b.failure();
  assert.equal(b.state, 'open');
  b.success();
  assert.equal(b.state, 'closed');
});
