/**
 * A scripted stand-in for the apiserver side of KubeClient.list/watch, for unit tests of the
 * informer's reflector logic (ordering, resume, relist difference, backoff) without sockets.
 * The integration tests (informer-faults.test.ts) run the same informer against the test apiserver.
 */
import type { Status } from 'kubernetes-types/meta/v1';
import type { KubeClient, ListOptions, ListResult, WatchEnd, WatchEvent, WatchHandle, WatchOptions } from '../../agent/kube/client';
import { flush } from './fake-clock';

export interface ScriptedWatch<T> {
  options: WatchOptions;
  open(): void;
  emit(event: WatchEvent<T>): void;
  /** Some bytes arrived (e.g. a partial event). */
  progress(): void;
  close(): void;
  fail(err: Error): void;
  readonly ended: boolean;
  readonly endedWith: Error | WatchEnd | undefined;
}

export type ListAnswer<T> = ListResult<T> | Error;

export interface ScriptedClient<T> {
  client: Pick<KubeClient, 'list' | 'watch'>;
  /** Answers for the next list calls, in order. */
  lists: ListAnswer<T>[];
  listCalls: ListOptions[];
  watches: ScriptedWatch<T>[];
  /** Waits (flushing promises) until the informer opened watch number `n` (0-based). */
  watch(n: number): Promise<ScriptedWatch<T>>;
}

export function createScriptedClient<T>(): ScriptedClient<T> {
  const lists: ListAnswer<T>[] = [];
  const listCalls: ListOptions[] = [];
  const watches: ScriptedWatch<T>[] = [];
  const client = {
    async list(_res: unknown, options?: ListOptions): Promise<ListResult<T>> {
      listCalls.push(options ?? {});
      const answer = lists.shift();
      if (!answer) throw new Error('fake: no list answer scripted');
      if (answer instanceof Error) throw answer;
      return answer;
    },
    watch(_res: unknown, options: WatchOptions, onEvent: (event: WatchEvent<T>) => void): WatchHandle {
      let settle!: (err: Error | undefined, end?: WatchEnd) => void;
      let endedWith: Error | WatchEnd | undefined;
      const done = new Promise<WatchEnd>((resolve, reject) => {
        settle = (err, end) => {
          if (endedWith !== undefined) return;
          endedWith = err ?? end;
          if (err) reject(err);
          else resolve(end!);
        };
      });
      const record: ScriptedWatch<T> = {
        options,
        open: () => options.onOpen?.(),
        emit(event) {
          if (endedWith !== undefined) throw new Error('fake: emit on an ended watch');
          options.onProgress?.(1);
          onEvent(event);
        },
        progress: () => options.onProgress?.(1),
        close: () => settle(undefined, 'closed'),
        fail: (err) => settle(err),
        get ended() {
          return endedWith !== undefined;
        },
        get endedWith() {
          return endedWith;
        },
      };
      watches.push(record);
      return { abort: (reason?: Error) => settle(reason, 'aborted'), done };
    },
  } as unknown as Pick<KubeClient, 'list' | 'watch'>;
  return {
    client,
    lists,
    listCalls,
    watches,
    async watch(n) {
      for (let i = 0; i < 50 && watches.length <= n; i++) await flush();
      if (watches.length <= n) throw new Error(`fake: watch #${n} was never opened (${watches.length} opened)`);
      return watches[n]!;
    },
  };
}

export function status(code: number, reason: string, message = reason): Status {
  return { kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message };
}
