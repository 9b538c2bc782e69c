// Reads the cluster view for `GET /api/v1/cluster` from etcd (one consistent read per key range).
import type { EtcdConnection } from './etcd-client.js';
import { Keys } from './keys.js';
import { listKnownNodes, parseNodeInfo } from './membership.js';
import type { NodeInfo } from './membership.js';
import type { Session } from './session.js';
import { buildClusterView } from './status.js';
import type { ClusterView } from './status.js';

/**
 * Contract: with the session `ready`, reads known nodes, live members and the leader from etcd
 * and applies status.ts. With the session `partitioned` it does not ask etcd (it could hang or
 * be stale): it returns `lastKnown` with this node marked partitioned and no leader.
 */
export async function readClusterStatus(
  conn: EtcdConnection,
  region: string,
  self?: { readonly id: string; readonly session: Session; readonly lastKnown?: ClusterView },
): Promise<ClusterView> {
  if (self && self.session.state !== 'ready') {
    const last = self.lastKnown?.nodes ?? [];
    const known: NodeInfo[] = last.map((n) => ({
      id: n.id,
      addresses: [n.address],
      capacity: { cpus: 0, memoryMiB: 0 },
      labels: {},
      driver: '',
    }));
    const live = known.filter((n) => last.find((l) => l.id === n.id)?.status === 'ready' || n.id === self.id);
    return buildClusterView({ known, live, leader: null, self: { id: self.id, partitioned: true } });
  }
  const [known, members, leader] = await Promise.all([
    listKnownNodes(conn),
    conn.kv.getAll().prefix(Keys.membersPrefix).exec(),
    conn.kv.get(Keys.leader(region)).string(),
  ]);
  const live = members.kvs.map((kv) => parseNodeInfo(kv.value)).filter((n): n is NodeInfo => n !== undefined);
  return buildClusterView({
    known,
    live,
    leader,
    ...(self ? { self: { id: self.id, partitioned: false } } : {}),
  });
}
