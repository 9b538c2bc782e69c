// Acceleration choice for `vm.accel: auto`: KVM only when a probe guest really runs under it, else TCG.
//
// On some hosts /dev/kvm opens but guests never execute an instruction (nested virtualisation without
// the right CPU features). So the probe boots a 512-byte boot sector that writes a marker to the serial
// port, under KVM, and calls KVM usable only when the marker arrives in time. The verdict is cached per
// process and binary.
import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { QemuAccel } from './args.js';

export const PROBE_START_MARKER = 'NOVACRON-ACCEL-PROBE-START';
export const PROBE_MARKER = 'NOVACRON-ACCEL-PROBE-OK';
/** Iterations of the probe's busy loop: enough to tell a CPU that runs from one that crawls. */
export const PROBE_LOOP_ITERATIONS = 20_000_000;

/**
 * A BIOS boot sector (real mode, loaded at 0x7c00) that writes PROBE_START_MARKER to COM1 (port 0x3f8),
 * spins PROBE_LOOP_ITERATIONS times, writes PROBE_MARKER and halts. The time between the two markers
 * measures how fast guest code really runs. Pure: the same 512 bytes every time.
 */
export function probeBootSector(): Buffer {
  const n = PROBE_LOOP_ITERATIONS;
  const le16 = (v: number): number[] => [v & 0xff, (v >> 8) & 0xff];
  const msg1 = Buffer.from(`${PROBE_START_MARKER}\r\n\0`, 'latin1');
  const msg2 = Buffer.from(`${PROBE_MARKER}\r\n\0`, 'latin1');
  // Layout (offsets from 0x7c00); print is at 39, messages follow the code at 48.
  const PRINT = 39;
  const MSG1 = 48;
  const MSG2 = MSG1 + msg1.length;
  const code = [
    0xfa,
    0xfc, // 0: cli; cld
    0x31,
    0xc0,
    0x8e,
    0xd8,
    0x8e,
    0xd0, // 2: xor ax,ax; mov ds,ax; mov ss,ax
    0xbc,
    0x00,
    0x7c, // 8: mov sp, 0x7c00
    0xba,
    0xf8,
    0x03, // 11: mov dx, 0x3f8
    0xbe,
    ...le16(0x7c00 + MSG1), // 14: mov si, msg1
    0xe8,
    ...le16(PRINT - 20), // 17: call print
    0x66,
    0xb9,
    n & 0xff,
    (n >> 8) & 0xff,
    (n >> 16) & 0xff,
    (n >>> 24) & 0xff, // 20: mov ecx, n
    0x66,
    0x49, // 26: dec ecx
    0x75,
    0xfc, // 28: jnz 26
    0xbe,
    ...le16(0x7c00 + MSG2), // 30: mov si, msg2
    0xe8,
    ...le16(PRINT - 36), // 33: call print
    0xf4, // 36: hlt
    0xeb,
    0xfd, // 37: jmp 36
    0xac, // 39 print: lodsb
    0x84,
    0xc0, // 40: test al, al
    0x74,
    0x03, // 42: jz 47
    0xee, // 44: out dx, al
    0xeb,
    0xf8, // 45: jmp 39
    0xc3, // 47: ret
  ];
  if (code.length !== MSG1) throw new Error(`probe code is ${code.length} bytes, expected ${MSG1}`);
  const sector = Buffer.alloc(512);
  Buffer.from(code).copy(sector, 0);
  msg1.copy(sector, MSG1);
  msg2.copy(sector, MSG2);
  sector[510] = 0x55;
  sector[511] = 0xaa;
  return sector;
}

export interface AccelVerdict {
  readonly accel: QemuAccel;
  /** Why, for health and logs: "KVM probe guest printed in 412 ms" / "/dev/kvm not accessible" … */
  readonly reason: string;
}

export interface ProbeResult {
  readonly progressed: boolean;
  readonly elapsedMs: number;
  /** Time between the two markers (the busy loop), when both arrived. */
  readonly loopMs: number | undefined;
  readonly detail: string;
}

