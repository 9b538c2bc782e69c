// Filter: the node carries every label of the request's node selector, with the same value.
import type { FilterPlugin } from '../plugin.js';

export const LABEL_SELECTOR = 'label-selector';

/** Rejects nodes missing a selected label or carrying another value for it. */
export const labelSelectorFilter: FilterPlugin = {
  name: LABEL_SELECTOR,
  filter: (req, node) => {
    const sel = req.nodeSelector;
    if (!sel) return undefined;
    for (const key of Object.keys(sel).sort()) {
      const want = sel[key];
      const have = node.labels[key];
      if (have === undefined) return `label ${key} missing (want ${want})`;
      if (have !== want) return `label ${key}=${have} (want ${want})`;
    }
    return undefined;
  },
};
