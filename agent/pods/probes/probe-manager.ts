/**
 * The probes of one pod (kubelet's prober manager and probe workers, per pod): for every running
 * container instance, one worker per configured probe (startup, readiness, liveness) runs the probe
 * every periodSeconds, from initialDelaySeconds after the container started, and turns outcomes
 * into results with the success/failure thresholds. While a startup probe has not succeeded the
 * other two wait. Results: readiness (false until it succeeds), started (false until the startup
 * probe succeeds), and a kill reason when liveness or startup fails failureThreshold times in a row;
 * the pod worker reads them at its next sync, woken by onChange. A probe that cannot run (bad spec,
 * runtime error) "errors": it keeps the last result and is reported, never crashes anything.
 */
import type { Container, Pod, Probe } from 'kubernetes-types/core/v1';
import type { Logger } from 'pino';
import type { Clock, ClockTimer } from '../clock';
import type { ContainerInstance, RuntimePodState } from '../runtime-state';
import { probeTiming, resolveAction, type ProbeTiming } from './handler';
import type { Prober } from './prober';
import { errorMessage } from '../../errors';

export type ProbeKind = 'startup' | 'readiness' | 'liveness';

export type EventRecorder = (type: 'Normal' | 'Warning', reason: string, message: string, containerName: string) => void;

export interface ContainerHealth {
  ready: boolean;
  started: boolean;
}

export interface PodProbes {
  /** Starts probe workers for newly running containers, stops those of containers no longer running. */
  sync(pod: Pod, state: RuntimePodState, podIP: string): void;
  /** Readiness and startup of a running container instance (undefined: not known to the prober). */
  health(containerId: string): ContainerHealth | undefined;
  /** Set when liveness or startup failed: the container must be killed (message for the log and event). */
  killReason(containerId: string): string | undefined;
  /** The failed probe's terminationGracePeriodSeconds, when it sets one (it then replaces the pod's). */
  killGracePeriod(containerId: string): number | undefined;
  /** Probes that cannot run (e.g. an unknown port name), by container name. */
  problems(): Map<string, string>;
  stop(): void;
}

export interface PodProbesOptions {
  prober: Prober;
  clock: Clock;
  logger: Logger;
  /** A result changed: sync the pod soon. */
  onChange: () => void;
  recordEvent?: EventRecorder;
}

const FIELD: Record<ProbeKind, keyof Container> = { startup: 'startupProbe', readiness: 'readinessProbe', liveness: 'livenessProbe' };
const TITLE: Record<ProbeKind, string> = { startup: 'Startup', readiness: 'Readiness', liveness: 'Liveness' };

interface Instance {
  id: string;
  name: string;
  ready: boolean;
  started: boolean;
  kill?: string;
  killGrace?: number;
  workers: Worker[];
}

interface Worker {
  stop(): void;
}

