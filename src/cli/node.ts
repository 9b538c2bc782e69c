// `novacron node list|drain|uncordon`: the region's nodes, and the draining mark of the node the CLI talks to.
import type { Command } from 'commander';
import { action, output, renderTable } from './run.js';
import { NODE_COLUMNS, connFlags, expectOk, nodeClient, nodeRows } from './cluster.js';
import type { ClusterAnswer, ConnFlags } from './cluster.js';

export function registerNodeCommand(program: Command): void {
  const node = program.command('node').description('Nodes of the region');
  connFlags(node.command('list').description('Every known node with its status, address and role')).action(
    action(async (f: ConnFlags) => {
      const { call } = await nodeClient(f);
      const c = (await expectOk(await call('GET', '/api/v1/cluster'))) as ClusterAnswer;
      output(c.nodes, f.output === 'json', () => renderTable(nodeRows(c), NODE_COLUMNS));
    }),
  );
  for (const [op, text] of [
    ['drain', 'Mark the node at --url draining (VMs are not moved off it yet)'],
    ['uncordon', 'Clear the draining mark of the node at --url'],
  ] as const) {
    connFlags(node.command(op).description(text)).action(
      action(async (f: ConnFlags) => {
        const { call } = await nodeClient(f);
        const c = (await expectOk(await call('POST', `/api/v1/cluster/self/${op}`))) as ClusterAnswer;
        output(c.nodes, f.output === 'json', () => renderTable(nodeRows(c), NODE_COLUMNS));
      }),
    );
  }
}
