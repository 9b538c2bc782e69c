// Starting a worker thread on one of our own modules, from the compiled dist/ or from the
// TypeScript sources under tsx (tests, benches). Under tsx the worker first registers the same
// loader, through a small data: URL bootstrap, then imports the module.
import { Worker, type WorkerOptions } from 'node:worker_threads';

/** A data: URL module that registers tsx in the worker, then loads `script`. */
function tsxBootstrap(script: URL): URL {
  const api = import.meta.resolve('tsx/esm/api');
  const code = `const { register } = await import(${JSON.stringify(api)}); register(); await import(${JSON.stringify(script.href)});`;
  return new URL(`data:text/javascript,${encodeURIComponent(code)}`);
}

/**
 * Starts `name` (a path relative to `here` without its extension, e.g. `./compress-worker`) as a
 * worker thread: `.ts` through tsx when `here` is a TypeScript source, `.js` otherwise.
 */
export function startModuleWorker(here: string, name: string, options: WorkerOptions = {}): Worker {
  const fromSource = here.endsWith('.ts');
  const script = new URL(`${name}${fromSource ? '.ts' : '.js'}`, here);
  return fromSource ? new Worker(tsxBootstrap(script), options) : new Worker(script, options);
}
