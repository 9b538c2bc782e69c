// `novacron node list|drain|uncordon`: the region's nodes, and the draining mark of the node the CLI talks to.
// Drain, in a region with shared records (PostgreSQL), moves the node's running VMs away (live
// migration where the node can migrate, else stop-and-restart elsewhere) and waits until none is
// left, showing progress.
import type { Command } from 'commander';
import { action, output, renderTable } from './run.js';
import { NODE_COLUMNS, connFlags, expectOk, nodeClient, nodeRows } from './cluster.js';
import type { ClusterAnswer, ConnFlags } from './cluster.js';

interface DrainFlags extends ConnFlags {
  wait?: boolean;
  timeout?: string;
}

interface DrainAnswer extends ClusterAnswer {
  drain?: { method: 'live-migration' | 'stop-and-restart' | 'none'; moving: number };
}

/** API path of a member's drain, uncordon and driver view: this node's, or another's by id. */
function nodePath(node: string | undefined): string {
  return node === undefined ? '/api/v1/cluster/self' : `/api/v1/cluster/nodes/${encodeURIComponent(node)}`;
}

export function registerNodeCommand(program: Command): void {
  const node = program.command('node').description('Nodes of the region');
  connFlags(node.command('list').description('Every known node with its status, address and role')).action(
    action(async (f: ConnFlags) => {
      const { call } = await nodeClient(f);
      const c = (await expectOk(await call('GET', '/api/v1/cluster'))) as ClusterAnswer;
      output(c.nodes, f.output === 'json', () => renderTable(nodeRows(c), NODE_COLUMNS));
    }),
  );
  connFlags(
    node
      .command('drain')
      .description(
        'Mark a node draining (no new VMs) and move its running VMs away: live-migrated to other members where the node can migrate (QEMU driver, cluster.join_token), else stopped there and restarted elsewhere by the leader. NODE: a member id (default: the node at --url; another member is reached through it)',
      )
      .argument('[node]', 'member to drain (default: the node at --url)')
      .option('--no-wait', 'return once the mark is set, without waiting for the VMs to leave')
      .option('--timeout <seconds>', 'longest wait for the VMs to leave', '300'),
  ).action(
    action(async (target: string | undefined, f: DrainFlags) => {
      const { call } = await nodeClient(f);
      const base = nodePath(target);
      const c = (await expectOk(await call('POST', `${base}/drain`))) as DrainAnswer;
      const json = f.output === 'json';
      const drain = c.drain ?? { method: 'none', moving: 0 };
      const how: Record<typeof drain.method, string> = {
        none: `${c.self} marked draining (no shared records: its VMs are not moved)`,
        'live-migration': `${c.self} marked draining; live-migrating ${drain.moving} VM(s) to other members (any that cannot go live is stopped and restarted elsewhere)`,
        'stop-and-restart': `${c.self} marked draining; moving ${drain.moving} VM(s) away by stop-and-restart elsewhere (this node cannot live-migrate; see novacron status)`,
      };
      if (!json) process.stdout.write(`${how[drain.method]}\n`);
      let left = 0;
      if (drain.method !== 'none' && f.wait !== false) {
        const timeoutMs = Number(f.timeout ?? '300') * 1000;
        if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
          throw new Error(`--timeout must be a positive number of seconds, got ${f.timeout}`);
        const deadline = Date.now() + timeoutMs;
        let last = -1;
        for (;;) {
          const local = (await expectOk(await call('GET', `${base}/vms`))) as { vms: string[] };
          left = local.vms.length;
          if (left !== last && !json) process.stdout.write(`  ${left} VM(s) still running on ${c.self}\n`);
          last = left;
          if (left === 0 || Date.now() > deadline) break;
          await new Promise((r) => setTimeout(r, 500));
        }
        if (left > 0) throw new Error(`drain of ${c.self}: ${left} VM(s) still running after ${f.timeout} s`);
      }
      output({ self: c.self, drain, left, nodes: c.nodes }, json, () =>
        renderTable(nodeRows(c), NODE_COLUMNS),
      );
    }),
  );
  connFlags(
    node
      .command('uncordon')
      .description('Clear the draining mark of a node (default: the node at --url)')
      .argument('[node]', 'member to uncordon (default: the node at --url)'),
  ).action(
    action(async (target: string | undefined, f: ConnFlags) => {
      const { call } = await nodeClient(f);
      const c = (await expectOk(await call('POST', `${nodePath(target)}/uncordon`))) as ClusterAnswer;
      output(c.nodes, f.output === 'json', () => renderTable(nodeRows(c), NODE_COLUMNS));
    }),
  );
}
