import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PROBE_MARKER, PROBE_START_MARKER, judgeAccel, probeBootSector, type ProbeResult } from './accel.js';

test('probe boot sector is a 512-byte BIOS boot sector carrying both markers', () => {
  const s = probeBootSector();
  assert.equal(s.length, 512);
  assert.equal(s[510], 0x55);
  assert.equal(s[511], 0xaa);
  const text = s.toString('latin1');
  assert.ok(text.includes(PROBE_START_MARKER));
  assert.ok(text.includes(PROBE_MARKER));
  // The message pointers must point at the messages (loaded at 0x7c00).
  const msg1 = s.readUInt16LE(15) - 0x7c00;
  const msg2 = s.readUInt16LE(31) - 0x7c00;
  assert.equal(s.toString('latin1', msg1, msg1 + PROBE_START_MARKER.length), PROBE_START_MARKER);
  assert.equal(s.toString('latin1', msg2, msg2 + PROBE_MARKER.length), PROBE_MARKER);
  assert.deepEqual(probeBootSector(), s);
});

const ran = (loopMs: number): ProbeResult => ({
  progressed: true,
  elapsedMs: loopMs + 100,
  loopMs,
  detail: 'ran',
});
const hung: ProbeResult = {
  progressed: false,
  elapsedMs: 5000,
  loopMs: undefined,
  detail: 'printed nothing',
};

test('judgeAccel: KVM only when it ran and was not slower than TCG', () => {
  assert.equal(judgeAccel(ran(10), ran(200)).accel, 'kvm');
  assert.equal(judgeAccel(ran(200), ran(200)).accel, 'kvm');
  assert.equal(judgeAccel(hung, ran(200)).accel, 'tcg');
  assert.match(judgeAccel(hung, ran(200)).reason, /unusable/);
  assert.equal(judgeAccel(ran(900), ran(200)).accel, 'tcg');
  assert.match(judgeAccel(ran(900), ran(200)).reason, /slower than TCG/);
  // TCG failing says nothing against a KVM that ran.
  assert.equal(judgeAccel(ran(10), hung).accel, 'kvm');
});
