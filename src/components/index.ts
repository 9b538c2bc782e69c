// The component graph of a node: which components exist and what each depends on. Adding a
// subsystem to the boot means adding its component here (and nowhere else).
import type { Component } from '../boot/component.js';
import type { NodeLogger } from '../observability/logger.js';
import { apiComponent } from './api.js';
import { cacheComponent } from './cache.js';
import { clusterComponent } from './cluster.js';
import { databaseComponent } from './database.js';
import { dataDirComponent } from './data-dir.js';
import { environmentComponent } from './environment.js';
import { grpcComponent } from './grpc.js';
import { logFileComponent } from './log-file.js';
import { mlEngineComponent } from './ml.js';
import { migrationComponent } from './migration.js';
import { registrationComponent } from './registration.js';
import { resourcesComponent } from './resources.js';
import { securityComponent } from './security.js';
import { tracingComponent } from './tracing.js';
import { vmGrpcComponent, vmsComponent } from './vms.js';

export interface GraphOptions {
  readonly nodeLogger: NodeLogger;
}

export function nodeComponents(options: GraphOptions): Component[] {
  return [
    // pre
    dataDirComponent(),
    environmentComponent(),
    logFileComponent(options.nodeLogger),
    resourcesComponent(),
    securityComponent(),
    tracingComponent(),
    // core
    databaseComponent({ dependsOn: ['data-dir', 'resources', 'security'] }),
    cacheComponent({ dependsOn: ['resources', 'security'] }),
    clusterComponent({ dependsOn: ['resources'] }),
    vmsComponent({ dependsOn: ['data-dir', 'resources', 'database'] }),
    // service
    apiComponent({ dependsOn: ['resources', 'security', 'database', 'cache', 'vms'] }),
    grpcComponent({ dependsOn: ['resources', 'security'] }),
    vmGrpcComponent({ dependsOn: ['grpc', 'vms'] }),
    migrationComponent({ dependsOn: ['grpc', 'vms', 'database', 'data-dir'] }),
    mlEngineComponent({ dependsOn: ['environment'] }),
    // post
    registrationComponent({ dependsOn: ['api', 'grpc', 'database', 'cluster'] }),
  ];
}