/** Boots the probe sector under `accel` and reports whether it printed the marker within `timeoutMs`. */
export async function runAccelProbe(
  qemuBinary: string,
  accel: QemuAccel,
  timeoutMs: number,
): Promise<ProbeResult> {
  const dir = await mkdtemp(join(tmpdir(), 'novacron-accel-'));
  const image = join(dir, 'probe.img');
  await writeFile(image, probeBootSector());
  const started = Date.now();
  try {
    return await new Promise<ProbeResult>((resolve) => {
      const child = spawn(
        qemuBinary,
        [
          '-machine',
          `pc,accel=${accel}`,
          '-m',
          '16',
          '-nodefaults',
          '-no-user-config',
          '-display',
          'none',
          '-serial',
          'stdio',
          '-drive',
          `file=${image},format=raw,if=ide,index=0`,
          '-boot',
          'c',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let out = '';
      let err = '';
      let loopStart: number | undefined;
      let settled = false;
      const finish = (r: ProbeResult): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        child.kill('SIGKILL');
        resolve(r);
      };
      const timer = setTimeout(
        () =>
          finish({
            progressed: false,
            elapsedMs: Date.now() - started,
            loopMs: undefined,
            detail: `probe guest ${loopStart === undefined ? 'printed nothing' : 'did not finish its loop'} under ${accel} within ${timeoutMs} ms`,
          }),
        timeoutMs,
      );
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString('latin1');
        const now = Date.now();
        if (loopStart === undefined && out.includes(PROBE_START_MARKER)) loopStart = now;
        if (loopStart !== undefined && out.includes(PROBE_MARKER))
          finish({
            progressed: true,
            elapsedMs: now - started,
            loopMs: now - loopStart,
            detail: `probe guest ran under ${accel}: booted in ${loopStart - started} ms, busy loop took ${now - loopStart} ms`,
          });
      });
      child.stderr.on('data', (c: Buffer) => (err += c.toString()));
      child.on('error', (e) =>
        finish({
          progressed: false,
          elapsedMs: Date.now() - started,
          loopMs: undefined,
          detail: `cannot run ${qemuBinary}: ${e.message}`,
        }),
      );
      child.on('exit', (code) =>
        finish({
          progressed: false,
          elapsedMs: Date.now() - started,
          loopMs: undefined,
          detail: `${qemuBinary} exited (${code ?? 'signal'}) under ${accel}: ${err.trim().split('\n').pop() ?? ''}`,
        }),
      );
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const verdicts = new Map<string, Promise<AccelVerdict>>();

/**
 * Pure verdict from the two probe runs: KVM only when its probe finished and its busy loop was not
 * slower than under TCG (a KVM that runs guest code slower than emulation is broken, not fast).
 */
export function judgeAccel(kvm: ProbeResult, tcg: ProbeResult): AccelVerdict {
  if (!kvm.progressed || kvm.loopMs === undefined)
    return { accel: 'tcg', reason: `/dev/kvm opens but KVM is unusable: ${kvm.detail}` };
  if (tcg.progressed && tcg.loopMs !== undefined && kvm.loopMs > tcg.loopMs)
    return {
      accel: 'tcg',
      reason: `KVM runs guest code slower than TCG (busy loop ${kvm.loopMs} ms under KVM vs ${tcg.loopMs} ms under TCG)`,
    };
  return { accel: 'kvm', reason: `KVM works: ${kvm.detail}` };
}

/**
 * `auto` acceleration: KVM when /dev/kvm is accessible and the probe guest runs under KVM within
 * `timeoutMs` and faster than under TCG, else TCG. Cached per process and binary.
 */
export function chooseAutoAccel(qemuBinary: string, timeoutMs = 5000): Promise<AccelVerdict> {
  let v = verdicts.get(qemuBinary);
  if (v === undefined) {
    v = (async (): Promise<AccelVerdict> => {
      try {
        await access('/dev/kvm', constants.R_OK | constants.W_OK);
      } catch {
        return { accel: 'tcg', reason: '/dev/kvm is missing or not accessible' };
      }
      const [kvm, tcg] = await Promise.all([
        runAccelProbe(qemuBinary, 'kvm', timeoutMs),
        runAccelProbe(qemuBinary, 'tcg', timeoutMs),
      ]);
      return judgeAccel(kvm, tcg);
    })();
    verdicts.set(qemuBinary, v);
  }
  return v;
}

/** Resolves the configured acceleration (`auto` probes; `kvm`/`tcg` are taken as given). */
export async function resolveAccel(
  configured: 'auto' | QemuAccel,
  qemuBinary: string,
  probeTimeoutMs?: number,
): Promise<AccelVerdict> {
  if (configured !== 'auto') return { accel: configured, reason: `configured vm.accel=${configured}` };
  return chooseAutoAccel(qemuBinary, probeTimeoutMs);
}
