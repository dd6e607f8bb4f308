// The worker side of TaskPool.checkEveryThread: start-up sends one check to every thread of a
// pool at once, and each thread answers it only once its module has loaded and every other
// thread has arrived too. Holding each check at this barrier is what makes Piscina hand the
// checks to as many distinct threads: a thread that answered at once could take a second check
// while another thread is still loading, and start-up would go on with a thread mid-load (which
// close() would then terminate mid-load: onnxruntime aborts the whole process when that happens).
// No piscina here: worker modules import this.

export interface ThreadCheck {
  barrier: SharedArrayBuffer // one Int32: the threads arrived so far
  threads: number
  timeoutMs: number
}

/** Counts one thread in (a worker, or start-up in place of a thread that crashed). */
export function arrive (barrier: SharedArrayBuffer): void {
  const count = new Int32Array(barrier)
  Atomics.add(count, 0, 1)
  Atomics.notify(count, 0)
}

/**
 * Arrives, then blocks this thread until every thread has, or the check's time is up (a peer
 * that never comes, because it crashed, must not hold the others for ever).
 */
export function arriveAndWait (check: ThreadCheck): void {
  arrive(check.barrier)
  const count = new Int32Array(check.barrier)
  const deadline = Date.now() + check.timeoutMs
  for (let seen = Atomics.load(count, 0); seen < check.threads; seen = Atomics.load(count, 0)) {
    const left = deadline - Date.now()
    if (left <= 0) return
    Atomics.wait(count, 0, seen, left)
  }
}
