// Public barrel of cluster mode (etcd): session and fencing, membership, election, assignments, status.
export { connectEtcd } from './etcd-client.js';
export type { EtcdConnection, EtcdConnectOptions } from './etcd-client.js';
export {
  diagnoseEtcd,
  endpointScheme,
  etcdFailureCause,
  loadEtcdSecurity,
  planEtcdSecurity,
} from './etcd-security.js';
export type { EtcdConfig, EtcdSecurityPlan } from './etcd-security.js';
export { Session } from './session.js';
export type { FenceEvent, SessionOptions, SessionState } from './session.js';
export { defaultMarginMs, fenceDeadline } from './fencing.js';
export { Membership, MemberWatch, listKnownNodes } from './membership.js';
export type { MemberChange, NodeInfo } from './membership.js';
export { Election, LeaderWatch, checkTermHistory, resign } from './election.js';
export type { ElectionOptions, ObservedTerm, Term } from './election.js';
export { AssignmentAgent, readAcks, removeAssignment, writeAssignment } from './assignments.js';
export type { AgentHandlers, Assignment, AssignmentAck } from './assignments.js';
export { buildClusterView, NodeStatus } from './status.js';
export type { ClusterNodeView, ClusterView } from './status.js';
export { readClusterStatus } from './status-reader.js';
export { Keys, normalisePrefix } from './keys.js';
export { RegionLeader } from './region.js';
export type { RegionLeaderOptions, PassSummary } from './region.js';
export { capacityOf, downLongEnough, planRegion, regionSnapshot } from './placement.js';
export { drainTargets } from './drain.js';
export type { DrainTargetInput, DrainTargets } from './drain.js';
export type { PlanInput, RegionPlan } from './placement.js';
