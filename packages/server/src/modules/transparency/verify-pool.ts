import { Worker } from "node:worker_threads";
import type { CheckedPage } from "./verify-pages";
import type { WorkerInit, WorkerReply, WorkerRequest } from "./verify-worker";

type Waiter = { resolve: (p: CheckedPage) => void; reject: (e: Error) => void };

/**
 * Worker threads that read and check pages of leaves for `audit verify` on PostgreSQL (see
 * verify-worker.ts), each on its own connections. A page goes to the worker with the fewest
 * pages in hand; the answers come back in any order and the caller awaits them in its own.
 * A worker that fails (its connection refused, say) fails every page it holds.
 */
export class VerifyPool {
  /** Each worker with the pages it holds (by request id: how to answer each) and whether it stopped. */
  private readonly workers: Array<{ worker: Worker; held: Map<number, Waiter>; exited: boolean }> =
    [];
  private nextId = 0;
  private closing = false;
  /** Why a worker stopped: pages are not given to a stopped worker, and none if all stopped. */
  private failure?: Error;

  constructor(count: number, init: WorkerInit) {
    for (let n = 0; n < count; n++) {
      const worker = new Worker(new URL("./verify-worker.mjs", import.meta.url), {
        workerData: init,
      });
      const slot = { worker, held: new Map<number, Waiter>(), exited: false };
      const failAll = (err: Error) => {
        this.failure ??= err;
        for (const w of slot.held.values()) w.reject(err);
        slot.held.clear();
      };
      worker.on("message", (m: WorkerReply) => {
        const w = slot.held.get(m.id);
        slot.held.delete(m.id);
        if (!w) return;
        if ("error" in m) w.reject(new Error(m.error));
        else w.resolve(m.page);
      });
      worker.on("error", failAll);
      worker.on("exit", (code) => {
        slot.exited = true;
        if (!this.closing) failAll(new Error(`an audit verify worker stopped (exit code ${code})`));
      });
      this.workers.push(slot);
    }
  }

  get count(): number {
    return this.workers.length;
  }

  /** Leaves [from, to), read and checked by a worker. */
  page(from: number, to: number): Promise<CheckedPage> {
    const live = this.workers.filter((w) => !w.exited);
    if (live.length === 0)
      return Promise.reject(this.failure ?? new Error("the audit verify workers have stopped"));
    const slot = live.reduce((a, b) => (b.held.size < a.held.size ? b : a));
    const id = this.nextId++;
    return new Promise<CheckedPage>((resolve, reject) => {
      slot.held.set(id, { resolve, reject });
      slot.worker.postMessage({ id, from, to } satisfies WorkerRequest);
    });
  }

  /** Lets each worker close its connections, then stops it (at once after 5 s). */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(
      this.workers.map(async ({ worker, exited: gone }) => {
        if (gone) return;
        const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
        worker.postMessage("close");
        const timer = setTimeout(() => void worker.terminate(), 5000);
        await exited;
        clearTimeout(timer);
      }),
    );
  }
}
