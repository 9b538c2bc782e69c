// Child process for tests: joins a region as one node (and campaigns if a region is given) until killed (argv: endpoints-json prefix node-id ttl [region]).
import { Election, Membership, Session, connectEtcd } from '../../src/cluster/index.js';

const [endpoints = '[]', prefix = '/novacron', id = 'child', ttl = '2', region] = process.argv.slice(2);
const conn = connectEtcd({ endpoints: JSON.parse(endpoints) as string[], prefix });
const session = await Session.open(conn, { ttlSeconds: Number(ttl) });
await Membership.join(conn, session, {
  id,
  addresses: ['127.0.0.1:9'],
  capacity: { cpus: 1, memoryMiB: 512 },
  labels: {},
  driver: 'sim',
});
process.stdout.write('joined\n');
if (region) new Election(conn, session, { region, nodeId: id }).start();
setInterval(() => undefined, 1 << 30);
