// Pre-init component "environment": detects the network mode (datacenter / internet / hybrid) from
// RDMA devices and measured RTT to configured peers, sets it for the node, reports the evidence and
// RDMA presence in health, and keeps re-detecting at run time (an explicit system.mode always wins).
import type { Component } from '../boot/component.js';
import { ModeDetector } from '../config/mode-detector.js';
import type { ModeDecision } from '../config/mode-detect.js';

declare module '../boot/services.js' {
  interface Services {
    modeDetector?: ModeDetector;
  }
}

export function environmentComponent(): Component {
  let detector: ModeDetector | null = null;
  let decision: ModeDecision | null = null;
  return {
    name: 'environment',
    phase: 'pre',
    dependsOn: [],
    critical: true,
    // RTT probes are bounded by the detector; this guards the boot regardless.
    timeoutMs: 5000,
    async start(ctx) {
      detector = new ModeDetector(ctx.config, {
        onError: (err) => ctx.logger.warn({ err }, 'mode re-detection failed'),
      });
      decision = await detector.detect();
      ctx.mode = decision.mode;
      ctx.logger.info(
        { mode: decision.mode, confidence: decision.confidence, explicit: decision.explicit },
        `network mode ${decision.mode}: ${decision.reason}`,
      );
      detector.onChange((next, previous) => {
        decision = next;
        ctx.mode = next.mode;
        ctx.logger.warn(
          { mode: next.mode, previous: previous.mode },
          `network mode changed to ${next.mode}: ${next.reason}`,
        );
      });
      detector.start();
      ctx.services.modeDetector = detector;
    },
    async stop() {
      detector?.stop();
    },
    health: () =>
      decision
        ? {
            status: 'up',
            detail: `${decision.mode} (${decision.explicit ? 'configured' : `confidence ${decision.confidence.toFixed(2)}`}): ${decision.reason}`,
          }
        : { status: 'down', detail: 'not detected' },
  };
}
