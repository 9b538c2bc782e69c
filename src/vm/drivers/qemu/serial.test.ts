import assert from 'node:assert/strict';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ErrorCode, NovaCronError } from '../../../errors.js';
import { readSerialTail, waitForSerialLine } from './serial.js';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'novacron-serial-'));
  dirs.push(d);
  return d;
}

test('waits for a line written after the wait began, even if the file did not exist', async () => {
  const log = join(await tmp(), 'serial.log');
  const waiting = waitForSerialLine(log, /READY/, { timeoutMs: 10_000 });
  await writeFile(log, 'booting\r\nhalf a li');
  await appendFile(log, 'ne\r\nNOVACRON-GUEST-READY\r\n');
  assert.equal(await waiting, 'NOVACRON-GUEST-READY');
});

test('ignores an incomplete last line and bytes before fromOffset', async () => {
  const log = join(await tmp(), 'serial.log');
  await writeFile(log, 'HEARTBEAT 1\nHEARTBEAT 2\n');
  const from = 'HEARTBEAT 1\nHEARTBEAT 2\n'.length;
  const waiting = waitForSerialLine(log, /HEARTBEAT \d+/, { timeoutMs: 10_000, fromOffset: from });
  await appendFile(log, 'HEARTBEAT 3');
  await appendFile(log, '\n');
  assert.equal(await waiting, 'HEARTBEAT 3');
});

test('times out with the last line quoted', async () => {
  const log = join(await tmp(), 'serial.log');
  await writeFile(log, 'kernel panic\n');
  await assert.rejects(
    waitForSerialLine(log, /READY/, { timeoutMs: 50 }),
    (e: unknown) =>
      e instanceof NovaCronError &&
      e.code === ErrorCode.DeadlineExceeded &&
      e.message.includes('kernel panic'),
  );
});

test('abort signal cancels the wait', async () => {
  const ac = new AbortController();
  const waiting = waitForSerialLine(join(await tmp(), 'x.log'), /READY/, {
    timeoutMs: 10_000,
    signal: ac.signal,
  });
  ac.abort();
  await assert.rejects(waiting, (e: unknown) => e instanceof NovaCronError && e.code === ErrorCode.Cancelled);
});

test('readSerialTail returns whole lines from the end', async () => {
  const log = join(await tmp(), 'serial.log');
  assert.equal(await readSerialTail(log), '');
  await writeFile(log, 'aaaa\nbbbb\ncccc\n');
  assert.equal(await readSerialTail(log, 7), 'cccc\n');
  assert.equal(await readSerialTail(log), 'aaaa\nbbbb\ncccc\n');
});
