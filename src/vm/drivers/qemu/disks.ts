// Disks of a QEMU VM: images used as they are, or qcow2 overlays (qemu-img create -b) on base images.
import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { promisify } from 'node:util';
import { HypervisorError, ValidationError, errorMessage } from '../../../errors.js';
import type { VmDiskSpec } from '../../driver.js';
import { overlayPath, type ResolvedDisk } from './args.js';

const run = promisify(execFile);

export interface ImageInfo {
  readonly format: string;
  readonly virtualSize: number;
  readonly backingFile: string | undefined;
}

/** `qemu-img info --output=json` of one image. */
export async function imageInfo(qemuImg: string, file: string): Promise<ImageInfo> {
  try {
    const { stdout } = await run(qemuImg, ['info', '--output=json', '-U', file]);
    const info = JSON.parse(stdout) as {
      format?: unknown;
      'virtual-size'?: unknown;
      'backing-filename'?: unknown;
    };
    return {
      format: String(info.format),
      virtualSize: Number(info['virtual-size']),
      backingFile: typeof info['backing-filename'] === 'string' ? info['backing-filename'] : undefined,
    };
  } catch (err) {
    throw new HypervisorError(`qemu-img info ${file} failed: ${errorMessage(err).trim()}`, {
      cause: err,
      key: file,
    });
  }
}

function asFormat(format: string, file: string): 'qcow2' | 'raw' {
  if (format === 'qcow2' || format === 'raw') return format;
  throw new ValidationError(`unsupported disk format ${format} for ${file} (qcow2 or raw)`, { key: file });
}

async function mustExist(file: string): Promise<void> {
  try {
    await access(file);
  } catch {
    throw new ValidationError(`disk image not found: ${file}`, { key: file });
  }
}

/**
 * Turns the spec's disks into the files QEMU opens. A `baseImage` gets a qcow2 overlay in the VM
 * directory (created once, reused on restart); a `path` is used as is. Base images are never written.
 */
export async function prepareDisks(
  qemuImg: string,
  vmDir: string,
  disks: readonly VmDiskSpec[],
): Promise<ResolvedDisk[]> {
  const out: ResolvedDisk[] = [];
  for (const [i, d] of disks.entries()) {
    if ('path' in d) {
      const file = resolve(d.path);
      await mustExist(file);
      const format = d.format ?? asFormat((await imageInfo(qemuImg, file)).format, file);
      out.push({ file, format, readOnly: d.readOnly ?? false });
      continue;
    }
    const base = resolve(d.baseImage);
    await mustExist(base);
    const baseFormat = d.format ?? asFormat((await imageInfo(qemuImg, base)).format, base);
    const overlay = overlayPath(vmDir, i);
    let exists = true;
    try {
      await access(overlay);
    } catch {
      exists = false;
    }
    if (exists) {
      const info = await imageInfo(qemuImg, overlay);
      const backing =
        info.backingFile === undefined
          ? undefined
          : isAbsolute(info.backingFile)
            ? info.backingFile
            : resolve(vmDir, info.backingFile);
      if (backing !== base)
        throw new ValidationError(`overlay ${overlay} is backed by ${String(backing)}, not ${base}`, {
          key: `disks[${i}]`,
          hint: 'delete the VM to start from a fresh overlay',
        });
    } else {
      try {
        await run(qemuImg, ['create', '-q', '-f', 'qcow2', '-F', baseFormat, '-b', base, overlay]);
      } catch (err) {
        throw new HypervisorError(`qemu-img create overlay on ${base} failed: ${errorMessage(err).trim()}`, {
          cause: err,
          key: `disks[${i}]`,
        });
      }
    }
    out.push({ file: overlay, format: 'qcow2', readOnly: false });
  }
  return out;
}
