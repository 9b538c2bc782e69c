// `vm.driver` selection: qemu when the binary is installed, else the simulator with a loud reason.
import type { NovaCronConfig } from '../../config/schema.js';
import type { VmDriver } from '../driver.js';
import { QemuDriver, detectQemu, type QemuDriverOptions } from './qemu/driver.js';
import { SimDriver } from './sim/driver.js';

export interface DriverSelection {
  readonly driver: VmDriver;
  /** Why this driver, for the boot log and health. */
  readonly reason: string;
  /** Set when the choice deserves a warning (auto fell back to sim, or qemu was forced but is missing). */
  readonly warning: string | undefined;
}

/**
 * Picks the VM driver from `vm.*` config. `auto`: qemu when `vm.qemu_binary` runs, else sim with a
 * warning. `qemu` is honoured even when the binary is missing (health then says `undetected`).
 * Does not probe KVM (that happens on first start or health check).
 */
export async function selectVmDriver(
  vm: NovaCronConfig['vm'],
  extra: Pick<QemuDriverOptions, 'log' | 'machine'> = {},
): Promise<DriverSelection> {
  const qemu = (): QemuDriver =>
    new QemuDriver({
      ...extra,
      qemuBinary: vm.qemu_binary,
      qemuImgBinary: vm.qemu_img_binary,
      accel: vm.accel,
    });
  switch (vm.driver) {
    case 'sim':
      return { driver: new SimDriver(), reason: 'vm.driver=sim: VMs are simulated', warning: undefined };
    case 'qemu': {
      const d = await detectQemu(vm.qemu_binary);
      return {
        driver: qemu(),
        reason: `vm.driver=qemu (${d.detail})`,
        warning: d.status === 'found' ? undefined : `vm.driver=qemu but ${d.detail}: VMs cannot start`,
      };
    }
    case 'auto': {
      const d = await detectQemu(vm.qemu_binary);
      if (d.status === 'found')
        return { driver: qemu(), reason: `vm.driver=auto: ${d.detail}`, warning: undefined };
      const why = `vm.driver=auto: ${d.detail}; using the sim driver, VMs are SIMULATED and do not really run`;
      return { driver: new SimDriver(), reason: why, warning: why };
    }
  }
}
