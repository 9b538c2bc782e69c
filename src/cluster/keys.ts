// Key layout of a region in etcd (pure): every key NovaCron writes lives under cluster.etcd.prefix.

/**
 * Layout, relative to the region prefix (the etcd3 client namespace adds the prefix itself):
 *   nodes/<node>                 durable record of a node that once joined (NodeInfo JSON, no lease)
 *   members/<node>               live membership (NodeInfo JSON, attached to the node's session lease)
 *   leader/<region>              the elected leader's node id (attached to the leader's session lease);
 *                                its create revision is the leader's term
 *   assignments/<node>/<vm>      an assignment written by the leader (Assignment JSON)
 *   acks/<node>/<vm>             the node agent's acknowledgement of an assignment (AssignmentAck JSON)
 *   pending/<vm>                 a create recorded `pending` in the shared database, for the leader to place
 */
export const Keys = {
  nodesPrefix: 'nodes/',
  node: (id: string): string => `nodes/${id}`,
  membersPrefix: 'members/',
  member: (id: string): string => `members/${id}`,
  leader: (region: string): string => `leader/${region}`,
  assignmentsPrefix: (node: string): string => `assignments/${node}/`,
  assignment: (node: string, vm: string): string => `assignments/${node}/${vm}`,
  acksPrefix: (node: string): string => `acks/${node}/`,
  ack: (node: string, vm: string): string => `acks/${node}/${vm}`,
  assignmentsRoot: 'assignments/',
  pendingPrefix: 'pending/',
  pending: (vm: string): string => `pending/${vm}`,
} as const;

/** A region prefix normalised to end with exactly one `/` (etcd keys are bytes; `/novacron` and `/novacron/` are the same region). */
export function normalisePrefix(prefix: string): string {
  const trimmed = prefix.replace(/\/+$/, '');
  return `${trimmed}/`;
}

/** The last path segment of `key` after `prefix`, or undefined when `key` is not directly under `prefix`. */
export function childName(key: string, prefix: string): string | undefined {
  if (!key.startsWith(prefix)) return undefined;
  const rest = key.slice(prefix.length);
  if (rest.length === 0 || rest.includes('/')) return undefined;
  return rest;
}

/** Ids become single key segments: no `/`, not empty, printable ASCII. */
export function isValidId(id: string): boolean {
  return /^[A-Za-z0-9._:-]{1,128}$/.test(id);
}