export function createPodProbes(options: PodProbesOptions): PodProbes {
  const { prober, clock, onChange } = options;
  const instances = new Map<string, Instance>();
  const problems = new Map<string, string>();
  let stopped = false;

  function report(inst: Instance, kind: ProbeKind, type: 'Normal' | 'Warning', reason: string, message: string, logAlways: boolean) {
    options.recordEvent?.(type, reason, message, inst.name);
    if (logAlways) options.logger.warn({ container: inst.name, containerId: inst.id, probe: kind, reason }, message);
  }

  function startWorker(inst: Instance, kind: ProbeKind, probe: Probe, container: Container, startedAt: number, podIP: string): Worker {
    const timing: ProbeTiming = probeTiming(probe, kind);
    const field = `${FIELD[kind]}`;
    let timer: ClockTimer | undefined;
    let done = false;
    let lastOutcome: boolean | undefined;
    let streak = 0;
    let lastError = '';

    const schedule = (ms: number) => {
      if (done || stopped) return;
      timer = clock.setTimer(ms, () => void tick());
    };

    function apply(ok: boolean, output: string) {
      streak = lastOutcome === ok ? streak + 1 : 1;
      lastOutcome = ok;
      if (!ok) {
        const message = `${TITLE[kind]} probe failed: ${output}`.trim();
        // one log line when a failure streak starts and when it reaches the threshold; every failure is an event
        report(inst, kind, 'Warning', 'Unhealthy', message, streak === 1 || streak === timing.failureThreshold);
      }
      if (ok ? streak < timing.successThreshold : streak < timing.failureThreshold) return;
      if (kind === 'readiness') {
        if (inst.ready !== ok) {
          inst.ready = ok;
          options.logger.info({ container: inst.name, containerId: inst.id, ready: ok }, ok ? 'container ready' : 'container not ready');
          onChange();
        }
      } else if (kind === 'startup') {
        if (ok && !inst.started) {
          inst.started = true;
          options.logger.info({ container: inst.name, containerId: inst.id }, 'container started (startup probe succeeded)');
          done = true;
          onChange();
        } else if (!ok && !inst.started && !inst.kill) {
          inst.kill = `Container ${inst.name} failed startup probe`;
          inst.killGrace = probe.terminationGracePeriodSeconds ?? undefined;
          done = true;
          onChange();
        }
      } else if (!ok && !inst.kill) {
        inst.kill = `Container ${inst.name} failed liveness probe`;
        inst.killGrace = probe.terminationGracePeriodSeconds ?? undefined;
        done = true;
        onChange();
      }
    }

    async function tick() {
      timer = undefined;
      if (done || stopped) return;
      const began = clock.now();
      // liveness and readiness wait for the startup probe
      if (kind !== 'startup' && !inst.started) return schedule(timing.periodMs);
      try {
        const action = resolveAction(probe, container, podIP, field);
        const outcome = await prober.run(action, inst.id, timing.timeoutMs);
        if (lastError) {
          problems.delete(inst.name);
          lastError = '';
          onChange();
        }
        if (!done && !stopped) apply(outcome.ok, outcome.output);
      } catch (err) {
        const message = `${TITLE[kind]} probe errored: ${errorMessage(err)}`;
        if (message !== lastError) {
          lastError = message;
          problems.set(inst.name, message);
          report(inst, kind, 'Warning', 'Unhealthy', message, true);
          onChange();
        } else options.recordEvent?.('Warning', 'Unhealthy', message, inst.name);
      }
      schedule(Math.max(0, began + timing.periodMs - clock.now()));
    }

    schedule(Math.max(0, startedAt + timing.initialDelayMs - clock.now()));
    return {
      stop() {
        done = true;
        timer?.cancel();
      },
    };
  }

  function track(c: Container, latest: ContainerInstance, podIP: string) {
    const inst: Instance = { id: latest.id, name: c.name, ready: !c.readinessProbe, started: !c.startupProbe, workers: [] };
    instances.set(latest.id, inst);
    const startedAt = latest.startedAt || latest.createdAt || clock.now();
    for (const kind of ['startup', 'readiness', 'liveness'] as const) {
      const probe = c[FIELD[kind]] as Probe | undefined;
      if (probe) inst.workers.push(startWorker(inst, kind, probe, c, startedAt, podIP));
    }
  }

  return {
    sync(pod, state, podIP) {
      if (stopped) return;
      const live = new Set<string>();
      // sidecars (init containers with restartPolicy Always) are probed like app containers
      for (const c of [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? []).filter((i) => i.restartPolicy === 'Always')]) {
        const latest = state.containers.find((x) => x.name === c.name);
        if (latest?.state !== 'running') continue;
        live.add(latest.id);
        if (!instances.has(latest.id)) track(c, latest, podIP);
      }
      for (const [id, inst] of instances) {
        if (live.has(id)) continue;
        for (const w of inst.workers) w.stop();
        instances.delete(id);
        if (![...instances.values()].some((i) => i.name === inst.name)) problems.delete(inst.name);
      }
    },
    health(id) {
      const inst = instances.get(id);
      return inst && { ready: inst.ready && inst.started && !inst.kill, started: inst.started };
    },
    killReason: (id) => instances.get(id)?.kill,
    killGracePeriod: (id) => instances.get(id)?.killGrace,
    problems: () => problems,
    stop() {
      stopped = true;
      for (const inst of instances.values()) for (const w of inst.workers) w.stop();
      instances.clear();
    },
  };
}
