// Filter: the node runs the driver the VM needs and, when asked, can live-migrate.
import type { FilterPlugin } from '../plugin.js';

export const DRIVER_CAPABILITY = 'driver-capability';

/** Rejects nodes without the requested driver, or without live migration when it is required. */
export const driverCapabilityFilter: FilterPlugin = {
  name: DRIVER_CAPABILITY,
  filter: (req, node) => {
    if (req.driver !== undefined && !node.drivers.includes(req.driver))
      return `missing driver ${req.driver} (has ${node.drivers.join(',') || 'none'})`;
    if (req.requireLiveMigration === true && !node.liveMigration) return 'no live migration';
    return undefined;
  },
};
